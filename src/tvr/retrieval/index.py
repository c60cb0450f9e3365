"""``VideoIndex``: encode a video collection once, then search it with text ("search my videos").

The first stage is a FAISS inner-product index over the model's pooled video embeddings (``video_embeds``, what
``get_video_embeds`` returns), queried with ``get_text_embeds``: exact below 50,000 videos, above that inverted lists
with an HNSW coarse quantizer and 8-bit vectors whose ``nprobe`` is tuned to a recall target at build time
(:mod:`tvr.retrieval.faiss_index`). The second stage re-scores the first stage's best ``rerank_top_k`` videos with
the model's own gallery scoring (``score_gallery``: tightTransf's cross encoder, EMCL's EM, EERCF's two stages), so
a search ranks as ``tvr eval`` does; the index keeps every video's full encoding on disk for that (float32 by
default, the precision ``tvr eval`` scores in), memory-mapped when loaded, so re-ranking reads only the candidates'
rows (with ``pread``, :mod:`tvr.retrieval.rows`: the serving process does not accumulate the file's pages) and
searching never decodes a video again.

Index folder::

    index_config.json       model folder and its weights' fingerprint, index type, counts, encoding class, size and
                            SHA-256 of the other files
    videos.json             indexed video paths (row order of the index), the videos that failed to decode, and each
                            video's fingerprint (size, mtime, hash of its first and last MiB) when indexed; an index
                            built with windows adds each row's ``starts`` / ``ends`` (seconds)
    encodings.safetensors   the video encodings, one tensor per field (``video_embeds`` included); updates add
                            segments ``encodings-000001.safetensors``, ... (:mod:`tvr.retrieval.segments`)
    rows.safetensors        the row table: each row's id, segment and offset
    index.faiss             the FAISS index, by row id (a Milvus index keeps its vectors in a collection instead)

The folder is written under a temporary name and renamed into place (:mod:`tvr.utils.atomic`), so a crash while
saving leaves the previous index, and a folder tvr did not write as an index is never replaced;
:meth:`VideoIndex.load` checks every file against the recorded checksums, that the FAISS rows, encodings and paths
agree, and that the model folder's weights are the ones the index was built with, so it never returns wrong videos
silently. Building with
``resume_dir`` keeps the encodings in shards there as it goes (:mod:`tvr.retrieval.shards`), so a killed ``tvr index``
restarts where it stopped.

Built with ``windows`` (seconds, e.g. ``[4, 8, 16]``), every video becomes one row per window of each scale
(:mod:`tvr.processing.windows`), its path kept beside its ``start`` / ``end`` (:mod:`tvr.retrieval.moments`):
:meth:`VideoIndex.search` still returns videos (each once, scored by its best window) and
:meth:`VideoIndex.search_moments` returns moments of them.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import time
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from transformers.utils import ModelOutput

from ..loading import load_model_and_processor  # noqa: F401  (re-exported: tvr.retrieval's public API)
from ..processing.bad_videos import check_bad_video_policy, warn_bad_videos
from ..utils.atomic import atomic_directory, recover_directory
from ..utils.fingerprint import check_fingerprint, weights_fingerprint
from .faiss_index import INDEX_TYPES, default_nlist
from .moments import NO_WINDOWS, Moment, best_window_per_video, check_row_spans, rows_per_video, select_moments
from .rows import gather_rows, mmap_safetensors, on_calling_thread
from .segments import ROWS_FILE, SegmentedEncodings

# shards.py is the layer below: it never imports this module
from .shards import (  # noqa: F401
    VIDEO_EXTENSIONS,
    encode_collection,
    encode_shards,
    fingerprint_or_none,
    list_video_files,
    read_provenance,
    read_shard_windows,
    read_shards,
)
from .shards import tvr_encoding_class as _encoding_class
from .stores import DEFAULT_RETRAIN_DRIFT, FaissStore, VectorStore, load_store
from .updates import UpdateReport, phase_done, remove_videos, resolve_videos, update_index

CONFIG_FILE = "index_config.json"
VIDEOS_FILE = "videos.json"
ENCODINGS_FILE = "encodings.safetensors"
FAISS_FILE = "index.faiss"
INDEX_KIND = "index"  # the marker kind of an index folder (tvr.utils.output_dir)
INDEX_FILES = (CONFIG_FILE, VIDEOS_FILE, ENCODINGS_FILE, FAISS_FILE, ROWS_FILE)  # what a fresh index folder holds
DEFAULT_RERANK_TOP_K = 50  # videos the second stage re-scores, for methods without their own k (EERCF has one)
#: what a search's scores are, by name (``tvr search`` prints the name and this; ``--json`` gives the name)
SCORE_NAMES = {
    "similarity": "the model's own similarity (logits, its scale), as `tvr eval` ranks with score_gallery",
    "inner_product": "first stage only: inner product of get_text_embeds and get_video_embeds (cosine for most "
                     "methods)",
}


class SearchResult(NamedTuple):
    """One ranked video: its path and score (the model's similarity, or the first stage's inner product with
    ``rerank_top_k=0``; :meth:`VideoIndex.score_name` says which)."""

    path: str
    score: float


def model_weights_fingerprint(model_dir: str | os.PathLike) -> str | None:
    """The fingerprint of the weights a model folder loads (:func:`tvr.utils.fingerprint.weights_fingerprint`); for
    an adapter folder, its adapter's and its local base folder's (``base+adapter``). ``None`` when the folder holds
    no safetensors weights (nothing to check)."""
    from ..peft import adapter_base_model, resolve_adapter_base

    folders = [Path(model_dir)]
    try:
        if adapter_base_model(model_dir) is not None:
            folders.insert(0, Path(resolve_adapter_base(model_dir)))
        return "+".join(weights_fingerprint(folder) for folder in folders if folder.is_dir())
    except FileNotFoundError:
        return None


def _scores_in_two_stages(model) -> bool:
    """Whether the model's ``score_gallery`` takes ``rerank_top_k`` (EERCF: a coarse stage over the gallery, its
    top k re-scored)."""
    return "rerank_top_k" in inspect.signature(model.score_gallery).parameters


class VideoIndex:
    """Text search over a video collection with a tvr model.

    Build it with :meth:`build` (a model + processor) or :meth:`from_model_dir`, save it with :meth:`save`,
    reopen it with :meth:`load`, query it with :meth:`search`.

    Example::

        index = VideoIndex.from_model_dir("runs/clip4clip/best", "my_videos/")
        index.save("my_videos.index")
        index = VideoIndex.load("my_videos.index")
        for path, score in index.search("a dog catches a frisbee", top_k=5):
            print(f"{score:.3f} {path}")

    Attributes:
        paths: the indexed videos, in index row order.
        encoding: the videos' ``VideoEncoding`` (CPU), rows in ``paths`` order; ``encoding.video_embeds``
            ``(num_videos, dim)`` are the indexed vectors.
        failed: ``{path: error}`` of the videos that could not be decoded (left out of the index).
        model, processor: what encodes the queries.
        model_dir: the folder the model was loaded from (saved with the index), or ``None``.
        starts, ends: per row, its window in seconds (an index built with ``windows``), else ``None``.
        windows: ``{"scales": [seconds, ...], "stride": fraction}`` the windows were planned with, or ``None``.
    """

    def __init__(self, model, processor, paths: Sequence[str], encoding: ModelOutput, index_type: str = "auto",
                 nlist: int | None = None, nprobe: int | None = None, faiss_index=None,
                 model_dir: str | os.PathLike | None = None, failed: dict[str, str] | None = None,
                 target_recall: float = 0.95, faiss_info: dict[str, Any] | None = None,
                 store: VectorStore | None = None, row_ids: Sequence[int] | np.ndarray | None = None,
                 ids: dict[str, str] | None = None, starts: Sequence[float] | None = None,
                 ends: Sequence[float] | None = None, windows: dict[str, Any] | None = None,
                 where: str = "index"):
        if index_type not in INDEX_TYPES:
            raise ValueError(f"index_type must be one of {INDEX_TYPES}, got {index_type!r}")
        rows = len(encoding) if isinstance(encoding, SegmentedEncodings) else len(encoding.video_embeds)
        if len(paths) != rows:
            raise ValueError(f"{len(paths)} paths for {rows} video encodings")
        self.model, self.processor = model, processor
        self.paths = list(paths)
        #: every row's stable id (int64, ascending: new rows get new, larger ids), what the store addresses
        self.row_ids = np.arange(len(self.paths), dtype=np.int64) if row_ids is None else \
            np.asarray(row_ids, dtype=np.int64)
        #: the rows' full encodings, in immutable segments (:mod:`tvr.retrieval.segments`)
        self.segments = encoding if isinstance(encoding, SegmentedEncodings) else SegmentedEncodings(encoding)
        #: the next id a new row gets (ids are never reused, so an old reader never mistakes a new row for its own)
        self.next_id = int(self.row_ids[-1]) + 1 if len(self.row_ids) else 0
        self.model_dir = os.path.abspath(model_dir) if model_dir is not None else None
        self.failed = dict(failed or {})
        self.processor_source = None  # the processor folder / tokenizer given instead of model_dir's, saved
        #: ``{path: video_id}`` when the videos came from a dataset (``tvr index`` of a test split), else ``None``
        self.ids: dict[str, str] | None = ids
        #: what the index was built from: the model weights' fingerprint and ``{path: file fingerprint}``
        self.weights: str | None = None
        self.video_fingerprints: dict[str, Any] = {}
        check_row_spans(self.paths, starts, ends, where)
        #: per row, its window in seconds (an index built with ``windows``), else ``None``
        self.starts = list(starts) if starts is not None else None
        self.ends = list(ends) if ends is not None else None
        #: ``{"scales": [seconds, ...], "stride": fraction}`` the windows were planned with, or ``None``
        self.windows = windows
        if store is None and faiss_index is not None:  # a bare FAISS index: its labels are the row numbers
            store = FaissStore(faiss_index, faiss_info or {"index_type": index_type, "nlist": nlist,
                                                           "nprobe": nprobe}, self.gather_vectors)
        elif store is None:
            store = FaissStore.build(self.row_ids, self.segments.whole().video_embeds, index_type, nlist, nprobe,
                                     target_recall, gather=self.gather_vectors)
        if store is not None and len(store) == 0 and len(self.paths):  # a new store outside the folder (Milvus)
            store.add(self.row_ids, self.segments.whole().video_embeds, self.row_metadata(range(len(self.paths))))
        if getattr(store, "gather", False) is None:  # ivf-hnsw's exact refine reads full vectors by id from here
            store.gather = self.gather_vectors
        #: the first stage (:mod:`tvr.retrieval.stores`): FAISS or Milvus, addressed by :attr:`row_ids`
        self.store = store

    #: the fields every row has, in row order (``starts`` / ``ends``: ``None`` on an index without windows);
    #: selecting or appending rows goes through :meth:`_take_rows` / :meth:`_append_rows`, which treat these (and
    #: the encodings' segments) alike
    ROW_FIELDS = ("paths", "row_ids", "starts", "ends")

    def row_metadata(self, rows: Sequence[int]) -> list[dict[str, Any]]:
        """What a store that keeps metadata (Milvus) records with each of ``rows``: path, dataset video_id, and
        the window's start / end on a windowed index."""
        video_ids = self.ids or {}
        spans = ({"start": self.starts[row], "end": self.ends[row]} if self.starts is not None else {}
                 for row in rows)
        return [{"path": self.paths[row], "video_id": str(video_ids.get(self.paths[row], "")), **span}
                for row, span in zip(rows, spans)]

    def _take_rows(self, keep: np.ndarray) -> None:
        """Keep rows ``keep`` (row numbers, in order) of every per-row field."""
        keep = np.asarray(keep, dtype=np.int64)
        for name in self.ROW_FIELDS:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[keep] if isinstance(value, np.ndarray) else [value[row] for row in keep])
        self.segments.take(keep)

    def _append_rows(self, fields: dict[str, Any], encoding: ModelOutput) -> None:
        """Append rows: ``fields`` gives every name of :attr:`ROW_FIELDS` (lists / arrays of one length; ``None``
        for a field the index does not have) and ``encoding`` their encodings (a new segment)."""
        for name in self.ROW_FIELDS:
            value, added = getattr(self, name), fields[name]
            if (value is None) != (added is None):
                raise ValueError(f"rows with{'out' if added is None else ''} {name} cannot join an index "
                                 f"with{'out' if value is None else ''} them")
            if value is not None:
                setattr(self, name, np.concatenate([value, np.asarray(added, dtype=value.dtype)])
                        if isinstance(value, np.ndarray) else value + list(added))
        self.segments.append(encoding)

    @property
    def encoding(self) -> ModelOutput:
        """The videos' encoding, rows in :attr:`paths` order (memory-mapped when loaded; gathered from the segments
        once updates spread them, which reads them all: re-ranking reads rows with :meth:`select_rows`)."""
        return self.segments.whole()

    def select_rows(self, rows, device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> ModelOutput:
        """Rows ``rows`` of the encoding on ``device`` (floating fields in ``dtype``): only those rows are read."""
        return self.segments.select(rows, device, dtype)

    def rows_of(self, ids) -> np.ndarray:
        """Row numbers of ``ids`` (any shape); ``-1`` for an id not in the index (or ``-1``)."""
        ids = np.asarray(ids, dtype=np.int64)
        rows = np.searchsorted(self.row_ids, ids)
        inside = rows < len(self.row_ids)
        found = inside & (self.row_ids[np.where(inside, rows, 0)] == ids) & (ids >= 0)
        return np.where(found, rows, -1)

    def gather_vectors(self, ids) -> torch.Tensor:
        """The indexed vectors (``video_embeds``) of ``ids`` (any shape; a missing id gives row 0's)."""
        rows = np.maximum(self.rows_of(ids), 0)
        return self.segments.select(rows).video_embeds.float()

    @property
    def faiss_info(self) -> dict[str, Any]:
        """What the first stage is: backend, type, factory string, nlist, nprobe, target and measured recall@10,
        what it was trained on (:attr:`store` ``.info``)."""
        return self.store.info

    @property
    def faiss_index(self):
        """The FAISS index of a FAISS store (``None`` for Milvus)."""
        return getattr(self.store, "index", None)

    @property
    def index_type(self) -> str | None:
        return self.store.info.get("index_type")

    @property
    def nlist(self) -> int | None:
        return self.store.info.get("nlist")

    @property
    def nprobe(self) -> int | None:
        return self.store.info.get("nprobe")

    @nprobe.setter
    def nprobe(self, value: int | None) -> None:
        self.store.info["nprobe"] = value

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (f"VideoIndex({len(self)} videos, dim={self.store.dim}, "
                f"index_type={self.index_type!r}, model_dir={self.model_dir!r})")

    # ---------------------------------------------------------------------------------------------- building

    @classmethod
    def build(cls, model, processor, videos: str | os.PathLike | Sequence[str], batch_size: int = 16,
              index_type: str = "auto", nlist: int | None = None, model_dir: str | os.PathLike | None = None,
              progress: bool = True, on_bad_video: str = "skip",
              resume_dir: str | os.PathLike | None = None, target_recall: float = 0.95,
              windows: str | Sequence[float | str] | None = None, stride: float = 0.5) -> "VideoIndex":
        """Encode videos with ``model`` and index them (whole, or as windows).

        Args:
            model: a tvr model (``encode_video`` -> an encoding with ``video_embeds``, ``get_text_embeds``,
                ``similarity``); it runs on its own device, in eval mode.
            processor: its processor (``processor(videos=[paths], return_tensors="pt")``).
            videos: a folder (searched recursively for video files) or a list of video paths.
            batch_size: videos decoded and encoded per forward pass.
            index_type: ``"auto"`` (exact below 50,000 videos, else ``"ivf-hnsw"``), ``"flat"`` (exact inner
                product), ``"ivf"`` (inverted lists of exact vectors) or ``"ivf-hnsw"`` (HNSW coarse quantizer,
                8-bit vectors, ``nprobe`` tuned to ``target_recall``); see :mod:`tvr.retrieval.faiss_index`.
            nlist: IVF cells (default ``4 * sqrt(num_videos)``, at most ``num_videos // 39`` so each cell trains).
            target_recall: recall@10 against exact search that the tuned ``ivf-hnsw`` index reaches.
            model_dir: the folder ``model`` was loaded from, saved with the index so :meth:`load` can reload it.
            progress: show a progress bar.
            on_bad_video: ``"skip"``: videos that fail to decode are left out with a warning and listed in
                :attr:`failed`; ``"error"``: the first one raises.
            resume_dir: a folder for the work in progress: each encoded batch is saved there as a shard
                (crash-safely, :mod:`tvr.retrieval.shards`), and a later call with the same folder, model and
                videos skips the shards already done (those of other weights, or of videos changed since, are
                encoded again). The caller deletes it once the index is saved (``tvr index`` does, with
                :func:`tvr.retrieval.shards.remove_shard_folder`).
            windows: window lengths, in seconds or ``"Nx"`` multiples of the model's clip length (``[4, 8, 16]``,
                ``"4,8,16"``, ``"1x,2x"``; :func:`tvr.processing.windows.parse_window_scales`): each video is indexed
                as overlapping windows of each length (rows with a start and end) for :meth:`search_moments`.
            stride: the step between two windows of one length, as a fraction of it (``0.5``: half overlap).
        """
        from ..processing.windows import check_stride, clip_seconds, parse_window_scales

        check_bad_video_policy(on_bad_video)
        if windows is not None:
            windows = {"scales": parse_window_scales(windows, clip_seconds(processor)), "stride": check_stride(stride)}
        paths = list_video_files(videos) if isinstance(videos, (str, os.PathLike)) else [os.fspath(p) for p in videos]
        if not paths:
            raise ValueError("no videos to index: the list of video paths is empty")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        weights = model_weights_fingerprint(model_dir) if model_dir is not None else None
        encoding, indexed, failed, fingerprints, spans = encode_collection(
            model, processor, paths, batch_size, resume_dir, on_bad_video, progress, weights, windows=windows)
        starts, ends = spans or (None, None)
        index = cls._from_encodings(model, processor, paths, encoding, indexed, failed, index_type=index_type,
                                    nlist=nlist, model_dir=model_dir, target_recall=target_recall,
                                    starts=starts, ends=ends, windows=windows)
        index.weights, index.video_fingerprints = weights, fingerprints
        return index

    def update(self, videos: str | os.PathLike | Sequence[str], batch_size: int = 16,
               resume_dir: str | os.PathLike | None = None, on_bad_video: str = "skip", progress: bool = True,
               retrain_drift: float = DEFAULT_RETRAIN_DRIFT, **encode_kwargs: Any) -> UpdateReport:
        """Bring the index in line with ``videos`` (a folder or a list of paths: the collection now) in place:
        encode only the new and changed videos (by path and fingerprint), remove the rows of vanished and changed
        ones, keep the rest; then, past ``retrain_drift`` of the rows changed since the last check, measure the
        IVF index's recall again and retrain it if it fell below its target (:mod:`tvr.retrieval.updates`).
        ``resume_dir`` makes the encoding resumable, as in :meth:`build`. :meth:`save` writes the result (only
        the new encodings are written; the old segments are hard-linked).

        Returns:
            an :class:`~tvr.retrieval.updates.UpdateReport` (``summary()``: added / changed / removed / kept).
        """
        check_bad_video_policy(on_bad_video)
        paths = list_video_files(videos) if isinstance(videos, (str, os.PathLike)) else [os.fspath(p) for p in videos]
        return update_index(self, paths, batch_size, resume_dir, on_bad_video, progress, retrain_drift,
                            **encode_kwargs)

    def remove(self, videos: Sequence[str]) -> int:
        """Remove every row of ``videos`` (indexed paths, or dataset ``video_id`` values of the index); returns how many
        rows went. Raises ``ValueError`` naming an unknown one."""
        return remove_videos(self, resolve_videos(self, [os.fspath(video) for video in videos]))

    @classmethod
    def from_shards(cls, model, processor, paths: Sequence[str], shard_dir: str | os.PathLike,
                    **index_kwargs: Any) -> "VideoIndex":
        """The index of the finished shards of ``paths`` in ``shard_dir`` (written by
        :func:`tvr.retrieval.shards.encode_shards`, by one or several processes)."""
        paths = [os.fspath(path) for path in paths]
        encoding, indexed, failed = read_shards(shard_dir, paths)
        windows, starts, ends = read_shard_windows(shard_dir)
        index = cls._from_encodings(model, processor, paths, encoding, indexed, failed, starts=starts, ends=ends,
                                    windows=windows, **index_kwargs)
        index.weights, index.video_fingerprints = read_provenance(shard_dir)
        return index

    @classmethod
    def _from_encodings(cls, model, processor, paths, encoding, indexed, failed, **index_kwargs) -> "VideoIndex":
        warn_bad_videos(failed, len(paths), "not indexed")
        if not indexed:
            first_error = next(iter(failed.values()))
            raise ValueError(f"none of the {len(paths)} videos could be decoded; first error: {first_error}")
        return cls(model, processor, indexed, encoding, failed=failed, **index_kwargs)

    @classmethod
    def from_model_dir(cls, model_dir: str | os.PathLike, videos: str | os.PathLike | Sequence[str],
                       device: str | torch.device | None = None, processor: str | os.PathLike | None = None,
                       **build_kwargs: Any) -> "VideoIndex":
        """Load a saved model folder and its processor (or ``processor``: a processor folder, or a tokenizer folder /
        Hub id; saved with the index) and :meth:`build` an index of ``videos`` with it."""
        model, loaded = load_model_and_processor(model_dir, device, processor)
        index = cls.build(model, loaded, videos, model_dir=model_dir, **build_kwargs)
        if processor is not None:
            index.processor_source = os.path.abspath(processor) if os.path.exists(processor) else os.fspath(processor)
        return index

    # ---------------------------------------------------------------------------------------------- searching

    @torch.no_grad()
    def search(self, queries: str | Sequence[str], top_k: int = 10, rerank_top_k: int | None = None,
               batch_size: int = 64, candidates: int | None = None
               ) -> list[SearchResult] | list[list[SearchResult]]:
        """Rank the indexed videos for each text query, in two stages: FAISS finds ``candidates`` videos, then the
        model re-scores the best ``rerank_top_k`` of them as it scores a gallery (``score_gallery``), which is how
        ``tvr eval`` ranks.

        Args:
            queries: one caption, or a list of captions.
            top_k: videos returned per query (fewer when the index holds fewer).
            rerank_top_k: videos the second stage re-scores per query, as ``tvr eval --rerank-top-k``: ``None``, the
                model's default (EERCF: its ``config.rerank_top_k``, the rest of the candidates keep its coarse
                score, as in ``tvr eval``; other methods: ``max(top_k, 50)``, and it must be at least ``top_k``,
                since only re-scored videos are returned); ``0``: the first stage alone (FAISS's inner products).
            batch_size: queries encoded per forward pass.
            candidates: videos FAISS proposes per query (default ``max(top_k, rerank_top_k)``).

        Returns:
            For one caption, a list of :class:`SearchResult` ``(path, score)``, best first; for a list, one such
            list per caption. :meth:`score_name` names the scores. On an index built with windows each video comes
            once, with the score of its best window (the counts above are then videos, each worth up to
            :data:`~tvr.retrieval.moments.WINDOW_POOL_FACTOR` windows).
        """
        ranked = self._rank_rows(queries, top_k, rerank_top_k, batch_size, candidates)
        results = [self._results(rows, scores, top_k) for rows, scores in ranked]
        return results[0] if isinstance(queries, str) else results

    @torch.no_grad()
    def _rank_rows(self, queries: str | Sequence[str], top_k: int, rerank_top_k: int | None, batch_size: int,
                   candidates: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`search`'s two stages: per query, the ``(rows, scores)`` it ranked, best first (all the re-scored
        rows, or all of FAISS's candidates with ``rerank_top_k=0``; ``-1`` rows: FAISS found fewer)."""
        texts = [queries] if isinstance(queries, str) else list(queries)
        if not texts or not all(isinstance(text, str) for text in texts):
            raise ValueError("queries must be a string or a non-empty list of strings")
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        two_stages = _scores_in_two_stages(self.model)
        rerank_top_k = self.default_rerank_top_k(top_k) if rerank_top_k is None else rerank_top_k
        if rerank_top_k < 0:
            raise ValueError(f"rerank_top_k must be >= 0 (0: first stage only), got {rerank_top_k}")
        if 0 < rerank_top_k < top_k and not two_stages:
            raise ValueError(f"rerank_top_k ({rerank_top_k}) must be >= top_k ({top_k}) or 0: it is the number of "
                             "videos the model re-scores, of which the top_k best are returned")
        pool = max(top_k, rerank_top_k)
        if candidates is not None and candidates < pool:
            raise ValueError(f"candidates ({candidates}) must be >= top_k ({top_k}) and rerank_top_k "
                             f"({rerank_top_k}): FAISS proposes them, the model re-scores the best rerank_top_k")
        per_video = self._rows_per_video()  # a windowed index ranks rows, not videos
        num_candidates, rerank_rows = min((candidates or pool) * per_video, len(self)), rerank_top_k * per_video
        results = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start:start + batch_size]
            inputs = self.processor(text=batch, return_tensors="pt")
            input_ids = inputs["input_ids"].to(self.device)
            attention_mask = inputs["attention_mask"].to(self.device)
            query_embeds = _as_faiss_array(self.model.get_text_embeds(input_ids, attention_mask))
            if query_embeds.shape[1] != self.store.dim:
                raise ValueError(f"the model makes {query_embeds.shape[1]}-dim text embeddings, the index holds "
                                 f"{self.store.dim}-dim video embeddings: search it with the model it was built "
                                 "with, or rebuild it with `tvr index`")
            scores, ids = self.store.search(query_embeds, num_candidates)
            rows = self.rows_of(ids)  # an id the row table does not know (a store ahead of its folder) is dropped
            if not rerank_top_k:
                results += list(zip(rows, scores))
                continue
            text_encoding = self.model.encode_text(input_ids, attention_mask)
            for query, candidate_rows in enumerate(rows):
                candidate_rows = candidate_rows[candidate_rows >= 0]  # IVF may find fewer than asked
                if two_stages:  # its own coarse stage over the candidates, its best rerank_top_k re-scored
                    options = {"rerank_top_k": min(rerank_rows, len(candidate_rows))}
                else:
                    candidate_rows, options = candidate_rows[:rerank_rows], {}
                gallery = self.select_rows(candidate_rows, self.device, self.dtype)
                # a few dozen rows: scored on this thread, not by a woken thread pool (issue 26)
                with on_calling_thread(sum(value.numel() for value in gallery.values())):
                    logits = self.model.score_gallery(_select(text_encoding, [query], self.device), gallery,
                                                      **options)[0]
                order = torch.argsort(logits, descending=True, stable=True).numpy()
                results.append((candidate_rows[order], logits.numpy()[order]))
        return results

    @torch.no_grad()
    def search_moments(self, queries: str | Sequence[str], top_k: int = 10, nms_iou: float = 0.5,
                       refine: bool = False, rerank_top_k: int | None = None, batch_size: int = 64,
                       candidates: int | None = None, refine_rounds: int = 2,
                       refine_shift: float = 0.25) -> list[Moment] | list[list[Moment]]:
        """The moments that match each query, in an index built with windows: its windows ranked as :meth:`search`
        ranks (FAISS, then the model's own re-scoring; ``rerank_top_k`` / ``candidates`` count videos, each worth
        up to :data:`~tvr.retrieval.moments.WINDOW_POOL_FACTOR` windows), then temporal non-maximum suppression
        within each video (windows of different videos never suppress each other), best first.

        Args:
            top_k: moments returned per query.
            nms_iou: a window overlapping a better one of the same video with at least this temporal IoU is dropped.
            refine: move each moment's boundaries to where the model scores the query best (shifted, extended and
                shrunk spans, decoded from the video again: :func:`tvr.processing.windows.refine_moments`); the
                moments are then ranked by their refined scores (the model's similarity).
            refine_rounds, refine_shift: refinement rounds, and the first round's step as a fraction of a moment.

        Returns:
            For one query, a list of :class:`~tvr.retrieval.moments.Moment` ``(path, start, end, score, video_id)``;
            for a list, one such list per query.

        Raises:
            ValueError: the index has no windows (rebuild it with ``windows``), or an option is out of range.
        """
        if self.starts is None:
            raise ValueError(NO_WINDOWS)
        if not 0 < nms_iou <= 1:
            raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
        texts = [queries] if isinstance(queries, str) else list(queries)
        ranked = self._rank_rows(texts, top_k, rerank_top_k, batch_size, candidates)
        answers = []
        for text, (rows, scores) in zip(texts, ranked):
            found = [(self.paths[row], self.starts[row], self.ends[row], score)
                     for row, score in select_moments(self.paths, self.starts, self.ends, rows, scores, nms_iou, top_k)]
            if refine:
                found = self._refined(text, found, refine_rounds, refine_shift, batch_size)
            answers.append([Moment(path, start, end, score, (self.ids or {}).get(path))
                            for path, start, end, score in found])
        return answers[0] if isinstance(queries, str) else answers

    def _refined(self, text: str, found: list[tuple[str, float, float, float]], rounds: int, shift: float,
                 batch_size: int) -> list[tuple[str, float, float, float]]:
        """``found`` moments with refined boundaries and scores (:func:`tvr.processing.windows.refine_moments`, one
        call per video), best first."""
        from ..processing.windows import refine_moments

        inputs = self.processor(text=[text], return_tensors="pt")
        text_encoding = self.model.encode_text(inputs["input_ids"].to(self.device),
                                               inputs["attention_mask"].to(self.device))
        by_video: dict[str, list[int]] = {}
        for position, (path, *_) in enumerate(found):
            by_video.setdefault(path, []).append(position)
        refined = list(found)
        for path, positions in by_video.items():
            spans = refine_moments(self.model, self.processor, path, text_encoding,
                                   [found[position][1:3] for position in positions], shift=shift, rounds=rounds,
                                   batch_size=batch_size)
            for position, (start, end, score) in zip(positions, spans):
                refined[position] = (path, start, end, score)
        return sorted(refined, key=lambda moment: -moment[3])

    def default_rerank_top_k(self, top_k: int = 10) -> int:
        """The videos :meth:`search` re-scores by default: EERCF's ``config.rerank_top_k`` (what ``tvr eval``
        re-scores), else ``max(top_k, 50)``."""
        own = getattr(self.model.config, "rerank_top_k", None)
        return own if own is not None and _scores_in_two_stages(self.model) else max(top_k, DEFAULT_RERANK_TOP_K)

    @staticmethod
    def score_name(rerank_top_k: int | None = None, refine: bool = False) -> str:
        """What :meth:`search`'s (and :meth:`search_moments`') scores are for this ``rerank_top_k``:
        ``"similarity"`` (the model's) or ``"inner_product"`` (first stage only; refined moments are always re-scored
        by the model); :data:`SCORE_NAMES` describes each."""
        return "inner_product" if rerank_top_k == 0 and not refine else "similarity"

    def _rows_per_video(self) -> int:
        """:func:`~tvr.retrieval.moments.rows_per_video`, computed again only when the rows changed."""
        key = (id(self.paths), len(self.paths), self.starts is not None)
        if getattr(self, "_rows_per_video_cache", (None,))[0] != key:
            self._rows_per_video_cache = (key, rows_per_video(self.paths, self.starts is not None))
        return self._rows_per_video_cache[1]

    def _results(self, rows: np.ndarray, scores: np.ndarray, top_k: int) -> list[SearchResult]:
        return [SearchResult(self.paths[row], score) for row, score in best_window_per_video(self.paths, rows, scores,
                                                                                            top_k)]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    # ---------------------------------------------------------------------------------------------- saving

    def save(self, index_dir: str | os.PathLike, inputs: Sequence[str | os.PathLike] = ()) -> None:
        """Write the index folder (see the module doc) crash-safely; an existing index there is replaced only once
        the new one is complete on disk.

        Args:
            inputs: folders the index was built from (its videos): ``index_dir`` may not be one of them or inside one.

        Raises:
            tvr.utils.output_dir.OutputDirError: ``index_dir`` holds files tvr did not write as an index (nothing is
                deleted), or lies inside one of ``inputs``.
        """
        from safetensors.torch import save_file

        encoding_class = type(next(segment for segment in self.segments.segments if segment is not None))
        _encoding_class(f"{encoding_class.__module__}.{encoding_class.__qualname__}", "saving an index")
        with atomic_directory(index_dir, kind=INDEX_KIND, inputs=inputs, legacy=INDEX_FILES) as staging:
            # unchanged segments are hard links to the current folder's files: an update rewrites no old encoding
            segments = self.segments.save(staging, _sha256)
            phase_done("staged")
            save_file({"id": torch.from_numpy(self.row_ids), **self.segments.row_table()}, staging / ROWS_FILE)
            store = self.store.save(staging)
            _write_json(staging / VIDEOS_FILE, {"paths": self.paths, "failed": self.failed,
                                                **({"ids": self.ids} if self.ids is not None else {}),
                                                **({"starts": self.starts, "ends": self.ends}
                                                   if self.starts is not None else {}),
                                                "fingerprints": self.video_fingerprints})
            _write_json(staging / CONFIG_FILE, {
                "model_dir": self.model_dir,
                "weights": self.weights,
                "processor": self.processor_source,
                "index_type": self.index_type,
                "nlist": self.nlist,
                "nprobe": self.nprobe,
                "faiss": {**self.faiss_info, "nprobe": self.nprobe},
                "store": store,
                "segments": segments["segments"],
                "next_id": self.next_id,
                "num_videos": len(self),
                "num_failed": len(self.failed),
                **({"windows": self.windows} if self.windows is not None else {}),
                "dim": int(self.store.dim),
                "encoding_class": f"{encoding_class.__module__}.{encoding_class.__qualname__}",
                "files": {**{name: {"size": (staging / name).stat().st_size, "sha256": _sha256(staging / name)}
                             for name in (ROWS_FILE, VIDEOS_FILE, *store.get("files", ()))},
                          **{entry["file"]: {"size": entry["size"], "sha256": entry["sha256"]}
                             for entry in segments["segments"]}},
            })
        self.segments.saved_at(Path(index_dir), segments)
        committed = getattr(self.store, "committed", None)
        if committed is not None:  # a store outside the folder (Milvus) drops the removed rows once it is in place
            committed()

    @classmethod
    def load(cls, index_dir: str | os.PathLike, model=None, processor=None,
             device: str | torch.device | None = None, allow_model_change: bool = False) -> "VideoIndex":
        """Reopen a saved index; the model and processor are loaded from the saved ``model_dir`` unless given.

        Args:
            allow_model_change: search although the model folder's weights changed since the index was built
                (queries then come from other weights than the indexed videos).

        Raises:
            FileNotFoundError: ``index_dir`` is not an index folder.
            tvr.utils.fingerprint.FingerprintMismatch: the model folder's weights are not those the index was built
                with (both fingerprints named).
            ValueError: a file is damaged or does not match the checksum written with it, the FAISS index, the
                encodings and the path list disagree in their counts, the model makes embeddings of another width,
                or the encoding class is not one of tvr's.
        """
        # an update swaps the folder whole: a load that overlapped a swap (the folder replaced, or absent for the
        # instant between the two renames) reads the new version again, so a reader gets the old or the new one
        for attempt in range(_LOAD_ATTEMPTS):
            before = _folder_identity(index_dir)
            try:
                index = cls._load_once(index_dir, model, processor, device, allow_model_change)
            except Exception:  # files of two versions can fail in any way (an IndexError of a mixed row table)
                if attempt == _LOAD_ATTEMPTS - 1 or (before is not None and _folder_identity(index_dir) == before):
                    raise
            else:  # every file was read from one version only if the folder is the one it was at the start
                if before is not None and _folder_identity(index_dir) == before:
                    return index
            time.sleep(0.05 * (attempt + 1))
        raise ValueError(f"index {os.fspath(index_dir)!r} was replaced by {_LOAD_ATTEMPTS} updates while it was being "
                         "read; load it again once the updates pause")

    @classmethod
    def _load_once(cls, index_dir, model, processor, device, allow_model_change) -> "VideoIndex":
        index_dir = Path(index_dir)
        recover_directory(index_dir)  # a save killed between its two renames left the previous index aside
        if not (index_dir / CONFIG_FILE).is_file():
            raise FileNotFoundError(f"{os.fspath(index_dir)!r} is not an index folder (no {CONFIG_FILE}); "
                                    "build one with `tvr index` or VideoIndex.save")
        where = f"index {os.fspath(index_dir)!r}"
        config = _read_index_json(index_dir / CONFIG_FILE, where)
        if "files" not in config:
            raise ValueError(f"{where}: {CONFIG_FILE} records no checksums (written by an older tvr); rebuild it "
                             "with `tvr index`")
        for name, expected in config["files"].items():
            path = index_dir / name
            if not path.is_file():
                raise ValueError(f"{where}: {name} is missing; rebuild the index with `tvr index`")
            if path.stat().st_size != expected["size"] or _sha256(path) != expected["sha256"]:
                raise ValueError(f"{where}: {name} does not match the checksum written with it (changed or "
                                 "corrupted since); rebuild the index with `tvr index`")
        encoding_class = _encoding_class(config["encoding_class"], where)
        if model is None or processor is None:
            if config["model_dir"] is None:
                raise ValueError(f"{where} was built from an in-memory model: pass model and processor to "
                                 "VideoIndex.load")
            model_dir = config["model_dir"]
        else:  # a model given: check the folder it was loaded from, when it is one
            model_dir = getattr(model, "name_or_path", None)
            model_dir = model_dir if model_dir and os.path.isdir(model_dir) else None
        if model_dir is not None and not allow_model_change:
            check_fingerprint(
                f"{where}: the weights of model folder {model_dir!r} changed since it was indexed", config.get("weights"),
                model_weights_fingerprint(model_dir),
                "rebuild the index with `tvr index`, or search anyway with `tvr search --allow-model-change` / "
                "VideoIndex.load(..., allow_model_change=True)")
        if model is None or processor is None:
            model, processor = load_model_and_processor(config["model_dir"], device, config.get("processor"))
        width = getattr(model.config, "projection_dim", None)
        if width is not None and width != config["dim"]:
            raise ValueError(f"{where} holds {config['dim']}-dim video embeddings, the model makes {width}-dim ones: "
                             "search it with the model it was built with, or rebuild it with `tvr index`")
        # memory-mapped: re-ranking gathers the candidates' rows only, the rest stays on disk; a folder of tvr
        # before updates holds one segment and no row table (ids = row numbers)
        table = mmap_safetensors(index_dir / ROWS_FILE) if (index_dir / ROWS_FILE).is_file() else None
        legacy_segment = {"file": ENCODINGS_FILE, "number": 0, **config["files"].get(ENCODINGS_FILE, {})}
        segments = SegmentedEncodings.load(index_dir, config.get("segments") or [legacy_segment], table,
                                           encoding_class, mmap_safetensors)
        videos = _read_index_json(index_dir / VIDEOS_FILE, where)
        row_ids = table["id"].numpy() if table is not None else None
        faiss_info = config.get("faiss") or {key: config[key] for key in ("index_type", "nlist", "nprobe")}
        store = load_store(index_dir, config.get("store") or {"backend": "faiss", **faiss_info})
        counts = {"index_config.json num_videos": config["num_videos"], "videos.json paths": len(videos["paths"]),
                  "encodings rows": len(segments), **({"row ids": len(row_ids)} if row_ids is not None else {}),
                  # a Milvus collection may hold rows of an update that never finished: search drops unknown ids
                  **({"index.faiss vectors": len(store)} if store.info.get("backend") == "faiss" else {})}
        if len(set(counts.values())) != 1:
            raise ValueError(f"{where}: its files disagree on the number of videos ({counts}); rebuild it with "
                             "`tvr index`")
        index = cls(model, processor, videos["paths"], segments, model_dir=config["model_dir"],
                    failed=videos["failed"], store=store, row_ids=row_ids, starts=videos.get("starts"),
                    ends=videos.get("ends"), windows=config.get("windows"), where=where)
        index.next_id = max(index.next_id, config.get("next_id", 0))
        index.ids = videos.get("ids")
        index.processor_source = config.get("processor")
        index.weights, index.video_fingerprints = config.get("weights"), videos.get("fingerprints") or {}
        return index


_LOAD_ATTEMPTS = 5


def _folder_identity(folder) -> tuple[int, int, int] | None:
    """Which version of ``folder`` is in place: its inode and change times (a swapped-in version is another folder,
    renamed into place), or ``None`` while it is absent."""
    try:
        stat = os.stat(folder)
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns


def _read_index_json(path: Path, where: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{where}: {path.name} is damaged ({error}); rebuild the index with `tvr index`") from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _select(encoding: ModelOutput, rows, device: torch.device, dtype: torch.dtype | None = None) -> ModelOutput:
    """Rows of every field of an encoding, on ``device``; floating fields in ``dtype`` when given (encodings stored
    in float16 are scored in the model's dtype). Fields loaded from an index file read only those rows' bytes
    (:func:`tvr.retrieval.rows.gather_rows`)."""
    def gather(value: torch.Tensor) -> torch.Tensor:
        cast = dtype if dtype is not None and value.is_floating_point() else None
        return gather_rows(value, rows).to(device, cast)

    return type(encoding)(**{name: gather(value) for name, value in encoding.items()})


def _as_faiss_array(embeddings: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(embeddings.detach().float().cpu().numpy())


def _write_json(path: Path, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as file:
        json.dump(value, file, indent=2)
        file.write("\n")


__all__ = ["SCORE_NAMES", "SearchResult", "VideoIndex", "default_nlist", "list_video_files",
           "load_model_and_processor", "mmap_safetensors", "model_weights_fingerprint"]
