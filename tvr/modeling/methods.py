"""One entry per tvr method: what registers it with the Auto classes, names it on model cards and offers its
`tvr convert` command. Adding a method is adding a `Method` here (`register_method`)."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import AutoConfig, AutoModel, AutoProcessor, AutoVideoProcessor, PreTrainedConfig, PreTrainedModel

from ..processing import TVRProcessor, TVRVideoProcessor
from .configuration_clip4clip import CLIP4ClipConfig
from .configuration_dual_attention import DualAttentionConfig
from .configuration_eercf import EERCFConfig
from .configuration_emcl import EMCLConfig
from .configuration_internvideo import InternVideoConfig
from .modeling_clip4clip import CLIP4ClipModel
from .modeling_dual_attention import DualAttentionModel
from .modeling_eercf import EERCFModel
from .modeling_emcl import EMCLModel
from .modeling_internvideo import InternVideoModel


@dataclass(frozen=True)
class Method:
    """A tvr method.

    Attributes:
        name: its name on model cards, e.g. "CLIP4Clip".
        paper: the paper's address, linked from model cards.
        config_class / model_class: its `PreTrainedConfig` (whose `model_type` keys it) and `PreTrainedModel`.
        converter: the module that defines `tvr convert <format>` for the original repo's checkpoints, if any.
    """

    name: str
    paper: str | None
    config_class: type[PreTrainedConfig]
    model_class: type[PreTrainedModel]
    converter: str | None = None

    @property
    def model_type(self) -> str:
        return self.config_class.model_type


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> None:
    """Register a method: its config and model with `AutoConfig` / `AutoModel`, and tvr's processor and video
    processor for its config with `AutoProcessor` / `AutoVideoProcessor` (one processor serves every method)."""
    METHODS[method.model_type] = method
    AutoConfig.register(method.model_type, method.config_class, exist_ok=True)
    AutoModel.register(method.config_class, method.model_class, exist_ok=True)
    AutoProcessor.register(method.config_class, TVRProcessor, exist_ok=True)
    AutoVideoProcessor.register(method.config_class, TVRVideoProcessor, exist_ok=True)


for _method in (
    Method("CLIP4Clip", "https://arxiv.org/abs/2104.08860", CLIP4ClipConfig, CLIP4ClipModel, "tvr.convert.clip4clip"),
    Method("EMCL-Net", "https://arxiv.org/abs/2211.11427", EMCLConfig, EMCLModel, "tvr.convert.emcl"),
    Method("EERCF", "https://arxiv.org/abs/2401.00701", EERCFConfig, EERCFModel, "tvr.convert.eercf"),
    Method(
        "InternVideo", "https://arxiv.org/abs/2212.03191", InternVideoConfig, InternVideoModel,
        "tvr.convert.internvideo",
    ),
    Method(
        "DAVRL", "https://github.com/bzy-source/DAVRL", DualAttentionConfig, DualAttentionModel,
        "tvr.convert.dual_attention",
    ),
):
    register_method(_method)

__all__ = ["METHODS", "Method", "register_method"]
