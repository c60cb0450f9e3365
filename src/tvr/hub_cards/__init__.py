"""Model cards (Hub metadata with ``model-index`` results, usage, training config and curves) and Hub upload."""

from .._lazy import lazy_names

# module -> the names it gives the package, each loaded on first use (`import tvr.X.cli` stays light)
EXPORTS = {
    "card": ("build_model_card", "curve_panel", "eval_results_to_model_index", "load_eval_results",
             "plot_training_curves", "read_training_log", "training_series", "usage_snippet", "write_model_card"),
    "push": ("TRAINING_STATE_PATTERNS", "files_to_upload", "push_to_hub"),
}
__getattr__, __dir__ = lazy_names(__name__, EXPORTS)
__all__ = sorted({name for names in EXPORTS.values() for name in names})
