"""First-stage search at scale: build time, memory, ms/query and recall@10 of each index type of ``VideoIndex``.

Synthetic clustered embeddings stand in for video embeddings: ``--clusters`` random unit centres, each video a centre
plus Gaussian noise of the same norm, L2-normalised (512-d like CLIP ViT-B). Queries are drawn the same way but
separately from the videos (a text query is not one of the indexed vectors); the tuned index is tuned on another
500 such queries, never on the measured ones. Recall@10 is measured against exact search.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_search.py --size 100000
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_search.py --size 1000000 --types flat ivf-hnsw

``--serve``: serving under load (issue 26). The ``ivf-hnsw`` index of ``--size`` vectors and their
``encodings.safetensors`` (what ``VideoIndex`` saves) are built once into ``--cache`` (reused by later runs with the
same settings); then a fresh process -- the server -- loads them as ``VideoIndex.load`` does (``FaissStore.load``: the
IVF lists memory-mapped from the index file, their pages handed back past a budget; encodings read by row) and
answers ``--serve-queries`` single queries while a second process burns both cores
with matrix multiplies (``--no-burn`` to leave it out). Reported: per-query p50 / p95 of (a) ``search_index`` top-10
(FAISS + exact re-scoring of 40 rows) and (b) what ``VideoIndex.search`` does on top for a dot-product model: top-50
candidates (200 rows re-scored), then those 50 rows gathered again and scored by torch; text encoding excluded. And
the server's resident memory (VmRSS, RssAnon, RssFile of /proc/self/status) after its imports, after loading and
after the queries. ``--server FOLDER`` runs the server alone (e.g. with another tree's ``tvr`` on PYTHONPATH).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_search.py --serve --size 1000000 [--warm]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from tvr.retrieval.faiss_index import build_faiss_index, recall_at, search_index

# the second process of --serve: both cores busy with matrix multiplies (OpenBLAS threads), until it is killed or
# the server dies (Linux: PR_SET_PDEATHSIG, so a server killed mid-run leaves no burner behind to skew later runs)
BURN = ("import ctypes, signal, sys\nif sys.platform == 'linux':\n    ctypes.CDLL(None).prctl(1, signal.SIGKILL)\n"
        "import numpy as np\na = np.random.rand(600, 600)\nwhile True:\n    a = (a @ a) / 600.0\n")


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


def status_memory() -> dict[str, float]:
    """This process's VmRSS, RssAnon, RssFile and VmHWM in MiB (/proc/self/status)."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "RssAnon", "RssFile", "VmHWM"):
            fields[name] = round(int(value.split()[0]) / 1024, 1)
    return fields


def build_cache(args, rng, centres) -> Path:
    """The --serve index folder for these settings: built (minutes at 1M) unless a finished one is there."""
    from safetensors.numpy import save_file

    folder = Path(args.cache) / f"{args.size}x{args.dim}-c{args.clusters}-n{args.noise}-t{args.target_recall}"
    if (folder / "meta.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    videos = clustered(rng, centres, args.size, args.noise)
    tune_queries = clustered(rng, centres, 1000, args.noise)
    measured = clustered(rng, centres, args.queries, args.noise)
    served = clustered(rng, centres, args.serve_queries, args.noise)
    faiss.omp_set_num_threads(2)
    start = time.perf_counter()
    index, info = build_faiss_index(videos, "ivf-hnsw", target_recall=args.target_recall, tune_queries=tune_queries)
    build = time.perf_counter() - start
    exact = faiss.IndexFlatIP(args.dim)
    exact.add(videos)
    _, truth = exact.search(measured, 10)
    _, rows = search_index(index, info, measured, 10, videos)
    save_file({"video_embeds": videos}, folder / "encodings.safetensors")
    faiss.write_index(index, os.fspath(folder / "index.faiss"))
    np.save(folder / "queries.npy", served)
    meta = {"info": info, "build_seconds": round(build, 1), "third_split_recall": round(recall_at(rows, truth), 4),
            "third_split_queries": args.queries}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2))
    return folder


def serve(folder: Path, num_queries: int, burn: bool, gap: float, lists_in_memory: bool = False) -> dict:
    """The server process: load like VideoIndex.load, answer single queries, measure latency and memory."""
    import contextlib

    import torch

    import tvr
    try:  # this tree; the code before issue 26 (tvr of another tree on PYTHONPATH): its reads and scoring, below
        from tvr.retrieval.rows import gather_rows, mmap_safetensors, on_calling_thread
    except ImportError:
        gather_rows, on_calling_thread = lambda values, rows: values[torch.as_tensor(rows)], lambda elements: (
            contextlib.nullcontext())

        def mmap_safetensors(path):  # as tvr.retrieval.index.mmap_safetensors was: an np.memmap per tensor
            with open(path, "rb") as handle:
                size = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(size))
            return {name: torch.from_numpy(np.memmap(path, dtype=np.float32, mode="c", offset=8 + size + begin,
                                                     shape=tuple(entry["shape"])))
                    for name, entry in header.items() if name != "__metadata__"
                    for begin, _ in [entry["data_offsets"]]}

    try:  # this tree: the store VideoIndex.load opens; before the store (issue 26): the index read into memory
        from tvr.retrieval.stores import FaissStore
    except ImportError:
        FaissStore = None

    imported = status_memory()  # the libraries alone (torch, FAISS, NumPy), before the index
    torch.set_num_threads(2)
    faiss.omp_set_num_threads(2)
    info = json.loads((folder / "meta.json").read_text())["info"]
    vectors = mmap_safetensors(folder / "encodings.safetensors")["video_embeds"]  # float32 (as the builder saved)
    if FaissStore is not None:  # the index's labels are row numbers: the ids a VideoIndex store would hold
        store = FaissStore.load(folder, info, gather=lambda ids: gather_rows(vectors, ids))
        if lists_in_memory and hasattr(store, "own_lists"):
            store.own_lists()
        lists = "memory-mapped" if getattr(store, "mapped_lists", None) else "in memory"
        first_stage = store.search
    else:
        index, lists = faiss.read_index(os.fspath(folder / "index.faiss")), "in memory"
        faiss.extract_index_ivf(index).nprobe = info["nprobe"]
        faiss.downcast_index(faiss.extract_index_ivf(index).quantizer).hnsw.efSearch = max(64, 2 * info["nprobe"])

        def first_stage(queries, k):
            return search_index(index, info, queries, k, vectors)
    queries = np.load(folder / "queries.npy")[:num_queries]
    burner = subprocess.Popen([sys.executable, "-c", BURN]) if burn else None
    try:
        for query in queries[:50]:  # warm-up
            first_stage(query[None], 10)
        loaded = status_memory()
        times_a, times_b = [], []
        for query in queries:
            query = query[None]
            time.sleep(gap)  # a server waits for its next request (a loop that never waits is sliced as a CPU hog)
            start = time.perf_counter()
            first_stage(query, 10)
            times_a.append(time.perf_counter() - start)
            time.sleep(gap)
            start = time.perf_counter()
            _, rows = first_stage(query, 50)
            gallery = gather_rows(vectors, rows[0][rows[0] >= 0])  # as VideoIndex.search's _select reads them
            with on_calling_thread(gallery.numel()):
                logits = 100.0 * torch.from_numpy(query) @ gallery.T  # a dot-product model's scores
            torch.argsort(logits[0], descending=True, stable=True)[:10]
            times_b.append(time.perf_counter() - start)
        after = status_memory()
    finally:
        if burner is not None:
            burner.kill()
            burner.wait()

    def quantiles(times):
        return {"p50": round(1000 * float(np.percentile(times, 50)), 3),
                "p95": round(1000 * float(np.percentile(times, 95)), 3)}

    return {"tvr": os.path.dirname(tvr.__file__), "ivf_lists": lists, "queries": len(queries), "burn": burn,
            "gap_ms": 1000 * gap,
            "top10_ms": quantiles(times_a), "videoindex_stage_ms": quantiles(times_b),
            "memory_after_imports_mib": imported, "memory_after_load_mib": loaded,
            "memory_after_queries_mib": after, "encodings_mib": round(
                (folder / "encodings.safetensors").stat().st_size / 2**20, 1)}


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
    parser.add_argument("--serve", action="store_true", help="the serving-under-load benchmark (see above)")
    parser.add_argument("--serve-queries", type=int, default=10_000, help="--serve: single queries answered")
    parser.add_argument("--gap-ms", type=float, default=5.0,
                        help="--serve: the server's idle time before each query (as requests arrive), not timed")
    parser.add_argument("--no-burn", dest="burn", action="store_false", help="--serve: no CPU-burning process")
    parser.add_argument("--lists-in-memory", action="store_true",
                        help="--serve: copy the IVF lists into the server's memory (as tvr before mapping them)")
    parser.add_argument("--cache", default="/tmp/tvr-bench-search", help="--serve: where the built index is kept")
    parser.add_argument("--warm", action="store_true",
                        help="--serve: read the encodings file once first (into the page cache, not the server), so "
                             "row reads do not wait for the disk")
    parser.add_argument("--server", default=None, help=argparse.SUPPRESS)  # the server process of --serve
    args = parser.parse_args()
    if args.server:
        print(json.dumps(serve(Path(args.server), args.serve_queries, args.burn, args.gap_ms / 1000,
                               args.lists_in_memory)))
        return

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(args.clusters, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    if args.serve:
        folder = build_cache(args, rng, centres)
        meta = json.loads((folder / "meta.json").read_text())
        print(json.dumps({key: meta[key] for key in ("build_seconds", "third_split_recall", "third_split_queries")}
                         | {"faiss": meta["info"]}))
        if args.warm:
            with open(folder / "encodings.safetensors", "rb") as handle:
                while handle.read(1 << 24):
                    pass
        # a fresh process: its resident memory is the server's alone, not this builder's
        command = [sys.executable, __file__, "--server", os.fspath(folder), "--serve-queries", str(args.serve_queries),
                   "--gap-ms", str(args.gap_ms)]
        subprocess.run(command + ([] if args.burn else ["--no-burn"]) + (
            ["--lists-in-memory"] if args.lists_in_memory else []), check=True)
        return
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
            params += f" (recall {info['tuning_recall']} on the tuning split, {info['measured_recall']} reported)"
        print(f"| {index_type} | {params} | {build:.1f} | {size_mb:.0f} | {recall:.3f} | {' | '.join(cells)} |",
              flush=True)
        del index


if __name__ == "__main__":
    main()
