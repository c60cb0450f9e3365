# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""InternVideo retrieval configuration: CLIP towers (ViT-L/14 by default) + the CLIP-EVL global temporal branch."""

from huggingface_hub.dataclasses import strict

from ...modeling.configuration_base import ImageTextRetrievalConfig

# OpenAI CLIP ViT-L/14 at 224 px, the towers of every released InternVideo retrieval checkpoint.
VIT_L14_TEXT = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}
VIT_L14_VISION = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 24,
    "num_attention_heads": 16,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
    "projection_dim": 768,
}


@strict
class InternVideoConfig(ImageTextRetrievalConfig):
    r"""Configuration of [`InternVideoModel`] (Wang et al., "InternVideo", 2022; retrieval code of
    OpenGVLab/InternVideo, `InternVideo1/Downstream/Video-Text-Retrieval`, `--clip_evl`).

    Left unset, the towers are OpenAI CLIP ViT-L/14's (text context 77, projection 768) and the temporal branch is the
    original's: extractor on backbone layers 20-23, 16 heads, MLP 4x.

    Example:

    ```python
    >>> from tvr import InternVideoConfig, InternVideoModel
    >>> config = InternVideoConfig()  # ViT-L/14 towers, random weights
    >>> model = InternVideoModel(config)
    ```
    Converted checkpoints are easier: `tvr convert internvideo pytorch_model.bin out/` (see the README).
    """

    model_type = "internvideo"
    projection_dim: int = 768  # ViT-L/14's shared embedding size
    extractor_layers: list[int] | None = None  # backbone layers (0-based) the branch reads; None: the last 4
    extractor_heads: int | None = None  # attention heads of the extractor; None: the vision tower's (16 for L/14)
    extractor_mlp_ratio: float = 4.0  # MLP width of an extractor layer / vision width
    mask_padded_frames: bool = False  # False: padded frames enter the branch, as the original; True: they are masked
    temporal_branch_pretrained: bool = False  # the branch holds pretrained weights: trains at lr * coef_lr (original)
    max_frames: int = 8  # the original's zero-shot budget (fine-tuning: 12 on MSR-VTT, 8 VATEX/MSVD/LSMDC)
    max_words: int = 77  # the original always runs captions at CLIP's full context

    def __post_init__(self, **kwargs):
        if self.tower_type == "clip":
            if self.text_config is None:
                self.text_config = dict(VIT_L14_TEXT)
            if self.vision_config is None:
                self.vision_config = dict(VIT_L14_VISION)
        super().__post_init__(**kwargs)
        if self.extractor_layers is None:
            layers = self.vision_config.num_hidden_layers
            self.extractor_layers = list(range(max(layers - 4, 0), layers))
        if self.extractor_heads is None:
            self.extractor_heads = self.vision_config.num_attention_heads

    def validate_architecture(self):
        super().validate_architecture()
        if self.tower_type == "siglip":
            raise ValueError("tower_type 'siglip' has no class token; InternVideo fuses the frames' class tokens")
        layers = list(self.extractor_layers)
        num_layers = self.vision_config.num_hidden_layers
        if not layers or layers != sorted(set(layers)) or not all(0 <= index < num_layers for index in layers):
            raise ValueError(
                f"extractor_layers must be increasing backbone layer numbers in [0, {num_layers}), got {layers}"
            )
        if self.vision_config.hidden_size % self.extractor_heads != 0:
            raise ValueError(
                f"extractor_heads ({self.extractor_heads}) must divide the vision width "
                f"({self.vision_config.hidden_size})"
            )


__all__ = ["InternVideoConfig"]
