"""The `Method` entry: everything the rest of tvr needs to know about one method, declared by the method's own
folder (``tvr/methods/<name>/__init__.py``) and registered by :func:`register_method`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from transformers import AutoConfig, AutoModel, AutoProcessor, AutoVideoProcessor, PreTrainedConfig, PreTrainedModel

from ..peft import ADAPTER_FACTORIES
from ..processing import TVRProcessor, TVRVideoProcessor
from ..processing.model_processor import FRAME_SAMPLING


@dataclass(frozen=True)
class Method:
    """A tvr method.

    Attributes:
        name: its name on model cards, e.g. "CLIP4Clip".
        paper: the paper's address, linked from model cards.
        config_class / model_class: its `PreTrainedConfig` (whose `model_type` keys it) and `PreTrainedModel`.
        converter: the module that defines `tvr convert <format>` for the original repo's checkpoints, if any.
        frame_sampling: the processor's frame sampling for the method's saved folders (`"stride"`: InternVideo's
            segment middles), when it is not the default per-second rule.
        adapter: for a method that trains a `peft` adapter (DAVRL), the function wrapping a model with it.
    """

    name: str
    paper: str | None
    config_class: type[PreTrainedConfig]
    model_class: type[PreTrainedModel]
    converter: str | None = None
    frame_sampling: str | None = None
    adapter: Callable[[PreTrainedModel], PreTrainedModel] | None = None

    @property
    def model_type(self) -> str:
        return self.config_class.model_type


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> None:
    """Register a method: its config and model with `AutoConfig` / `AutoModel`, tvr's processor and video processor
    for its config with `AutoProcessor` / `AutoVideoProcessor` (one processor serves every method), its frame
    sampling with the processor of saved folders and its adapter with `tvr.peft`."""
    METHODS[method.model_type] = method
    AutoConfig.register(method.model_type, method.config_class, exist_ok=True)
    AutoModel.register(method.config_class, method.model_class, exist_ok=True)
    AutoProcessor.register(method.config_class, TVRProcessor, exist_ok=True)
    AutoVideoProcessor.register(method.config_class, TVRVideoProcessor, exist_ok=True)
    if method.frame_sampling is not None:
        FRAME_SAMPLING[method.model_type] = method.frame_sampling
    if method.adapter is not None:
        ADAPTER_FACTORIES[method.model_type] = method.adapter


__all__ = ["METHODS", "Method", "register_method"]
