"""EERCF (2024): a coarse stage over the gallery, its top k re-scored at fine granularity (`rerank.py`)."""

from ..registry import Method
from .configuration import EERCFConfig
from .modeling import EERCFModel, EERCFPreTrainedModel

METHOD = Method("EERCF", "https://arxiv.org/abs/2401.00701", EERCFConfig, EERCFModel, converter=f"{__name__}.convert")

__all__ = ["EERCFConfig", "EERCFModel", "EERCFPreTrainedModel"]
