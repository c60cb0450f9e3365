"""Rescale and normalise uint8 video frames on the device they already are on.

Frames travel from the data loader to the accelerator as uint8 (4x less host memory, pinned-memory traffic and
cache space than float32) and become the model's float inputs there, with the video processor's own rescale and
normalisation, as one fused multiply-add.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

# processor options for uint8 frames: resized and cropped, left for `normalize_videos` to rescale and normalise
UINT8_FRAMES = {"do_rescale": False, "do_normalize": False}


def normalize_videos(pixel_values_videos: torch.Tensor, video_mask: torch.Tensor, video_processor: Any,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The float frames ``video_processor`` would have produced from its uint8 frames.

    ``video_processor(videos, do_rescale=False, do_normalize=False)`` gives resized, cropped uint8 frames; this
    applies the processor's ``do_rescale`` / ``rescale_factor`` / ``do_normalize`` / ``image_mean`` / ``image_std``
    to them as ``frames * scale + shift`` (equal to the processor's float output up to float32 rounding, about
    1e-7), wherever the frames are. Padded frames (``video_mask == 0``) come out exactly 0, as the processor pads
    after normalising.

    Args:
        pixel_values_videos: ``(batch_size, num_frames, 3, height, width)`` uint8 frames.
        video_mask: ``(batch_size, num_frames)``, 1 for real frames, 0 for padding.
        video_processor: the processor that made the frames (a ``TVRVideoProcessor``; a ``TVRProcessor``'s
            ``video_processor``).
        dtype: dtype of the result (computed in float32, then cast).

    Returns:
        ``(batch_size, num_frames, 3, height, width)`` tensor of ``dtype`` on the frames' device.

    Example:
        >>> batch = processor(videos=paths, do_rescale=False, do_normalize=False, return_tensors="pt")  # doctest: +SKIP
        >>> frames, mask = batch["pixel_values_videos"].cuda(), batch["video_mask"].cuda()  # doctest: +SKIP
        >>> pixel_values = normalize_videos(frames, mask, processor.video_processor)  # doctest: +SKIP
    """
    if pixel_values_videos.ndim != 5 or pixel_values_videos.shape[2] != 3:
        raise ValueError(f"pixel_values_videos must be (batch_size, num_frames, 3, height, width) frames, got "
                         f"shape {tuple(pixel_values_videos.shape)}")
    if pixel_values_videos.dtype != torch.uint8:
        raise ValueError(f"pixel_values_videos must be uint8 frames (the processor's output with do_rescale=False "
                         f"and do_normalize=False), got {pixel_values_videos.dtype}")
    settings = (*_normalization_settings(video_processor), pixel_values_videos.device)
    # under torch.compile the constants are folded into the graph; the cache is for eager steps
    make = _scale_and_shift.__wrapped__ if torch.compiler.is_compiling() else _scale_and_shift
    scale, shift = make(*settings)
    # the mask folded into scale and shift: padded frames give 0 * frame + 0, whatever their content
    mask = video_mask.to(device=pixel_values_videos.device, dtype=torch.float32)[:, :, None, None, None]
    normalized = torch.addcmul(shift * mask, pixel_values_videos, scale * mask)
    return normalized if dtype == torch.float32 else normalized.to(dtype)


def video_inputs_on_device(inputs: Any, video_processor: Any, device: torch.device | str
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pixel_values_videos, video_mask)`` of a processor output moved to ``device`` (asynchronously from pinned
    memory) and, for uint8 frames, normalised there with :func:`normalize_videos`; float frames come from a
    processor that normalised them itself and are left as they are."""
    video_mask = inputs["video_mask"].to(device, non_blocking=True)
    pixel_values = inputs["pixel_values_videos"].to(device, non_blocking=True)
    if pixel_values.dtype == torch.uint8:
        pixel_values = normalize_videos(pixel_values, video_mask, video_processor)
    return pixel_values, video_mask


def _normalization_settings(video_processor: Any) -> tuple[float, tuple[float, ...], tuple[float, ...]]:
    """``(rescale_factor, mean, std)`` of a processor, with 1 / 0 / 1 for the steps it does not do."""
    missing = [name for name in ("do_rescale", "do_normalize") if not hasattr(video_processor, name)]
    if missing:
        raise TypeError(f"cannot normalise uint8 frames with {type(video_processor).__name__}: it has no {missing} "
                        "settings; pass the video processor that made the frames (or a processor whose "
                        "video_processor it is)")
    rescale = float(video_processor.rescale_factor) if video_processor.do_rescale else 1.0
    if not video_processor.do_normalize:
        return rescale, (0.0,) * 3, (1.0,) * 3
    mean, std = video_processor.image_mean, video_processor.image_std
    mean = tuple(float(value) for value in (mean if isinstance(mean, (list, tuple)) else [mean] * 3))
    std = tuple(float(value) for value in (std if isinstance(std, (list, tuple)) else [std] * 3))
    return rescale, mean, std


@functools.lru_cache(maxsize=16)
def _scale_and_shift(rescale: float, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(3, 1, 1)`` float32 ``scale = rescale / std`` and ``shift = -mean / std`` on ``device``, made once per
    device (so a training step does not copy them from the host)."""
    std_ = torch.tensor(std, dtype=torch.float64)
    scale = (rescale / std_).to(torch.float32).view(3, 1, 1)
    shift = (-torch.tensor(mean, dtype=torch.float64) / std_).to(torch.float32).view(3, 1, 1)
    return scale.to(device), shift.to(device)


__all__ = ["UINT8_FRAMES", "normalize_videos", "video_inputs_on_device"]
