"""Clips per second into a training batch: decoding every video (the processor) vs reading the frame cache.

Videos: ``--videos`` synthetic 320x240 H.264 files of 10-30 s at 30 fps (moving colour gradients, written once
with tvr.data.synthetic.write_video into ``--workdir``). A clip is CLIP4Clip's default sampling: 1 frame per
second, sliced uniformly to 12, resized and cropped to 224x224, uint8 (the frames training sends to the device).

- *decode*: ``processor(videos=paths, do_rescale=False, do_normalize=False)`` per batch (decord, 1 thread);
- *cache*: :class:`tvr.data.frame_cache.CachedVideoProcessor` on a filled on-disk cache: key (stat + hash), a
  memory-mapped ``.npy`` read and the copy into the padded batch, i.e. what the training collator does per batch.

Both run through a DataLoader (batch ``--batch-size``) with 0 and 2 workers (persistent, started before timing);
each repeat times one pass over ``--videos`` clips (decode) or ``--videos * --cache-passes`` clips (cache, so a
pass lasts long enough to time). The script first checks that both give identical uint8 batches.

    OMP_NUM_THREADS=1 python benchmarks/bench_data.py --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from tvr.data.frame_cache import CachedVideoProcessor
from tvr.data.synthetic import write_video
from tvr.processing import TVRVideoProcessor

UINT8 = dict(do_rescale=False, do_normalize=False)


def make_videos(folder: Path, count: int, fps: int = 30) -> list[str]:
    """``count`` 320x240 videos of 10-30 s (reused when already written)."""
    paths = []
    ys, xs = np.mgrid[0:240, 0:320]
    for index in range(count):
        path = folder / f"video_{index:03d}.mp4"
        seconds = 10 + (index * 7) % 21
        if not path.exists():
            frames = np.empty((seconds * fps, 240, 320, 3), dtype=np.uint8)
            for t in range(len(frames)):  # moving gradients: every frame differs, so decoding does real work
                frames[t, ..., 0] = (xs + 3 * t + index) % 256
                frames[t, ..., 1] = (ys + 2 * t) % 256
                frames[t, ..., 2] = (xs + ys + t) % 256
            write_video(path, frames, fps=fps)
        paths.append(str(path))
    return paths


class Batches:
    """DataLoader collate: sample indices -> a uint8 batch from ``source`` (the processor or the cache)."""

    def __init__(self, source, paths: list[str]):
        self.source, self.paths = source, paths

    def __call__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        return self.source(videos=[self.paths[i % len(self.paths)] for i in indices], **UINT8, return_tensors="pt")


def clips_per_second(source, paths: list[str], clips: int, batch_size: int, workers: int, repeats: int
                     ) -> list[float]:
    options = dict(persistent_workers=True, prefetch_factor=2) if workers else {}
    loader = torch.utils.data.DataLoader(range(clips), batch_size=batch_size, num_workers=workers,
                                         collate_fn=Batches(source, paths), **options)
    next(iter(loader))  # start the workers before timing
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        count = sum(len(batch["video_mask"]) for batch in loader)
        rates.append(count / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cache-passes", type=int, default=16, help="times each cached clip is read per repeat")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--workdir", default=None, help="folder for the videos and the cache (default: temporary)")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_data_"))
    start = time.perf_counter()
    paths = make_videos(workdir / "videos", args.videos)
    print(f"{len(paths)} videos in {workdir / 'videos'} ({time.perf_counter() - start:.0f} s to write or find)")
    processor = TVRVideoProcessor()  # 1 fps, 12 frames, 224x224, decode_threads=1
    cache_dir = workdir / "frame_cache"
    cached = CachedVideoProcessor(processor, cache_dir)
    start = time.perf_counter()
    cached.fill([(path, None, None) for path in paths], batch_size=args.batch_size, show_progress=False)
    print(f"cache filled in {time.perf_counter() - start:.1f} s: {sum(1 for _ in cache_dir.rglob('*.npy'))} entries, "
          f"{sum(p.stat().st_size for p in cache_dir.rglob('*.npy')) / 2**20:.0f} MiB")
    reference = processor(videos=paths[:4], **UINT8, return_tensors="pt")
    from_cache = CachedVideoProcessor(processor, cache_dir)(videos=paths[:4], **UINT8)
    assert from_cache["pixel_values_videos"].dtype == torch.uint8
    assert torch.equal(from_cache["pixel_values_videos"], reference["pixel_values_videos"])
    assert torch.equal(from_cache["video_mask"], reference["video_mask"])

    rows = []
    for workers in args.workers:
        decode = clips_per_second(processor, paths, len(paths), args.batch_size, workers, args.repeats)
        cache = clips_per_second(CachedVideoProcessor(processor, cache_dir), paths, len(paths) * args.cache_passes,
                                 args.batch_size, workers, args.repeats)
        rows.append((workers, decode, cache))

    print(f"\nclips/s of (12, 3, 224, 224) uint8 frames, batch {args.batch_size}, {args.repeats} repeats "
          f"(min / median)\n")
    print("| DataLoader workers | decode (processor) | from cache (mmap + stack) | cache / decode (median) |")
    print("|---|---|---|---|")
    for workers, decode, cache in rows:
        print(f"| {workers} | {min(decode):.1f} / {statistics.median(decode):.1f} | "
              f"{min(cache):.0f} / {statistics.median(cache):.0f} | "
              f"{statistics.median(cache) / statistics.median(decode):.0f}x |")


if __name__ == "__main__":
    main()
