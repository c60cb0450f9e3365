"""Training batches: annotation rows -> (caption, video) samples -> processor tensors.

Every random choice of a sample (which caption of an MSR-VTT video, the frame order augmentation) comes from a
generator seeded with ``(seed, epoch, row index)``, so an epoch's batches are the same however the run is split
over processes, workers or restarts.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from datasets import Dataset

# CachedVideoProcessor and video_keys lived here; still importable from this module
from ..data.frame_cache import CachedVideoProcessor, VideoKey, clip_bound, video_keys  # noqa: F401


class CaptionVideoSamples(torch.utils.data.Dataset):
    """The rows of an annotation ``datasets.Dataset`` as training samples.

    A row with a ``captions`` list (MSR-VTT training without expanded sentences) gives a caption drawn afresh
    each epoch; otherwise its ``caption``. Call :meth:`set_epoch` before each epoch (the training loop does;
    Accelerate's ``set_epoch`` skips the dataset when the sampler is sharded over processes). The epoch lives in
    shared memory, so persistent DataLoader workers (which keep their copy of the dataset) see it change.
    """

    def __init__(self, dataset: Dataset, seed: int = 0):
        missing = {"video_path", "caption"} - set(dataset.column_names)
        if missing:
            raise ValueError(f"training dataset lacks columns {sorted(missing)}; it has {dataset.column_names}")
        self.video_paths = list(dataset["video_path"])
        if not all(self.video_paths):
            empty = self.video_paths.index("")
            raise ValueError(f"training row {empty} (video_id {dataset[empty].get('video_id')!r}) has no video file")
        self.captions = list(dataset["captions"] if "captions" in dataset.column_names else dataset["caption"])
        self.starts = list(dataset["start"]) if "start" in dataset.column_names else [None] * len(self.video_paths)
        self.ends = list(dataset["end"]) if "end" in dataset.column_names else [None] * len(self.video_paths)
        self.seed = seed
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        self._epoch.fill_(epoch)

    def __len__(self) -> int:
        return len(self.video_paths)

    def video_key(self, index: int) -> VideoKey:
        return self.video_paths[index], clip_bound(self.starts[index]), clip_bound(self.ends[index])

    def video_keys(self) -> list[VideoKey]:
        """``(path, start, end)`` of every row."""
        return [self.video_key(index) for index in range(len(self))]

    def __getitem__(self, index: int) -> dict[str, Any]:
        generator = np.random.default_rng([self.seed, self.epoch, index])
        caption = self.captions[index]
        if isinstance(caption, list):
            caption = caption[generator.integers(len(caption))]
        return {"caption": caption, "video": self.video_key(index), "augment_seed": int(generator.integers(2**31))}


def order_frames(pixel_values_videos: torch.Tensor, video_mask: torch.Tensor, frame_order: str,
                 generator: np.random.Generator) -> torch.Tensor:
    """Reverse or shuffle the valid (unpadded) frames of one video, the seeds' frame-order augmentation.

    Args:
        pixel_values_videos: ``(num_frames, 3, height, width)``.
        video_mask: ``(num_frames,)``, 1 for the first valid frames, 0 for padding.
        frame_order: ``"normal"``, ``"reverse"`` or ``"shuffle"``.
    """
    if frame_order == "normal":
        return pixel_values_videos
    num_valid = int(video_mask.sum())
    if frame_order == "reverse":
        order = np.arange(num_valid)[::-1].copy()
    elif frame_order == "shuffle":
        order = generator.permutation(num_valid)
    else:
        raise ValueError(f"frame_order must be 'normal', 'reverse' or 'shuffle', got {frame_order!r}")
    reordered = pixel_values_videos.clone()
    reordered[:num_valid] = pixel_values_videos[torch.from_numpy(order)]
    return reordered


class TrainingCollator:
    """Samples of :class:`CaptionVideoSamples` -> model inputs ``input_ids``, ``attention_mask``,
    ``pixel_values_videos`` ``(batch, num_frames, 3, height, width)`` uint8 (the processor's resized, cropped
    frames; the training step normalises them on the device, see :func:`tvr.processing.normalize_videos`),
    ``video_mask``, with the frame order augmentation applied.

    Samples whose video cannot be decoded are left out of the batch (``on_bad_video="skip"``; never fed to the model)
    and listed in the batch's ``skipped_videos`` (``{path: error}``, only when any; the loop reports them); a batch
    without any decodable video has no tensors, only ``skipped_videos``. ``on_bad_video="error"`` raises instead.
    """

    def __init__(self, processor, frame_order: str = "normal", on_bad_video: str = "skip"):
        from ..processing.bad_videos import check_bad_video_policy

        self.processor = processor
        self.frame_order = frame_order
        self.on_bad_video = check_bad_video_policy(on_bad_video)

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        from ..processing.bad_videos import process_videos
        from ..processing.normalization import UINT8_FRAMES

        paths, starts, ends = zip(*(sample["video"] for sample in samples))
        decoded = process_videos(self.processor, paths, starts, ends, self.on_bad_video, **UINT8_FRAMES)
        if decoded.inputs is None:
            return {"skipped_videos": decoded.failed}
        samples = [samples[position] for position in decoded.kept]
        text = self.processor(text=[sample["caption"] for sample in samples], return_tensors="pt")
        video_mask, pixel_values = decoded.inputs["video_mask"], decoded.inputs["pixel_values_videos"]
        if self.frame_order != "normal":  # in place: a cached batch is built in a worker's shared memory, keep it there
            for video, mask, sample in zip(pixel_values, video_mask, samples):
                video.copy_(order_frames(video, mask, self.frame_order, np.random.default_rng(sample["augment_seed"])))
        batch = {
            "input_ids": text["input_ids"],
            "attention_mask": text["attention_mask"],
            "pixel_values_videos": pixel_values,
            "video_mask": video_mask,
        }
        if decoded.failed:
            batch["skipped_videos"] = decoded.failed
        return batch
