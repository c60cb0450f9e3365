"""Model cards (Hub metadata with ``model-index`` results, usage, training config and curves) and Hub upload."""

from .card import (
    build_model_card,
    curve_panel,
    eval_results_to_model_index,
    load_eval_results,
    plot_training_curves,
    read_training_log,
    training_series,
    usage_snippet,
    write_model_card,
)
from .push import TRAINING_STATE_PATTERNS, files_to_upload, push_to_hub

__all__ = [
    "TRAINING_STATE_PATTERNS",
    "build_model_card",
    "curve_panel",
    "eval_results_to_model_index",
    "files_to_upload",
    "load_eval_results",
    "plot_training_curves",
    "push_to_hub",
    "read_training_log",
    "training_series",
    "usage_snippet",
    "write_model_card",
]
