"""Moment annotations: which span of a video each caption describes, for moment retrieval (``tvr eval --task
moments``).

Every loader returns a ``datasets.Dataset`` with the retrieval readers' columns (``video_id``, ``video_path``,
``caption``, ``caption_index``, ``start``, ``end``), where ``start`` / ``end`` are the GROUND-TRUTH MOMENT in seconds
(never ``None``, ``end > start``), not the clip to decode: the whole video is searched for it. The retrieval readers
(:func:`tvr.data.readers.load_annotations`) keep their meaning; these loaders have their own name, :func:`load_moments`.

Formats:

- ``charades-sta``: ``charades_sta_{train,test}.txt``, one ``VIDEOID START END##sentence`` a line (Gao et al. 2017);
  videos ``VIDEOID.mp4`` (any extension: the file whose stem is the id).
- ``didemo``: ``{train,val,test}_data.json`` (Hendricks et al. 2017), a list of {``video``, ``description``,
  ``times``}: each annotator's ``[first, last]`` 5-second chunk (chunk ``i`` is ``[5 i, 5 (i + 1)]`` s). The ground
  truth is the span most annotators gave (ties: the one given first), in seconds ``[5 first, 5 (last + 1)]``: one
  consensus moment per description, as R@k-IoU evaluations need. (Other conventions exist: the original paper's own
  metric averages over the best three annotators; some code bases average the annotators' spans.) Videos: the file
  named as ``video``.
- ``generic`` (``jsonl`` / ``csv``): :func:`tvr.data.readers.load_generic`'s files, where every row has ``start`` and
  ``end``.

Missing videos are reported, kept, dropped or raised on as by every reader (``missing="warn" | "drop" | "error"``).

Example::

    moments = load_moments("charades-sta", "data/charades", "data/charades/videos", split="test")
    moments[0]  # {'video_id': 'AO8RW', 'caption': 'a person is putting a book on a shelf.', 'start': 0.0, ...}
"""

from __future__ import annotations

import os
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable

from .readers import (
    _build_dataset,
    _caption,
    _check_split,
    _expect,
    _field,
    _number_captions,
    _read_json,
    _read_text,
    _row,
    _seconds,
    load_generic,
)
from .videos import MissingPolicy, index_video_files

if TYPE_CHECKING:
    from datasets import Dataset

DIDEMO_CHUNK_SECONDS = 5.0  # DiDeMo's annotators chose among 5-second chunks
DIDEMO_MAX_CHUNK = 5  # six chunks: the first 30 s of every video


def load_charades_sta(
    annotation_path: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "test",
    *,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """Charades-STA: one row per ``VIDEOID START END##sentence`` line of ``charades_sta_{split}.txt``, in file order.

    Args:
        annotation_path: the ``.txt`` file, or the folder holding ``charades_sta_{split}.txt``.
        split: ``"train"`` or ``"test"`` (Charades-STA has no validation split).
    """
    _check_split(split, ("train", "test"), "charades-sta")
    path = os.fspath(annotation_path)
    if os.path.isdir(path):
        path = os.path.join(path, f"charades_sta_{split}.txt")
    rows = []
    for number, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        head, separator, sentence = line.partition("##")
        fields = head.split()
        if not separator or len(fields) != 3:
            raise ValueError(f"{where}: expected 'VIDEOID START END##sentence', got {line[:80]!r}")
        start, end = _seconds(fields[1], where, "start"), _seconds(fields[2], where, "end")
        rows.append(_row(fields[0], _caption(sentence.strip(), where), 0, *_moment(start, end, where)))
    find = None if video_dir is None else index_video_files(video_dir, "stem").get
    return _build_dataset(_number_captions(rows), find, missing, f"charades-sta {split} under {video_dir!s}",
                          source=path)


def didemo_moment(times: Any, where: str) -> tuple[float, float]:
    """The ground-truth moment in seconds of one DiDeMo description from its annotators' ``times``
    (``[[first, last], ...]`` chunk indices): the span most annotators gave, the first given among ties.

    Example: ``[[4, 4], [4, 4], [0, 0], [0, 0], [4, 4]]`` -> ``(20.0, 25.0)``.
    """
    _expect(times, list, f"{where} field 'times'", "a list of [first, last] chunk pairs")
    spans = []
    for position, span in enumerate(times):
        if not (isinstance(span, list) and len(span) == 2 and all(isinstance(chunk, int) and not isinstance(
                chunk, bool) and 0 <= chunk <= DIDEMO_MAX_CHUNK for chunk in span) and span[0] <= span[1]):
            raise ValueError(f"{where} field 'times'[{position}]: expected [first, last] chunk indices with "
                             f"0 <= first <= last <= {DIDEMO_MAX_CHUNK}, got {span!r}")
        spans.append(tuple(span))
    if not spans:
        raise ValueError(f"{where} field 'times': no annotator span; expected at least one [first, last] pair")
    first, last = Counter(spans).most_common(1)[0][0]  # Counter keeps first-seen order among equal counts
    return first * DIDEMO_CHUNK_SECONDS, (last + 1) * DIDEMO_CHUNK_SECONDS


def load_didemo_moments(
    annotation_dir: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str = "test",
    *,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """DiDeMo moments: one row per description of ``{split}_data.json``, in file order, with its consensus moment
    (:func:`didemo_moment`). ``annotation_dir`` is the folder or the json file itself."""
    _check_split(split, ("train", "val", "test"), "didemo")
    path = os.fspath(annotation_dir)
    if os.path.isdir(path):
        path = os.path.join(path, f"{split}_data.json")
    items = _expect(_read_json(path), list, path, "a list of {video, description, times} objects")
    rows = []
    for number, item in enumerate(items):
        where = f"{path} item {number}"
        video = _field(item, "video", str, where, "a video file name")
        description = _caption(_field(item, "description", str, where, "a string"), where)
        rows.append(_row(video, description, 0, *didemo_moment(_field(item, "times", list, where, "a list"), where)))
    find = None if video_dir is None else index_video_files(video_dir, "name").get
    return _build_dataset(_number_captions(rows), find, missing, f"didemo {split} under {video_dir!s}", source=path)


def load_generic_moments(
    annotation_path: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str | None = None,
    *,
    missing: MissingPolicy = "warn",
) -> Dataset:
    """Your own moments: a :func:`tvr.data.readers.load_generic` file (``.jsonl`` / ``.csv``) in which every row has
    ``start`` and ``end`` (seconds, ``end > start``): the moment its caption describes.

    Example line::

        {"video_path": "lecture.mp4", "caption": "the speaker draws a graph", "start": 312.0, "end": 340.5}
    """
    dataset = load_generic(annotation_path, video_dir, split, missing=missing)
    for row, (video_id, start, end) in enumerate(zip(dataset["video_id"], dataset["start"], dataset["end"]), 1):
        where = f"{os.fspath(annotation_path)} record {row} (video {video_id!r})"
        if start is None or end is None:
            raise ValueError(f"{where}: no moment; a moment file needs 'start' and 'end' (seconds) on every record")
        _moment(start, end, where)
    return dataset


def _moment(start: float, end: float, where: str) -> tuple[float, float]:
    if not end > start:
        raise ValueError(f"{where}: the moment ends ({end} s) at or before its start ({start} s); expected end > start")
    return start, end


# format name -> its loader (``tvr eval --task moments --dataset``; jsonl / csv are ``generic``)
MOMENT_READERS: dict[str, Callable[..., Dataset]] = {
    "charades-sta": load_charades_sta,
    "didemo": load_didemo_moments,
    "generic": load_generic_moments,
}


def load_moments(
    name: str,
    annotation_path: str | os.PathLike,
    video_dir: str | os.PathLike | None = None,
    split: str | None = None,
    **options: Any,
) -> Dataset:
    """Read a moment dataset (columns: see the module doc; ``start`` / ``end`` are the ground-truth moment).

    Args:
        name: ``charades-sta``, ``didemo``, or ``generic`` / ``jsonl`` / ``csv`` (your own file).
        annotation_path: the annotation file or its folder.
        video_dir: the videos; ``None`` reads annotations only (``video_path`` is ``""``). ``generic``: default the
            annotation file's folder.
        split: default ``test`` (``generic``: the split the file is named after).
        **options: ``missing="warn" | "drop" | "error"``.
    """
    key = "generic" if name in ("jsonl", "csv") else name.lower().replace("_", "-")
    if key not in MOMENT_READERS:
        raise ValueError(f"unknown moment dataset {name!r}; expected one of "
                         f"{sorted(MOMENT_READERS) + ['csv', 'jsonl']}")
    if key != "generic":
        split = split or "test"
    return MOMENT_READERS[key](annotation_path, video_dir, split, **options)


__all__ = ["MOMENT_READERS", "didemo_moment", "load_charades_sta", "load_didemo_moments", "load_generic_moments",
           "load_moments"]
