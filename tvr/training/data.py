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
from tqdm.auto import tqdm

VideoKey = tuple[str, float | None, float | None]  # (video_path, start, end)


def _clip_bound(value: Any) -> float | None:
    """``start`` / ``end`` as stored by the readers: float seconds, or None / NaN for the whole video."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return float(value)


class CaptionVideoSamples(torch.utils.data.Dataset):
    """The rows of an annotation ``datasets.Dataset`` as training samples.

    A row with a ``captions`` list (MSR-VTT training without expanded sentences) gives a caption drawn afresh
    each epoch; otherwise its ``caption``. Call :meth:`set_epoch` before each epoch (the training loop does;
    Accelerate's ``set_epoch`` skips the dataset when the sampler is sharded over processes).
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
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.video_paths)

    def video_key(self, index: int) -> VideoKey:
        return self.video_paths[index], _clip_bound(self.starts[index]), _clip_bound(self.ends[index])

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


def video_keys(videos: list[str], start=None, end=None) -> list[VideoKey]:
    """``(path, start, end)`` per video; ``start`` / ``end`` are ``None``, one value, or one value per video."""
    def per_video(value):
        return list(value) if isinstance(value, (list, tuple)) else [value] * len(videos)
    return [(path, _clip_bound(s), _clip_bound(e)) for path, s, e in zip(videos, per_video(start), per_video(end))]


class CachedVideoProcessor:
    """A processor whose video outputs are computed once per ``(path, start, end)`` and kept in memory.

    Called like the processor it wraps (``text=``, ``videos=``, ``start=``, ``end=``), so the training collator and
    the evaluation harness both use it. For small datasets (the demo trains several epochs on a few hundred short
    videos) where decoding every epoch costs more than the model. Memory: ``max_frames * 3 * height * width * 4``
    bytes per video. Call :meth:`fill` before a DataLoader with workers, whose own copies would not persist.
    Videos that cannot be decoded are remembered in :attr:`failed` (``{key: error}``) and raise again, naming the
    video, whenever they are asked for, without another decoding attempt.
    """

    def __init__(self, processor):
        self.processor = processor
        self.videos: dict[VideoKey, tuple[torch.Tensor, torch.Tensor]] = {}
        self.failed: dict[VideoKey, str] = {}

    def fill(self, keys: list[VideoKey], batch_size: int = 16, show_progress: bool = True) -> None:
        """Decode every key not cached (or known bad) yet, ``batch_size`` videos per processor call."""
        todo = list(dict.fromkeys(key for key in keys if key not in self.videos and key not in self.failed))
        for begin in tqdm(range(0, len(todo), batch_size), desc="decoding videos", disable=not show_progress):
            self._decode(todo[begin:begin + batch_size])

    def _decode(self, keys: list[VideoKey]) -> None:
        from ..processing.bad_videos import process_videos

        paths, starts, ends = zip(*keys)
        decoded = process_videos(self.processor, paths, starts, ends)
        if decoded.inputs is not None:
            kept = [keys[position] for position in decoded.kept]
            self.videos.update(zip(kept, zip(decoded.inputs["pixel_values_videos"], decoded.inputs["video_mask"])))
        self.failed.update((key, decoded.failed[key[0]]) for key in keys if key[0] in decoded.failed)

    def __call__(self, text=None, videos=None, start=None, end=None, return_tensors="pt", **kwargs):
        outputs = {}
        if text is not None:
            outputs.update(self.processor(text=text, return_tensors=return_tensors, **kwargs))
        if videos is not None:
            keys = video_keys(videos, start, end)
            missing = [key for key in dict.fromkeys(keys) if key not in self.videos and key not in self.failed]
            if missing:
                self._decode(missing)
            bad = next((key for key in keys if key in self.failed), None)
            if bad is not None:
                raise ValueError(self.failed[bad])
            outputs["pixel_values_videos"] = torch.stack([self.videos[key][0] for key in keys])
            outputs["video_mask"] = torch.stack([self.videos[key][1] for key in keys])
        return outputs


class TrainingCollator:
    """Samples of :class:`CaptionVideoSamples` -> model inputs ``input_ids``, ``attention_mask``,
    ``pixel_values_videos`` ``(batch, num_frames, 3, height, width)``, ``video_mask``, with the frame order
    augmentation applied.

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

        paths, starts, ends = zip(*(sample["video"] for sample in samples))
        decoded = process_videos(self.processor, paths, starts, ends, self.on_bad_video)
        if decoded.inputs is None:
            return {"skipped_videos": decoded.failed}
        samples = [samples[position] for position in decoded.kept]
        text = self.processor(text=[sample["caption"] for sample in samples], return_tensors="pt")
        video_mask = decoded.inputs["video_mask"]
        pixel_values = torch.stack([
            order_frames(video, mask, self.frame_order, np.random.default_rng(sample["augment_seed"]))
            for video, mask, sample in zip(decoded.inputs["pixel_values_videos"], video_mask, samples)
        ])
        batch = {
            "input_ids": text["input_ids"],
            "attention_mask": text["attention_mask"],
            "pixel_values_videos": pixel_values,
            "video_mask": video_mask,
        }
        if decoded.failed:
            batch["skipped_videos"] = decoded.failed
        return batch
