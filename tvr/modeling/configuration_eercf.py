# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""EERCF configuration: CLIP towers, CLIP4Clip's temporal transformer, and EERCF's score, loss and re-rank weights."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict
from transformers import CLIPTextConfig, CLIPVisionConfig, PreTrainedConfig

from .configuration_clip4clip import LINEAR_PATCHES, TemporalTransformerConfig, temporal_config_from_text

PATCH_DTYPES = ("float16", "bfloat16", "float32")


@strict
class EERCFConfig(PreTrainedConfig):
    r"""Configuration of [`EERCFModel`] (Tian et al., "Towards Efficient and Effective Text-to-Video Retrieval with
    Coarse-to-Fine Visual Representation Learning", AAAI 2024).

    Defaults are the original's (MSR-VTT command and hard-coded constants). Score names: V = video level (coarse),
    WF = weak frame, WP = weak patch, SF = strong frame (text-gated frames), SP = strong patch (text-gated patches).

    Example:

    ```python
    >>> from tvr import EERCFConfig, EERCFModel
    >>> model = EERCFModel(EERCFConfig(max_frames=12, rerank_top_k=50))  # ViT-B/32-sized towers, random weights
    ```
    """

    model_type = "eercf"
    sub_configs_defaults = {
        "text_config": CLIPTextConfig,
        "vision_config": CLIPVisionConfig,
        "temporal_config": TemporalTransformerConfig,
    }

    text_config: dict | CLIPTextConfig | None = None  # CLIP text tower
    vision_config: dict | CLIPVisionConfig | None = None  # CLIP vision tower (ViT)
    temporal_config: dict | TemporalTransformerConfig | None = None  # None or partial dict: derived from text_config
    projection_dim: int = 512  # shared text/video embedding size
    logit_scale_init_value: float = 2.6592  # ln(1 / 0.07), CLIP's initial temperature (random init only)
    linear_patch: str = "2d"  # 2d: per-frame patches (the original's setting); 3d: Conv3d over 3 neighbouring frames
    max_frames: int = 12  # frames per video; fixes the size of the frame-logit matrix
    max_words: int = 32  # tokens per caption, incl. start and end tokens (processor default)
    initializer_range: float = 0.02  # std of the normal init of the temporal transformer
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

    def __post_init__(self, **kwargs):
        # Same rule as CLIP4Clip: the temporal transformer follows the text tower unless told otherwise.
        if not isinstance(self.temporal_config, PreTrainedConfig):
            text_config = self.text_config
            if isinstance(text_config, PreTrainedConfig):
                text_config = text_config.to_dict()
            self.temporal_config = {**temporal_config_from_text(text_config), **(self.temporal_config or {})}
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        if self.linear_patch not in LINEAR_PATCHES:
            raise ValueError(f"linear_patch must be one of {LINEAR_PATCHES}, got {self.linear_patch!r}")
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
