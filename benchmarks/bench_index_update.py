"""A living index (issue 26): updating a large index in place vs rebuilding it, recall after part of the collection
was replaced, and FAISS vs Milvus Lite on the same vectors.

Vectors come from ``bench_search.py``'s generator (clustered unit vectors, 512-d); queries are drawn separately;
recall@10 is against exact search over the collection as it is at that moment.

1. Build the ``ivf-hnsw`` store of ``--size`` vectors (the rebuild cost), then time adding ``--adds`` vectors to it
   (``FaissStore.add``: FAISS ``add_with_ids``) and saving the index folder after the add (a new encodings segment,
   hard links to the old one) against saving it whole.
2. Replace ``--replace`` of the collection (remove that many random ids, add as many new vectors): recall@10 of the
   updated index vs an index rebuilt on the final collection (``--rebuild``: another full build).
3. FAISS (flat and ivf-hnsw) vs Milvus Lite (FLAT, the collection tvr creates on a Lite file) on the first
   ``--milvus-size`` vectors: insert time, single-query latency, recall@10.

    PYTHONPATH=src OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_index_update.py --size 100000
    PYTHONPATH=src OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_index_update.py --size 1000000 --rebuild
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import torch
from bench_search import clustered

from tvr.modeling.outputs import VideoEncoding
from tvr.retrieval.faiss_index import recall_at
from tvr.retrieval.index import VideoIndex
from tvr.retrieval.stores import FaissStore
from tvr.retrieval.updates import add_encoded, remove_videos


def exact_top(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return ids[index.search(queries, k)[1]]


def per_query_ms(search, queries: np.ndarray, repeats: int = 2) -> float:
    """Median over repeats of the mean time of one query searched alone."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for row in range(len(queries)):
            search(queries[row:row + 1])
        times.append(1000 * (time.perf_counter() - start) / len(queries))
    return statistics.median(times)


class Collection:
    """The vectors by id (ids are positions: new vectors get the next ones), what the store's refine gathers."""

    def __init__(self, vectors: np.ndarray, capacity: int):
        self.vectors = np.empty((capacity, vectors.shape[1]), dtype=np.float32)
        self.vectors[:len(vectors)] = vectors
        self.size = len(vectors)
        self.alive = np.zeros(capacity, dtype=bool)
        self.alive[:len(vectors)] = True

    def append(self, vectors: np.ndarray) -> np.ndarray:
        ids = np.arange(self.size, self.size + len(vectors), dtype=np.int64)
        self.vectors[ids], self.alive[ids] = vectors, True
        self.size += len(vectors)
        return ids

    def gather(self, ids) -> torch.Tensor:
        return torch.from_numpy(self.vectors[np.asarray(ids)])

    def current(self) -> tuple[np.ndarray, np.ndarray]:
        ids = np.flatnonzero(self.alive).astype(np.int64)
        return self.vectors[ids], ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--noise", type=float, default=2.0)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--single-queries", type=int, default=100)
    parser.add_argument("--adds", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--replace", type=float, default=0.1)
    parser.add_argument("--rebuild", action="store_true", help="also rebuild on the final collection (recall, time)")
    parser.add_argument("--milvus-size", type=int, default=100_000)
    parser.add_argument("--skip-save", action="store_true", help="leave out the index-folder save timings")
    parser.add_argument("--parts", nargs="+", choices=("update", "milvus"), default=["update", "milvus"],
                        help="update: 1 and 2; milvus: 3 (on the first --milvus-size vectors)")
    args = parser.parse_args()
    faiss.omp_set_num_threads(2)
    torch.set_num_threads(2)

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(args.clusters, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    replaced = int(args.replace * args.size)
    collection = Collection(clustered(rng, centres, args.size, args.noise),
                            args.size + sum(args.adds) + replaced)
    queries = clustered(rng, centres, args.queries, args.noise)
    tune = clustered(rng, centres, 500, args.noise)
    print(f"{args.size} vectors, {args.dim}-d, {args.clusters} clusters, noise {args.noise}; {args.queries} queries; "
          "2 threads", flush=True)

    if "update" in args.parts:
        update_in_place(args, rng, centres, collection, queries, tune, replaced)
    if "milvus" in args.parts:
        faiss_vs_milvus(args, collection, queries, tune)


def update_in_place(args, rng, centres, collection: Collection, queries, tune, replaced: int) -> None:
    # 1. build (what a rebuild costs), then add in place
    start = time.perf_counter()
    vectors, ids = collection.current()
    store = FaissStore.build(ids, vectors, "ivf-hnsw", tune_queries=tune, gather=collection.gather)
    build = time.perf_counter() - start
    print(f"build ivf-hnsw: {build:.1f} s ({store.info['factory']}, nprobe {store.info['nprobe']}, tuned recall "
          f"{store.info['measured_recall']})", flush=True)
    folder = Path(tempfile.mkdtemp(prefix="bench-index-update-"))
    index = None
    if not args.skip_save:
        paths = [f"video-{i:07d}.mp4" for i in ids]
        index = VideoIndex(None, None, paths, VideoEncoding(video_embeds=torch.from_numpy(vectors)), store=store)
        start = time.perf_counter()
        index.save(folder / "index")
        print(f"save the whole index folder: {time.perf_counter() - start:.1f} s", flush=True)
    print("| added | FaissStore.add (s) | save after the add (s) | rebuild (s) |\n|---|---|---|---|")
    for count in args.adds:
        new = clustered(rng, centres, count, args.noise)
        start = time.perf_counter()
        new_ids = collection.append(new)
        if index is None:
            store.add(new_ids, new)
        else:
            add_encoded(index, VideoEncoding(video_embeds=torch.from_numpy(new)),
                        [f"video-{i:07d}.mp4" for i in new_ids])
            assert np.array_equal(index.row_ids[-count:], new_ids)
        added = time.perf_counter() - start
        saved = "-"
        if index is not None:
            start = time.perf_counter()
            index.save(folder / "index")
            saved = f"{time.perf_counter() - start:.1f}"
        print(f"| {count} | {added:.2f} | {saved} | {build:.1f} (a build of {args.size}) |", flush=True)

    # 2. replace a share of the collection
    vectors, ids = collection.current()
    recall_before = recall_at(store.search(queries, 10)[1], exact_top(vectors, ids, queries))
    gone = np.sort(rng.choice(ids, replaced, replace=False))
    collection.alive[gone] = False
    start = time.perf_counter()
    if index is None:
        store.remove(gone)
    else:
        gone_paths = {f"video-{i:07d}.mp4" for i in gone}
        remove_videos(index, [path for path in index.paths if path in gone_paths])
    new = clustered(rng, centres, replaced, args.noise)
    new_ids = collection.append(new)
    store.add(new_ids, new) if index is None else add_encoded(index, VideoEncoding(video_embeds=torch.from_numpy(new)),
                                                              [f"video-{i:07d}.mp4" for i in new_ids])
    update = time.perf_counter() - start
    vectors, ids = collection.current()
    truth = exact_top(vectors, ids, queries)
    recall_after = recall_at(store.search(queries, 10)[1], truth)
    print(f"\nreplaced {args.replace:.0%} ({replaced} removed + {replaced} added in {update:.1f} s): recall@10 "
          f"{recall_before:.3f} before, {recall_after:.3f} after", flush=True)
    if args.rebuild:
        start = time.perf_counter()
        rebuilt = FaissStore.build(ids, vectors, "ivf-hnsw", tune_queries=tune, gather=collection.gather)
        print(f"rebuilt on the final collection: {time.perf_counter() - start:.1f} s, recall@10 "
              f"{recall_at(rebuilt.search(queries, 10)[1], truth):.3f} (nprobe {rebuilt.info['nprobe']})", flush=True)
        del rebuilt
    shutil.rmtree(folder, ignore_errors=True)


def faiss_vs_milvus(args, collection: Collection, queries, tune) -> None:
    # 3. FAISS vs Milvus Lite on the same vectors
    vectors, ids = collection.current()
    size = min(args.milvus_size, len(ids))
    vectors, ids = np.ascontiguousarray(vectors[:size]), ids[:size]
    truth = exact_top(vectors, ids, queries)
    single = queries[:args.single_queries]
    print(f"\nFAISS vs Milvus Lite on the same {size} vectors (single queries, 2 threads)\n"
          "| store | insert / build (s) | ms/query | recall@10 |\n|---|---|---|---|")
    lookup = np.zeros(ids.max() + 1, dtype=np.int64)
    lookup[ids] = np.arange(size)
    for index_type in ("flat", "ivf-hnsw"):
        start = time.perf_counter()
        faiss_store = FaissStore.build(ids, vectors, index_type, tune_queries=tune,
                                       gather=lambda wanted: torch.from_numpy(vectors[lookup[np.asarray(wanted)]]))
        built = time.perf_counter() - start
        latency = per_query_ms(lambda q: faiss_store.search(q, 10), single)
        print(f"| FAISS {index_type} | {built:.1f} | {latency:.2f} | "
              f"{recall_at(faiss_store.search(queries, 10)[1], truth):.3f} |", flush=True)
    from tvr.retrieval import milvus

    uri = tempfile.mkdtemp(prefix="bench-milvus-") + "/videos.db"
    store = milvus.MilvusStore.create(uri, "bench.index")
    start = time.perf_counter()
    store.add(ids, vectors, [{"path": f"video-{i:07d}.mp4"} for i in ids])
    store.client.flush(store.name)
    inserted = time.perf_counter() - start
    store.search(single[:1], 10)  # the first search loads the collection
    latency = per_query_ms(lambda q: store.search(q, 10), single)
    print(f"| Milvus Lite FLAT | {inserted:.1f} | {latency:.2f} | {recall_at(store.search(queries, 10)[1], truth):.3f} |",
          flush=True)
    milvus.close(uri)
    shutil.rmtree(Path(uri).parent, ignore_errors=True)


if __name__ == "__main__":
    main()
