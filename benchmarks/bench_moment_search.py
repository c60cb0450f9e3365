"""Moment search at hour scale: what windowed encoding costs per video hour, and how long a moment search takes.

1. Encoding: a synthetic long video (``--minutes`` of colour segments, ``--video-fps`` frames a second, ``--size``
   pixels) is encoded as windows (``--windows``, ``--stride``) by the demo's model (meanP, 32x32 frames, 4 a clip,
   1 a second) two ways: ``encode_windows`` (each needed frame decoded once for all windows and scales) and the
   per-window path it replaced (``encode_video_batches`` with each window's start / end: the processor opens and
   decodes every window on its own). Reported per video hour: windows, frames decoded, seconds.
2. Search: a collection of ``--hours`` one-hour videos as windows, one row each (the same plan: about 3,150 rows an
   hour for 4,8,16 s at stride 0.5), with synthetic clustered 128-d embeddings (the demo model's width) standing in
   for the encodings; ``VideoIndex.search_moments`` (FAISS, the model's re-scoring of the pool, per-video NMS) and
   ``VideoIndex.search`` timed one query at a time, for each ``--types``.

    .venv/bin/python benchmarks/bench_moment_search.py --skip-search --minutes 2 --size 360 --video-fps 30
    .venv/bin/python benchmarks/bench_moment_search.py --skip-encoding --hours 100

The two halves run in separate processes: once decord is imported, a FAISS search over some 10,000 rows or more
with 2 or more OpenMP threads crashes the process (SIGSEGV; decord2 3.4 with faiss-cpu 1.15.1, whatever tvr does).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tvr.demo import build_demo_model, build_demo_processor
from tvr.modeling.outputs import VideoEncoding
from tvr.processing import train_clip_tokenizer
from tvr.processing.encode_loop import encode_video_batches
from tvr.processing.windows import encode_windows, parse_window_scales, plan_windows
from tvr.retrieval import VideoIndex

CAPTIONS = ["a red square moves left", "a blue circle appears", "a green triangle moves up then disappears"]


def long_video(path: Path, minutes: float, fps: int, size: int) -> str:
    """Colour segments of 5 to 40 s, random colours, written in blocks (memory stays small)."""
    import av

    rng = np.random.default_rng(0)
    total = int(minutes * 60 * fps)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        written = 0
        while written < total:
            count = min(total - written, int(rng.integers(5, 40)) * fps)
            frame = np.full((size, size, 3), rng.integers(0, 256, 3), dtype=np.uint8)
            for _ in range(count):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            written += count
        container.mux(stream.encode())
    return str(path)


def count_decoded(function):
    """``function()``'s result, its seconds, and the frames decord decoded meanwhile."""
    import tvr.processing.decoding as decoding
    import tvr.processing.video_processing_tvr as video_processing

    counted, original = [0], decoding.read_frames

    def counting(reader, indices, *args, **kwargs):
        counted[0] += len(np.unique(np.asarray(indices)))
        return original(reader, indices, *args, **kwargs)

    decoding.read_frames = video_processing.read_frames = counting
    try:
        start = time.perf_counter()
        result = function()
        return result, time.perf_counter() - start, counted[0]
    finally:
        decoding.read_frames = video_processing.read_frames = original


def clustered(rng, count, dim, clusters=1000, noise=2.0):
    centres = rng.normal(size=(clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, 100_000):
        n = min(100_000, count - start)
        block = centres[rng.integers(clusters, size=n)] + rng.normal(size=(n, dim)).astype(np.float32) * (
            noise / np.sqrt(dim))
        out[start:start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def timed_queries(function, queries, repeats):
    times = []
    for _ in range(repeats):
        for query in queries:
            start = time.perf_counter()
            function(query)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10, help="length of the encoded video")
    parser.add_argument("--video-fps", type=int, default=25)
    parser.add_argument("--size", type=int, default=128, help="frame width and height of the encoded video")
    parser.add_argument("--windows", default="4,8,16")
    parser.add_argument("--stride", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hours", type=int, default=100, help="one-hour videos in the searched collection")
    parser.add_argument("--types", nargs="+", default=["flat", "ivf-hnsw"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--encode-repeats", type=int, default=2, help="timed runs of each encoding path (best kept)")
    parser.add_argument("--skip-encoding", action="store_true")
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    scales = parse_window_scales(args.windows)

    with tempfile.TemporaryDirectory() as folder:
        tokenizer = train_clip_tokenizer(CAPTIONS, Path(folder) / "tokenizer", vocab_size=600)
        model, processor = build_demo_model(tokenizer, sim_header="meanP").eval(), build_demo_processor(tokenizer)
        if not args.skip_encoding:
            video = long_video(Path(folder) / "long.mp4", args.minutes, args.video_fps, args.size)
            per_hour = 60 / args.minutes
            planned = plan_windows(args.minutes * 60, scales, args.stride)
            def shared():
                return encode_windows(model, processor, [video], scales, args.stride, args.batch_size,
                                      on_bad_video="error")

            def per_window():
                return encode_video_batches(model, processor, [video] * len(planned), args.batch_size,
                                            starts=[s for s, _ in planned], ends=[e for _, e in planned],
                                            on_bad_video="error")

            encode_video_batches(model, processor, [video] * 4, 4, starts=[0.0] * 4, ends=[4.0] * 4)  # warm up
            runs = [(count_decoded(shared), count_decoded(per_window)) for _ in range(args.encode_repeats)]
            (windowed, _, shared_frames), (separate, _, separate_frames) = runs[0]
            shared_s = min(first[1] for first, _ in runs)
            separate_s = min(second[1] for _, second in runs)
            same = torch.allclose(torch.cat([e.video_embeds for e in windowed.encodings]),
                                  torch.cat([e.video_embeds for e in separate.encodings]), atol=1e-5)
            print(f"encoding: a {args.minutes:g} min video, {args.video_fps} fps, {args.size}x{args.size}; windows "
                  f"{args.windows} s, stride {args.stride}: {len(planned) * per_hour:,.0f} windows per video hour")
            print(f"  decoded once (encode_windows): {shared_frames * per_hour:,.0f} frames, {shared_s * per_hour:,.1f} s "
                  "per video hour")
            print(f"  per window (before):           {separate_frames * per_hour:,.0f} frames, "
                  f"{separate_s * per_hour:,.1f} s per video hour ({separate_s / shared_s:.1f}x); same encodings: "
                  f"{same}")

        if args.skip_search:
            return
        rng = np.random.default_rng(0)
        hour = plan_windows(3600.0, scales, args.stride)
        rows = len(hour) * args.hours
        embeds = torch.from_numpy(clustered(rng, rows, model.config.projection_dim))
        paths = [f"video-{number:05d}.mp4" for number in range(args.hours) for _ in hour]
        print(f"search: {args.hours} one-hour videos as {rows:,} windows ({len(hour):,} an hour), "
              f"{model.config.projection_dim}-d; median ms per query (one at a time)")
        for index_type in args.types:
            start = time.perf_counter()
            index = VideoIndex(model, processor, paths, VideoEncoding(video_embeds=embeds), index_type=index_type)
            index._set_windows({"scales": scales, "stride": args.stride}, [s for _ in range(args.hours) for s, _ in hour],
                               [e for _ in range(args.hours) for _, e in hour])
            build_s = time.perf_counter() - start
            moments_ms = timed_queries(lambda q: index.search_moments(q, top_k=10), CAPTIONS, args.repeats)
            videos_ms = timed_queries(lambda q: index.search(q, top_k=10), CAPTIONS, args.repeats)
            first_ms = timed_queries(lambda q: index.search_moments(q, top_k=10, rerank_top_k=0), CAPTIONS,
                                     args.repeats)
            print(f"  {index_type:9s} build {build_s:6.1f} s | search_moments top 10: {moments_ms:7.2f} ms "
                  f"(first stage only {first_ms:6.2f} ms) | search (videos) top 10: {videos_ms:7.2f} ms")


if __name__ == "__main__":
    main()
