# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""DAVRL configuration: frozen CLIP towers, global video tokens, dual-attention patch selection, strided segments."""

from dataclasses import field

from huggingface_hub.dataclasses import strict

from ...modeling.configuration_base import ImageTextRetrievalConfig

SELECT_MODES = ("dual_attention",)
VISUAL_OUTPUT_TYPES = (
    "global_token0",
    "average_global_token",
    "average_frame_cls_token",
    "average_global_token_and_frame_cls_token",
)
# Towers whose vision side has a class token, a pre-LayerNorm and CLIP's encoder layers (what the layer loop runs).
DUAL_ATTENTION_TOWERS = ("clip", "metaclip_2")


@strict
class DualAttentionConfig(ImageTextRetrievalConfig):
    r"""Configuration of [`DualAttentionModel`] (DAVRL: "Dual-Attention Video Representation Learning for Parameter
    Efficient Text-Video Retrieval", github.com/bzy-source/DAVRL). Defaults are the original's training scripts
    (ViT-B/32, 12 frames); the original flag of each field is named in its comment.

    The trained weights are LoRA adapters on every attention's fused `qkv_proj` (`lora_rank`), injected with `peft`
    (`tvr.methods.dual_attention.dual_attention_lora_config(config)`); the model itself is the frozen tower plus the global tokens.

    Example:

    ```python
    >>> from tvr import DualAttentionConfig, DualAttentionModel
    >>> model = DualAttentionModel(DualAttentionConfig())  # ViT-B/32-sized towers, random weights
    >>> model = DualAttentionModel.from_clip("openai/clip-vit-base-patch32")  # CLIP-initialised
    ```
    """

    model_type = "dual_attention"
    num_global_tokens: int = 8  # --global_visual_prompt_length: video tokens prepended once per video
    sel_layers: list[int] = field(default_factory=lambda: [6])  # --sel_layer 6: patch selection before these layers
    r_drop: int = 10  # --r: patches dropped per frame at each selection layer
    alpha: float | int = 0.4  # --alpha: weight of the global map in the selection score (1 - alpha: the local map)
    seg_layers: list[int] = field(default_factory=lambda: [8, 9, 10])  # --seg_layer 8-9-10: regrouping layers
    seg_num: list[int] = field(default_factory=lambda: [6, 3, 1])  # --seg_num 6-3-1: segments after each regrouping
    frame_per_seg: list[int] = field(default_factory=lambda: [2, 4, 12])  # --frame_per_seg 2-4-12: frames per segment
    visual_output_type: str = "global_token0"  # --visual_output_type
    select: str = "dual_attention"  # --select Dual-Attention (the random / STA ablations are not ported)
    global_tokens_trainable: bool = False  # the original freezes the global tokens (seeded random, checkpointed)
    lora_rank: int = 8  # --lora_dim: rank of the LoRA adapters on every qkv projection

    def validate_architecture(self):
        super().validate_architecture()
        if self.tower_type not in DUAL_ATTENTION_TOWERS:
            raise ValueError(f"tower_type must be one of {DUAL_ATTENTION_TOWERS} (a ViT with a class token), "
                             f"got {self.tower_type!r}")
        num_layers = self.vision_config.num_hidden_layers
        num_patches = (self.vision_config.image_size // self.vision_config.patch_size) ** 2
        if self.num_global_tokens < 1:
            raise ValueError(f"num_global_tokens must be >= 1, got {self.num_global_tokens}")
        if self.lora_rank < 1:
            raise ValueError(f"lora_rank must be >= 1, got {self.lora_rank}")
        if self.select not in SELECT_MODES:
            raise ValueError(f"select must be one of {SELECT_MODES}, got {self.select!r}")
        if self.visual_output_type not in VISUAL_OUTPUT_TYPES:
            raise ValueError(
                f"visual_output_type must be one of {VISUAL_OUTPUT_TYPES}, got {self.visual_output_type!r}"
            )
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        for name in ("sel_layers", "seg_layers"):
            layers = getattr(self, name)
            if list(layers) != sorted(set(layers)) or any(not 1 <= layer < num_layers for layer in layers):
                raise ValueError(f"{name} must be increasing layer indices in [1, {num_layers - 1}] "
                                 f"(vision_config.num_hidden_layers = {num_layers}), got {list(layers)}")
        if self.sel_layers:
            if not 1 <= self.r_drop or self.r_drop * len(self.sel_layers) >= num_patches:
                raise ValueError(f"r_drop must be >= 1 and leave patches after {len(self.sel_layers)} selection(s) "
                                 f"of the {num_patches} patches per frame, got {self.r_drop}")
            if self.seg_layers and self.sel_layers[-1] >= self.seg_layers[0]:
                raise ValueError(f"sel_layers {list(self.sel_layers)} must come before the first of seg_layers "
                                 f"{list(self.seg_layers)} (selection works on single frames)")
        if not len(self.seg_layers) == len(self.seg_num) == len(self.frame_per_seg):
            raise ValueError(f"seg_layers, seg_num and frame_per_seg need one entry per regrouping, got "
                             f"{list(self.seg_layers)}, {list(self.seg_num)}, {list(self.frame_per_seg)}")
        units = self.max_frames
        for num, per_seg in zip(self.seg_num, self.frame_per_seg):
            if num * per_seg != self.max_frames:
                raise ValueError(f"frame_per_seg * seg_num != max_frames: {per_seg} * {num} != {self.max_frames}")
            if num >= units or units % num:
                raise ValueError(f"seg_num {list(self.seg_num)}: each entry must divide and be smaller than the "
                                 f"previous number of segments (max_frames = {self.max_frames} at first), got {num} "
                                 f"after {units}")
            units = num


__all__ = ["DualAttentionConfig", "SELECT_MODES", "VISUAL_OUTPUT_TYPES"]
