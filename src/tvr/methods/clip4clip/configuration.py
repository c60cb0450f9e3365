# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""CLIP4Clip configuration: CLIP text/vision sub-configs, the temporal (cross) transformer, the similarity head."""

from huggingface_hub.dataclasses import strict

from ...modeling.configuration_base import (  # noqa: F401  (LINEAR_PATCHES, temporal config: importable from here as before)
    LINEAR_PATCHES,
    ImageTextRetrievalConfig,
    TemporalTransformerConfig,
    temporal_config_from_text,
)

SIM_HEADERS = ("meanP", "seqLSTM", "seqTransf", "tightTransf")


@strict
class CLIP4ClipConfig(ImageTextRetrievalConfig):
    r"""Configuration of [`CLIP4ClipModel`] (Luo et al., "CLIP4Clip", 2021).

    Example:

    ```python
    >>> from tvr import CLIP4ClipConfig, CLIP4ClipModel
    >>> config = CLIP4ClipConfig(sim_header="seqTransf")  # ViT-B/32-sized towers, random weights
    >>> model = CLIP4ClipModel(config)
    ```
    A model initialised from a CLIP checkpoint is easier: `CLIP4ClipModel.from_clip("openai/clip-vit-base-patch32")`.
    """

    model_type = "clip4clip"
    sim_header: str = "meanP"  # meanP | seqLSTM | seqTransf | tightTransf
    # tightTransf: (text, video) pairs per cross-encoder call when scoring; None: what fits the device's memory
    # budget (`tvr.modeling.heads.pair_chunk_size`)
    cross_chunk_size: int | None = None

    def validate_architecture(self):
        super().validate_architecture()
        if self.sim_header not in SIM_HEADERS:
            raise ValueError(f"sim_header must be one of {SIM_HEADERS}, got {self.sim_header!r}")
        if self.sim_header != "meanP" and self.temporal_config.hidden_size != self.projection_dim:
            raise ValueError(
                f"sim_header {self.sim_header!r} works on projected features: temporal_config.hidden_size "
                f"({self.temporal_config.hidden_size}) must equal projection_dim ({self.projection_dim})"
            )
        if self.cross_chunk_size is not None and self.cross_chunk_size < 1:
            raise ValueError(f"cross_chunk_size must be >= 1, got {self.cross_chunk_size}")


__all__ = ["CLIP4ClipConfig", "TemporalTransformerConfig", "temporal_config_from_text"]
