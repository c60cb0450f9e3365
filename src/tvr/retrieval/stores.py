"""The first stage of a :class:`~tvr.retrieval.VideoIndex`: a vector store of int64 ids searched by inner product.

Every backend implements :class:`VectorStore`; ``VideoIndex`` talks to nothing else, so FAISS (:class:`FaissStore`,
a file in the index folder) and Milvus (:class:`tvr.retrieval.milvus.MilvusStore`, a collection in Milvus Lite or a
Milvus server) are interchangeable. A store holds the index's rows by their stable ids (``VideoIndex.row_ids``), so
updates add and remove vectors in place; the index folder keeps the row table and the full encodings, which
re-ranking reads.

``store.info`` is what the folder's ``index_config.json`` records of the store (backend, type, parameters, what an
IVF index was trained on and its measured recall@10) and what ``tvr search --info`` shows.

Serving memory: a loaded IVF index keeps its inverted lists in its file, memory-mapped read-only (FAISS's
``IO_FLAG_MMAP``), and once searches may have touched :data:`MAPPED_BUDGET` bytes of them the store hands those
pages back to the kernel (``MADV_DONTNEED``): the serving process holds the coarse quantizer and at most about that
much of the lists, while the kernel's page cache keeps the hot lists (shared by every process serving the folder, and
reclaimable), instead of ~0.5 GB per million videos held privately. The lists are copied into memory before the
index changes or is written (:meth:`FaissStore.own_lists`).

Drift: an IVF index is trained on the collection of its build; after updates that changed more than a fraction of
it since the last check, :func:`check_drift` measures recall@10 on held-out queries again and retrains when it fell
below the target.
"""

from __future__ import annotations

import ctypes
import mmap
import os
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence, runtime_checkable

import numpy as np

from .faiss_index import RECALL_AT, build_faiss_index, recall_at, search_index, set_search_parameters

BACKENDS = ("faiss", "milvus")
FAISS_FILE = "index.faiss"
DEFAULT_RETRAIN_DRIFT = 0.2  # re-measure recall once this fraction of the rows changed since the last check
RECALL_SLACK = 0.01  # an IVF index without a target may lose this much recall from its build before retraining
NUM_CHECK_QUERIES = 500
IVF_TYPES = ("ivf", "ivf-hnsw")
#: FAISS maps an IVF index's lists on load where the kernel can take their pages back after a search (Linux, macOS)
MAP_LISTS = hasattr(mmap, "MADV_DONTNEED") and os.name == "posix"
#: bytes of mapped lists that searches may touch (estimated: queries x nprobe x the mean list's bytes, twice for the
#: kernel's fault-around) before their pages are handed back; releasing after every query cost busy-machine p95
MAPPED_BUDGET = 64 << 20

#: ``ids -> (len(ids), dim)`` float vectors: the full encodings of rows by id (an ivf-hnsw index's exact refine)
Gather = Callable[[np.ndarray], Any]


@runtime_checkable
class VectorStore(Protocol):
    """The first stage of a VideoIndex: vectors addressed by int64 ids, searched by inner product."""

    info: dict[str, Any]  # backend, type, parameters, measured recall: saved in index_config.json
    dim: int

    def __len__(self) -> int: ...

    def add(self, ids: np.ndarray, vectors: np.ndarray, metadata: Sequence[Mapping[str, Any]] | None = None) -> None:
        """Add ``vectors`` ``(n, dim)`` under ``ids`` ``(n,)`` (new ids), with per-row ``metadata`` where the backend
        keeps it (Milvus: path, start/end, video_id)."""

    def remove(self, ids: np.ndarray) -> int:
        """Remove the rows of ``ids``; returns how many were there."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(scores, ids)`` ``(num_queries, k)`` by inner product, best first; id ``-1`` where fewer were found."""

    def save(self, folder: Path) -> dict[str, Any]:
        """Write the store's files into ``folder`` (an index folder being staged); returns its config entry
        (``backend``, ``files`` written there, ``info``)."""

    @classmethod
    def load(cls, folder: Path, entry: Mapping[str, Any], gather: Gather | None = None) -> "VectorStore":
        """Reopen the store an index folder's config ``entry`` describes."""


def as_ids(ids) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


def as_vectors(vectors) -> np.ndarray:
    if hasattr(vectors, "detach"):
        vectors = vectors.detach().float().cpu().numpy()
    return np.ascontiguousarray(vectors, dtype=np.float32)


class FaissStore:
    """A FAISS index addressed by ids: ``flat`` is ``IndexIDMap2(IndexFlatIP)``, the IVF types
    (:mod:`tvr.retrieval.faiss_index`) take ids natively; removal is FAISS's ``remove_ids``.

    Args:
        index: the FAISS index.
        info: what :func:`~tvr.retrieval.faiss_index.build_faiss_index` chose (plus ``trained_on``,
            ``changed_since_check``).
        gather: full vectors of rows by id, for ``ivf-hnsw``'s exact refine of its 8-bit candidates.
    """

    backend = "faiss"

    def __init__(self, index, info: Mapping[str, Any], gather: Gather | None = None):
        self.index, self.info, self.gather = index, {"backend": self.backend, **info}, gather
        #: ``(address, bytes)`` of inverted lists mapped read-only from the index file (:meth:`load`), else None
        self.mapped_lists = _serve_mapped_lists(self.index) if self.info.get("index_type") in IVF_TYPES else None
        #: bytes of mapped lists searches may touch before their pages are handed back (:data:`MAPPED_BUDGET`)
        self.mapped_budget, self._touched = MAPPED_BUDGET, 0.0

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def __repr__(self) -> str:
        return f"FaissStore({len(self)} vectors, {self.info.get('factory')!r})"

    @classmethod
    def build(cls, ids, vectors, index_type: str = "auto", nlist: int | None = None, nprobe: int | None = None,
              target_recall: float = 0.95, gather: Gather | None = None, **build_kwargs: Any) -> "FaissStore":
        """Build the index of ``vectors`` ``(n, dim)`` under ``ids`` ``(n,)`` (arguments as
        :func:`~tvr.retrieval.faiss_index.build_faiss_index`)."""
        import faiss

        ids, vectors = as_ids(ids), as_vectors(vectors)
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        index, info = build_faiss_index(vectors, index_type, nlist, nprobe, target_recall, **build_kwargs)
        if info["index_type"] == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
            index.add_with_ids(vectors, ids)
        elif not np.array_equal(ids, np.arange(len(ids))):  # trained and tuned on row numbers: now the ids
            index.reset()
            _add_to_ivf(index, info, vectors, ids)
        store = cls(index, {**info, "trained_on": len(ids), "changed_since_check": 0}, gather)
        if info["index_type"] == "ivf":  # no target: its recall at training is the reference for drift
            store.info["measured_recall"] = round(measure_recall(store, vectors, ids), 4)
        return store

    def add(self, ids, vectors, metadata: Sequence[Mapping[str, Any]] | None = None) -> None:
        ids, vectors = as_ids(ids), as_vectors(vectors)
        if not len(ids):
            return
        self._ensure_id_map()
        self.own_lists()
        if self.info.get("index_type") == "flat":
            self.index.add_with_ids(vectors, ids)
        else:
            _add_to_ivf(self.index, self.info, vectors, ids)
        self.info["changed_since_check"] = self.info.get("changed_since_check", 0) + len(ids)

    def remove(self, ids) -> int:
        import faiss

        ids = as_ids(ids)
        if not len(ids):
            return 0
        self._ensure_id_map()
        self.own_lists()
        removed = int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))
        self.info["changed_since_check"] = self.info.get("changed_since_check", 0) + removed
        return removed

    def search(self, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
        set_search_parameters(self.index, self.info)
        try:
            return search_index(self.index, self.info, as_vectors(queries), k, self.gather)
        finally:
            if self.mapped_lists is not None:
                self._release_pages(len(queries))

    def save(self, folder: Path) -> dict[str, Any]:
        import faiss

        self.own_lists()  # FAISS writes mapped lists as a reference to their file, not as lists
        faiss.write_index(self.index, os.fspath(Path(folder) / FAISS_FILE))
        return {**self.info, "files": [FAISS_FILE]}

    @classmethod
    def load(cls, folder: Path, entry: Mapping[str, Any], gather: Gather | None = None) -> "FaissStore":
        import faiss

        info = {key: value for key, value in entry.items() if key != "files"}
        flags = faiss.IO_FLAG_MMAP if MAP_LISTS and info.get("index_type") in IVF_TYPES else 0
        return cls(faiss.read_index(os.fspath(Path(folder) / FAISS_FILE), flags), info, gather)

    def _release_pages(self, num_queries: int) -> None:
        """Hand the mapped lists' pages back to the kernel (they stay in its page cache) once the searches since the
        last release may have touched :attr:`mapped_budget` bytes."""
        address, size = self.mapped_lists
        nlist, nprobe = self.info.get("nlist") or 1, self.info.get("nprobe") or 1
        self._touched += 2 * num_queries * min(nprobe, nlist) * size / nlist
        if self._touched >= self.mapped_budget:
            _madvise(address, size, mmap.MADV_DONTNEED)
            self._touched = 0.0

    def own_lists(self) -> None:
        """Copy inverted lists mapped from the index file into memory (FAISS cannot change read-only mapped lists:
        adding to them aborts the process); a no-op for lists already in memory."""
        if self.mapped_lists is None:
            return
        import faiss

        ivf = faiss.extract_index_ivf(self.index)
        mapped = faiss.downcast_InvertedLists(ivf.invlists)
        lists = faiss.ArrayInvertedLists(ivf.nlist, ivf.code_size)
        for cell in range(ivf.nlist):
            size = mapped.list_size(cell)
            if size:
                lists.add_entries(cell, size, mapped.get_ids(cell), mapped.get_codes(cell))
        ivf.replace_invlists(lists, True)  # the index owns the copy now and frees (unmaps) the mapped lists
        lists.this.disown()
        self.mapped_lists = None

    def _ensure_id_map(self) -> None:
        """An exact index written by tvr before ids (a bare ``IndexFlatIP``: ids are row numbers, which
        ``remove_ids`` would shift) becomes an ``IndexIDMap2`` holding the same vectors under the same ids."""
        import faiss

        if self.info.get("index_type") != "flat" or isinstance(self.index, faiss.IndexIDMap2):
            return
        flat = faiss.downcast_index(self.index)
        vectors = flat.reconstruct_n(0, flat.ntotal)
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(flat.d))
        self.index.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))


def _serve_mapped_lists(index) -> tuple[int, int] | None:
    """``(address, bytes)`` of an IVF index's inverted lists where they are mapped read-only from its file, which
    then search without FAISS's prefetch threads (32 started per search, still touching pages after it returned)."""
    import faiss

    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
    if isinstance(lists, faiss.OnDiskInvertedLists) and lists.read_only:
        lists.prefetch_nthread = 0
        return int(lists.ptr), int(lists.totsize)
    return None


def _madvise(address: int, size: int, advice: int) -> None:
    if _LIBC.madvise(ctypes.c_void_p(address), ctypes.c_size_t(size), advice) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"madvise({advice}) of an index's mapped lists: {os.strerror(error)}")


_LIBC = ctypes.CDLL(None, use_errno=True) if MAP_LISTS else None


def _add_to_ivf(index, info: Mapping[str, Any], vectors: np.ndarray, ids: np.ndarray) -> None:
    """Add to an IVF index under ``ids``; an HNSW quantizer assigns each vector with a wide search, as at build."""
    import faiss

    quantizer = faiss.downcast_index(faiss.extract_index_ivf(index).quantizer)
    if hasattr(quantizer, "hnsw"):
        quantizer.hnsw.efSearch = 128
    index.add_with_ids(vectors, ids)
    set_search_parameters(index, info)


def measure_recall(store: VectorStore, vectors, ids, num_queries: int = NUM_CHECK_QUERIES, seed: int = 0) -> float:
    """Recall@10 of ``store`` against exact search over ``vectors`` ``(n, dim)`` (rows ``ids``), on ``num_queries``
    held-out rows drawn at random, each query's own row left out of both rankings."""
    import faiss

    ids, vectors = as_ids(ids), as_vectors(vectors)
    k = min(RECALL_AT, len(ids) - 1)
    if k < 1:
        return 1.0
    rows = np.random.default_rng(seed).choice(len(ids), min(num_queries, len(ids)), replace=False)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth_rows = exact.search(vectors[rows], k + 1)
    _, found_ids = store.search(vectors[rows], k + 1)
    truth = np.stack([ids[row[(row >= 0) & (row != own)]][:k] for row, own in zip(truth_rows, rows)])
    found = [row[row != ids[own]][:k] for row, own in zip(found_ids, rows)]
    return recall_at(found, truth)


def check_drift(store: VectorStore, vectors: Any, ids, threshold: float = DEFAULT_RETRAIN_DRIFT,
                say: Callable[[str], None] = print, **build_kwargs: Any) -> VectorStore:
    """After an update: when more than ``threshold`` of an IVF store's rows changed since its last check, measure
    its recall@10 on held-out rows again and retrain it on the current rows when that fell below its target (one
    line through ``say`` either way); ``vectors``: the rows' vectors, or a callable giving them (read only then).
    Returns the store (a new one when retrained); the numbers land in its info."""
    info = store.info
    if info.get("backend") != "faiss" or info.get("index_type") not in IVF_TYPES:
        return store
    if threshold < 0:
        raise ValueError(f"retrain_drift must be >= 0, got {threshold}")
    checked_on = max(1, info.get("checked_on") or info.get("trained_on") or len(store))
    drift = info.get("changed_since_check", 0) / checked_on
    if drift <= threshold:
        return store
    target = info.get("target_recall") or max(0.0, (info.get("measured_recall") or 0.0) - RECALL_SLACK)
    vectors = vectors() if callable(vectors) else vectors  # read only when a check is due
    recall = measure_recall(store, vectors, ids)
    if recall >= target:
        info.update(measured_recall=round(recall, 4), changed_since_check=0, checked_on=len(ids))
        say(f"index drifted {drift:.0%} since its last check: recall@10 {recall:.3f} still meets {target:.3f}; kept")
        return store
    retrained = FaissStore.build(ids, vectors, info["index_type"], target_recall=info.get("target_recall") or 0.95,
                                 gather=getattr(store, "gather", None), **build_kwargs)
    say(f"index drifted {drift:.0%} since its last check: recall@10 {recall:.3f} < {target:.3f}; retrained on "
        f"{len(ids)} videos: recall@10 {retrained.info['measured_recall']}")
    return retrained


def load_store(folder: Path, entry: Mapping[str, Any], gather: Gather | None = None) -> VectorStore:
    """The store an index folder's config ``entry`` describes (its ``backend``: ``faiss`` or ``milvus``)."""
    backend = entry.get("backend", "faiss")
    if backend == "faiss":
        return FaissStore.load(folder, entry, gather)
    if backend == "milvus":
        from .milvus import MilvusStore

        return MilvusStore.load(folder, entry, gather)
    raise ValueError(f"index {os.fspath(folder)!r}: unknown store backend {backend!r}; expected one of {BACKENDS}")


__all__ = ["BACKENDS", "DEFAULT_RETRAIN_DRIFT", "MAPPED_BUDGET", "FaissStore", "VectorStore", "check_drift",
           "load_store", "measure_recall"]
