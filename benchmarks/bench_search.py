"""First-stage search at scale: build time, memory, ms/query and recall@10 of each index type of ``VideoIndex``.

Synthetic clustered embeddings stand in for video embeddings: ``--clusters`` random unit centres, each video a centre
plus Gaussian noise of the same norm, L2-normalised (512-d like CLIP ViT-B). Queries are drawn the same way but
separately from the videos (a text query is not one of the indexed vectors); the tuned index is tuned on another
500 such queries, never on the measured ones. Recall@10 is measured against exact search.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_search.py --size 100000
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_search.py --size 1000000 --types flat ivf-hnsw
"""

from __future__ import annotations

import argparse
import statistics
import time

import faiss
import numpy as np

from tvr.retrieval.faiss_index import build_faiss_index, recall_at, search_index


def clustered(rng, centres, count, noise=1.0):
    dim = centres.shape[1]
    out = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        block = centres[rng.integers(len(centres), size=n)] + rng.normal(size=(n, dim)).astype(np.float32) * (
            noise / np.sqrt(dim))
        out[start:start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def timed(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, min(times), statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000, help="indexed videos")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=2.0, help="noise norm relative to the cluster centre's")
    parser.add_argument("--queries", type=int, default=1000, help="measured queries (batched, and recall)")
    parser.add_argument("--single-queries", type=int, default=200, help="queries timed one at a time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--types", nargs="+", default=["flat", "ivf", "ivf-hnsw"])
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(args.clusters, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    videos = clustered(rng, centres, args.size, args.noise)
    queries = clustered(rng, centres, args.queries, args.noise)
    tune_queries = clustered(rng, centres, 500, args.noise)
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(videos)
    faiss.omp_set_num_threads(2)
    _, truth = exact.search(queries, 10)
    del exact

    print(f"{args.size} videos, {args.dim}-d, {args.clusters} clusters, noise {args.noise}; {args.queries} queries "
          f"({args.single_queries} timed one by one); min / median of {args.repeats} repeats")
    print("| index | params | build (s) | size (MB) | recall@10 | single 1 thr (ms) | single 2 thr (ms) "
          "| batched 1 thr (ms/q) | batched 2 thr (ms/q) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for index_type in args.types:
        faiss.omp_set_num_threads(2)
        start = time.perf_counter()
        index, info = build_faiss_index(videos, index_type, target_recall=args.target_recall,
                                        tune_queries=tune_queries if index_type == "ivf-hnsw" else None)
        build = time.perf_counter() - start
        size_mb = faiss.serialize_index(index).nbytes / 1e6
        _, rows = search_index(index, info, queries, 10, videos)
        recall = recall_at(rows, truth)
        cells = []
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            single = queries[:args.single_queries]
            _, low, median = timed(lambda: [search_index(index, info, single[i:i + 1], 10, videos)
                                            for i in range(len(single))], args.repeats)
            cells.append(f"{1000 * low / len(single):.2f} / {1000 * median / len(single):.2f}")
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            _, low, median = timed(lambda: search_index(index, info, queries, 10, videos), args.repeats)
            cells.append(f"{1000 * low / len(queries):.2f} / {1000 * median / len(queries):.2f}")
        params = info["factory"] + (f", nprobe {info['nprobe']}" if info["nprobe"] else "") + (
            f", exact re-scoring of {info['refine']}x10 candidates" if info.get("refine") else "")
        if info["measured_recall"] is not None and index_type != "flat":
            params += f" (tuned recall {info['measured_recall']})"
        print(f"| {index_type} | {params} | {build:.1f} | {size_mb:.0f} | {recall:.3f} | {' | '.join(cells)} |",
              flush=True)
        del index


if __name__ == "__main__":
    main()
