"""Serving reads: a few rows of a large encodings file without faulting in their neighbours, and small re-scoring on
the calling thread.

A search re-scores a few dozen candidate rows of a file that holds every video's encoding (2 GB per million
512-d float32 videos). Indexing a memory-mapped array faults in every page the rows touch plus the kernel's
read-ahead around them (64 KB and more per 2 KB row), and those pages count in the serving process's resident memory
until the whole file is resident. :class:`FileRows` reads just the rows' bytes with ``os.pread`` instead: the
process holds only what it copied (the kernel's page cache keeps what it read, shared and reclaimable, outside the
process). :func:`mmap_safetensors` gives the file's tensors memory-mapped (for whole-array work) with such a reader
attached, and :func:`gather_rows` uses it when there is one.

Re-scoring a few dozen rows is microseconds of arithmetic; waking torch's intra-op thread pool for it costs more, and
on a busy machine a woken pool waits for its threads to be scheduled (11-16 ms per query at 2 threads, issue 26).
:func:`on_calling_thread` runs such small work with one intra-op thread.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import weakref
from typing import Iterator

import numpy as np
import torch

#: safetensors dtype names -> the NumPy dtype the bytes are read as (bfloat16 as int16, viewed as torch.bfloat16)
SAFETENSORS_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": np.int16, "I64": np.int64,
                      "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}
#: elements below which work runs on the calling thread: torch's own kernels split work only above 32,768 elements,
#: but a BLAS call (a matmul of 1 x 512 by 512 x 50) wakes every thread whatever its size
SMALL_WORK = 1 << 16
_ROWS_ATTRIBUTE = "tvr_file_rows"  # the FileRows a tensor of mmap_safetensors carries


class FileRows:
    """Rows of a C-contiguous array ``shape`` of ``dtype`` stored at byte ``offset`` of a file, read on demand with
    ``os.pread`` (consecutive rows in one read): ``rows.read([5, 2, 5])`` is ``array[[5, 2, 5]]``.

    The file stays open (the one this object was made for, even if a new index is renamed over its path, as a
    memory map would) until the object is garbage collected.
    """

    def __init__(self, path: str | os.PathLike, offset: int, shape: tuple[int, ...], dtype: torch.dtype):
        self.path, self.offset, self.shape, self.dtype = os.fspath(path), offset, tuple(shape), dtype
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()
        self._file = open(self.path, "rb", buffering=0)
        self._lock = threading.Lock()  # only where there is no os.pread (seek + read share the file position)
        weakref.finalize(self, self._file.close)

    def __len__(self) -> int:
        return self.shape[0]

    def read(self, rows) -> torch.Tensor:
        """``(len(rows), *shape[1:])``: the given rows (any order, repeats allowed, negatives from the end)."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        if not len(rows):
            return torch.empty((0, *self.shape[1:]), dtype=self.dtype)
        if not (-len(self) <= rows.min() and rows.max() < len(self)):
            bad = rows[(rows < -len(self)) | (rows >= len(self))][0]
            raise IndexError(f"row {bad} is out of range for the {len(self)} rows of {self.path!r}")
        unique, inverse = np.unique(np.where(rows < 0, rows + len(self), rows), return_inverse=True)
        buffer = np.empty((len(unique), self.row_bytes), dtype=np.uint8)
        run_starts = np.flatnonzero(np.diff(unique, prepend=-2) != 1)  # where each run of consecutive rows begins
        for begin, end in zip(run_starts, [*run_starts[1:], len(unique)]):
            self._read_into(buffer[begin:end], self.offset + int(unique[begin]) * self.row_bytes)
        values = torch.from_numpy(buffer[inverse.reshape(-1)]).view(self.dtype)
        return values.reshape(len(rows), *self.shape[1:])

    def _read_into(self, target: np.ndarray, position: int) -> None:
        if hasattr(os, "pread"):
            data = os.pread(self._file.fileno(), target.nbytes, position)
        else:
            with self._lock:
                self._file.seek(position)
                data = self._file.read(target.nbytes)
        if len(data) != target.nbytes:
            raise OSError(f"{self.path!r}: {target.nbytes} bytes at offset {position} expected, {len(data)} read "
                          "(the file was truncated); rebuild the index with `tvr index`")
        target.reshape(-1)[:] = np.frombuffer(data, dtype=np.uint8)


def read_safetensors_header(path: str | os.PathLike) -> tuple[int, dict]:
    """``(data_start, header)`` of a safetensors file: where its tensor data begins and its JSON header."""
    with open(path, "rb") as handle:
        header_size = int.from_bytes(handle.read(8), "little")
        return 8 + header_size, json.loads(handle.read(header_size))


def mmap_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, memory-mapped (copy-on-write; pages are read when touched), each carrying
    a :class:`FileRows` so that :func:`gather_rows` reads a few rows without touching the mapping."""
    data_start, header = read_safetensors_header(path)
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = SAFETENSORS_DTYPES[entry["dtype"]]
        if end == begin:
            array = np.empty(entry["shape"], dtype=dtype)
        else:
            array = np.memmap(path, dtype=dtype, mode="c", offset=data_start + begin, shape=tuple(entry["shape"]))
        tensor = torch.from_numpy(array)
        tensor = tensor.view(torch.bfloat16) if entry["dtype"] == "BF16" else tensor
        if end > begin and tensor.dim() >= 1:
            setattr(tensor, _ROWS_ATTRIBUTE, FileRows(path, data_start + begin, tensor.shape, tensor.dtype))
        tensors[name] = tensor
    return tensors


def gather_rows(values, rows) -> torch.Tensor | np.ndarray:
    """``values[rows]``: read from its file for a tensor of :func:`mmap_safetensors` (only those rows' bytes), else
    indexed (a NumPy array gives a NumPy array, a tensor a tensor)."""
    reader = getattr(values, _ROWS_ATTRIBUTE, None)
    if reader is not None:
        return reader.read(rows)
    if isinstance(values, np.ndarray):
        return values[np.asarray(rows, dtype=np.int64)]
    return values[torch.as_tensor(np.asarray(rows), dtype=torch.long).to(values.device)]


@contextlib.contextmanager
def on_calling_thread(elements: int) -> Iterator[None]:
    """Run the block with one intra-op thread (``torch.set_num_threads(1)``, restored after) when it works on fewer
    than :data:`SMALL_WORK` elements; larger work keeps the pool."""
    threads = torch.get_num_threads()
    if elements >= SMALL_WORK or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


__all__ = ["SAFETENSORS_DTYPES", "SMALL_WORK", "FileRows", "gather_rows", "mmap_safetensors", "on_calling_thread",
           "read_safetensors_header"]
