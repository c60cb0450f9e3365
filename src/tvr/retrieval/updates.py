"""Updates in place: add, re-encode and remove videos of a :class:`~tvr.retrieval.VideoIndex` without a rebuild.

An update compares the collection with what the index recorded of each video (path + fingerprint: size and a hash
of its first and last MiB, :mod:`tvr.utils.fingerprint`), encodes only the new and changed videos -- through the
same call a fresh build encodes with (:func:`tvr.retrieval.shards.encode_collection`: resumable shards in
``resume_dir``, so a killed update restarts where it stopped) --, removes every row of the vanished and changed
ones and keeps the rest. Rows keep their ids; new rows get new ids (never reused). The store is updated by id
(FAISS ``add_with_ids`` / ``remove_ids``, Milvus upserts and deletes) and checked for drift
(:func:`tvr.retrieval.stores.check_drift`); saving writes a new segment of encodings beside hard links to the
unchanged ones and swaps the folder whole (:mod:`tvr.retrieval.segments`).

This module sits under :mod:`tvr.retrieval.index` (which calls it) and never imports it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..utils.fingerprint import same_file
from .shards import encode_collection
from .stores import DEFAULT_RETRAIN_DRIFT, check_drift

#: called with the name of each stage of an update as it ends ("planned", "encoded", "applied"; the index's save
#: adds "staged"): the fault-injection tests kill the process there
phase_hook: Callable[[str], None] | None = None


def phase_done(name: str) -> None:
    if phase_hook is not None:
        phase_hook(name)


@dataclass
class UpdateReport:
    """What an update did: the videos ``added`` (new), ``changed`` (re-encoded), ``removed``, the number ``kept``,
    how many were ``encoded`` and which could not be decoded (``failed``), and the drift check's line, if any."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: int = 0
    encoded: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    drift: str | None = None

    def summary(self) -> str:
        """One line: ``added A, changed C, removed R, kept K videos (encoded E, F could not be decoded)``."""
        return (f"added {len(self.added)}, changed {len(self.changed)}, removed {len(self.removed)}, kept {self.kept} "
                f"videos (encoded {self.encoded}, {len(self.failed)} could not be decoded)")


def plan_update(index, paths: Sequence[str]) -> UpdateReport:
    """Compare ``paths`` (the collection now) with what ``index`` recorded: new, changed (size or content hash
    differ) and vanished videos; a video that failed to decode is tried again only when it changed."""
    paths = list(dict.fromkeys(os.fspath(path) for path in paths))
    known = list(dict.fromkeys([*index.paths, *index.failed]))
    present, known_set = set(paths), set(known)
    report = UpdateReport()
    for path in paths:
        if path not in known_set:
            report.added.append(path)
        elif not same_file(index.video_fingerprints.get(path), path):
            report.changed.append(path)
    report.removed = [path for path in known if path not in present]
    report.kept = len(known) - len(report.removed) - len(report.changed)
    return report


def remove_videos(index, paths: Sequence[str]) -> int:
    """Remove every row of ``paths`` (and their failure / fingerprint records) from ``index``; returns the number
    of rows removed."""
    gone = set(paths)
    for path in gone:
        index.failed.pop(path, None)
        index.video_fingerprints.pop(path, None)
    mask = np.fromiter((path in gone for path in index.paths), dtype=bool, count=len(index.paths))
    if not mask.any():
        return 0
    if mask.all():
        raise ValueError(f"removing {len(gone)} video(s) would leave the index empty; build a new one with `tvr index`")
    index.store.remove(index.row_ids[mask])
    index._take_rows(np.flatnonzero(~mask))
    return int(mask.sum())


def add_encoded(index, encoding, paths: Sequence[str], spans: tuple[list[float], list[float]] | None = None) -> None:
    """Append the rows of ``encoding`` (one per path of ``paths``; a windowed index: ``spans`` are their ``(starts,
    ends)``) under new ids, to the rows and the store."""
    if encoding is None or not len(paths):
        return
    ids = np.arange(index.next_id, index.next_id + len(paths), dtype=np.int64)
    index.next_id += len(paths)
    starts, ends = spans or (None, None)
    index._append_rows({"paths": list(paths), "row_ids": ids, "starts": starts, "ends": ends}, encoding)
    index.store.add(ids, encoding.video_embeds, index.row_metadata(range(len(index) - len(paths), len(index))))


def update_index(index, videos: Sequence[str], batch_size: int = 16, resume_dir: str | os.PathLike | None = None,
                 on_bad_video: str = "skip", progress: bool = True, retrain_drift: float = DEFAULT_RETRAIN_DRIFT,
                 shard_size: int | None = None, dtype=None, ids: dict[str, str] | None = None,
                 say: Callable[[str], None] = print) -> UpdateReport:
    """Bring ``index`` in line with ``videos`` (the collection now; see the module doc). ``ids``: ``{path:
    video_id}`` of a dataset collection (kept with the index). Returns the :class:`UpdateReport`."""
    report = plan_update(index, videos)
    phase_done("planned")
    to_encode = report.added + report.changed
    encoding, indexed, failed, fingerprints, spans = (None, [], {}, {}, None)
    if to_encode:  # with the windows the index was built with, if any
        encoding, indexed, failed, fingerprints, spans = encode_collection(
            index.model, index.processor, to_encode, batch_size, resume_dir, on_bad_video, progress, index.weights,
            shard_size, dtype, desc="encoding new and changed videos", windows=index.windows)
    report.encoded, report.failed = len(to_encode), failed
    phase_done("encoded")
    if ids is not None:
        index.ids = {**(index.ids or {}), **ids}
    remove_videos(index, report.removed + report.changed)
    if index.ids is not None:
        index.ids = {path: video_id for path, video_id in index.ids.items() if path not in set(report.removed)}
    add_encoded(index, encoding, indexed, spans)
    index.failed.update(failed)
    index.video_fingerprints.update(fingerprints)
    index.segments.compact_if_sparse()
    lines: list[str] = []
    index.store = check_drift(index.store, lambda: index.select_rows(np.arange(len(index))).video_embeds,
                              index.row_ids, retrain_drift, lines.append)
    report.drift = lines[0] if lines else None
    phase_done("applied")
    return report


def resolve_videos(index, names: Sequence[str]) -> list[str]:
    """The indexed paths ``names`` name: a dataset ``video_id`` of the index, or a path (as indexed, or relative to
    the working directory).

    Raises:
        ValueError: a name that is neither (one line naming it and an example of each).
    """
    by_id = {str(video_id): path for path, video_id in (index.ids or {}).items()}
    known = set(index.paths) | set(index.failed)
    paths = []
    for name in names:
        path = by_id.get(name) or (name if name in known else os.path.abspath(name))
        if path not in known:
            example = next(iter(by_id), None)
            raise ValueError(f"--remove: {name!r} is neither a video_id nor a path of the index"
                           + (f" (video_ids look like {example!r})" if example else "")
                           + f"; paths look like {index.paths[0]!r}")
        paths.append(path)
    return paths


__all__ = ["UpdateReport", "add_encoded", "plan_update", "remove_videos", "resolve_videos", "update_index"]
