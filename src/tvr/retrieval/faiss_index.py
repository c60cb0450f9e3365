"""The first-stage FAISS index of a :class:`~tvr.retrieval.VideoIndex`, chosen by collection size and tuned to a
recall target.

- ``flat``: exact inner product (``IndexFlatIP``), what ``auto`` picks below :data:`EXACT_BELOW` videos;
- ``ivf``: inverted lists over exact vectors (``IndexIVFFlat``, the index of tvr before the ``ivf-hnsw`` type);
- ``ivf-hnsw``: what ``auto`` picks above the threshold: inverted lists whose coarse quantizer is an HNSW graph and
  whose vectors are compressed to 8 bits per dimension (FAISS factory ``IVF<nlist>_HNSW32,SQ8``: 512 bytes per
  512-d video, so about 0.5 GB per million in the index file, which a loaded index serves memory-mapped:
  :mod:`tvr.retrieval.stores`). 8-bit scores alone cap recall@10 near 0.95 on crowded collections, so
  :func:`search_index` takes ``refine`` times more candidates and re-scores them exactly with their full vectors,
  gathered from the encodings on disk (only those rows are read; FAISS's ``IndexRefineFlat`` would keep every full
  vector in RAM). ``nprobe`` and ``refine`` are tuned at build time: the smallest number of probed cells whose
  recall@10 against exact search reaches ``target_recall + RECALL_MARGIN`` on one half of the held-out queries (what
  ``autofaiss`` does; FAISS is used directly, one dependency fewer), with the first of :data:`REFINE_FACTORS` that
  gets there probing at most ``1 / MAX_PROBED_FRACTION`` of the cells (8-bit scores can rank true neighbours below
  the 4x candidates whatever ``nprobe``, so a fixed factor could miss the target probing every cell; on the
  benchmark's 200k and 1M vectors 4x suffices); the recall reported is measured on the other half, which the tuning
  never saw (a recall measured on the queries it was tuned on overstates it: 0.9516 tuned vs 0.947 on
  other queries in a 100k trial).

The chosen parameters and both recalls are returned as a plain dict (stored in ``index_config.json`` and shown by
``tvr search --info``).
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

INDEX_TYPES = ("auto", "flat", "ivf", "ivf-hnsw")
EXACT_BELOW = 50_000  # below this many videos exact search is fast enough (about 4 ms/query at 512-d, 1 thread)
RECALL_AT = 10
#: ivf-hnsw: candidates re-scored exactly per result asked, tried in this order by :func:`tune_nprobe`
REFINE_FACTORS = (4, 8, 16)
#: a refine factor is kept when its tuned nprobe probes at most this fraction's inverse of the cells (1/8); the last
#: factor may probe them all
MAX_PROBED_FRACTION = 8
#: nprobe is tuned to ``target_recall + RECALL_MARGIN`` on the tuning queries, so that other queries (the report
#: split, and users') reach the target: recall@10 over a few hundred queries varies by about 0.005 between splits
RECALL_MARGIN = 0.01


def default_nlist(num_videos: int) -> int:
    """IVF cells for ``num_videos``: ``4 * sqrt(n)`` (FAISS's rule of thumb), with at least 39 videos per cell so
    that k-means can train each one."""
    return max(1, min(round(4 * math.sqrt(num_videos)), num_videos // 39))


def build_faiss_index(embeddings: np.ndarray, index_type: str = "auto", nlist: int | None = None,
                      nprobe: int | None = None, target_recall: float = 0.95, tune_queries: np.ndarray | None = None,
                      num_tune_queries: int = 1000, exact_below: int = EXACT_BELOW, seed: int = 0,
                      recall_margin: float = RECALL_MARGIN):
    """Build the inner-product index of ``embeddings`` ``(num_videos, dim)`` (float32, L2-normalised).

    Args:
        index_type: one of :data:`INDEX_TYPES`; ``auto`` is ``flat`` below ``exact_below`` videos, else ``ivf-hnsw``.
        nlist: IVF cells (default :func:`default_nlist`).
        nprobe: cells probed per query; default: tuned to ``target_recall`` (``ivf-hnsw``) or ``nlist // 8`` (``ivf``).
        target_recall: recall@10 against exact search that the tuned ``nprobe`` reaches on held-out queries.
        tune_queries: ``(num_queries, dim)`` query vectors to tune with (e.g. text embeddings of captions), split in
            two halves by :func:`tune_nprobe` (tuning, report); default: ``num_tune_queries`` rows of ``embeddings``
            drawn at random, their own row left out of both rankings.
        seed: the random draws (training sample, tuning queries, their split).
        recall_margin: the tuning split must reach ``target_recall + recall_margin`` (capped at 1).

    Returns:
        ``(index, info)``: the FAISS index and a dict of what was chosen (``index_type``, ``factory``, ``nlist``,
        ``nprobe``, ``refine`` (ivf-hnsw), ``target_recall``, ``measured_recall`` (on the report split), ``tuning_recall``,
        ``recall_margin``, ``tuning_queries``, ``report_queries`` (their counts), ``build_seconds``).
    """
    import faiss

    if index_type not in INDEX_TYPES:
        raise ValueError(f"index_type must be one of {INDEX_TYPES}, got {index_type!r}")
    if not 0 < target_recall <= 1:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    if not 0 <= recall_margin < 1:
        raise ValueError(f"recall_margin must be in [0, 1), got {recall_margin}")
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    num_videos, dim = embeddings.shape
    if index_type == "auto":
        index_type = "flat" if num_videos < exact_below else "ivf-hnsw"
    start = time.perf_counter()
    info: dict[str, Any] = {"index_type": index_type, "nlist": None, "nprobe": None, "target_recall": None,
                            "measured_recall": None}
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
        index.add(embeddings)
        info.update(factory="Flat", measured_recall=1.0)
        info["build_seconds"] = round(time.perf_counter() - start, 3)
        return index, info
    nlist = nlist or default_nlist(num_videos)
    if nlist > num_videos:
        raise ValueError(f"nlist={nlist} IVF cells need at least as many videos, got {num_videos}")
    rng = np.random.default_rng(seed)
    if index_type == "ivf":
        factory = f"IVF{nlist},Flat"
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    else:
        factory = f"IVF{nlist}_HNSW32,SQ8"
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    # k-means needs ~40 points per cell; more only costs time
    train_rows = rng.choice(num_videos, 50 * nlist, replace=False) \
        if num_videos > 50 * nlist else slice(None)
    index.train(embeddings[train_rows])
    ivf = faiss.extract_index_ivf(index)
    if index_type == "ivf-hnsw":  # assign each video to its nearest cell (HNSW's default efSearch 16 often misses it)
        faiss.downcast_index(ivf.quantizer).hnsw.efSearch = 128
    index.add(embeddings)
    info.update(factory=factory, nlist=nlist, refine=REFINE_FACTORS[0] if index_type == "ivf-hnsw" else None)
    if nprobe is None and index_type == "ivf":
        nprobe = max(1, nlist // 8)
    if nprobe is None:
        tuning = tune_nprobe(index, embeddings, target_recall, tune_queries, num_tune_queries, rng, REFINE_FACTORS,
                             recall_margin)
        nprobe = tuning.nprobe
        info.update(refine=tuning.refine, target_recall=target_recall,
                    measured_recall=round(tuning.measured_recall, 4), tuning_recall=round(tuning.tuning_recall, 4),
                    recall_margin=recall_margin, tuning_queries=len(tuning.tuning_queries),
                    report_queries=len(tuning.report_queries))
    ivf.nprobe = nprobe
    if index_type == "ivf-hnsw":
        # the HNSW graph over the centroids must return at least nprobe of them
        faiss.downcast_index(ivf.quantizer).hnsw.efSearch = max(64, 2 * nprobe)
    info["nprobe"] = int(nprobe)
    info["build_seconds"] = round(time.perf_counter() - start, 3)
    return index, info


def set_search_parameters(index, info: dict[str, Any]) -> None:
    """Apply the stored ``nprobe`` (and the HNSW quantizer's ``efSearch``) to a loaded index; FAISS does not save
    them with the index."""
    import faiss

    if info.get("nprobe") is None:
        return
    ivf = faiss.extract_index_ivf(index)
    ivf.nprobe = int(info["nprobe"])
    if info.get("index_type") == "ivf-hnsw":
        faiss.downcast_index(ivf.quantizer).hnsw.efSearch = max(64, 2 * int(info["nprobe"]))


def search_index(index, info: dict[str, Any], queries: np.ndarray, k: int, vectors) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, rows)`` ``(num_queries, k)`` of an index built by :func:`build_faiss_index`: FAISS's answer, or for
    an index with ``info["refine"]``, its ``refine * k`` candidates re-scored exactly with their rows of ``vectors``
    ``(num_videos, dim)`` (a NumPy array or a tensor; one of :func:`tvr.retrieval.rows.mmap_safetensors` reads only
    the candidates' rows from its file; or a callable ``ids -> vectors`` for an index whose labels are ids, not row
    numbers). Rows are ``-1`` where fewer than ``k`` were found."""
    import torch

    from .rows import gather_rows

    refine = info.get("refine")
    if not refine:
        return index.search(queries, k)
    _, candidates = index.search(queries, refine * k)
    found = candidates >= 0
    safe = np.where(found, candidates, 0).reshape(-1)
    gathered = vectors(safe) if callable(vectors) else gather_rows(vectors, safe)
    gathered = gathered.float().numpy() if isinstance(gathered, torch.Tensor) else gathered.astype(np.float32)
    gathered = gathered.reshape(*candidates.shape, -1)
    # NumPy's own loop (no BLAS, no thread pool): a single query's few dozen dot products take microseconds, less
    # than waking threads would (issue 26: 11-16 ms per query at 2 threads on a busy machine through torch)
    scores = np.einsum("qcd,qd->qc", gathered, np.asarray(queries, dtype=np.float32))
    scores = np.where(found, scores, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    rows = np.take_along_axis(candidates, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    return np.where(rows >= 0, scores, -np.inf).astype(np.float32), rows


def recall_at(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each row of ``exact`` ``(num_queries, k)`` that the same row of ``found`` holds."""
    return float(np.mean([len(np.intersect1d(f, e)) / len(e) for f, e in zip(found, exact)]))


class NprobeTuning(NamedTuple):
    """What :func:`tune_nprobe` chose and measured."""

    nprobe: int
    #: recall@10 of ``nprobe`` on the tuning split (at least ``target_recall + margin`` unless no nprobe reaches it)
    tuning_recall: float
    #: recall@10 of ``nprobe`` on the report split: queries the choice never saw, the figure to report
    measured_recall: float
    #: positions (in the query set) of the tuning and the report split: disjoint, together all the queries
    tuning_queries: np.ndarray
    report_queries: np.ndarray
    #: candidates re-scored exactly per result asked (``ivf-hnsw``), or None
    refine: int | None = None


def split_queries(num_queries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``num_queries`` queries drawn into two disjoint halves ``(tuning, report)``, each sorted."""
    if num_queries < 2:
        raise ValueError(f"tuning nprobe needs at least 2 queries (one to tune on, one to report on), got "
                         f"{num_queries}: give more tune_queries, or set nprobe")
    order = rng.permutation(num_queries)
    half = num_queries // 2
    return np.sort(order[:half]), np.sort(order[half:])


def tune_nprobe(index, embeddings: np.ndarray, target_recall: float, tune_queries: np.ndarray | None,
                num_tune_queries: int, rng: np.random.Generator, refine: int | Sequence[int] | None = None,
                margin: float = RECALL_MARGIN) -> NprobeTuning:
    """The smallest ``nprobe`` (doubling, then bisection) whose recall@10 against exact search reaches
    ``target_recall + margin`` on the tuning half of the queries (:func:`split_queries`), all cells when none does;
    and its recall on the other half, the report split, which no choice was made on.

    ``refine``: candidates re-scored exactly per result (``ivf-hnsw``); with several factors, the first one whose
    nprobe reaches the goal probing at most ``1 / MAX_PROBED_FRACTION`` of the cells is kept (the last: any number).
    """
    import faiss

    ivf = faiss.extract_index_ivf(index)
    quantizer = faiss.downcast_index(ivf.quantizer)
    k = min(RECALL_AT, len(embeddings) - 1)
    own_rows = None
    if tune_queries is None:
        own_rows = rng.choice(len(embeddings), min(num_tune_queries, len(embeddings)), replace=False)
        queries = embeddings[own_rows]
    else:
        queries = np.ascontiguousarray(tune_queries, dtype=np.float32)
    tuning_queries, report_queries = split_queries(len(queries), rng)
    exact_index = faiss.IndexFlatIP(embeddings.shape[1])
    exact_index.add(embeddings)
    exact = _top(exact_index, queries, k, own_rows)
    goal = min(1.0, target_recall + margin)

    def recall(nprobe: int, factor: int | None, split: np.ndarray) -> float:
        ivf.nprobe = nprobe
        if hasattr(quantizer, "hnsw"):
            quantizer.hnsw.efSearch = max(64, 2 * nprobe)
        found = _top(index, queries[split], k, None if own_rows is None else own_rows[split], {"refine": factor},
                     embeddings)
        return recall_at(found, exact[split])

    factors = list(refine) if isinstance(refine, Sequence) else [refine]
    for position, factor in enumerate(factors):
        last = position == len(factors) - 1
        limit = ivf.nlist if last else max(1, ivf.nlist // MAX_PROBED_FRACTION)
        nprobe, tuning_recall = _smallest_reaching(lambda cells: recall(cells, factor, tuning_queries), goal, limit)
        if tuning_recall >= goal:
            break
    return NprobeTuning(nprobe, tuning_recall, recall(nprobe, factor, report_queries), tuning_queries, report_queries,
                        factor)


def _smallest_reaching(recall: Callable[[int], float], goal: float, limit: int) -> tuple[int, float]:
    """``(nprobe, recall)``: the smallest ``nprobe <= limit`` whose recall reaches ``goal`` (doubling, then
    bisection; recall grows with nprobe), or ``limit`` when none does."""
    low, high = 0, 1
    measured = {high: recall(high)}
    while measured[high] < goal and high < limit:
        low, high = high, min(2 * high, limit)
        measured[high] = recall(high)
    if measured[high] < goal:
        return high, measured[high]
    while high - low > 1:
        middle = (low + high) // 2
        measured[middle] = recall(middle)
        low, high = (low, middle) if measured[middle] >= goal else (middle, high)
    return high, measured[high]


def _top(index, queries: np.ndarray, k: int, own_rows: np.ndarray | None, info: dict[str, Any] | None = None,
         vectors: np.ndarray | None = None) -> np.ndarray:
    """Top-``k`` rows per query, leaving out each query's own row when the queries are indexed rows."""
    _, rows = search_index(index, info or {}, queries, k + (own_rows is not None), vectors)
    if own_rows is None:
        return rows
    return np.stack([row[row != own][:k] for row, own in zip(rows, own_rows)])


__all__ = ["EXACT_BELOW", "INDEX_TYPES", "MAX_PROBED_FRACTION", "RECALL_MARGIN", "REFINE_FACTORS", "NprobeTuning",
           "build_faiss_index", "default_nlist", "recall_at", "search_index", "set_search_parameters",
           "split_queries", "tune_nprobe"]
