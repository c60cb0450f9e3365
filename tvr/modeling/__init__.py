"""tvr.modeling: retrieval models on transformers' CLIP, and the parts they share.

Importing this package registers every config and model with `AutoConfig` / `AutoModel`, so
`AutoModel.from_pretrained(folder)` loads a saved tvr model without `trust_remote_code`.
"""

from transformers import AutoConfig, AutoModel

from .backbone import CLIPBackbone, inflate_patch_kernel
from .configuration_clip4clip import CLIP4ClipConfig, TemporalTransformerConfig
from .heads import MeanPHead, SeqLSTMHead, SeqTransfHead, TemporalTransformer, TightTransfHead
from .losses import contrastive_loss
from .modeling_clip4clip import CLIP4ClipModel, CLIP4ClipPreTrainedModel
from .outputs import RetrievalOutput, TextEncoding, VideoEncoding, concat_encodings
from .pooling import masked_mean, mean_pool_normalized

AutoConfig.register("clip4clip", CLIP4ClipConfig, exist_ok=True)
AutoModel.register(CLIP4ClipConfig, CLIP4ClipModel, exist_ok=True)

__all__ = [
    "CLIP4ClipConfig",
    "CLIP4ClipModel",
    "CLIP4ClipPreTrainedModel",
    "CLIPBackbone",
    "MeanPHead",
    "RetrievalOutput",
    "SeqLSTMHead",
    "SeqTransfHead",
    "TemporalTransformer",
    "TemporalTransformerConfig",
    "TextEncoding",
    "TightTransfHead",
    "VideoEncoding",
    "concat_encodings",
    "contrastive_loss",
    "inflate_patch_kernel",
    "masked_mean",
    "mean_pool_normalized",
]
