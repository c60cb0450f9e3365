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
    _check_square(logits_per_text, "contrastive_loss")
    targets = torch.arange(logits_per_text.shape[0], device=logits_per_text.device)
    text_to_video = F.cross_entropy(logits_per_text, targets)
    video_to_text = F.cross_entropy(logits_per_text.t(), targets)
    return (text_to_video + video_to_text) / 2


def sigmoid_loss(logits_per_text: torch.Tensor) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss with the matching pairs on the diagonal.

    Every (text, video) pair is a binary problem, positive on the diagonal:
    `-sum_j log sigmoid(z_ij * S_ij) / batch_size` with `z = 2 I - 1`, as transformers' `SiglipModel` computes it
    (the logits already include the learnt `logit_bias`).

    Args:
        logits_per_text: `(batch_size, batch_size)` similarity logits, text i paired with video i.

    Returns:
        Scalar loss.
    """
    _check_square(logits_per_text, "sigmoid_loss")
    labels = 2 * torch.eye(logits_per_text.shape[0], device=logits_per_text.device, dtype=logits_per_text.dtype) - 1
    return -F.logsigmoid(labels * logits_per_text).sum(dim=-1).mean()


def _check_square(logits_per_text: torch.Tensor, name: str) -> None:
    if logits_per_text.dim() != 2 or logits_per_text.shape[0] != logits_per_text.shape[1]:
        raise ValueError(
            f"{name} expects a square (batch, batch) similarity matrix, got shape {tuple(logits_per_text.shape)}"
        )


__all__ = ["contrastive_loss", "sigmoid_loss"]
