"""Retrieval metrics (R@K, median and mean rank) from a text x video similarity matrix.

This is the one place where tvr turns scores into ranks; the ``evaluate`` module
(``retrieval_metrics.py``), the harness and the post-processing all call :func:`compute_retrieval_metrics`.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np
import torch

RECALL_AT = (1, 5, 10)
TIE_RULES = ("pessimistic", "optimistic")

ArrayLike = torch.Tensor | np.ndarray


def compute_retrieval_metrics(
    sim: ArrayLike,
    text_to_video: ArrayLike | Sequence[int] | None = None,
    ties: Literal["pessimistic", "optimistic"] = "pessimistic",
) -> dict[str, float]:
    """Text-to-video and video-to-text retrieval metrics.

    Ranking rules (ranks are 1-based; rank 1 means the ground truth is retrieved first):

    - **t2v**: every text is a query; its rank is 1 + the number of *other* videos that score above its own
      video in the text's row of ``sim``.
    - **v2t**: every video is a query over all texts; a video may own several captions (MSVD, VATEX) and its
      rank is that of its **best-ranked caption**: 1 + the number of texts of *other* videos that score above
      the video's highest-scoring caption in its column. With one caption per video this is the usual
      diagonal rank.
    - **ties** (``ties="pessimistic"``, the default): a candidate whose score equals the ground truth's counts
      as ranked above it, so a constant or degenerate model gets the worst rank, not the best.
      ``ties="optimistic"`` counts only strictly higher scores, which is the position the original code finds
      when it searches the sorted row for the ground-truth score.

    Compared with the original implementations (CLIP4Clip, EMCL, InternVideo):

    - Their single-caption ``compute_metrics`` locates the ground truth by equality in the sorted row; with
      exact ties it returns one entry *per tied candidate*, so the rank list gets longer than the number of
      queries and later queries' ranks are shifted. Here every query has exactly one rank.
    - Multi-caption t2v in the originals reshapes ``sim`` into ``(videos, max_captions, videos)`` padded with
      ``-inf`` and ranks by a double ``argsort``, which orders ties by column index; here ties follow ``ties``.
    - Multi-caption v2t in the originals scores each video against each *video's group* of captions by the
      group's best caption and ranks groups, so R@K counts videos rather than captions. Here v2t ranks
      captions (the text-retrieval reading of R@K); both agree when every video has one caption.
    - EMCL's MSVD grouping is off by one (each video's last caption is scored against the next video); here
      groups come straight from ``text_to_video``.

    Args:
        sim: scores of shape ``(num_texts, num_videos)`` (torch tensor or numpy array); higher means more
            similar. Rows are texts, columns videos.
        text_to_video: ``(num_texts,)`` index of each text's video. ``None`` means one caption per video with
            the ground truth on the diagonal (``sim`` must be square).
        ties: ``"pessimistic"`` (default) or ``"optimistic"``, see above.

    Returns:
        ``{"t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_MedR", "t2v_MeanR"}`` and the same keys with ``v2t_``;
        recalls are percentages, ranks are 1-based.

    Example:
        >>> compute_retrieval_metrics(np.array([[0.9, 0.1], [0.8, 0.2]]))["t2v_R@1"]
        50.0
    """
    sim, text_to_video = _check_inputs(sim, text_to_video, ties)
    return {
        **summarize_ranks(text_to_video_ranks(sim, text_to_video, ties), prefix="t2v_"),
        **summarize_ranks(video_to_text_ranks(sim, text_to_video, ties), prefix="v2t_"),
    }


def text_to_video_ranks(sim: np.ndarray, text_to_video: np.ndarray, ties: str = "pessimistic") -> np.ndarray:
    """1-based rank of each text's own video in its row: ``(num_texts,)`` int array (rules in
    :func:`compute_retrieval_metrics`; inputs are not checked here)."""
    rows = np.arange(sim.shape[0])
    target = sim[rows, text_to_video][:, None]
    others = np.ones(sim.shape, dtype=bool)
    others[rows, text_to_video] = False
    return 1 + _count_above(sim, target, ties, others).sum(axis=1)


def video_to_text_ranks(sim: np.ndarray, text_to_video: np.ndarray, ties: str = "pessimistic") -> np.ndarray:
    """1-based rank of each video's best-ranked caption in its column: ``(num_videos,)`` int array (rules in
    :func:`compute_retrieval_metrics`; inputs are not checked here)."""
    num_videos = sim.shape[1]
    own = text_to_video[:, None] == np.arange(num_videos)[None, :]  # (num_texts, num_videos)
    best_own = np.where(own, sim, -np.inf).max(axis=0)[None, :]
    return 1 + _count_above(sim, best_own, ties, ~own).sum(axis=0)


def summarize_ranks(ranks: np.ndarray, prefix: str = "") -> dict[str, float]:
    """R@1/5/10 (percent), median and mean rank from 1-based ``ranks``, keys prefixed with ``prefix``."""
    metrics = {f"{prefix}R@{k}": float(100.0 * np.mean(ranks <= k)) for k in RECALL_AT}
    metrics[f"{prefix}MedR"] = float(np.median(ranks))
    metrics[f"{prefix}MeanR"] = float(np.mean(ranks))
    return metrics


def _count_above(sim: np.ndarray, target: np.ndarray, ties: str, candidates: np.ndarray) -> np.ndarray:
    """Boolean mask of candidates that rank above ``target`` (broadcast against ``sim``)."""
    above = sim >= target if ties == "pessimistic" else sim > target
    return above & candidates


def _check_inputs(sim, text_to_video, ties) -> tuple[np.ndarray, np.ndarray]:
    if ties not in TIE_RULES:
        raise ValueError(f"ties must be one of {TIE_RULES}, got {ties!r}")
    if isinstance(sim, torch.Tensor):
        sim = sim.detach().float().cpu().numpy()  # float() also covers bf16, which numpy lacks
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2 or 0 in sim.shape:
        raise ValueError(f"sim must have shape (num_texts, num_videos) with both > 0, got {sim.shape}")
    if np.isnan(sim).any():
        raise ValueError(f"sim has {int(np.isnan(sim).sum())} NaN scores; ranks would be undefined")
    num_texts, num_videos = sim.shape
    if text_to_video is None:
        if num_texts != num_videos:
            raise ValueError(
                f"sim of shape {sim.shape} is not square: pass text_to_video (the video index of each text)"
            )
        return sim, np.arange(num_texts)
    if isinstance(text_to_video, torch.Tensor):
        text_to_video = text_to_video.cpu().numpy()
    text_to_video = np.asarray(text_to_video)
    if text_to_video.shape != (num_texts,) or not np.issubdtype(text_to_video.dtype, np.integer):
        raise ValueError(
            f"text_to_video must be {num_texts} integer video indices (one per row of sim), "
            f"got dtype {text_to_video.dtype} and shape {text_to_video.shape}"
        )
    if text_to_video.min() < 0 or text_to_video.max() >= num_videos:
        raise ValueError(f"text_to_video has indices outside [0, {num_videos}) for sim of shape {sim.shape}")
    captionless = np.setdiff1d(np.arange(num_videos), text_to_video)
    if captionless.size:
        raise ValueError(
            f"videos {captionless[:10].tolist()} have no caption in text_to_video; "
            "every video needs at least one text for video-to-text ranks"
        )
    return sim, text_to_video
