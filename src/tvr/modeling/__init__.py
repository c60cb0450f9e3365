"""tvr.modeling: the parts every method shares -- image-text towers, the base model contract, temporal heads, pooling,
losses and outputs. The methods themselves live in `tvr.methods` (one folder each)."""

from .base import ImageTextRetrievalPreTrainedModel
from .configuration_base import ImageTextRetrievalConfig, TemporalTransformerConfig
from .heads import MeanPHead, SeqLSTMHead, SeqTransfHead, TemporalTransformer, TightTransfHead
from .losses import contrastive_loss, sigmoid_loss
from .outputs import (
    RetrievalLossOutput,
    RetrievalOutput,
    TextEncoding,
    VideoEncoding,
    concat_encodings,
    slice_encoding,
)
from .pooling import masked_mean, mean_pool_normalized
from .towers import TOWER_FAMILIES, FrameEncoderOutput, ImageTextTower, TowerFamily, inflate_patch_kernel

__all__ = [
    "ImageTextRetrievalConfig",
    "ImageTextRetrievalPreTrainedModel",
    "FrameEncoderOutput",
    "ImageTextTower",
    "MeanPHead",
    "RetrievalLossOutput",
    "RetrievalOutput",
    "SeqLSTMHead",
    "SeqTransfHead",
    "TemporalTransformer",
    "TemporalTransformerConfig",
    "TextEncoding",
    "TOWER_FAMILIES",
    "TightTransfHead",
    "TowerFamily",
    "VideoEncoding",
    "concat_encodings",
    "contrastive_loss",
    "inflate_patch_kernel",
    "masked_mean",
    "mean_pool_normalized",
    "sigmoid_loss",
    "slice_encoding",
]
