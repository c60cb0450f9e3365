"""InternVideo's evaluation protocol (`main_task_retrieval.eval_epoch`), for comparing with its published numbers.

tvr's own metrics (:func:`~tvr.evaluation.compute_retrieval_metrics`) rank every video-to-text query over captions.
InternVideo's multi-caption evaluation (MSVD, VATEX: every caption is a query, each video is encoded once) differs for
video-to-text: a video ranks the *videos' caption groups*, each scored by its best caption, so R@K counts videos. Its
DSL rows are always computed: ``S * softmax(S, axis=0)`` for text-to-video and, single-caption,
``S^T * softmax(S^T, axis=0)`` for video-to-text; multi-caption, video-to-text reuses the text-to-video DSL matrix.
Ranks follow :func:`~tvr.evaluation.compute_retrieval_metrics`' tie rule (the original finds the first equal score,
i.e. ``"optimistic"``, and double-argsorts the multi-caption case), and its multi-caption text-to-video median rank
is ``torch.median``'s, the lower of the two middle ranks.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...evaluation.metrics import _check_inputs, _count_above, summarize_ranks, text_to_video_ranks
from ...evaluation.postprocessing import dual_softmax


def video_to_group_ranks(sim: np.ndarray, text_to_video: np.ndarray, ties: str = "optimistic") -> np.ndarray:
    """InternVideo's multi-caption video-to-text ranks: video ``v`` ranks the caption groups of all videos, group
    ``g`` scored ``max over g's captions of sim[caption, v]``; its rank is 1 + the groups scoring above its own.

    Args:
        sim: ``(num_texts, num_videos)``.
        text_to_video: ``(num_texts,)`` video index of each caption (every video has at least one).

    Returns:
        ``(num_videos,)`` 1-based ranks.
    """
    num_videos = sim.shape[1]
    groups = np.full((num_videos, num_videos), -np.inf)  # (caption group, video)
    np.maximum.at(groups, text_to_video, sim)
    scores = groups.T  # (video query, caption group)
    own = np.diag(scores)[:, None]
    return 1 + _count_above(scores, own, ties, ~np.eye(num_videos, dtype=bool)).sum(axis=1)


def internvideo_metrics(
    sim: torch.Tensor | np.ndarray,
    text_to_video: torch.Tensor | Sequence[int] | None = None,
    ties: str = "optimistic",
) -> dict[str, float]:
    """Plain and DSL metrics as InternVideo's ``eval_epoch`` reports them.

    Args:
        sim: ``(num_texts, num_videos)`` logits (``exp(logit_scale) * cosine``: DSL has no temperature).
        text_to_video: video index of each text; ``None``: one caption per video, on the diagonal.
        ties: ``"optimistic"`` (the original's) or ``"pessimistic"``.

    Returns:
        ``t2v_R@1`` ... ``v2t_MeanR`` and the same keys prefixed ``dsl/``.

    Example:
        >>> result = evaluate_retrieval(model, processor, vatex_test, return_similarity=True)  # doctest: +SKIP
        >>> internvideo_metrics(result.similarity, result.text_to_video)["dsl/t2v_R@1"]  # doctest: +SKIP
    """
    sim, text_to_video = _check_inputs(sim, text_to_video, ties)
    dsl = dual_softmax(torch.from_numpy(sim)).numpy()
    single = sim.shape[0] == sim.shape[1] and np.array_equal(text_to_video, np.arange(sim.shape[0]))
    metrics = {}
    for prefix, scores in (("", sim), ("dsl/", dsl)):
        ranks = text_to_video_ranks(scores, text_to_video, ties)
        metrics.update(summarize_ranks(ranks, prefix=f"{prefix}t2v_"))
        if not single:  # the original's multi-caption t2v median is torch.median's: the lower middle value
            metrics[f"{prefix}t2v_MedR"] = float(np.sort(ranks)[(len(ranks) - 1) // 2])
        if single:
            video_scores = dual_softmax(torch.from_numpy(sim.T)).numpy() if prefix else sim.T
            ranks = text_to_video_ranks(video_scores, np.arange(sim.shape[1]), ties)
        else:
            ranks = video_to_group_ranks(scores, text_to_video, ties)
        metrics.update(summarize_ranks(ranks, prefix=f"{prefix}v2t_"))
    return metrics


__all__ = ["internvideo_metrics", "video_to_group_ranks"]
