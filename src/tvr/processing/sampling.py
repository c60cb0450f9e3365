"""Which frames to read from a video: pure functions of the frame count and frame rate.

The seeds sample frames in two ways, and both are reproduced index for index:

- **per second** (CLIP4Clip, EMCL-Net): ``fps`` frames from every second, where a second starts at frame
  ``s * int(video_fps)`` (the native rate is truncated, so a 29.97 fps video reads frames 0, 29, 58, ...),
  then, when that gives more than ``max_frames``, a head / tail / uniform slice (CLIP4Clip's ``slice_framepos``).
- **stride** (InternVideo's decord reader): every ``round(video_fps / fps)``-th frame, then the same uniform slice.
- **fixed count** (InternVideo / VindLU style): ``num_frames`` segments of equal length, the middle frame of each.

Both take an optional clip ``[start, end]`` in seconds (ActivityNet, DiDeMo, LSMDC). Nothing here decodes video.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np

SlicePosition = Literal["head", "tail", "uniform"]
FrameOrder = Literal["normal", "reverse", "shuffle"]
FrameSampling = Literal["per_second", "stride"]

SLICE_POSITIONS = ("head", "tail", "uniform")
FRAME_ORDERS = ("normal", "reverse", "shuffle")
FRAME_SAMPLINGS = ("per_second", "stride")


def per_second_frame_indices(
    total_frames: int,
    video_fps: float,
    fps: int = 1,
    start: float | None = None,
    end: float | None = None,
) -> np.ndarray:
    """Frame indices CLIP4Clip's OpenCV reader visits: ``fps`` frames from each second of the clip.

    The native rate is truncated to an integer ``r = int(video_fps)``; second ``s`` starts at frame ``int(s * r)``
    and contributes the frames at offsets ``range(0, r, r // fps)[:fps]``. Seconds run from ``start`` (default 0)
    to ``end`` (default: the video's length, ``ceil(total_frames / r)``) inclusive, and reading stops at the first
    index past the last frame. A video under 1 fps has at most one frame per second: second ``s`` gives frame
    ``floor(s * video_fps)`` (each frame once), so clip times stay times.

    Args:
        total_frames: number of frames in the video.
        video_fps: the video's native frame rate.
        fps: frames to take per second (an integer, as in the original ``feature_framerate``).
        start: first second of the clip (may be fractional), or ``None`` for the video start.
        end: last second of the clip, or ``None`` for the video end.

    Returns:
        ``(num_sampled,)`` int64 array, increasing.

    Example:
        >>> per_second_frame_indices(100, 29.97)
        array([ 0, 29, 58, 87])
    """
    _check_request(total_frames, video_fps, fps, start, end)
    fps = int(fps)
    if video_fps < 1:  # int(video_fps) would read one frame per second as if the video ran at 1 fps
        return _slow_video_frame_indices(total_frames, video_fps, start, end)
    rate = int(video_fps)
    first_second = 0.0 if start is None else float(start)
    duration = math.ceil(total_frames / rate)
    last_second = float(duration) if end is None else min(float(end), duration)
    offsets = np.arange(0, rate, max(rate // fps, 1))[:fps]
    seconds = first_second + np.arange(math.floor(last_second - first_second + 1e-9) + 1)
    bases = np.array([int(second * rate) for second in seconds], dtype=np.int64)
    indices = (bases[:, None] + offsets[None, :]).reshape(-1)
    # the original reads until the first failed read, i.e. the first index past the end
    past_end = np.flatnonzero(indices >= total_frames)
    if past_end.size:
        indices = indices[: past_end[0]]
    if indices.size == 0:
        raise ValueError(_outside_message(start, end, total_frames, video_fps))
    return indices.astype(np.int64)


def _slow_video_frame_indices(total_frames: int, video_fps: float, start: float | None, end: float | None
                              ) -> np.ndarray:
    """:func:`per_second_frame_indices` of a video under 1 fps: the frame shown at each second of the clip."""
    first_second = 0.0 if start is None else float(start)
    duration = total_frames / video_fps
    last_second = duration if end is None else min(float(end), duration)
    seconds = first_second + np.arange(max(math.floor(last_second - first_second + 1e-9) + 1, 0))
    indices = np.unique(np.floor(seconds * video_fps + 1e-9).astype(np.int64))
    indices = indices[indices < total_frames]
    if indices.size == 0:
        raise ValueError(_outside_message(start, end, total_frames, video_fps))
    return indices


def stride_frame_indices(
    total_frames: int,
    video_fps: float,
    fps: int = 1,
    start: float | None = None,
    end: float | None = None,
) -> np.ndarray:
    """Frame indices InternVideo's decord reader takes: every ``round(video_fps / fps)``-th frame of the clip.

    Unlike :func:`per_second_frame_indices` (CLIP4Clip), the native rate is rounded, not truncated, so a 29.97 fps
    video reads frames 0, 30, 60, ... The clip runs from frame ``int(int(start) * video_fps)`` to
    ``int(min(int(end) * video_fps, total_frames - 1))`` inclusive: the original truncates clip times to whole
    seconds, and a clip with ``int(start) == int(end)`` lasts one second. (It also swaps a reversed clip; here that is
    an error.)

    Args:
        total_frames: number of frames in the video.
        video_fps: the video's native frame rate (decord's ``get_avg_fps``).
        fps: frames per second to take (the original's ``feature_framerate``, 1 in every InternVideo script).
        start: clip start in seconds, or ``None`` for the video start.
        end: clip end in seconds, or ``None`` for the video end.

    Returns:
        ``(num_sampled,)`` int64 array, increasing.

    Example:
        >>> stride_frame_indices(100, 29.97)
        array([ 0, 30, 60, 90])
    """
    _check_request(total_frames, video_fps, fps, start, end)
    stride = int(round(float(video_fps) / int(fps)))
    if stride < 1:
        raise ValueError(f"a {video_fps:g} fps video cannot give {fps} frames per second (stride rounds to 0)")
    first_second = None if start is None else int(start)
    last_second = None if end is None else int(end)
    if first_second is not None and last_second is not None and first_second == last_second:
        last_second = first_second + 1
    first = 0 if first_second is None else int(first_second * video_fps)
    last = total_frames - 1 if last_second is None else int(min(last_second * video_fps, total_frames - 1))
    if last < first:
        raise ValueError(_outside_message(start, end, total_frames, video_fps))
    return np.arange(first, last + 1, stride, dtype=np.int64)


def segment_middle_frame_indices(
    total_frames: int,
    num_frames: int,
    video_fps: float | None = None,
    start: float | None = None,
    end: float | None = None,
) -> np.ndarray:
    """The middle frame of each of ``num_frames`` equal segments of the clip (InternVideo's ``"middle"`` rule).

    With ``n`` frames in the clip and ``k = min(num_frames, n)``, segment boundaries are
    ``b = linspace(0, n, k + 1).astype(int)`` and segment ``i`` gives frame ``(b[i] + b[i + 1] - 1) // 2``.
    A clip shorter than ``num_frames`` gives every one of its frames once (the caller pads and masks the rest).

    Args:
        total_frames: number of frames in the video.
        num_frames: number of frames wanted.
        video_fps: the video's native frame rate; needed only with ``start`` / ``end``.
        start: clip start in seconds (the clip holds the frames whose time ``index / video_fps`` is in
            ``[start, end]``), or ``None`` for the video start.
        end: clip end in seconds, or ``None`` for the video end.

    Returns:
        ``(min(num_frames, clip_frames),)`` int64 array, increasing.

    Example:
        >>> segment_middle_frame_indices(100, 4)
        array([12, 37, 62, 87])
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be at least 1, got {num_frames}")
    first, stop = clip_frame_range(total_frames, video_fps, start, end)
    count = stop - first
    segments = min(num_frames, count)
    bounds = np.linspace(0, count, segments + 1).astype(np.int64)
    return first + (bounds[:-1] + bounds[1:] - 1) // 2


def clip_frame_range(
    total_frames: int, video_fps: float | None, start: float | None = None, end: float | None = None
) -> tuple[int, int]:
    """``(first, stop)`` frame range of the clip ``[start, end]`` seconds: frames whose time lies in the clip."""
    if start is None and end is None:
        _check_video(total_frames, 1.0)
        return 0, total_frames
    if video_fps is None:
        raise ValueError("a clip start/end in seconds needs the video's frame rate")
    _check_video(total_frames, video_fps)
    _check_clip(start, end)
    # a small tolerance so that e.g. start=1.0 at 30 fps includes frame 30 despite float rounding
    first = 0 if start is None else max(math.ceil(start * video_fps - 1e-6), 0)
    stop = total_frames if end is None else min(math.floor(end * video_fps + 1e-6) + 1, total_frames)
    if stop <= first:
        raise ValueError(_outside_message(start, end, total_frames, video_fps))
    return first, stop


def slice_frame_indices(indices: np.ndarray, max_frames: int, slice_framepos: SlicePosition = "uniform") -> np.ndarray:
    """Keep at most ``max_frames`` of ``indices`` as CLIP4Clip's ``slice_framepos`` does.

    ``"head"`` keeps the first ``max_frames``, ``"tail"`` the last, ``"uniform"`` the positions
    ``np.linspace(0, len(indices) - 1, max_frames).astype(int)``. Shorter inputs are returned unchanged.

    Example:
        >>> slice_frame_indices(np.arange(0, 900, 30), 12)
        array([  0,  60, 150, 210, 300, 390, 450, 540, 630, 690, 780, 870])
    """
    if max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    indices = np.asarray(indices)
    if len(indices) <= max_frames:
        return indices
    if slice_framepos == "head":
        return indices[:max_frames]
    if slice_framepos == "tail":
        return indices[-max_frames:]
    if slice_framepos == "uniform":
        return indices[np.linspace(0, len(indices) - 1, max_frames).astype(int)]
    raise ValueError(f"slice_framepos must be one of {SLICE_POSITIONS}, got {slice_framepos!r}")


def order_frame_indices(
    indices: np.ndarray, frame_order: FrameOrder = "normal", generator: np.random.Generator | None = None
) -> np.ndarray:
    """Put sampled frames in ``"normal"``, ``"reverse"`` or ``"shuffle"`` order (a training augmentation).

    ``generator`` makes shuffling reproducible; without one a fresh unseeded generator is used.
    """
    indices = np.asarray(indices)
    if frame_order == "normal":
        return indices
    if frame_order == "reverse":
        return indices[::-1].copy()
    if frame_order == "shuffle":
        generator = generator if generator is not None else np.random.default_rng()
        return indices[generator.permutation(len(indices))]
    raise ValueError(f"frame_order must be one of {FRAME_ORDERS}, got {frame_order!r}")


def sample_frame_indices(
    total_frames: int,
    video_fps: float,
    *,
    fps: int = 1,
    num_frames: int | None = None,
    max_frames: int = 12,
    slice_framepos: SlicePosition = "uniform",
    frame_order: FrameOrder = "normal",
    start: float | None = None,
    end: float | None = None,
    generator: np.random.Generator | None = None,
    frame_sampling: FrameSampling = "per_second",
) -> np.ndarray:
    """All sampling steps in order: choose frames, keep at most ``max_frames``, then order them.

    ``num_frames`` selects the fixed-count mode (:func:`segment_middle_frame_indices`); otherwise frames are
    taken per second (``frame_sampling="per_second"``: :func:`per_second_frame_indices`, CLIP4Clip) or every
    ``round(video_fps / fps)``-th frame (``"stride"``: :func:`stride_frame_indices`, InternVideo) and sliced with
    ``slice_framepos`` (InternVideo always slices ``"uniform"``).

    Returns:
        ``(num_sampled,)`` int64 array with ``1 <= num_sampled <= max_frames``.

    Example:
        >>> sample_frame_indices(900, 30.0)  # 30 s at 30 fps, CLIP4Clip defaults
        array([  0,  60, 150, 210, 300, 390, 450, 540, 630, 690, 780, 870])
    """
    if num_frames is not None:
        if num_frames > max_frames:
            raise ValueError(f"num_frames ({num_frames}) cannot exceed max_frames ({max_frames})")
        indices = segment_middle_frame_indices(total_frames, num_frames, video_fps, start, end)
    else:
        if frame_sampling not in FRAME_SAMPLINGS:
            raise ValueError(f"frame_sampling must be one of {FRAME_SAMPLINGS}, got {frame_sampling!r}")
        choose = stride_frame_indices if frame_sampling == "stride" else per_second_frame_indices
        indices = choose(total_frames, video_fps, fps, start, end)
        indices = slice_frame_indices(indices, max_frames, slice_framepos)
    return order_frame_indices(indices, frame_order, generator)


def _check_request(total_frames: int, video_fps: float, fps: int, start: float | None, end: float | None) -> None:
    """The checks every per-second rule starts with: the video, the requested rate, the clip times."""
    _check_video(total_frames, video_fps)
    if int(fps) != fps or fps < 1:
        raise ValueError(f"fps must be a positive integer number of frames per second, got {fps!r}")
    _check_clip(start, end)


def _check_video(total_frames: int, video_fps: float) -> None:
    if total_frames < 1:
        raise ValueError(f"the video has no frames (total_frames={total_frames})")
    if video_fps is None or not math.isfinite(video_fps) or video_fps <= 0:  # NaN / inf: metadata without a rate
        raise ValueError(f"the video's frame rate must be a positive finite number, got {video_fps!r}")


def _check_clip(start: float | None, end: float | None) -> None:
    if start is not None and start < 0:
        raise ValueError(f"clip start must be >= 0 seconds, got {start}")
    if start is not None and end is not None and end < start:
        raise ValueError(f"clip end ({end} s) is before its start ({start} s)")


def _outside_message(start: float | None, end: float | None, total_frames: int, video_fps: float) -> str:
    return (
        f"clip [{start}, {end}] s has no frames in a video of {total_frames} frames at {video_fps:g} fps "
        f"({total_frames / video_fps:.2f} s)"
    )
