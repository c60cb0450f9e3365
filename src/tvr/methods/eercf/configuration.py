# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""EERCF configuration: CLIP towers, CLIP4Clip's temporal transformer, and EERCF's score, loss and re-rank weights."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ...modeling.configuration_base import ImageTextRetrievalConfig

PATCH_DTYPES = ("float16", "bfloat16", "float32")


@strict
class EERCFConfig(ImageTextRetrievalConfig):
    r"""Configuration of [`EERCFModel`] (Tian et al., "Towards Efficient and Effective Text-to-Video Retrieval with
    Coarse-to-Fine Visual Representation Learning", AAAI 2024).

    Defaults are the original's (MSR-VTT command and hard-coded constants). Score names: V = video level (coarse),
    WF = weak frame, WP = weak patch, SF = strong frame (text-gated frames), SP = strong patch (text-gated patches).
    The CLIP towers, temporal transformer, `linear_patch` and `max_words` are `ImageTextRetrievalConfig`'s; `max_frames`
    also fixes the size of the frame-logit matrix (videos have exactly that many frames).

    Example:

    ```python
    >>> from tvr import EERCFConfig, EERCFModel
    >>> model = EERCFModel(EERCFConfig(max_frames=12, rerank_top_k=50))  # ViT-B/32-sized towers, random weights
    ```
    """

    model_type = "eercf"
    # two-stage retrieval
    rerank_top_k: int = 50  # candidates per query the fine stage re-scores (the original's --rerantopk)
    rerank_offset: float = 100.0  # added to fine scores so re-ranked candidates sort above the rest
    rerank_video_weight: float = 0.5  # fine-stage fusion (hard-coded in the original's eval_epoch) ...
    rerank_weak_frame_weight: float = 0.8
    rerank_strong_frame_weight: float = 0.2
    rerank_weak_patch_weight: float = 0.2
    patch_embeds_dtype: str = "float16"  # storage of the cached patch embeddings (the bulk of a video encoding)
    # softmax temperatures (hard-coded in the original)
    weak_temperature: float = 0.01  # weak frame and weak patch attention
    frame_gate_temperature: float = 0.1  # text-gated frame pooling (strong frame)
    patch_gate_temperature: float = 0.01  # text-gated patch pooling (strong patch)
    # training loss
    video_weight: float = 0.5  # weak matrix = video * V + weak_frame * WF + weak_patch * WP
    weak_frame_weight: float = 0.5
    weak_patch_weight: float = 0.05
    strong_frame_weight: float = 1.0  # strong matrix = strong_frame * SF + strong_patch * SP
    strong_patch_weight: float = 0.0
    weak_loss_weight: float = 0.8  # inter-feature loss = weak * CE(weak) + strong * CE(strong)
    strong_loss_weight: float = 0.2
    pearson_video_weight: float = 1.0  # intra-feature (Pearson) loss = sum of these times each pair's term
    pearson_frame_weight: float = 1.0
    pearson_patch_weight: float = 0.0
    pearson_loss_weight: float = 0.001  # total = inter + pearson_loss_weight * intra
    pearson_diagonal_weight: float = 0.14  # alpha1: weight of sum_d (C_dd - 1)^2
    pearson_off_diagonal_weight: float = 0.0  # alpha2: weight of sum_{d != e} C_de^2

    def validate_architecture(self):
        super().validate_architecture()
        if self.temporal_config.hidden_size != self.projection_dim:
            raise ValueError(
                f"the temporal transformer works on projected frame features: temporal_config.hidden_size "
                f"({self.temporal_config.hidden_size}) must equal projection_dim ({self.projection_dim})"
            )
        if self.max_frames > self.temporal_config.max_position_embeddings:
            raise ValueError(
                f"max_frames ({self.max_frames}) exceeds the frame positions of the temporal transformer "
                f"({self.temporal_config.max_position_embeddings})"
            )
        if self.rerank_top_k < 1:
            raise ValueError(f"rerank_top_k must be >= 1, got {self.rerank_top_k}")
        if self.patch_embeds_dtype not in PATCH_DTYPES:
            raise ValueError(f"patch_embeds_dtype must be one of {PATCH_DTYPES}, got {self.patch_embeds_dtype!r}")


__all__ = ["EERCFConfig"]
