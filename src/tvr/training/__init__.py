"""Training: one Accelerate loop for every tvr method, the seeds' optimisation recipe, gathering with gradients.

Entry points: :func:`train` (Python), ``tvr train`` and ``accelerate launch -m tvr.training`` (command line), all
driven by a :class:`TrainingConfig` (``FLAGS.md`` maps the seeds' flags to it).
"""

from .config import TrainingConfig
from .gather import all_gather_with_grad, gather_encoding
from .optimization import (
    BertAdam,
    build_optimizer,
    build_scheduler,
    freeze_pretrained_layers,
    parameter_groups,
    parameter_roles,
    warmup_cosine,
)
from .trainer import ContrastiveStep, build_model, build_processor, read_metrics, train

__all__ = [
    "BertAdam",
    "ContrastiveStep",
    "TrainingConfig",
    "all_gather_with_grad",
    "build_model",
    "build_optimizer",
    "build_processor",
    "build_scheduler",
    "freeze_pretrained_layers",
    "gather_encoding",
    "parameter_groups",
    "parameter_roles",
    "read_metrics",
    "train",
    "warmup_cosine",
]
