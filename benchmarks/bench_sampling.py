"""Time CLIP4Clip-style frame sampling: TVRVideoProcessor (decord, only the sampled frames) vs the original
OpenCV approach (one seek + read per second, every frame transformed, then sliced to 12).

The video: 30 s, 30 fps, 320x240 H.264 (written with tvr.data.synthetic.write_video, x264 keyframes every 250
frames). Both sides produce the same 12 frames, (12, 3, 224, 224) normalised; the script checks that they agree.

    OMP_NUM_THREADS=1 python benchmarks/bench_sampling.py --repeats 7
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from tvr.data.synthetic import write_video
from tvr.processing import TVRVideoProcessor
from tvr.processing.decoding import open_video, read_frames
from tvr.processing.sampling import sample_frame_indices

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
ORIGINAL_TRANSFORM = transforms.Compose(
    [
        transforms.Resize(224, interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.CenterCrop(224),
        transforms.ToTensor(),
        transforms.Normalize(CLIP_MEAN, CLIP_STD),
    ]
)


def make_video(path: Path, seconds: int = 30, fps: int = 30, height: int = 240, width: int = 320) -> str:
    """Moving colour gradients: every frame differs, so every frame costs the decoder real work."""
    rows, cols = np.mgrid[0:height, 0:width]
    frames = np.empty((seconds * fps, height, width, 3), dtype=np.uint8)
    for index in range(len(frames)):
        frames[index, ..., 0] = (cols + 3 * index) % 256
        frames[index, ..., 1] = (rows + 2 * index) % 256
        frames[index, ..., 2] = (rows + cols + 5 * index) % 256
    return write_video(path, frames, fps=fps)


def original_frames(path: str, threads: int | None, transform: bool) -> np.ndarray | torch.Tensor:
    """CLIP4Clip's OpenCV reader at 1 fps: for each second seek to its first frame and read it (BGR -> RGB,
    then the PIL transforms on every frame read), then keep 12 with np.linspace(0, n - 1, 12)."""
    params = [] if threads is None else [cv2.CAP_PROP_N_THREADS, threads]
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
    frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = int(capture.get(cv2.CAP_PROP_FPS))
    frames = []
    for second in range(0, (frame_count + fps - 1) // fps + 1):
        capture.set(cv2.CAP_PROP_POS_FRAMES, second * fps)
        ok, frame = capture.read()
        if not ok:
            break
        frame = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        frames.append(ORIGINAL_TRANSFORM(Image.fromarray(frame)) if transform else frame)
    capture.release()
    keep = np.linspace(0, len(frames) - 1, 12).astype(int)
    return torch.stack([frames[i] for i in keep]) if transform else np.stack([frames[i] for i in keep])


PROCESSOR = TVRVideoProcessor()  # CLIP4Clip defaults: 1 fps, max_frames 12, uniform slicing, 224


def processor_frames(path: str, threads: int) -> torch.Tensor:
    return PROCESSOR(path, decode_threads=threads)["pixel_values_videos"][0]


def decord_frames(path: str, threads: int) -> np.ndarray:
    reader = open_video(path, num_threads=threads)
    return read_frames(reader, sample_frame_indices(len(reader), reader.get_avg_fps()))


def compare(original, ours, repeats: int) -> dict[str, float]:
    """Median wall and CPU seconds (all threads of this process) of two functions, run alternately so that
    load from other processes on the machine affects both alike."""
    original(), ours()  # warm-up: imports, first allocations
    times = {"original_wall": [], "original_cpu": [], "ours_wall": [], "ours_cpu": []}
    for _ in range(repeats):
        for name, function in (("original", original), ("ours", ours)):
            wall, cpu = time.perf_counter(), time.process_time()
            function()
            times[f"{name}_wall"].append(time.perf_counter() - wall)
            times[f"{name}_cpu"].append(time.process_time() - cpu)
    return {key: statistics.median(values) for key, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        path = make_video(Path(folder) / "bench.mp4")

        # the two pipelines return the same frames; PIL and torch bicubic round a few pixels differently
        # (up to 2 intensity levels at this video's sharp colour wrap-arounds)
        difference = (processor_frames(path, 1) - original_frames(path, None, transform=True)).abs()
        assert difference.max() <= 2.01 / 255 / min(CLIP_STD) and difference.mean() < 1e-3, difference.max()
        assert np.array_equal(decord_frames(path, 1), original_frames(path, None, transform=False))

        rows = []
        for label, threads in (("1 each", 1), ("default (OpenCV's own / decord auto)", 0)):
            cv_threads = 1 if threads == 1 else None
            full = compare(
                lambda: original_frames(path, cv_threads, transform=True),
                lambda: processor_frames(path, threads),
                args.repeats,
            )
            decode = compare(
                lambda: original_frames(path, cv_threads, transform=False),
                lambda: decord_frames(path, threads),
                args.repeats,
            )
            rows.append((label, "full pipeline -> (12, 3, 224, 224)", full))
            rows.append((label, "decoding only -> 12 RGB frames", decode))

    print("| decoding threads | work | original OpenCV: wall / CPU (ms) | tvr: wall / CPU (ms) | speed-up wall / CPU |")
    print("|---|---|---|---|---|")
    for label, work, t in rows:
        print(
            f"| {label} | {work} | {t['original_wall'] * 1e3:.0f} / {t['original_cpu'] * 1e3:.0f} "
            f"| {t['ours_wall'] * 1e3:.0f} / {t['ours_cpu'] * 1e3:.0f} "
            f"| {t['original_wall'] / t['ours_wall']:.1f}x / {t['original_cpu'] / t['ours_cpu']:.1f}x |"
        )


if __name__ == "__main__":
    main()
