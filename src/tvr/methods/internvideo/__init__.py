"""InternVideo retrieval (Wang et al., 2022): CLIP-EVL with its temporal branch, segment-middle frames, and its own
evaluation protocol (`evaluation.py`)."""

from ..registry import Method
from .configuration import InternVideoConfig
from .modeling import InternVideoModel, InternVideoPreTrainedModel, InternVideoVideoEncoding

METHOD = Method("InternVideo", "https://arxiv.org/abs/2212.03191", InternVideoConfig, InternVideoModel,
                converter=f"{__name__}.convert", frame_sampling="stride")

__all__ = ["InternVideoConfig", "InternVideoModel", "InternVideoPreTrainedModel", "InternVideoVideoEncoding"]
