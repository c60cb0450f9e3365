"""Moments in a windowed index: which rows are windows, and how ranked windows become moments.

An index built with windows (``VideoIndex.build(..., windows=[4, 8, 16])``, ``tvr index --windows 4,8,16``) holds one
row per window of each video, with its ``start`` / ``end`` in seconds beside its path (per-row fields of the index:
``VideoIndex.ROW_FIELDS``; a whole-video index has no starts and ends). :meth:`tvr.retrieval.VideoIndex.search` ranks such rows and returns each
video once, at its best window (:func:`best_window_per_video`); :meth:`tvr.retrieval.VideoIndex.search_moments`
keeps the best windows of every video that do not overlap better ones (:func:`select_moments`: temporal NMS within
each video, so windows of different videos never suppress each other).

This module is the layer under :mod:`tvr.retrieval.index` and never imports it.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from ..evaluation.moments import temporal_nms

#: what a search for moments in an index without windows says
NO_WINDOWS = ("this index has no windows, so no moments: rebuild it with `tvr index --windows 4,8,16` "
              "(VideoIndex.build(..., windows=[4, 8, 16]))")
#: on a windowed index, a search's counts of videos (candidates, re-scored) become this many rows per video at most
WINDOW_POOL_FACTOR = 10


class Moment(NamedTuple):
    """One found moment: a video's path, the span ``start``-``end`` in seconds, its score (as
    :meth:`~tvr.retrieval.VideoIndex.search`'s), and its ``video_id`` when the index has ids."""

    path: str
    start: float
    end: float
    score: float
    video_id: str | None = None


def check_row_spans(paths: Sequence[str], starts: Sequence[float] | None, ends: Sequence[float] | None,
                    where: str = "index") -> None:
    """Starts and ends are both given or both ``None``, one per row, each window of positive length.

    Raises:
        ValueError: naming ``where`` and the first bad row.
    """
    if (starts is None) != (ends is None):
        raise ValueError(f"{where}: window starts and ends go together (one is missing); rebuild it with `tvr index`")
    if starts is None:
        return
    if not len(starts) == len(ends) == len(paths):
        raise ValueError(f"{where}: {len(paths)} rows but {len(starts)} window starts and {len(ends)} ends; rebuild "
                         "it with `tvr index`")
    for row, (start, end) in enumerate(zip(starts, ends)):
        if not 0 <= start < end:
            raise ValueError(f"{where}: row {row} ({paths[row]}) has the window {start}-{end} s; rebuild it with "
                             "`tvr index`")


def rows_per_video(paths: Sequence[str], windowed: bool) -> int:
    """How many rows a search takes per video it asks for: 1 without windows, else the mean number of windows per
    video, at most :data:`WINDOW_POOL_FACTOR`."""
    if not windowed or not paths:
        return 1
    return int(min(WINDOW_POOL_FACTOR, -(-len(paths) // len(set(paths)))))


def best_window_per_video(paths: Sequence[str], rows: np.ndarray, scores: np.ndarray,
                          top_k: int) -> list[tuple[int, float]]:
    """``(row, score)`` of the first ``top_k`` distinct videos among ranked ``rows`` (best first): each video once,
    at its best-ranked row; ``-1`` rows (nothing found) are skipped."""
    kept, seen = [], set()
    for row, score in zip(rows.tolist(), scores.tolist()):
        if row < 0 or paths[row] in seen:
            continue
        seen.add(paths[row])
        kept.append((row, float(score)))
        if len(kept) == top_k:
            break
    return kept


def select_moments(paths: Sequence[str], starts: Sequence[float], ends: Sequence[float], rows: np.ndarray,
                   scores: np.ndarray, nms_iou: float = 0.5, top_k: int = 10) -> list[tuple[int, float]]:
    """The ``top_k`` best ``(row, score)`` moments among ranked window ``rows``: within each video, temporal NMS
    (:func:`tvr.evaluation.moments.temporal_nms`, a window overlapping a better one of its video with IoU >=
    ``nms_iou`` is dropped); across videos, by score (ties: the earlier ranked)."""
    by_video: dict[str, list[tuple[int, int, float]]] = {}
    for rank, (row, score) in enumerate(zip(rows.tolist(), scores.tolist())):
        if row >= 0:
            by_video.setdefault(paths[row], []).append((rank, row, float(score)))
    kept = []
    for ranked in by_video.values():
        spans = [(starts[row], ends[row]) for _, row, _ in ranked]
        kept += [ranked[position] for position in temporal_nms(spans, [score for _, _, score in ranked], nms_iou,
                                                               top_k)]
    kept.sort(key=lambda moment: (-moment[2], moment[0]))  # ties: the earlier ranked first
    return [(row, score) for _, row, score in kept[:top_k]]

__all__ = ["NO_WINDOWS", "WINDOW_POOL_FACTOR", "Moment", "best_window_per_video", "check_row_spans", "rows_per_video",
           "select_moments"]
