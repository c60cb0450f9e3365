"""Resumable, multi-process encoding of a video collection into shards on disk.

The video list is cut into fixed shards of ``shard_size`` videos (shard ``i`` holds videos ``i * shard_size`` to
``(i + 1) * shard_size - 1``); process ``rank`` of ``world_size`` encodes the shards ``i`` with
``i % world_size == rank`` (one process per GPU, or CPU workers, under ``accelerate launch`` / ``torchrun``). A shard
is two files, each written crash-safely, the JSON last (a shard without it does not count)::

    manifest.json               the model (config fingerprint), the number of videos and shard size, a hash of the list
    shard-000000.safetensors    the encodings of the shard's decodable videos, one tensor per field
    shard-000000.json           the shard's decoded paths, its undecodable ones with their errors, the encoding class

A restart (with any number of processes) skips the finished shards; since shard boundaries do not depend on the
number of processes or on interruptions, the result is the same as one uninterrupted run's.
:func:`read_shards` gathers them in video order for the final index.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm
from transformers.utils import ModelOutput

from ..processing.bad_videos import process_videos
from ..processing.normalization import UINT8_FRAMES, video_inputs_on_device
from ..utils.atomic import atomic_write_bytes, atomic_write_json

MANIFEST_FILE = "manifest.json"


def model_fingerprint(model) -> str:
    return hashlib.sha256(model.config.to_json_string().encode()).hexdigest()


def _list_hash(paths: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()


def open_shard_folder(folder: str | os.PathLike, model, paths: Sequence[str], shard_size: int) -> Path:
    """Create ``folder`` with its manifest, or check that the one there is for the same model, videos and shard size.

    Raises:
        ValueError: the folder holds shards of another model or another video list / shard size.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"model": model_fingerprint(model), "num_videos": len(paths), "shard_size": shard_size,
                "videos_sha256": _list_hash(paths)}
    manifest_file = folder / MANIFEST_FILE
    if manifest_file.is_file():
        found = json.loads(manifest_file.read_text(encoding="utf-8"))
        if found.get("model") != manifest["model"]:
            raise ValueError(f"resume folder {os.fspath(folder)!r} holds encodings of another model (its config "
                             "differs); delete it or give another folder")
        if found != manifest:
            raise ValueError(f"resume folder {os.fspath(folder)!r} holds shards of another video list or shard size "
                             f"({found['num_videos']} videos in shards of {found['shard_size']}); delete it or give "
                             "another folder")
    else:
        atomic_write_json(manifest_file, manifest)  # several processes may write it: same content, atomic
    return folder


def num_shards(num_videos: int, shard_size: int) -> int:
    return -(-num_videos // shard_size)


def shard_done(folder: Path, shard: int) -> bool:
    return (folder / f"shard-{shard:06d}.json").is_file()


def encode_shards(model, processor, paths: Sequence[str], folder: str | os.PathLike, shard_size: int = 256,
                  batch_size: int = 16, rank: int = 0, world_size: int = 1, on_bad_video: str = "skip",
                  progress: bool = True, dtype: torch.dtype | None = None) -> list[int]:
    """Encode this process's unfinished shards of ``paths`` into ``folder``; returns the shards it encoded.

    Args:
        model, processor: a tvr model (``encode_video``) and its processor.
        shard_size: videos per shard (the unit of resumption); must stay the same across restarts.
        batch_size: videos decoded and encoded per forward pass.
        rank, world_size: this process and the number of processes sharing the work.
        on_bad_video: ``"skip"`` (listed in the shard) or ``"error"``.
        dtype: floating fields are stored in this dtype (``torch.float16`` halves the disk and the pages re-ranking
            reads); default: the model's.
    """
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"shard_size and batch_size must be >= 1, got {shard_size} and {batch_size}")
    paths = list(paths)
    folder = open_shard_folder(folder, model, paths, shard_size)
    mine = [shard for shard in range(rank, num_shards(len(paths), shard_size), world_size)
            if not shard_done(folder, shard)]
    was_training = model.training
    model.eval()
    try:
        for shard in tqdm(mine, desc=f"encoding shards (process {rank})", disable=not progress):
            videos = paths[shard * shard_size:(shard + 1) * shard_size]
            encodings, indexed, failed = [], [], {}
            for start in range(0, len(videos), batch_size):
                batch = videos[start:start + batch_size]
                decoded = process_videos(processor, batch, on_bad_video=on_bad_video, **UINT8_FRAMES)
                failed.update(decoded.failed)
                if decoded.kept:
                    encodings.append(encode_videos(model, processor, decoded.inputs))
                    indexed += [batch[position] for position in decoded.kept]
            write_shard(folder, shard, encodings, indexed, failed, dtype)
    finally:
        model.train(was_training)
    return mine


def write_shard(folder: Path, shard: int, encodings: list[ModelOutput], paths: list[str],
                failed: dict[str, str], dtype: torch.dtype | None = None) -> None:
    from safetensors.torch import save

    from ..modeling.outputs import concat_encodings

    record = {"paths": paths, "failed": failed, "encoding_class": None}
    if encodings:
        encoding = concat_encodings(encodings)
        atomic_write_bytes(folder / f"shard-{shard:06d}.safetensors",
                           save({field: (value.to(dtype) if dtype is not None and value.is_floating_point() else
                                         value).contiguous() for field, value in encoding.items()}))
        record["encoding_class"] = f"{type(encoding).__module__}.{type(encoding).__qualname__}"
    atomic_write_json(folder / f"shard-{shard:06d}.json", record)


def read_shards(folder: str | os.PathLike, paths: Sequence[str]):
    """The encodings (concatenated in video order), indexed paths and ``{path: error}`` failures of a finished
    shard folder.

    Raises:
        ValueError: a shard is missing (some process has not finished).
    """
    from safetensors.torch import load_file

    from ..modeling.outputs import concat_encodings
    from .index import _encoding_class

    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
    if manifest["videos_sha256"] != _list_hash(list(paths)):
        raise ValueError(f"shard folder {os.fspath(folder)!r} holds shards of another video list")
    count = num_shards(manifest["num_videos"], manifest["shard_size"])
    missing = [shard for shard in range(count) if not shard_done(folder, shard)]
    if missing:
        raise ValueError(f"shard folder {os.fspath(folder)!r}: {len(missing)} of {count} shards are not finished "
                         f"(first: shard-{missing[0]:06d}); run the indexing again to finish them")
    encodings, indexed, failed = [], [], {}
    for shard in range(count):
        record = json.loads((folder / f"shard-{shard:06d}.json").read_text(encoding="utf-8"))
        if record["paths"]:
            encoding_class = _encoding_class(record["encoding_class"], f"shard folder {os.fspath(folder)!r}")
            encodings.append(encoding_class(**load_file(folder / f"shard-{shard:06d}.safetensors")))
            indexed += record["paths"]
        failed.update(record["failed"])
    return (concat_encodings(encodings) if encodings else None), indexed, failed


def video_inputs(source) -> tuple[list[str], dict[str, str] | None]:
    """The video paths of ``source`` and ``{path: video_id}`` when it has ids.

    ``source`` is a folder of videos (searched recursively), a list file (``.txt``, one path a line, relative to the
    file's folder), a ``datasets.Dataset`` / a dataset folder saved with ``save_to_disk`` / a tvr annotation file
    (``.jsonl``) with ``video_id`` and ``video_path`` columns (the ``test`` split of a ``DatasetDict``). A video
    captioned several times is indexed once.
    """
    from .index import list_video_files

    if isinstance(source, (str, os.PathLike)):
        source = os.fspath(source)
        if os.path.isfile(source) and source.endswith(".txt"):
            root = os.path.dirname(os.path.abspath(source))
            with open(source, encoding="utf-8") as handle:
                lines = [line.strip() for line in handle if line.strip() and not line.startswith("#")]
            if not lines:
                raise ValueError(f"video list {source!r} names no videos")
            return [os.path.join(root, line) for line in lines], None
        if os.path.isfile(source) and source.endswith(".jsonl"):
            from ..data.readers import load_generic

            source = load_generic(source, video_dir=os.path.dirname(os.path.abspath(source)))
        elif os.path.isfile(os.path.join(source, "dataset_info.json")) or \
                os.path.isfile(os.path.join(source, "dataset_dict.json")):
            from datasets import load_from_disk

            source = load_from_disk(source)
        else:
            return list_video_files(source), None
    if hasattr(source, "keys") and "test" in source.keys():  # a DatasetDict
        source = source["test"]
    missing = {"video_id", "video_path"} - set(source.column_names)
    if missing:
        raise ValueError(f"dataset has no {sorted(missing)} column(s); its columns are {source.column_names}")
    ids = dict(zip(source["video_path"], source["video_id"]))  # keeps the first occurrence's order
    if not ids:
        raise ValueError("dataset holds no videos")
    return list(ids), {path: str(video_id) for path, video_id in ids.items()}


def encode_videos(model, processor, inputs) -> ModelOutput:
    """``model.encode_video`` of processor outputs (uint8 frames normalised on the model's device), on CPU."""
    device = next(model.parameters()).device
    with torch.no_grad():
        encoding = model.encode_video(
            *video_inputs_on_device(inputs, getattr(processor, "video_processor", processor), device))
    return type(encoding)(**{name: value.detach().cpu() for name, value in encoding.items()})


__all__ = ["encode_shards", "open_shard_folder", "read_shards", "video_inputs", "write_shard"]
