"""The full video encodings of an index, in immutable segment files, so that an update never rewrites them all.

A fresh index writes one segment (``encodings.safetensors``, the file of tvr before updates existed); each update
that encodes videos writes one more (``encodings-000001.safetensors``, ...) and never touches the others. The row
table (``rows.safetensors``: each row's id, segment and offset in it) says which segment rows are the index's rows,
in row order; rows of removed videos stay in their segment, unreferenced, until the dead rows pass
:data:`COMPACT_ABOVE` of all and the live ones are rewritten into one segment.

The new version of an index folder is staged with hard links (``os.link``) to the unchanged segments, plus the new
segment and row table, and swapped in whole (:func:`tvr.utils.atomic.atomic_directory`): a process that has the old
version open keeps reading its files, a kill at any point leaves the previous version loadable, and the unchanged
segments cost no copy (a copy where the file system has no hard links).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from transformers.utils import ModelOutput

from .rows import gather_rows

FIRST_SEGMENT = "encodings.safetensors"
ROWS_FILE = "rows.safetensors"
COMPACT_ABOVE = 0.25  # dead rows (of removed videos) past this fraction of the stored rows: rewrite the live ones


def segment_name(number: int) -> str:
    return FIRST_SEGMENT if number == 0 else f"encodings-{number:06d}.safetensors"


class SegmentedEncodings:
    """The rows of a video encoding spread over segments: ``segments[s]`` is an encoding (memory-mapped when
    loaded); row ``i`` is row ``offsets[i]`` of segment ``segment_of[i]``.

    Attributes:
        segments: the encodings, one per segment (``None`` for a segment no row uses any more).
        files: per segment, ``{"file", "size", "sha256", "source"}`` once it is on disk (``source``: the path it
            was read from, hard-linked by the next save), else ``None``.
        numbers: each segment's number (its file name).
    """

    def __init__(self, encoding: ModelOutput):
        self.segments: list[ModelOutput | None] = [encoding]
        self.files: list[dict[str, Any] | None] = [None]
        self.numbers: list[int] = [0]
        self.segment_of = np.zeros(len(encoding.video_embeds), dtype=np.int32)
        self.offsets = np.arange(len(encoding.video_embeds), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def is_identity(self) -> bool:
        """Whether the rows are exactly the first segment's rows, in order (a fresh or compacted index)."""
        first = self.segments[0]
        return (len(self.segments) == 1 and first is not None and len(first.video_embeds) == len(self)
                and bool(np.array_equal(self.offsets, np.arange(len(self)))))

    def stored_rows(self) -> int:
        return sum(len(segment.video_embeds) for segment in self.segments if segment is not None)

    def whole(self) -> ModelOutput:
        """All rows as one encoding: the segment itself when :attr:`is_identity` (no copy), else gathered."""
        return self.segments[0] if self.is_identity else self.select(np.arange(len(self)))

    def select(self, rows, device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> ModelOutput:
        """Rows ``rows`` (any shape of row numbers) of every field, on ``device``; floating fields in ``dtype`` when
        given. Only those rows are read from the (memory-mapped) segments."""
        rows = np.asarray(rows, dtype=np.int64)
        flat = rows.reshape(-1)
        segment_of, offsets = self.segment_of[flat], self.offsets[flat]
        used = np.unique(segment_of)
        template = self.segments[int(used[0])] if len(used) else next(s for s in self.segments if s is not None)

        def gather(name: str) -> torch.Tensor:
            first = template[name]
            cast = dtype if dtype is not None and first.is_floating_point() else first.dtype
            if len(used) == 1:  # the common case: one segment, a plain gather (pread from its file when loaded)
                value = self.segments[int(used[0])][name]
                out = gather_rows(value, offsets).to(device, cast)
            else:
                out = torch.empty((len(flat), *first.shape[1:]), dtype=cast, device=device)
                for segment in used:
                    where = np.flatnonzero(segment_of == segment)
                    value = self.segments[int(segment)][name]
                    out[torch.as_tensor(where, device=device)] = gather_rows(value, offsets[where]).to(device, cast)
            return out.reshape(*rows.shape, *first.shape[1:])

        return type(template)(**{name: gather(name) for name in template.keys()})

    def take(self, keep: np.ndarray) -> None:
        """Keep rows ``keep`` (row numbers, in their new order); segments no row uses any more are dropped."""
        self.segment_of, self.offsets = self.segment_of[keep], self.offsets[keep]
        for number in set(range(len(self.segments))) - set(np.unique(self.segment_of).tolist()):
            if number:  # the first segment keeps its slot (its name is the legacy file's)
                self.segments[number], self.files[number] = None, None

    def append(self, encoding: ModelOutput) -> None:
        """Add ``encoding``'s rows after the existing ones, as a new segment."""
        self.segments.append(encoding)
        self.files.append(None)
        self.numbers.append(max(self.numbers) + 1)
        self.segment_of = np.concatenate([self.segment_of, np.full(len(encoding.video_embeds), len(self.segments) - 1,
                                                                    dtype=np.int32)])
        self.offsets = np.concatenate([self.offsets, np.arange(len(encoding.video_embeds), dtype=np.int64)])

    def compact_if_sparse(self, threshold: float = COMPACT_ABOVE) -> bool:
        """Rewrite the live rows into one segment once dead rows pass ``threshold`` of the stored ones (or when the
        first segment holds no live row); returns whether it did."""
        stored = self.stored_rows()
        if not stored or (1 - len(self) / stored <= threshold and 0 in set(self.segment_of.tolist())):
            return False
        whole = self.select(np.arange(len(self))) if len(self) else None
        self.segments, self.files, self.numbers = [whole], [None], [max(self.numbers) + 1]
        self.segment_of = np.zeros(len(self), dtype=np.int32)
        self.offsets = np.arange(len(self), dtype=np.int64)
        return True

    # ------------------------------------------------------------------------------------------------ files

    def save(self, staging: Path, checksum) -> dict[str, Any]:
        """Write (or hard-link) the segments and the row table into ``staging``; returns the config entry
        ``{"segments": [{"file", "size", "sha256", "rows"}], "rows_file": ...}``. ``checksum(path)`` hashes a new
        file; a linked one keeps the checksum recorded when it was written."""
        from safetensors.torch import save_file

        entries = []
        for position, (segment, number) in enumerate(zip(self.segments, self.numbers)):
            if segment is None:
                continue
            name = segment_name(number)
            recorded = self.files[position]
            if recorded is not None and os.path.isfile(recorded["source"]):
                _link_or_copy(recorded["source"], staging / name)
                entry = {key: recorded[key] for key in ("file", "size", "sha256")}
            else:
                tensors = {field: value.detach().cpu().contiguous() for field, value in segment.items()}
                save_file(tensors, staging / name)
                entry = {"file": name, "size": (staging / name).stat().st_size, "sha256": checksum(staging / name)}
            entries.append({**entry, "number": number, "rows": len(segment.video_embeds)})
        return {"segments": entries}

    def saved_at(self, folder: Path, entry: Mapping[str, Any]) -> None:
        """Record that :meth:`save`'s files now live in ``folder`` (the next save links them)."""
        by_number = {segment["number"]: segment for segment in entry["segments"]}
        for position, number in enumerate(self.numbers):
            if number in by_number:
                self.files[position] = {**by_number[number], "source": os.fspath(folder / by_number[number]["file"])}

    def row_table(self) -> dict[str, torch.Tensor]:
        return {"segment": torch.from_numpy(np.asarray(self.numbers, dtype=np.int64)[self.segment_of]),
                "offset": torch.from_numpy(self.offsets)}

    @classmethod
    def load(cls, folder: Path, segments: Sequence[Mapping[str, Any]], table: Mapping[str, torch.Tensor] | None,
             encoding_class: type, read) -> "SegmentedEncodings":
        """Reopen the segments (each through ``read(path) -> {field: tensor}``, e.g. memory-mapped) and the row
        table (``None``: the rows are the one segment's, in order: a folder of tvr before updates)."""
        loaded = [encoding_class(**read(folder / entry["file"])) for entry in segments]
        store = cls(loaded[0])
        store.segments = loaded
        store.numbers = [int(entry.get("number", 0)) for entry in segments]
        store.files = [{**entry, "source": os.fspath(folder / entry["file"])} for entry in segments]
        if table is not None:
            position = np.full(max(store.numbers) + 1, -1, dtype=np.int32)
            position[store.numbers] = np.arange(len(store.numbers), dtype=np.int32)
            store.segment_of = position[table["segment"].numpy()]
            store.offsets = table["offset"].numpy().astype(np.int64)
        return store


def _link_or_copy(source: str, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # no hard links here (another file system, FAT): a copy
        shutil.copyfile(source, target)


__all__ = ["COMPACT_ABOVE", "FIRST_SEGMENT", "ROWS_FILE", "SegmentedEncodings", "segment_name"]
