"""CLIP4Clip (Luo et al., 2021): mean pooling, LSTM, temporal transformer or tight cross transformer over CLIP frame features."""

from ..registry import Method
from .configuration import CLIP4ClipConfig, TemporalTransformerConfig
from .modeling import CLIP4ClipModel, CLIP4ClipPreTrainedModel

METHOD = Method("CLIP4Clip", "https://arxiv.org/abs/2104.08860", CLIP4ClipConfig, CLIP4ClipModel, converter=f"{__name__}.convert")

__all__ = ["CLIP4ClipConfig", "CLIP4ClipModel", "CLIP4ClipPreTrainedModel", "TemporalTransformerConfig"]
