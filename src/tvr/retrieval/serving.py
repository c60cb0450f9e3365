"""Serving one collection from several processes or machines, with FAISS's own pieces (no home-made store).

The shards of :mod:`tvr.retrieval.shards` are consecutive ranges of the collection's rows. Two ways to serve more
than one machine holds:

- **One process, several indexes**: ``faiss.IndexShards(dim, threaded, successive_ids=True)`` with one sub-index per
  range (``add_shard``), searched as one index; FAISS merges the per-shard results.
- **Several processes**: each process loads the index of its range and answers ``index.search(queries, k)``; the
  caller merges the answers with :func:`search_parts`, given each range's first row. ``tests/test_search_at_scale.py``
  does this with two processes and checks the result is the single index's.

Re-ranking then gathers the candidates' encodings from the shard (or index) files that hold them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def search_parts(results: Sequence[tuple[np.ndarray, np.ndarray]], offsets: Sequence[int],
                 k: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge the ``(scores, rows)`` answers ``(num_queries, k)`` of indexes over consecutive row ranges (inner
    product, higher is better) into the collection's top ``k``: ``(scores, rows)`` with global row numbers.

    Args:
        results: one ``index.search(queries, k)`` answer per part.
        offsets: the first global row of each part.
    """
    scores = np.concatenate([part_scores for part_scores, _ in results], axis=1)
    rows = np.concatenate([np.where(part_rows >= 0, part_rows + offset, -1)
                           for (_, part_rows), offset in zip(results, offsets)], axis=1)
    scores = np.where(rows >= 0, scores, -np.inf)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), np.take_along_axis(rows, order, axis=1)


__all__ = ["search_parts"]
