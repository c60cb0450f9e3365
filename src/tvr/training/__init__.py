"""Training: one Accelerate loop for every tvr method, the seeds' optimisation recipe, gathering with gradients.

Entry points: :func:`train` (Python), ``tvr train`` and ``accelerate launch -m tvr.training`` (command line), all
driven by a :class:`TrainingConfig` (``FLAGS.md`` maps the seeds' flags to it).
"""

from .._lazy import lazy_names

# module -> the names it gives the package, each loaded on first use (`import tvr.X.cli` stays light)
EXPORTS = {
    "config": ("TrainingConfig",),
    "gather": ("all_gather_with_grad", "gather_encoding"),
    "optimization": ("BertAdam", "build_optimizer", "build_scheduler", "freeze_pretrained_layers", "parameter_groups",
                     "parameter_roles", "warmup_cosine"),
    "trainer": ("ContrastiveStep", "build_model", "build_processor", "read_metrics", "train"),
}
__getattr__, __dir__ = lazy_names(__name__, EXPORTS)
__all__ = sorted({name for names in EXPORTS.values() for name in names})
