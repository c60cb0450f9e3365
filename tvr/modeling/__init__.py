"""tvr.modeling: retrieval models on transformers image-text towers, and the parts they share.

Importing this package registers every method (`methods.METHODS`) with the Auto classes, so
`AutoModel.from_pretrained(folder)` loads a saved tvr model without `trust_remote_code`.
"""

from .base import CLIPRetrievalPreTrainedModel
from .configuration_clip4clip import CLIP4ClipConfig, TemporalTransformerConfig
from .configuration_dual_attention import DualAttentionConfig
from .configuration_eercf import EERCFConfig
from .configuration_emcl import EMCLConfig
from .configuration_internvideo import InternVideoConfig
from .heads import MeanPHead, SeqLSTMHead, SeqTransfHead, TemporalTransformer, TightTransfHead
from .losses import contrastive_loss, sigmoid_loss
from .methods import METHODS, Method, register_method
from .modeling_clip4clip import CLIP4ClipModel, CLIP4ClipPreTrainedModel
from .modeling_dual_attention import DualAttentionModel
from .modeling_eercf import EERCFModel
from .modeling_emcl import EMCLModel
from .modeling_internvideo import InternVideoModel, InternVideoPreTrainedModel, InternVideoVideoEncoding
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
    "CLIP4ClipConfig",
    "CLIP4ClipModel",
    "CLIP4ClipPreTrainedModel",
    "CLIPRetrievalPreTrainedModel",
    "DualAttentionConfig",
    "DualAttentionModel",
    "EERCFConfig",
    "EERCFModel",
    "EMCLConfig",
    "EMCLModel",
    "FrameEncoderOutput",
    "InternVideoConfig",
    "InternVideoModel",
    "InternVideoPreTrainedModel",
    "InternVideoVideoEncoding",
    "ImageTextTower",
    "METHODS",
    "Method",
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
    "register_method",
    "sigmoid_loss",
    "slice_encoding",
]
