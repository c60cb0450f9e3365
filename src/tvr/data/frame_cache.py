"""Decode each video clip once: its resized, cropped uint8 frames kept on disk (memory-mapped) or in memory.

Decoding dominates a training step's data time; the frames the video processor makes before rescaling and
normalising (``(num_frames, 3, height, width)`` uint8) are all later epochs and runs need. :class:`FrameCache`
keeps them as ``.npy`` files read back memory-mapped, one per clip, under a key that names everything that decides
them: the file (absolute path, size, modification time), the clip (``start``, ``end``) and every processor setting
except the ones applied afterwards (rescale, normalisation). :class:`CachedVideoProcessor` puts either store in
front of a processor, for training (``TrainingConfig.frame_cache_dir`` / ``cache_videos``) and evaluation
(``evaluate_retrieval(frame_cache_dir=...)``, ``tvr eval --frame-cache``).

Writers are crash-safe and may run concurrently (DataLoader workers, several runs on one folder): an entry is
written to a temporary file in its folder and renamed into place, so readers see a whole entry or none; a
temporary file left by a killed writer is never read and is removed by the next writer of that entry; an entry
that does not read back whole (a truncated file) counts as missing and is written again.

An entry is checked before it is served: it ends with a trailer holding the CRC-32 of its frames and the
fingerprint of the video it was decoded from (:func:`tvr.utils.fingerprint.file_fingerprint`: size and a hash of
its first and last MiB). Damaged frames (a bit flip) or a video replaced by another of the same size and
modification time (``cp -p``, ``rsync -a``) make it a miss: the clip is decoded again and the entry rewritten.

The cache folder is tvr's (marked as a ``frame cache`` folder): a non-empty folder holding anything else is refused.

Example::

    cached = CachedVideoProcessor(processor, "frame_cache")   # processor: a TVRProcessor
    batch = cached(videos=paths, do_rescale=False, do_normalize=False)   # uint8, decoded only the first time
    pixel_values = normalize_videos(batch["pixel_values_videos"].cuda(), batch["video_mask"].cuda(),
                                    cached.video_processor)
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

VideoKey = tuple[str, float | None, float | None]  # (video_path, start, end)

FORMAT_VERSION = 2  # part of every key: a change of the entry format leaves old entries unread (2: the trailer)
CACHE_KIND = "frame cache"
# an entry: the .npy bytes, then a JSON trailer {"crc32", "video"}, its length (uint32, little-endian) and this mark
TRAILER_MARK = b"TVRFRAME"
TRAILER_END = struct.Struct("<I8s")
MAX_REMEMBERED_FINGERPRINTS = 100_000  # videos whose fingerprint a process keeps (about 300 bytes each)
# settings that do not change the uint8 frames: applied after them, or how (not what) to decode
_SETTINGS_NOT_IN_KEY = ("do_rescale", "rescale_factor", "do_normalize", "image_mean", "image_std", "decode_threads",
                        "return_metadata", "seed", "processor_class", "_processor_class")


def clip_bound(value: Any) -> float | None:
    """``start`` / ``end`` as stored by the readers -> float seconds, or ``None`` (``None`` / NaN: the whole video)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return float(value)


def video_keys(videos: Sequence[str], start: Any = None, end: Any = None) -> list[VideoKey]:
    """``(path, start, end)`` per video; ``start`` / ``end`` are ``None``, one value, or one value per video."""
    def per_video(value: Any) -> list:
        return list(value) if isinstance(value, (list, tuple)) else [value] * len(videos)
    return [(os.fspath(path), clip_bound(s), clip_bound(e))
            for path, s, e in zip(videos, per_video(start), per_video(end))]


def frame_settings(video_processor: Any) -> dict[str, Any]:
    """The settings of ``video_processor`` that decide its uint8 frames: all of them (``to_dict()``) but rescaling,
    normalisation and decoding threads, so a setting added later is part of the key without listing it here.

    Raises:
        ValueError: the processor shuffles or reverses frames (``frame_order`` other than ``"normal"``): its frames
            differ per call (or per seed) and are not cached. Training's ``train_frame_order`` augmentation reorders
            cached frames afterwards and is unaffected.
    """
    settings = video_processor.to_dict()
    if settings.get("frame_order", "normal") != "normal":
        raise ValueError(f"a video processor with frame_order={settings['frame_order']!r} cannot be cached (its frames "
                         "change per call); cache with frame_order='normal' and reorder afterwards (training: "
                         "train_frame_order)")
    return {name: value for name, value in settings.items() if name not in _SETTINGS_NOT_IN_KEY}


def frame_cache_key(settings: dict[str, Any], video: VideoKey) -> str:
    """The hex SHA-256 naming the frames of ``video`` (``(path, start, end)``) made with ``settings``
    (:func:`frame_settings`); a rewritten file (new size or modification time) gets a new key.

    Raises:
        OSError: the file cannot be ``stat``-ed (missing).
    """
    path, start, end = video
    stat = os.stat(path)
    record = {"format": FORMAT_VERSION, "path": os.path.abspath(path), "size": stat.st_size,
              "mtime_ns": stat.st_mtime_ns, "start": start, "end": end, "settings": settings}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def frames_checksum(frames: np.ndarray) -> int:
    """CRC-32 (zlib) of a C-contiguous array's bytes: catches a flipped bit in a cached entry."""
    return zlib.crc32(memoryview(np.ascontiguousarray(frames)).cast("B"))


def same_video(recorded: dict[str, Any] | None, current: dict[str, Any] | None) -> bool:
    """Whether a video's fingerprint (size and content hash) is the one an entry was decoded from; an unknown one
    (``None``: not given) matches."""
    return current is None or (recorded is not None and all(recorded.get(name) == current.get(name)
                                                            for name in ("size", "hash")))


class FrameCache:
    """Frames on disk: one ``<directory>/<key[:2]>/<key>.npy`` file per clip, read back memory-mapped.

    Safe for several processes at once (each writes its own temporary file, then renames it into place; writers of
    one key write identical bytes, the last rename wins) and against interrupted writes (see the module doc).

    Args:
        directory: the cache folder (created and marked as tvr's when first opened); reused across epochs and runs.

    Raises:
        OutputDirError: ``directory`` is a non-empty folder tvr did not write as a frame cache.
    """

    def __init__(self, directory: str | os.PathLike):
        from ..utils.output_dir import claim_output_dir, read_marker, write_marker

        self.directory = Path(directory)
        self._warned = False
        # tvr 0.1's caches (no marker) hold only the entries' <key[:2]> folders
        claim_output_dir(self.directory, CACHE_KIND, legacy=("[0-9a-f][0-9a-f]",), what="frame cache folder")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if read_marker(self.directory) is None:
                write_marker(self.directory, CACHE_KIND)  # files=None: entries are added by any run
        except OSError:  # a read-only place: entries are read, and put warns once
            pass

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.npy"

    def get(self, key: str, video: dict[str, Any] | None = None) -> np.ndarray | None:
        """The ``(num_frames, 3, height, width)`` uint8 frames of ``key``, memory-mapped (read-only), or ``None`` when
        missing, not whole, damaged (checksum) or decoded from another file than ``video`` (its
        :func:`~tvr.utils.fingerprint.file_fingerprint`; ``None``: not checked)."""
        path = self.path(key)
        try:
            frames = np.load(path, mmap_mode="r", allow_pickle=False)
            trailer = _read_trailer(path, frames.offset + frames.nbytes)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, EOFError):  # a truncated or corrupt file: a miss, written again by put
            return None
        if trailer is None or frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1] != 3 or len(frames) < 1:
            return None
        if not same_video(trailer.get("video"), video) or trailer.get("crc32") != frames_checksum(frames):
            return None
        return frames

    def put(self, key: str, frames: np.ndarray, video: dict[str, Any] | None = None) -> None:
        """Write the entry of ``key`` (with the fingerprint of its ``video``) crash-safely. A failed write (a full
        disk) warns once and leaves no entry: the frames are still used, only not cached."""
        from ..utils.atomic import atomic_write_bytes, remove_leftovers

        path = self.path(key)
        frames = np.ascontiguousarray(frames, dtype=np.uint8)
        buffer = io.BytesIO()
        np.save(buffer, frames, allow_pickle=False)
        trailer = json.dumps({"crc32": frames_checksum(frames), "video": video}, sort_keys=True).encode("utf-8")
        buffer.write(trailer + TRAILER_END.pack(len(trailer), TRAILER_MARK))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_leftovers(path, only_dead_writers=True)  # temporary files of killed writers of this entry
            atomic_write_bytes(path, buffer.getvalue())
        except OSError as error:
            if not self._warned:
                warnings.warn(f"frame cache {os.fspath(self.directory)!r}: could not write {path.name} ({error}); "
                              "decoded frames are used without caching", stacklevel=3)
                self._warned = True


def _read_trailer(path: Path, frames_end: int) -> dict[str, Any] | None:
    """The trailer of an entry whose frames end at byte ``frames_end``, or ``None`` when it is not exactly there
    (torn, trailing bytes, an entry of another format)."""
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size < frames_end + TRAILER_END.size:
            return None
        handle.seek(size - TRAILER_END.size)
        length, mark = TRAILER_END.unpack(handle.read(TRAILER_END.size))
        if mark != TRAILER_MARK or frames_end + length + TRAILER_END.size != size:
            return None
        handle.seek(frames_end)
        trailer = json.loads(handle.read(length))
    return trailer if isinstance(trailer, dict) else None


class InMemoryFrameCache:
    """Frames in this process's memory, with :class:`FrameCache`'s ``get`` / ``put`` (DataLoader workers get a
    copy: what they add is not seen by the main process)."""

    def __init__(self):
        self.entries: dict[str, np.ndarray] = {}
        self.videos: dict[str, dict[str, Any] | None] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, key: str, video: dict[str, Any] | None = None) -> np.ndarray | None:
        return self.entries.get(key) if same_video(self.videos.get(key), video) else None

    def put(self, key: str, frames: np.ndarray, video: dict[str, Any] | None = None) -> None:
        self.entries[key] = np.ascontiguousarray(frames, dtype=np.uint8)
        self.videos[key] = video


class CachedVideoProcessor:
    """A processor whose videos are decoded once per ``(path, start, end)``: their uint8 frames are kept in a
    :class:`FrameCache` (``frame_cache_dir``) or in memory (``None``), 1 byte per value.

    Called like the processor it wraps (``text=``, ``videos=``, ``start=``, ``end=``), returning the same tensors:
    with ``do_rescale=False, do_normalize=False`` the uint8 frames (what training and evaluation ask for, to
    normalise them on the device with :func:`tvr.processing.normalize_videos`), otherwise the processor's float
    values. Videos are paths. Videos that cannot be decoded are remembered in :attr:`failed` (``{key: error}``)
    and raise again, naming the video, whenever they are asked for, without another decoding attempt.

    In memory, call :meth:`fill` before a DataLoader with workers, whose own copies would not persist; on disk,
    workers share what any of them writes.

    Args:
        processor: a ``TVRProcessor`` or a ``TVRVideoProcessor``; its ``frame_order`` must be ``"normal"``.
        frame_cache_dir: folder of the on-disk cache, or ``None`` to keep frames in memory.
    """

    def __init__(self, processor: Any, frame_cache_dir: str | os.PathLike | None = None):
        self.processor = processor
        self.video_processor = getattr(processor, "video_processor", processor)
        self.settings = frame_settings(self.video_processor)
        self.store = FrameCache(frame_cache_dir) if frame_cache_dir is not None else InMemoryFrameCache()
        self.failed: dict[VideoKey, str] = {}
        self._fingerprints: dict[tuple, dict[str, Any]] = {}

    def fill(self, keys: Sequence[VideoKey], batch_size: int = 16, show_progress: bool = True) -> None:
        """Decode every clip not cached (or known bad) yet, ``batch_size`` videos per processor call."""
        todo = [key for key in dict.fromkeys(keys) if key not in self.failed and self._lookup(key) is None]
        for begin in tqdm(range(0, len(todo), batch_size), desc="decoding videos", disable=not show_progress):
            self._decode(todo[begin:begin + batch_size])

    def frames(self, keys: Sequence[VideoKey]) -> list[np.ndarray]:
        """The ``(num_frames, 3, height, width)`` uint8 frames of each clip, decoding (and caching) the missing ones.

        Raises:
            ValueError: a clip could not be decoded (the processor's error, naming the video).
        """
        found = {key: self._lookup(key) for key in dict.fromkeys(keys) if key not in self.failed}
        found.update(self._decode([key for key, frames in found.items() if frames is None]))
        bad = next((key for key in keys if key in self.failed), None)
        if bad is not None:
            raise ValueError(self.failed[bad])
        return [found[key] for key in keys]

    def __call__(self, text: Any = None, videos: Sequence[str] | None = None, start: Any = None, end: Any = None,
                 return_tensors: str = "pt", do_rescale: bool | None = None, do_normalize: bool | None = None,
                 **kwargs: Any) -> dict[str, torch.Tensor]:
        outputs = {}
        if text is not None:
            outputs.update(self.processor(text=text, return_tensors=return_tensors, **kwargs))
        if videos is None:
            return outputs
        if kwargs:  # the cache holds the frames of the processor's own settings only
            raise ValueError(f"CachedVideoProcessor: video options {sorted(kwargs)} change the frames; set them on the "
                             "processor instead")
        if (do_rescale, do_normalize) not in ((None, None), (False, False)):
            raise ValueError("CachedVideoProcessor gives uint8 frames (do_rescale=False, do_normalize=False) or the "
                             f"processor's normalised frames (neither given), got do_rescale={do_rescale}, "
                             f"do_normalize={do_normalize}")
        pixel_values, video_mask = stack_frames(self.frames(video_keys(videos, start, end)),
                                                self.video_processor.max_frames)
        if do_rescale is None:
            from ..processing.normalization import normalize_videos

            pixel_values = normalize_videos(pixel_values, video_mask, self.video_processor)
        outputs.update(pixel_values_videos=pixel_values, video_mask=video_mask)
        return outputs

    def _lookup(self, key: VideoKey) -> np.ndarray | None:
        try:
            return self.store.get(frame_cache_key(self.settings, key), self._fingerprint(key[0]))
        except OSError:  # a missing file: decoding it names the problem
            return None

    def _fingerprint(self, path: str) -> dict[str, Any]:
        """The video's :func:`~tvr.utils.fingerprint.file_fingerprint`, hashed once per version of the file in this
        process (any write to a file changes its ``st_ctime``, even ``cp -p``'s, which keeps the mtime)."""
        from ..utils.fingerprint import file_fingerprint

        stat = os.stat(path)
        version = (os.path.abspath(path), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        if version not in self._fingerprints:
            if len(self._fingerprints) >= MAX_REMEMBERED_FINGERPRINTS:
                self._fingerprints.clear()
            self._fingerprints[version] = file_fingerprint(path)
        return self._fingerprints[version]

    def _decode(self, keys: list[VideoKey]) -> dict[VideoKey, np.ndarray]:
        """Decode ``keys`` (one processor call; the bad ones alone), cache and return the frames of the good ones
        and record the errors of the others in :attr:`failed`."""
        from ..processing.bad_videos import process_videos
        from ..processing.normalization import UINT8_FRAMES

        if not keys:
            return {}
        paths, starts, ends = zip(*keys)
        decoded = process_videos(self.video_processor, paths, starts, ends, **UINT8_FRAMES)
        frames = {}
        if decoded.inputs is not None:
            for row, position in enumerate(decoded.kept):
                num_frames = int(decoded.inputs["video_mask"][row].sum())
                # a copy: a view would keep the whole padded batch alive
                key = keys[position]
                frames[key] = decoded.inputs["pixel_values_videos"][row, :num_frames].numpy().copy()
                try:
                    video = self._fingerprint(key[0])
                except OSError:  # gone since it was decoded: nothing to cache it under
                    continue
                self.store.put(frame_cache_key(self.settings, key), frames[key], video)
        self.failed.update((key, decoded.failed[key[0]]) for key in keys if key[0] in decoded.failed)
        return frames


def stack_frames(videos: Sequence[np.ndarray], max_frames: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(num_frames_i, 3, H, W)`` uint8 clips -> zero-padded ``(batch, max_frames, 3, H, W)`` uint8 frames and the
    ``(batch, max_frames)`` int64 mask, as the video processor pads (``max_frames=None``: the longest clip's)."""
    max_frames = max_frames or max(len(video) for video in videos)
    shapes = {tuple(video.shape[1:]) for video in videos}
    if len(shapes) > 1:
        raise ValueError(f"cached frames differ in size {sorted(shapes)}; enable do_center_crop to batch them")
    shape = (len(videos), max_frames, *shapes.pop())
    if torch.utils.data.get_worker_info() is None:
        pixel_values = torch.empty(shape, dtype=torch.uint8)
    else:  # in a DataLoader worker, build the batch in shared memory (as default_collate does): no copy to get there
        storage = torch.UntypedStorage._new_shared(int(np.prod(shape)))
        pixel_values = torch.empty(0, dtype=torch.uint8).set_(storage).view(shape)
    video_mask = torch.zeros(shape[:2], dtype=torch.int64)
    frames = pixel_values.numpy()
    for index, video in enumerate(videos):
        frames[index, :len(video)] = video  # reads a memory-mapped entry's pages here
        frames[index, len(video):] = 0
        video_mask[index, :len(video)] = 1
    return pixel_values, video_mask


__all__ = ["CachedVideoProcessor", "FrameCache", "InMemoryFrameCache", "frame_cache_key", "frame_settings",
           "stack_frames", "video_keys"]
