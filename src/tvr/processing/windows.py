"""Windows of a long video: the overlapping ``[start, end]`` spans, at several scales, that moment search encodes
as rows of an index and that ``tvr eval --task moments`` scores.

A window scale is a length in seconds (``"8"``) or a multiple of the model's clip length (``"2x"``: twice the
seconds its processor samples, ``max_frames / frame_rate``); ``stride`` is the step between two windows of one scale
as a fraction of its length (``0.5``: half overlap). Each scale's windows start at 0 and step by ``stride * length``;
the last one is moved back to end at the video's end so the tail is covered; a video shorter than a scale gets one
window over the whole video for it. Windows are rounded to milliseconds and listed once, by ``(start, end)``.

Encoding (:func:`encode_windows`, :func:`encode_spans`) samples each window with the processor's own frame sampling,
then decodes every frame the windows of a video need once, for all of them and all scales, and hands each window its
frames: the outputs equal ``processor(video, start=start, end=end)`` per window, at a fraction of the decoding.
:func:`refine_moments` moves a found moment's boundaries to where the model scores the query best.

Example::

    >>> plan_windows(20.0, [8.0], stride=0.5)
    [(0.0, 8.0), (4.0, 12.0), (8.0, 16.0), (12.0, 20.0)]
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

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


def clip_seconds(processor: Any) -> float | None:
    """The length in seconds of the clip the model sees: ``max_frames / fps`` of its video processor (the unit of
    ``"Nx"`` window scales); ``None`` for fixed-count sampling (``num_frames``), whose clip is any length."""
    video_processor = getattr(processor, "video_processor", processor)
    if getattr(video_processor, "num_frames", None) or not getattr(video_processor, "fps", None):
        return None
    return float(video_processor.max_frames) / float(video_processor.fps)


class _Window(NamedTuple):
    """One planned span of a video, as the encode loop passes it to :class:`_WindowProcessor`; ``str()`` is the
    video's name, so a video that cannot be decoded is reported once under its own name."""

    video: Any
    number: int

    def __str__(self) -> str:
        from .decoding import video_name

        return video_name(self.video)


class _WindowProcessor:
    """The processor :func:`encode_spans` hands to the encode loop: its "videos" are planned windows, whose frames
    it decodes once per video for all windows and scales, then prepares with the video processor as in-memory
    frames (already sampled: ``do_sample_frames=False``), so each window's output equals the processor's own for
    that clip.

    Windows are asked for in plan order (by video, then start); a decoded frame stays in memory from the first
    window that needs it until the last one, so memory holds about the frames of the longest window, not of the
    video. ``decoded`` counts the frames read (each needed frame once; again only after an error).
    """

    def __init__(self, video_processor: Any, videos: Sequence[Any], plan: list[tuple[int, Any]]):
        self.video_processor = video_processor  # the encode loop normalises uint8 frames with its settings
        self.videos = list(videos)
        self.plan = plan  # per window: (position of its video, its frame indices in output order)
        self.last_use: dict[tuple[int, int], int] = {}
        self.last_window: dict[int, int] = {}
        for number, (position, indices) in enumerate(plan):
            self.last_window[position] = number
            for frame in indices.tolist():
                self.last_use[(position, frame)] = number
        self.frames: dict[tuple[int, int], Any] = {}
        self.readers: dict[int, Any] = {}
        self.decoded = 0

    def __getstate__(self) -> dict:  # DataLoader workers: readers are reopened there
        return {**self.__dict__, "readers": {}}

    def __call__(self, videos: Sequence[_Window], return_tensors: str | None = None, **options: Any):
        numbers = [window.number for window in videos]
        self._decode(numbers)
        frames = [np.stack([self.frames[(self.plan[n][0], frame)] for frame in self.plan[n][1].tolist()])
                  for n in numbers]
        outputs = self.video_processor(videos=frames, do_sample_frames=False, return_tensors=return_tensors,
                                       **{name: value for name, value in options.items()
                                          if name not in ("start", "end")})
        last = max(numbers)
        for key in [key for key in self.frames if self.last_use[key] <= last]:
            del self.frames[key]
        for position in [position for position in self.readers if self.last_window[position] <= last]:
            del self.readers[position]
        return outputs

    def _decode(self, numbers: list[int]) -> None:
        from . import decoding

        wanted: dict[int, set[int]] = {}
        for number in numbers:
            position, indices = self.plan[number]
            wanted.setdefault(position, set()).update(frame for frame in indices.tolist()
                                                      if (position, frame) not in self.frames)
        for position, frames in wanted.items():
            if not frames:
                continue
            video = self.videos[position]
            if position not in self.readers:
                self.readers[position] = decoding.open_video(
                    video, num_threads=getattr(self.video_processor, "decode_threads", 1))
            indices = np.array(sorted(frames))
            decoded = decoding.read_frames(self.readers[position], indices, decoding.video_name(video), video=video)
            self.decoded += len(indices)
            self.frames.update({(position, int(frame)): image for frame, image in zip(indices, decoded)})


def encode_spans(model: Any, processor: Any, videos: Sequence[Any],
                 spans: Sequence[Sequence[tuple[float, float]]] | Callable[[float], Sequence[tuple[float, float]]],
                 batch_size: int = 16, on_bad_video: str = "skip", progress: bool = False,
                 desc: str = "encoding windows", **loop_options: Any) -> WindowedVideos:
    """Encode spans of videos as clips, each sampled with the processor's own frame sampling inside its span, with
    every needed frame decoded once per video for all its spans (see :class:`_WindowProcessor`), through the one
    encode loop (:func:`tvr.processing.encode_loop.encode_video_batches`; ``loop_options`` go to it).

    Args:
        videos: video files (paths or bytes).
        spans: per video, its ``(start, end)`` spans in seconds; or a function of a video's duration that gives them
            (as :func:`encode_windows` plans them).

    Returns:
        A :class:`WindowedVideos`: ``rows`` ``(video position, start, end)`` of the encoded spans, in order.

    Raises:
        ValueError, FileNotFoundError: with ``on_bad_video="error"``, the first video that cannot be read.
    """
    from .bad_videos import check_bad_video_policy
    from .decoding import open_video, read_metadata, video_name
    from .encode_loop import encode_video_batches

    check_bad_video_policy(on_bad_video)
    video_processor = getattr(processor, "video_processor", processor)
    planned, plan, failed = [], [], {}
    rng = np.random.default_rng(getattr(video_processor, "seed", None))
    for position, video in enumerate(videos):
        try:
            metadata = read_metadata(open_video(video))
            if not metadata.duration:
                raise ValueError(f"video '{video_name(video)}': no frame rate in its header, so no duration")
            video_spans = spans(float(metadata.duration)) if callable(spans) else spans[position]
            # the processor's own sampling of each span, as `processor(video, start=, end=)` would decode it
            indices = [video_processor._frame_indices(metadata, video_name(video), True,
                                                      max_frames=video_processor.max_frames, start=start, end=end,
                                                      generator=rng) for start, end in video_spans]
        except (OSError, ValueError) as error:
            if on_bad_video == "error":
                raise
            failed[video_name(video)] = f"{type(error).__name__}: {error}"
            continue
        planned += [(position, float(start), float(end)) for start, end in video_spans]
        plan += [(position, np.asarray(frames)) for frames in indices]
    window_processor = _WindowProcessor(video_processor, videos, plan)
    encoded = encode_video_batches(model, window_processor, [_Window(videos[position], number) for number, (
        position, _, _) in enumerate(planned)], batch_size, on_bad_video=on_bad_video, progress=progress,
        desc=desc, **loop_options)
    failed.update(encoded.failed)
    return WindowedVideos(encoded.encodings, [planned[row] for row in encoded.kept], failed)


def encode_windows(model: Any, processor: Any, videos: Sequence[Any], scales: Sequence[float], stride: float = 0.5,
                   batch_size: int = 16, on_bad_video: str = "skip", progress: bool = False,
                   **loop_options: Any) -> WindowedVideos:
    """Encode every window (:func:`plan_windows`) of each video as a clip, with the method's own frame sampling
    inside the window; each needed frame is decoded once for all windows and scales of its video
    (:func:`encode_spans`; extra ``loop_options`` go to the encode loop).

    Raises:
        ValueError, FileNotFoundError: with ``on_bad_video="error"``, the first video that cannot be read.
    """
    check_stride(stride)
    return encode_spans(model, processor, videos, lambda duration: plan_windows(duration, scales, stride),
                        batch_size, on_bad_video, progress, **loop_options)


def refine_moments(model: Any, processor: Any, video: Any, text_encoding: Any, moments: Sequence[tuple[float, float]],
                   shift: float = 0.25, rounds: int = 2, batch_size: int = 16,
                   **loop_options: Any) -> list[tuple[float, float, float]]:
    """Move the boundaries of ``moments`` of one video to where the model scores the query best.

    Each round scores, for every moment, itself and its variants moved by ``d = shift * length``: shifted
    (``start +- d, end +- d``), extended (``start - d`` or ``end + d``) and shrunk (``start + d`` or ``end - d``),
    kept inside the video; the best-scored span wins and the next round tries half that step. Spans are encoded as
    windows are (:func:`encode_spans`) and scored with ``model.score_gallery`` (the model's own similarity).

    Args:
        text_encoding: ``model.encode_text`` of one query, ``(1, ...)``.
        moments: ``(start, end)`` spans in seconds.
        shift: the first round's step, a fraction of each moment's length.
        rounds: refinement rounds (0: the moments rescored as they are).

    Returns:
        Per moment, ``(start, end, score)`` of its best span.

    Raises:
        ValueError, FileNotFoundError: the video cannot be read.
    """
    import torch

    from ..modeling.outputs import concat_encodings

    if not 0 < shift < 1:
        raise ValueError(f"shift must be in (0, 1) (a fraction of the moment's length), got {shift}")
    if not moments:
        return []
    duration = video_duration(video)
    best = [(float(start), float(end)) for start, end in moments]
    scores = [float("-inf")] * len(best)
    steps = [shift * (end - start) for start, end in best]
    for round_ in range(rounds + 1):
        candidates = [[span] + (_variants(span, step, duration) if round_ else []) for span, step in zip(best, steps)]
        flat = [span for spans in candidates for span in spans]
        encoded = encode_spans(model, processor, [video], [flat], batch_size, on_bad_video="error", **loop_options)
        with torch.no_grad():
            logits = model.score_gallery(text_encoding, concat_encodings(encoded.encodings))[0].tolist()
        offset = 0
        for number, spans in enumerate(candidates):
            values = logits[offset:offset + len(spans)]
            offset += len(spans)
            winner = max(range(len(spans)), key=values.__getitem__)  # the first of equals: the current span
            best[number], scores[number] = spans[winner], values[winner]
        steps = [step / 2 for step in steps] if round_ else steps
    return [(start, end, score) for (start, end), score in zip(best, scores)]


def _variants(span: Window, step: float, duration: float) -> list[Window]:
    """``span`` shifted, extended and shrunk by ``step``, inside ``[0, duration]``, rounded to milliseconds, each
    at least half a step long, listed once and never ``span`` itself."""
    start, end = span
    moved = [(start - step, end - step), (start + step, end + step), (start - step, end), (start, end + step),
             (start + step, end), (start, end - step)]
    variants = []
    for new_start, new_end in moved:
        new_start, new_end = round(max(0.0, new_start), 3), round(min(duration, new_end), 3)
        candidate = (new_start, new_end)
        if new_end - new_start >= step / 2 and candidate != span and candidate not in variants:
            variants.append(candidate)
    return variants


__all__ = ["Window", "WindowedVideos", "check_stride", "clip_seconds", "encode_spans", "encode_windows",
           "parse_window_scales", "plan_windows", "refine_moments", "video_duration"]
