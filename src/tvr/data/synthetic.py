"""Synthetic video-caption data: real mp4 files written with PyAV, deterministic for a seed.

Each video is a black stage on which a sequence of 2-3 events happens, one after the other, one coloured shape
per event:

    "a red square moves left, then a blue circle appears, then a yellow triangle disappears"

An event is one of 5 colours x 3 shapes x 6 actions (``moves left/right/up/down``, ``appears``,
``disappears``), so a 2-3 event caption is one of ~740k. A caption can only be matched by looking at the video
(nothing else links them), but in a gallery of ~100 random videos the coloured shapes alone usually identify it;
telling motion direction and event order apart needs galleries of videos that share their shapes (see the demo's
time-reversal check, `tvr.demo.time_reversal_accuracy`). The factors are built to be
learnable from scratch at low resolution and 1 frame per second: big saturated shapes (a third to half of the
frame), events that last whole seconds (at least 2 s), a moving shape that is at its start position on the first
second of its event and at its end position on the last, and appear / disappear changes one second into / before
the end of the event.

``make_synthetic_dataset`` writes the videos and a ``{split}.jsonl`` annotation file in the generic format, and
reads it back with :func:`tvr.data.readers.load_generic`, so the synthetic data takes the same path as a user's
own videos.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

if TYPE_CHECKING:
    from datasets import Dataset

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "green": (30, 200, 40),
    "blue": (40, 70, 240),
    "yellow": (240, 220, 30),
    "white": (240, 240, 240),
}
SHAPES = ("square", "circle", "triangle")
MOTIONS = ("left", "right", "up", "down")
ACTIONS = tuple(f"moves {motion}" for motion in MOTIONS) + ("appears", "disappears")
MIN_EVENT_SECONDS = 2.0


@dataclass(frozen=True)
class Event:
    """One shape doing one thing during ``[start, end)`` seconds.

    ``origin`` and ``target`` are the shape's centre ``(x, y)`` in pixels at the first and the last whole second of
    the event (equal unless it moves); ``radius`` is half its width.
    """

    color: str
    shape: str
    action: str
    start: float
    end: float
    radius: float
    origin: tuple[float, float]
    target: tuple[float, float]

    def describe(self) -> str:
        return f"a {self.color} {self.shape} {self.action}"

    def visible_at(self, time: float) -> bool:
        """Whether the shape is on screen at ``time`` seconds (appear: after 1 s; disappear: until 1 s before the end)."""
        if not self.start <= time < self.end:
            return False
        if self.action == "appears":
            return time >= self.start + 1
        if self.action == "disappears":
            return time < self.end - 1
        return True

    def center_at(self, time: float) -> tuple[float, float]:
        """Centre ``(x, y)`` at ``time``: a linear path reaching ``target`` at the event's last whole second."""
        progress = min(max((time - self.start) / max(self.end - self.start - 1, 1), 0.0), 1.0)
        return tuple(a + (b - a) * progress for a, b in zip(self.origin, self.target))


def describe(events: Sequence[Event]) -> str:
    """The caption of a sequence of events, in order: ``"a red square moves left, then a blue circle appears"``."""
    return ", then ".join(event.describe() for event in events)


def event_bounds(duration: float, num_events: int) -> list[tuple[float, float]]:
    """Split ``[0, duration]`` into ``num_events`` consecutive whole-second spans (8 s, 3 events -> 3, 2, 3 s)."""
    edges = [round(duration * k / num_events) for k in range(num_events)] + [duration]
    bounds = [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:])]
    if min(b - a for a, b in bounds) < MIN_EVENT_SECONDS:
        raise ValueError(f"duration={duration} s is too short for {num_events} events of at least "
                         f"{MIN_EVENT_SECONDS:g} s each")
    return bounds


def generate_events(
    rng: np.random.Generator,
    size: int = 64,
    duration: float = 8.0,
    num_events: int | tuple[int, int] = (2, 3),
) -> list[Event]:
    """Draw a random sequence of events.

    Args:
        rng: the random source (``np.random.default_rng(seed)``).
        size: frame height and width in pixels.
        duration: video length in seconds.
        num_events: a count, or an inclusive ``(low, high)`` range drawn uniformly.
    """
    low, high = (num_events, num_events) if isinstance(num_events, int) else num_events
    count = int(rng.integers(low, high + 1))
    events = []
    for start, end in event_bounds(duration, count):
        radius = float(rng.uniform(0.18, 0.24) * size)
        near, far = radius + 0.04 * size, size - radius - 0.04 * size  # centre range keeping the shape inside
        action = ACTIONS[rng.integers(len(ACTIONS))]
        across = float(rng.uniform(near, far))
        origin = target = (float(rng.uniform(near, far)), float(rng.uniform(near, far)))
        if action == "moves left":
            origin, target = (far, across), (near, across)
        elif action == "moves right":
            origin, target = (near, across), (far, across)
        elif action == "moves up":
            origin, target = (across, far), (across, near)
        elif action == "moves down":
            origin, target = (across, near), (across, far)
        color = list(COLORS)[rng.integers(len(COLORS))]
        shape = SHAPES[rng.integers(len(SHAPES))]
        events.append(Event(color, shape, action, start, end, radius, origin, target))
    return events


def shape_mask(shape: str, center: tuple[float, float], radius: float, size: int) -> np.ndarray:
    """Boolean ``(size, size)`` mask of a shape: square of side 1.8 r, circle of radius r, triangle of base and
    height 2 r pointing up."""
    y, x = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    dx, dy = x - center[0], y - center[1]
    if shape == "square":
        return (np.abs(dx) <= 0.9 * radius) & (np.abs(dy) <= 0.9 * radius)
    if shape == "circle":
        return dx**2 + dy**2 <= radius**2
    if shape == "triangle":
        return (dy >= -radius) & (dy <= radius) & (np.abs(dx) <= (dy + radius) / 2)
    raise ValueError(f"shape {shape!r}: expected one of {SHAPES}")


def render_frames(events: Sequence[Event], size: int = 64, fps: float = 10, duration: float = 8.0) -> np.ndarray:
    """Draw the events: uint8 frames of shape ``(round(duration * fps), size, size, 3)``, frame i at time i / fps."""
    frames = np.zeros((round(duration * fps), size, size, 3), dtype=np.uint8)
    for index, frame in enumerate(frames):
        time = index / fps
        for event in events:
            if event.visible_at(time):
                frame[shape_mask(event.shape, event.center_at(time), event.radius, size)] = COLORS[event.color]
    return frames


def synthetic_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random source of video ``index``: independent per video, and per split so that splits differ for the
    same seed."""
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


def _write_videos(output_dir: str, num_videos: int, desc: str, size: int, fps: float, progress: bool,
                  draw: Callable[[int], tuple[str, list[Event], float]]) -> list[tuple[str, list[Event], float]]:
    """Render and write video ``i`` of ``draw(i) -> (video_id, events, duration)`` to
    ``output_dir/videos/{video_id}.mp4`` for each ``i``, under a progress bar; returns ``(video_path relative to
    output_dir, events, duration)`` per video."""
    from tqdm.auto import tqdm

    if size % 2:
        raise ValueError(f"size={size}: H.264 needs an even frame size")
    if num_videos < 1:
        raise ValueError(f"num_videos={num_videos}: expected at least 1")
    written = []
    for index in tqdm(range(num_videos), desc=desc, disable=not progress):
        video_id, events, duration = draw(index)
        video_path = f"videos/{video_id}.mp4"
        write_video(os.path.join(output_dir, video_path), render_frames(events, size, fps, duration), fps)
        written.append((video_path, events, duration))
    return written


def _write_jsonl(output_dir: str, split: str, records: Sequence[dict]) -> str:
    """``output_dir/{split}.jsonl``, one record a line; returns its path."""
    annotation_path = os.path.join(output_dir, f"{split}.jsonl")
    with open(annotation_path, "w", encoding="utf-8") as file:
        file.writelines(json.dumps(record) + "\n" for record in records)
    return annotation_path


def make_synthetic_dataset(
    output_dir: str | os.PathLike,
    num_videos: int,
    seed: int = 0,
    split: str = "test",
    size: int = 64,
    fps: float = 10,
    duration: float = 8.0,
    num_events: int | tuple[int, int] = (2, 3),
    progress: bool = True,
) -> "Dataset":
    """Write ``num_videos`` synthetic videos and their captions, and read them back as a dataset.

    Writes ``output_dir/videos/{split}_{i:05d}.mp4`` and ``output_dir/{split}.jsonl`` (generic format: ``video_id``,
    ``video_path`` relative to ``output_dir``, ``caption``, ``start``/``end`` null, plus ``events``, the list of
    :class:`Event` fields behind the caption). Video ``i`` depends only on ``(seed, split, i)``.

    Returns:
        ``datasets.Dataset`` with one row per video (columns of :func:`tvr.data.readers.load_generic`).

    Example::

        train = make_synthetic_dataset("synthetic", 500, split="train")
        test = make_synthetic_dataset("synthetic", 100, split="test")
    """
    from .readers import load_generic

    output_dir = os.fspath(output_dir)
    written = _write_videos(output_dir, num_videos, f"synthetic {split} videos", size, fps, progress, lambda index: (
        f"{split}_{index:05d}", generate_events(synthetic_rng(seed, split, index), size, duration, num_events),
        duration))
    records = [dict(video_id=os.path.splitext(os.path.basename(video_path))[0], video_path=video_path,
                    caption=describe(events), start=None, end=None, events=[asdict(event) for event in events])
               for video_path, events, _ in written]
    return load_generic(_write_jsonl(output_dir, split, records), missing="error")


# ------------------------------------------------------------------------------------- long videos (moments)
def generate_moment_events(
    rng: np.random.Generator,
    size: int = 64,
    num_events: int | tuple[int, int] = (3, 6),
    event_seconds: tuple[int, int] = (3, 8),
) -> list[Event]:
    """Draw the events of a long video: consecutive events of whole-second lengths drawn in ``event_seconds``
    (inclusive), each drawn as :func:`generate_events` draws one, no two with the same coloured shape, so each
    event's caption (``"a red square moves left"``) names exactly one span of the video."""
    from dataclasses import replace

    low, high = (num_events, num_events) if isinstance(num_events, int) else num_events
    shortest, longest = event_seconds
    if not 1 <= low <= high <= len(COLORS) * len(SHAPES):
        raise ValueError(f"num_events={num_events}: expected 1 to {len(COLORS) * len(SHAPES)} events (one per "
                         "coloured shape)")
    if not MIN_EVENT_SECONDS <= shortest <= longest:
        raise ValueError(f"event_seconds={event_seconds}: expected (shortest, longest) whole seconds with "
                         f"{MIN_EVENT_SECONDS:g} <= shortest <= longest")
    objects = rng.choice(len(COLORS) * len(SHAPES), size=int(rng.integers(low, high + 1)), replace=False)
    events, offset = [], 0.0
    for drawn in objects:
        length = float(rng.integers(shortest, longest + 1))
        event = generate_events(rng, size, length, 1)[0]
        events.append(replace(event, color=list(COLORS)[drawn // len(SHAPES)],
                              shape=SHAPES[drawn % len(SHAPES)], start=offset, end=offset + length))
        offset += length
    return events


def make_moment_dataset(
    output_dir: str | os.PathLike,
    num_videos: int,
    seed: int = 0,
    split: str = "test",
    size: int = 64,
    fps: float = 10,
    num_events: int | tuple[int, int] = (3, 6),
    event_seconds: tuple[int, int] = (3, 8),
    progress: bool = True,
) -> "Dataset":
    """Write long synthetic videos of several captioned events with known bounds, for moment retrieval, and read
    them back as a moment dataset (:func:`tvr.data.moments.load_moments`).

    Video ``i`` (it depends only on ``(seed, split, i)``) is :func:`generate_moment_events`' events one after the
    other (3-6 events of 3-8 s by default: 9-48 s videos). Writes ``output_dir/videos/long_{split}_{i:05d}.mp4`` and
    ``output_dir/{split}.jsonl``, one record per event in the generic format with the moment: ``video_id``,
    ``video_path`` (relative to ``output_dir``), ``caption`` (the event's, ``"a red square moves left"``), ``start``,
    ``end`` (seconds), plus ``duration`` (the video's). ``tvr eval MODEL --task moments --dataset jsonl
    --annotations output_dir/test.jsonl`` evaluates it. Give it a folder of its own: the file is named as
    :func:`make_synthetic_dataset`'s.

    Returns:
        ``datasets.Dataset``, one row per event (columns of :func:`tvr.data.moments.load_moments`).

    Example::

        moments = make_moment_dataset("long_videos", 20)   # about 90 captioned moments in 20 videos
    """
    from .moments import load_moments

    def draw(index: int) -> tuple[str, list[Event], float]:
        events = generate_moment_events(synthetic_rng(seed, f"moments-{split}", index), size, num_events,
                                        event_seconds)
        return f"long_{split}_{index:05d}", events, events[-1].end

    output_dir = os.fspath(output_dir)
    written = _write_videos(output_dir, num_videos, f"long synthetic {split} videos", size, fps, progress, draw)
    records = [dict(video_id=os.path.splitext(os.path.basename(video_path))[0], video_path=video_path,
                    caption=event.describe(), start=event.start, end=event.end, duration=duration)
               for video_path, events, duration in written for event in events]
    return load_moments("jsonl", _write_jsonl(output_dir, split, records), missing="error")


def write_video(path: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray], fps: float = 30) -> str:
    """Write RGB frames to an H.264 mp4 file.

    Args:
        path: output file (parent folders are created).
        frames: uint8 array of shape ``(num_frames, height, width, 3)`` (even height and width) or a list of
            ``(height, width, 3)`` arrays.
        fps: frame rate stored in the file.

    Returns:
        The path written, as a string.
    """
    from fractions import Fraction

    import av

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (num_frames, height, width, 3), got {frames.shape}")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # near-lossless so tests can recognise frames by colour
        stream.options = {"crf": "1", "preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# ------------------------------------------------------------------------------------- labelled (classification)
LABEL_FACTORS = ("color", "shape", "object")


def labelled_classes(label_by: str = "object") -> list[str]:
    """The classes of :func:`make_labelled_dataset` in id order: the colours (``"red"``, ...), the shapes
    (``"square"``, ...) or both (``"red square"``, ... colour by colour)."""
    if label_by not in LABEL_FACTORS:
        raise ValueError(f"label_by={label_by!r}: expected one of {LABEL_FACTORS}")
    return {"color": list(COLORS), "shape": list(SHAPES),
            "object": [f"{color} {shape}" for color in COLORS for shape in SHAPES]}[label_by]


def make_labelled_dataset(
    output_dir: str | os.PathLike,
    num_videos: int,
    label_by: str = "object",
    seed: int = 0,
    split: str = "test",
    size: int = 64,
    fps: float = 10,
    duration: float = 8.0,
    progress: bool = True,
) -> "Dataset":
    """Write a labelled synthetic set for zero-shot classification, and read it back as a classification dataset.

    Each video is one shape doing one action for the whole video (drawn as in :func:`generate_events`); its class
    is the shape's colour, its shape, or both (``label_by``: ``"color"``, ``"shape"``, ``"object"``). Video ``i`` is
    of class ``i % num_classes`` (balanced), everything else random; it depends only on ``(seed, split, i)``.
    Captions that name the class in an action (``"a red square moves left"``) are what the demo model learnt: the
    ``tvr-synthetic`` template set (:data:`tvr.evaluation.templates.TEMPLATE_SETS`) asks it for every action.

    Writes ``output_dir/videos/{split}_{i:05d}.mp4``, ``output_dir/{split}.csv`` (``video_path,label``, the
    classification CSV format) and ``output_dir/classes.txt`` (the class ids: :func:`labelled_classes`' order).

    Returns:
        The dataset as :func:`tvr.data.classification.load_classification_csv` reads it (``video_id``,
        ``video_path``, ``label``, ``label_id``, ``split``).

    Example::

        test = make_labelled_dataset("labelled", 45, label_by="object")   # 15 classes, 3 videos each
    """
    import csv
    import dataclasses

    from .classification import load_classification_csv

    classes = labelled_classes(label_by)

    def draw(index: int) -> tuple[str, list[Event], float]:
        event = generate_events(synthetic_rng(seed, f"labelled-{split}", index), size, duration, 1)[0]
        label = classes[index % len(classes)]
        if label_by == "color":
            event = dataclasses.replace(event, color=label)
        elif label_by == "shape":
            event = dataclasses.replace(event, shape=label)
        else:
            color, shape = label.split(" ")
            event = dataclasses.replace(event, color=color, shape=shape)
        return f"{split}_{index:05d}", [event], duration

    output_dir = os.fspath(output_dir)
    written = _write_videos(output_dir, num_videos, f"labelled {split} videos", size, fps, progress, draw)
    records = [(video_path, classes[index % len(classes)]) for index, (video_path, _, _) in enumerate(written)]
    with open(os.path.join(output_dir, "classes.txt"), "w", encoding="utf-8") as file:
        file.writelines(f"{name}\n" for name in classes)
    annotation_path = os.path.join(output_dir, f"{split}.csv")
    with open(annotation_path, "w", encoding="utf-8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(("video_path", "label"))
        writer.writerows(records)
    return load_classification_csv(annotation_path, split=split, missing="error")
