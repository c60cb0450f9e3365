# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""EMCL-Net configuration: CLIP towers, the temporal head, text-conditioned frame pooling and the EM module."""

import math

from huggingface_hub.dataclasses import strict

from ...modeling.configuration_base import ImageTextRetrievalConfig

# The original's --agg_module: "None" (no temporal module), "seqLSTM" or "seqTransf" (used for every result).
TEMPORAL_HEADS = ("none", "seqLSTM", "seqTransf")


@strict
class EMCLConfig(ImageTextRetrievalConfig):
    r"""Configuration of [`EMCLModel`] (Jin et al., "Expectation-Maximization Contrastive Learning for Compact
    Video-and-Language Representations", NeurIPS 2022). Defaults are the paper's; the original flag of each field is
    named in its comment. The CLIP towers, temporal transformer, `max_frames` / `max_words` and `linear_patch` are
    `ImageTextRetrievalConfig`'s (frames are patchified one by one by default: the original has no 3d patch).

    Example:

    ```python
    >>> from tvr import EMCLConfig, EMCLModel
    >>> model = EMCLModel(EMCLConfig())  # ViT-B/32-sized towers, random weights
    >>> model = EMCLModel.from_clip("openai/clip-vit-base-patch32", em_num_bases=16)  # CLIP-initialised
    ```
    """

    model_type = "emcl"
    temporal_head: str = "seqTransf"  # --agg_module: none | seqLSTM | seqTransf
    frame_pooling_temperature: float | int = 3.0  # --temp: softmax temperature of the text-conditioned frame weights
    em_num_bases: int = 32  # --centerK: number of EM bases K
    em_num_stages: int = 9  # --stage_num: EM iterations per call
    em_temperature: float | int = 1.0  # --lamd: softmax temperature of the E-step
    em_beta: float | int = 3.0  # --beta: weight of the EM reconstruction; 0 turns the EM off
    em_momentum: float | int = 0.9  # --momentum: training update of the stored bases
    em_bases_seed: int = 0  # --seed: the initial bases are the original's first draw after torch.manual_seed(seed)
    eval_block_size: int | None = 32  # texts x videos per EM block in evaluation (the original's 32); None: one block

    def validate_architecture(self):
        super().validate_architecture()
        if self.temporal_head not in TEMPORAL_HEADS:
            raise ValueError(f"temporal_head must be one of {TEMPORAL_HEADS}, got {self.temporal_head!r}")
        if self.temporal_head != "none" and self.temporal_config.hidden_size != self.projection_dim:
            raise ValueError(
                f"temporal_head {self.temporal_head!r} works on projected features: temporal_config.hidden_size "
                f"({self.temporal_config.hidden_size}) must equal projection_dim ({self.projection_dim})"
            )
        if self.em_num_bases < 1 or self.em_num_stages < 1:
            raise ValueError(
                f"em_num_bases and em_num_stages must be >= 1, got {self.em_num_bases} and {self.em_num_stages}"
            )
        if self.frame_pooling_temperature <= 0 or self.em_temperature <= 0:
            raise ValueError(
                "frame_pooling_temperature and em_temperature must be > 0, got "
                f"{self.frame_pooling_temperature} and {self.em_temperature}"
            )
        if not math.isfinite(self.em_beta):
            raise ValueError(f"em_beta must be a finite number, got {self.em_beta}")
        if not 0 <= self.em_momentum < 1:
            raise ValueError(f"em_momentum must be in [0, 1), got {self.em_momentum}")
        if self.eval_block_size is not None and self.eval_block_size < 1:
            raise ValueError(f"eval_block_size must be >= 1 or None, got {self.eval_block_size}")


__all__ = ["EMCLConfig", "TEMPORAL_HEADS"]
