"""Masked pooling over frames, shared by every method that averages frame features."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_mean(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `features` over the positions where `mask` is 1.

    Args:
        features: `(batch_size, num_frames, dim)`.
        mask: `(batch_size, num_frames)`, 0/1.

    Returns:
        `(batch_size, dim)`. The denominator is `max(sum(mask), 1)` as in CLIP4Clip, so a row with no valid position
        gives the zero vector instead of NaN.
    """
    mask = mask.to(features.dtype).unsqueeze(-1)
    return (features * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def mean_pool_normalized(frame_features: torch.Tensor, video_mask: torch.Tensor) -> torch.Tensor:
    """CLIP4Clip's loose video embedding: L2-normalise each frame, masked mean, L2-normalise again.

    Args:
        frame_features: `(batch_size, num_frames, dim)`.
        video_mask: `(batch_size, num_frames)`, 0/1.

    Returns:
        `(batch_size, dim)` unit vectors; the zero vector for a video without valid frames (`F.normalize` clamps the
        norm, where the original divides 0 by 0).
    """
    return F.normalize(masked_mean(F.normalize(frame_features, dim=-1), video_mask), dim=-1)


__all__ = ["masked_mean", "mean_pool_normalized"]
