"""Windows of a long video: the overlapping ``[start, end]`` spans, at several scales, that moment search encodes
as rows of an index and that ``tvr eval --task moments`` scores.

A window scale is a length in seconds (``"8"``) or a multiple of the model's clip length (``"2x"``: twice the
seconds its processor samples, ``max_frames / frame_rate``); ``stride`` is the step between two windows of one scale
as a fraction of its length (``0.5``: half overlap). Each scale's windows start at 0 and step by ``stride * length``;
the last one is moved back to end at the video's end so the tail is covered; a video shorter than a scale gets one
window over the whole video for it. Windows are rounded to milliseconds and listed once, by ``(start, end)``.

Example::

    >>> plan_windows(20.0, [8.0], stride=0.5)
    [(0.0, 8.0), (4.0, 12.0), (8.0, 16.0), (12.0, 20.0)]
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

Window = tuple[float, float]


class WindowedVideos(NamedTuple):
    """What :func:`encode_windows` made of a list of videos.

    Attributes:
        encodings: one ``model.encode_video`` output per batch of windows (concatenate them with
            :func:`tvr.modeling.outputs.concat_encodings`); their rows are ``rows``.
        rows: per encoded window, ``(position of its video in the list given, start, end)`` in seconds.
        failed: ``{video: "ErrorType: message"}`` of the videos left out (``on_bad_video="skip"``).
    """

    encodings: list[Any]
    rows: list[tuple[int, float, float]]
    failed: dict[str, str]


def parse_window_scales(spec: str | Sequence[float | str], clip_seconds: float | None = None) -> list[float]:
    """Window lengths in seconds from ``"4,8,16"`` (seconds) or ``"1x,2x"`` (multiples of ``clip_seconds``, the
    model's clip length), sorted and listed once.

    Raises:
        ValueError: a scale is not a positive number (named), or ``"Nx"`` without ``clip_seconds``.
    """
    parts = [part.strip() for part in spec.split(",")] if isinstance(spec, str) else list(spec)
    scales = []
    for part in parts:
        text = str(part).strip()
        multiple = text.endswith("x")
        try:
            value = float(text[:-1] if multiple else text)
        except ValueError:
            raise ValueError(f"window scale {text!r} is not a number of seconds (e.g. 8) or a multiple of the clip "
                             "length (e.g. 2x)") from None
        if not value > 0:
            raise ValueError(f"window scale {text!r} must be positive")
        if multiple:
            if not clip_seconds:
                raise ValueError(f"window scale {text!r} is a multiple of the clip length, which is unknown here: "
                                 "give seconds")
            value *= clip_seconds
        scales.append(round(value, 3))
    if not scales:
        raise ValueError(f"no window scales in {spec!r}; give e.g. 4,8,16 (seconds)")
    return sorted(set(scales))


def check_stride(stride: float) -> float:
    """``stride`` if it is in ``(0, 1]`` (a fraction of the window length), else a ValueError naming it."""
    if not 0 < stride <= 1:
        raise ValueError(f"window stride must be in (0, 1] (a fraction of the window length), got {stride}")
    return float(stride)


def plan_windows(duration: float, scales: Sequence[float], stride: float = 0.5) -> list[Window]:
    """The windows of a ``duration``-second video: for each scale, spans of that length stepping by
    ``stride * length`` from 0, the last one ending at ``duration`` (see the module doc). Sorted by ``(start, end)``.

    Raises:
        ValueError: ``duration`` is not positive, or ``stride`` is outside ``(0, 1]``.
    """
    check_stride(stride)
    if not duration > 0:
        raise ValueError(f"a video of {duration} s has no windows")
    windows = set()
    for length in scales:
        if length >= duration:
            windows.add((0.0, round(float(duration), 3)))
            continue
        step, position = length * stride, 0
        while position * step + length < duration:
            windows.add((round(position * step, 3), round(position * step + length, 3)))
            position += 1
        windows.add((round(duration - length, 3), round(float(duration), 3)))
    return sorted(windows)


def video_duration(video) -> float:
    """A video file's duration in seconds (frame count / frame rate, read from its header: nothing is decoded).

    Raises:
        FileNotFoundError, ValueError: as :func:`tvr.processing.decoding.open_video`; ValueError when the file
            states no frame rate.
    """
    from .decoding import open_video, read_metadata, video_name

    metadata = read_metadata(open_video(video))
    if not metadata.duration:
        raise ValueError(f"video '{video_name(video)}': no frame rate in its header, so no duration")
    return float(metadata.duration)


def encode_windows(model: Any, processor: Any, videos: Sequence[Any], scales: Sequence[float], stride: float = 0.5,
                   batch_size: int = 16, on_bad_video: str = "skip", progress: bool = False,
                   **loop_options: Any) -> WindowedVideos:
    """Encode every window (:func:`plan_windows`) of each video as a clip, with the method's own frame sampling
    inside the window, through the one encode loop (:func:`tvr.processing.encode_loop.encode_video_batches`; extra
    ``loop_options`` go to it).

    Raises:
        ValueError, FileNotFoundError: with ``on_bad_video="error"``, the first video that cannot be read.
    """
    from .bad_videos import check_bad_video_policy
    from .decoding import video_name
    from .encode_loop import encode_video_batches

    check_bad_video_policy(on_bad_video)
    planned, failed = [], {}
    for position, video in enumerate(videos):
        try:
            duration = video_duration(video)
        except (OSError, ValueError) as error:
            if on_bad_video == "error":
                raise
            failed[video_name(video)] = f"{type(error).__name__}: {error}"
            continue
        planned += [(position, start, end) for start, end in plan_windows(duration, scales, stride)]
    encoded = encode_video_batches(model, processor, [videos[position] for position, _, _ in planned], batch_size,
                                   starts=[start for _, start, _ in planned], ends=[end for _, _, end in planned],
                                   on_bad_video=on_bad_video, progress=progress, desc="encoding windows",
                                   **loop_options)
    failed.update(encoded.failed)
    return WindowedVideos(encoded.encodings, [planned[row] for row in encoded.kept], failed)


__all__ = ["WindowedVideos", "encode_windows", "Window", "check_stride", "parse_window_scales", "plan_windows", "video_duration"]
