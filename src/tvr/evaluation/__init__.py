"""Retrieval evaluation: metrics, post-processing (DSL, inverted softmax, QB-Norm) and the batched harness; zero-shot
classification (``evaluate_zero_shot``) with its prompt templates.

``RETRIEVAL_METRICS_SCRIPT`` is the path of the ``evaluate`` module: ``evaluate.load(RETRIEVAL_METRICS_SCRIPT)``.
"""

import os

from .._lazy import lazy_names

RETRIEVAL_METRICS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "retrieval_metrics.py")

# module -> the names it gives the package, each loaded on first use (`import tvr.X.cli` stays light)
EXPORTS = {
    "harness": ("EvaluationOptions", "RetrievalEvaluation", "encode_texts", "encode_videos", "evaluate_retrieval", "save_eval_results"),
    "metrics": ("compute_retrieval_metrics",),
    "moments": ("MomentEvaluation", "MomentEvaluationOptions", "evaluate_moments", "moment_baselines", "moment_metrics",
                "temporal_iou", "temporal_nms"),
    "postprocessing": ("POSTPROCESSING", "dual_softmax", "inverted_softmax", "postprocessed_metrics", "qb_norm"),
    "templates": ("TEMPLATE_SETS", "resolve_templates"),
    "zero_shot": ("ZeroShotEvaluation", "ZeroShotOptions", "evaluate_zero_shot"),
}
__getattr__, __dir__ = lazy_names(__name__, EXPORTS)
__all__ = sorted({name for names in EXPORTS.values() for name in names} | {"RETRIEVAL_METRICS_SCRIPT"})
