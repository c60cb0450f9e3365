"""Two-stage retrieval: rank every video by a cheap coarse score, re-score only each query's top-k.

The fine scorer is any function of (text, video) pairs, so the result equals "fine-score all pairs, then keep
the fine score on each row's coarse top-k" while doing ``num_texts * top_k`` instead of
``num_texts * num_videos`` fine evaluations.

Example::

    coarse = text_embeds @ video_embeds.T                         # (num_texts, num_videos)
    logits = two_stage_logits(coarse, 50, lambda t, v: fine_score(text[t], videos[v]))
"""

from __future__ import annotations

from typing import Callable

import torch

PairScorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def top_k_pairs(coarse_logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of each text's ``top_k`` videos by coarse score.

    Args:
        coarse_logits: `(num_texts, num_videos)` stage-1 scores.
        top_k: candidates per text; clipped to `num_videos`.

    Returns:
        `(text_index, video_index)`, both `(num_texts, k)` long tensors, best candidate first. Exact ties are
        broken by `torch.topk` (the original used numpy argsort; with distinct scores the sets are the same).
    """
    if top_k < 1:
        raise ValueError(f"rerank top_k must be >= 1, got {top_k}")
    num_texts, num_videos = coarse_logits.shape
    video_index = coarse_logits.topk(min(top_k, num_videos), dim=1).indices
    text_index = torch.arange(num_texts, device=coarse_logits.device)[:, None].expand_as(video_index)
    return text_index, video_index


def two_stage_logits(
    coarse_logits: torch.Tensor,
    top_k: int,
    score_pairs: PairScorer,
    offset: float = 100.0,
    pairs_per_chunk: int = 1024,
) -> torch.Tensor:
    """Replace each row's coarse top-k entries by ``offset + fine score``; other entries keep the coarse score.

    The offset lifts the re-ranked candidates above the rest of the row (EERCF's evaluation rule), so a row's
    order is: the top-k by fine score, then the remaining videos by coarse score.

    Args:
        coarse_logits: `(num_texts, num_videos)` stage-1 scores.
        top_k: candidates re-scored per text (clipped to `num_videos`).
        score_pairs: `score_pairs(text_index, video_index) -> (num_pairs,)` fine scores for the given
            `(num_pairs,)` index pairs into the texts / videos behind `coarse_logits`. The pairs come sorted by
            video (the pairs of one video are consecutive).
        offset: added to the fine scores.
        pairs_per_chunk: pairs handed to `score_pairs` at once (bounds the memory of the fine stage).

    Returns:
        `(num_texts, num_videos)` final scores.
    """
    text_index, video_index = top_k_pairs(coarse_logits, top_k)
    flat_text, flat_video = text_index.reshape(-1), video_index.reshape(-1)
    fine = torch.empty(flat_text.shape, dtype=coarse_logits.dtype, device=coarse_logits.device)
    # Pairs are handed over grouped by video, so a scorer can load each candidate video once for all its texts.
    for chunk in flat_video.argsort(stable=True).split(pairs_per_chunk):
        fine[chunk] = score_pairs(flat_text[chunk], flat_video[chunk]).to(fine.dtype)
    return coarse_logits.scatter(1, video_index, fine.view_as(video_index) + offset)
