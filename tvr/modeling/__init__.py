"""tvr.modeling: retrieval models on transformers' CLIP, and the parts they share.

Importing this package registers every config and model with `AutoConfig` / `AutoModel`, so
`AutoModel.from_pretrained(folder)` loads a saved tvr model without `trust_remote_code`.
"""

from transformers import AutoConfig, AutoModel

from .backbone import CLIPBackbone, inflate_patch_kernel
from .base import CLIPRetrievalPreTrainedModel
from .configuration_clip4clip import CLIP4ClipConfig, TemporalTransformerConfig
from .configuration_eercf import EERCFConfig
from .configuration_emcl import EMCLConfig
from .heads import MeanPHead, SeqLSTMHead, SeqTransfHead, TemporalTransformer, TightTransfHead
from .losses import contrastive_loss
from .modeling_clip4clip import CLIP4ClipModel, CLIP4ClipPreTrainedModel
from .modeling_eercf import EERCFModel
from .modeling_emcl import EMCLModel
from .outputs import RetrievalLossOutput, RetrievalOutput, TextEncoding, VideoEncoding, concat_encodings
from .pooling import masked_mean, mean_pool_normalized

for _config, _model in ((CLIP4ClipConfig, CLIP4ClipModel), (EMCLConfig, EMCLModel), (EERCFConfig, EERCFModel)):
    AutoConfig.register(_config.model_type, _config, exist_ok=True)
    AutoModel.register(_config, _model, exist_ok=True)

__all__ = [
    "CLIP4ClipConfig",
    "CLIP4ClipModel",
    "CLIP4ClipPreTrainedModel",
    "CLIPBackbone",
    "CLIPRetrievalPreTrainedModel",
    "EERCFConfig",
    "EERCFModel",
    "EMCLConfig",
    "EMCLModel",
    "MeanPHead",
    "RetrievalLossOutput",
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
