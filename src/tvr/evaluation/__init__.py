"""Retrieval evaluation: metrics, post-processing (DSL, inverted softmax, QB-Norm) and the batched harness.

``RETRIEVAL_METRICS_SCRIPT`` is the path of the ``evaluate`` module: ``evaluate.load(RETRIEVAL_METRICS_SCRIPT)``.
"""

import os

from .harness import (
    EvaluationOptions,
    RetrievalEvaluation,
    encode_texts,
    encode_videos,
    evaluate_retrieval,
    save_eval_results,
)
from .metrics import compute_retrieval_metrics
from .postprocessing import POSTPROCESSING, dual_softmax, inverted_softmax, postprocessed_metrics, qb_norm

RETRIEVAL_METRICS_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "retrieval_metrics.py")

__all__ = [
    "EvaluationOptions",
    "POSTPROCESSING",
    "RETRIEVAL_METRICS_SCRIPT",
    "RetrievalEvaluation",
    "compute_retrieval_metrics",
    "dual_softmax",
    "encode_texts",
    "encode_videos",
    "evaluate_retrieval",
    "inverted_softmax",
    "postprocessed_metrics",
    "qb_norm",
    "save_eval_results",
]
