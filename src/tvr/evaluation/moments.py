"""Temporal moments: IoU of time spans, temporal non-maximum suppression, and the moment-retrieval metrics
(recall@k at temporal IoU thresholds, mean IoU) that Charades-STA, DiDeMo and TVR report.

Spans are ``(start, end)`` in seconds. ``R@k IoU=t`` is the percentage of queries for which at least one of the top
``k`` predicted moments overlaps the ground truth with IoU >= ``t``; ``mIoU`` is the mean IoU of the top-1 moment
(percent), as the moment-localisation papers count them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

DEFAULT_RECALL_AT = (1, 5)
DEFAULT_IOU_THRESHOLDS = (0.3, 0.5, 0.7)


def temporal_iou(spans: np.ndarray | Sequence, other: np.ndarray | Sequence) -> np.ndarray:
    """IoU of every span of ``spans`` ``(n, 2)`` with every span of ``other`` ``(m, 2)``: ``(n, m)``. A pair with no
    length (both empty) has IoU 0."""
    a = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(other, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def temporal_nms(spans: np.ndarray | Sequence, scores: np.ndarray | Sequence, iou_threshold: float = 0.5,
                 top_k: int | None = None) -> list[int]:
    """Greedy non-maximum suppression over time: the positions of the spans kept, best score first, each
    overlapping every better kept span with IoU < ``iou_threshold``; at most ``top_k``. Ties keep the earlier span.

    Raises:
        ValueError: ``iou_threshold`` is outside ``(0, 1]``, or spans and scores differ in length.
    """
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(spans) != len(scores):
        raise ValueError(f"{len(spans)} spans for {len(scores)} scores")
    kept: list[int] = []
    for position in np.argsort(-scores, kind="stable"):
        if top_k is not None and len(kept) >= top_k:
            break
        if not kept or temporal_iou(spans[position], spans[kept]).max() < iou_threshold:
            kept.append(int(position))
    return kept


def moment_metrics(predictions: Sequence[Sequence[Sequence[float]]], ground_truth: Sequence[Sequence[float]],
                   recall_at: Sequence[int] = DEFAULT_RECALL_AT,
                   iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS) -> dict[str, float]:
    """Moment-retrieval metrics of ranked predictions, in percent.

    Args:
        predictions: per query, its predicted ``(start, end)`` moments, best first (after NMS).
        ground_truth: per query, its annotated ``(start, end)``.

    Returns:
        ``{"R@1_IoU0.3": ..., "R@5_IoU0.7": ..., "mIoU": ...}``; a query without predictions counts as missed.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} prediction lists for {len(ground_truth)} ground-truth moments")
    if not ground_truth:
        raise ValueError("no queries to evaluate")
    ious = [temporal_iou(np.asarray(ranked, dtype=np.float64).reshape(-1, 2), truth)[:, 0]
            for ranked, truth in zip(predictions, ground_truth)]
    metrics = {}
    for k in recall_at:
        for threshold in iou_thresholds:
            hits = [bool(len(iou) and iou[:k].max() >= threshold) for iou in ious]
            metrics[f"R@{k}_IoU{threshold:g}"] = 100.0 * float(np.mean(hits))
    metrics["mIoU"] = 100.0 * float(np.mean([iou[0] if len(iou) else 0.0 for iou in ious]))
    return metrics


__all__ = ["DEFAULT_IOU_THRESHOLDS", "DEFAULT_RECALL_AT", "moment_metrics", "temporal_iou", "temporal_nms"]
