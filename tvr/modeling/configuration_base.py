# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""What every tvr method's configuration shares: CLIP text/vision sub-configs, the temporal transformer CLIP4Clip adds
on top of CLIP (also EMCL's and EERCF's), the patch type and the processor defaults."""

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import CLIPTextConfig, CLIPVisionConfig, PreTrainedConfig

LINEAR_PATCHES = ("2d", "3d")


@strict
class TemporalTransformerConfig(PreTrainedConfig):
    """The transformer CLIP4Clip adds on top of CLIP: `seqTransf`'s temporal encoder and `tightTransf`'s cross encoder.

    Its layers are CLIP encoder layers (pre-LN, QuickGELU MLP) with BERT-style LayerNorm eps 1e-12, as the original
    `cross_config` builds them. Left unset in [`CLIP4ClipConfig`], it is derived from the text config (width, heads =
    width // 64, context length), which is what initialising it from CLIP's first text layers needs.
    """

    model_type = "clip4clip_temporal"
    base_config_key = "temporal_config"

    hidden_size: int = 512  # width; must equal the CLIP projection dim (the head works on projected features)
    intermediate_size: int = 2048  # MLP width (4 * hidden_size in the original)
    num_hidden_layers: int = 4  # the original's --cross_num_hidden_layers
    num_attention_heads: int = 8
    max_position_embeddings: int = 77  # frame (or text+frame) positions; CLIP's context length in the original
    hidden_act: str = "quick_gelu"
    layer_norm_eps: float = 1e-12  # BERT LayerNorm of module_cross, not CLIP's 1e-5
    attention_dropout: float = 0.0
    hidden_dropout_prob: float = 0.1  # dropout after tightTransf's position embeddings (only place it is used)
    initializer_range: float = 0.02

    def validate_architecture(self):
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"temporal_config.hidden_size ({self.hidden_size}) is not a multiple of "
                f"num_attention_heads ({self.num_attention_heads})"
            )


def temporal_config_from_text(text_config: CLIPTextConfig | dict | None) -> dict[str, Any]:
    """Temporal transformer defaults derived from CLIP's text tower, as CLIP4Clip builds its cross/temporal encoder."""
    if text_config is None:
        text_config = CLIPTextConfig()
    elif isinstance(text_config, dict):
        text_config = CLIPTextConfig(**text_config)
    width = text_config.hidden_size
    return {
        "hidden_size": width,
        # the original builds these layers as width // 64 heads and a 4 * width MLP, which is what every OpenAI
        # CLIP text tower has; reading them from the text config keeps the copied CLIP layers valid for any CLIP
        "intermediate_size": text_config.intermediate_size,
        "num_attention_heads": text_config.num_attention_heads,
        "max_position_embeddings": text_config.max_position_embeddings,
    }


@strict
class CLIPRetrievalConfig(PreTrainedConfig):
    """Fields and rules shared by the configs of tvr's CLIP-based methods (`CLIPRetrievalPreTrainedModel`).

    The temporal transformer follows the text tower unless told otherwise: left unset it is derived from
    `text_config` (`temporal_config_from_text`), and a partial dict overrides the derived values
    (e.g. `temporal_config={"num_hidden_layers": 1}`).
    """

    sub_configs_defaults = {
        "text_config": CLIPTextConfig,
        "vision_config": CLIPVisionConfig,
        "temporal_config": TemporalTransformerConfig,
    }

    text_config: dict | CLIPTextConfig | None = None  # CLIP text tower
    vision_config: dict | CLIPVisionConfig | None = None  # CLIP vision tower (ViT)
    temporal_config: dict | TemporalTransformerConfig | None = None  # None or partial dict: derived from text_config
    projection_dim: int = 512  # shared text/video embedding size
    logit_scale_init_value: float | int = 2.6592  # ln(1 / 0.07), CLIP's initial temperature (random init only)
    linear_patch: str = "2d"  # 2d: per-frame patches; 3d: Conv3d over 3 neighbouring frames
    max_frames: int = 12  # frames per video the model is trained / evaluated with (processor default)
    max_words: int = 32  # tokens per caption, incl. start and end tokens (processor default)
    initializer_range: float = 0.02  # std of the normal init of the parts the method adds to CLIP

    def __post_init__(self, **kwargs):
        if not isinstance(self.temporal_config, PreTrainedConfig):
            text_config = self.text_config
            if isinstance(text_config, PreTrainedConfig):
                text_config = text_config.to_dict()
            self.temporal_config = {**temporal_config_from_text(text_config), **(self.temporal_config or {})}
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        if self.linear_patch not in LINEAR_PATCHES:
            raise ValueError(f"linear_patch must be one of {LINEAR_PATCHES}, got {self.linear_patch!r}")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.max_words < 3:  # start and end tokens plus at least one word
            raise ValueError(f"max_words must be >= 3 (start, end and one word token), got {self.max_words}")


__all__ = ["LINEAR_PATCHES", "CLIPRetrievalConfig", "TemporalTransformerConfig", "temporal_config_from_text"]
