# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""What every tvr method's configuration shares: the image-text tower it wraps (its type and text/vision
sub-configs), the temporal transformer CLIP4Clip adds on top of it (also EMCL's and EERCF's), the loss, the patch type
and the processor defaults."""

from typing import Any

from huggingface_hub.dataclasses import strict
from transformers import CLIPTextConfig, CLIPVisionConfig, PreTrainedConfig

from .towers import LOSSES, tower_family, tower_sub_config_class

LINEAR_PATCHES = ("2d", "3d")


@strict
class TemporalTransformerConfig(PreTrainedConfig):
    """The transformer CLIP4Clip adds on top of CLIP: `seqTransf`'s temporal encoder and `tightTransf`'s cross encoder.

    Its layers are pre-LN transformer layers with BERT-style LayerNorm eps 1e-12, as the original `cross_config` builds
    them. Left unset in [`CLIP4ClipConfig`], it is derived from the tower's text config (width, heads, MLP width,
    context length, activation: QuickGELU for CLIP), which is what initialising it from the first text layers needs;
    the eps stays the method's.
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


def temporal_config_from_text(text_config: PreTrainedConfig | dict | None) -> dict[str, Any]:
    """Temporal transformer defaults derived from a text tower, as CLIP4Clip builds its cross/temporal encoder (a dict
    or `None` is read as a CLIP text config)."""
    if text_config is None:
        text_config = CLIPTextConfig()
    elif isinstance(text_config, dict):
        text_config = CLIPTextConfig(**{k: v for k, v in text_config.items() if k != "model_type"})
    return {
        "hidden_size": text_config.hidden_size,
        # the original builds these layers as width // 64 heads and a 4 * width MLP, which is what every OpenAI
        # CLIP text tower has; reading them from the text config keeps the copied text layers valid for any tower
        "intermediate_size": text_config.intermediate_size,
        "num_attention_heads": text_config.num_attention_heads,
        "max_position_embeddings": text_config.max_position_embeddings,
        "hidden_act": text_config.hidden_act,
    }


@strict
class ImageTextRetrievalConfig(PreTrainedConfig):
    """Fields and rules shared by the configs of tvr's methods (`ImageTextRetrievalPreTrainedModel`).

    `tower_type` names the transformers image-text model the method wraps (`"clip"`, `"metaclip_2"`, `"siglip"`);
    `text_config` / `vision_config` are that model's sub-configs (dicts are read as its classes, e.g.
    `SiglipTextConfig`). Unset `logit_scale_init_value`, `logit_bias_init_value` and `loss_type` take the tower's
    conventions. The temporal transformer follows the text tower unless told otherwise: left unset it is derived from
    `text_config` (`temporal_config_from_text`), and a partial dict overrides the derived values
    (e.g. `temporal_config={"num_hidden_layers": 1}`).
    """

    sub_configs_defaults = {
        "text_config": CLIPTextConfig,
        "vision_config": CLIPVisionConfig,
        "temporal_config": TemporalTransformerConfig,
    }

    tower_type: str = "clip"  # the image-text model's model_type: clip | metaclip_2 | siglip
    text_config: dict | PreTrainedConfig | None = None  # the tower's text config (e.g. CLIPTextConfig)
    vision_config: dict | PreTrainedConfig | None = None  # the tower's vision config (ViT)
    temporal_config: dict | TemporalTransformerConfig | None = None  # None or partial dict: derived from text_config
    projection_dim: int = 512  # shared text/video embedding size
    logit_scale_init_value: float | int | None = None  # random init only; None: the tower's (CLIP ln(1/0.07))
    logit_bias_init_value: float | int | None = None  # towers with a logit bias (SigLIP: -10); random init only
    loss_type: str | None = None  # softmax (contrastive CE) | sigmoid (SigLIP); None: the tower's
    linear_patch: str = "2d"  # 2d: per-frame patches; 3d: Conv3d over 3 neighbouring frames
    max_frames: int = 12  # frames per video the model is trained / evaluated with (processor default)
    max_words: int = 32  # tokens per caption, incl. start and end tokens (processor default)
    initializer_range: float = 0.02  # std of the normal init of the parts the method adds to CLIP

    def __post_init__(self, **kwargs):
        family = tower_family(self.tower_type)
        for key in ("text_config", "vision_config"):
            setattr(self, key, _tower_sub_config(self.tower_type, key, getattr(self, key)))
        if self.logit_scale_init_value is None:
            self.logit_scale_init_value = family.logit_scale_init
        if self.logit_bias_init_value is None and family.has_logit_bias:
            self.logit_bias_init_value = family.logit_bias_init
        if self.loss_type is None:
            self.loss_type = family.loss
        if not isinstance(self.temporal_config, PreTrainedConfig):
            self.temporal_config = {**temporal_config_from_text(self.text_config), **(self.temporal_config or {})}
        super().__post_init__(**kwargs)

    def validate_architecture(self):
        if self.loss_type not in LOSSES:
            raise ValueError(f"loss_type must be one of {sorted(LOSSES)}, got {self.loss_type!r}")
        if self.linear_patch not in LINEAR_PATCHES:
            raise ValueError(f"linear_patch must be one of {LINEAR_PATCHES}, got {self.linear_patch!r}")
        if self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1, got {self.max_frames}")
        if self.max_words < 3:  # start and end tokens plus at least one word
            raise ValueError(f"max_words must be >= 3 (start, end and one word token), got {self.max_words}")


def _tower_sub_config(tower_type: str, key: str, value: dict | PreTrainedConfig | None) -> PreTrainedConfig:
    """`text_config` / `vision_config` as the tower's own config class; a dict of another model type is an error."""
    config_class = tower_sub_config_class(tower_type, key)
    if isinstance(value, config_class):
        return value
    value = value.to_dict() if isinstance(value, PreTrainedConfig) else dict(value or {})
    model_type = value.pop("model_type", config_class.model_type)
    if model_type != config_class.model_type:
        raise ValueError(
            f"{key} has model_type {model_type!r} but tower_type {tower_type!r} needs {config_class.model_type!r}: "
            "pass tower_type to match the sub-configs"
        )
    value.pop("transformers_version", None)
    return config_class(**value)


__all__ = ["LINEAR_PATCHES", "ImageTextRetrievalConfig", "TemporalTransformerConfig", "temporal_config_from_text"]
