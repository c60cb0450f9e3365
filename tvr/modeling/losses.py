"""Losses shared by the model forward and the training loop."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE with the matching pairs on the diagonal: `(CE(S) + CE(S^T)) / 2`.

    This is CLIP4Clip's `CrossEn(S)` and `CrossEn(S.T)` averaged; every method of tvr trains with it.

    Args:
        logits_per_text: `(batch_size, batch_size)` similarity logits, text i paired with video i.

    Returns:
        Scalar loss.
    """
    if logits_per_text.dim() != 2 or logits_per_text.shape[0] != logits_per_text.shape[1]:
        raise ValueError(
            "contrastive_loss expects a square (batch, batch) similarity matrix, "
            f"got shape {tuple(logits_per_text.shape)}"
        )
    targets = torch.arange(logits_per_text.shape[0], device=logits_per_text.device)
    text_to_video = F.cross_entropy(logits_per_text, targets)
    video_to_text = F.cross_entropy(logits_per_text.t(), targets)
    return (text_to_video + video_to_text) / 2


__all__ = ["contrastive_loss"]
