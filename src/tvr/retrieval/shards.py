"""Resumable, multi-process encoding of a video collection into shards on disk.

The video list is cut into fixed shards of ``shard_size`` videos (shard ``i`` holds videos ``i * shard_size`` to
``(i + 1) * shard_size - 1``); process ``rank`` of ``world_size`` encodes the shards ``i`` with
``i % world_size == rank`` (one process per GPU, or CPU workers, under ``accelerate launch`` / ``torchrun``). A shard
is two files, each written crash-safely, the JSON last (a shard without it does not count)::

    manifest.json               the model (config and weights fingerprints), the number of videos and shard size,
                                a hash of the list
    shard-000000.safetensors    the encodings of the shard's decodable videos, one tensor per field
    shard-000000.json           the shard's decoded paths, its undecodable ones with their errors, the encoding class,
                                each video's fingerprint (size, mtime, hash of its first and last MiB); with
                                windows, one row per window and each row's ``starts`` / ``ends``

A restart (with any number of processes) skips the finished shards; since shard boundaries do not depend on the
number of processes or on interruptions, the result is the same as one uninterrupted run's. What a restart finds
is checked first (:func:`prepare_shard_folder`): shards of other model weights are all dropped (the run starts
over, saying so), a finished shard one of whose videos changed since is encoded again. :func:`read_shards` gathers
the shards in video order for the final index; :func:`remove_shard_folder` deletes only what tvr wrote there.

Videos are encoded by tvr's one decode -> skip bad videos -> encode loop (:mod:`tvr.processing.encode_loop`). This
module is the layer under :mod:`tvr.retrieval.index` and never imports it; what both need (which videos a folder
holds, :func:`list_video_files`; which encoding classes a file may name, :func:`tvr_encoding_class`) lives here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm
from transformers.utils import ModelOutput

from .._deprecated import MODULES as MOVED_MODULES
from ..modeling.outputs import VideoEncoding, concat_encodings
from ..processing.encode_loop import decoder_logs_muted, encode_video_batches  # noqa: F401  (its old home)
from ..processing.windows import encode_windows
from ..utils.atomic import TMP_MARK, atomic_write_bytes, atomic_write_json
from ..utils.fingerprint import file_fingerprint, same_file
from ..utils.output_dir import MARKER, OutputDirError, claim_output_dir, write_marker

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts")
MANIFEST_FILE = "manifest.json"
SHARDS_KIND = "index shards"  # the marker kind of a partial folder
SHARD_PATTERNS = (MANIFEST_FILE, "shard-*.json", "shard-*.safetensors")  # what tvr writes in one


def model_fingerprint(model) -> str:
    return hashlib.sha256(model.config.to_json_string().encode()).hexdigest()


def _list_hash(paths: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(paths).encode()).hexdigest()


def _manifest(model, paths: Sequence[str], shard_size: int, weights: str | None,
              windows: dict[str, Any] | None = None) -> dict[str, Any]:
    manifest = {"model": model_fingerprint(model), "weights": weights, "num_videos": len(paths),
                "shard_size": shard_size, "videos_sha256": _list_hash(paths)}
    return {**manifest, "windows": windows} if windows is not None else manifest


def _read_json(path: Path) -> Any:
    """A JSON file tvr wrote; a damaged one is an error naming it and the fix."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{os.fspath(path)!r} is damaged ({error}); delete it and run `tvr index` again (what it "
                         "recorded is encoded anew)") from None


def open_shard_folder(folder: str | os.PathLike, model, paths: Sequence[str], shard_size: int,
                      weights: str | None = None, windows: dict[str, Any] | None = None) -> Path:
    """Create ``folder`` with its manifest, or check that the one there is for the same model, videos, shard size
    and windows.

    Raises:
        ValueError: the folder holds shards of another model, another video list / shard size, or other windows.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    manifest = _manifest(model, paths, shard_size, weights, windows)
    manifest_file = folder / MANIFEST_FILE
    if manifest_file.is_file():
        found = _read_json(manifest_file)
        if found.get("model") != manifest["model"] or found.get("weights", weights) != weights:
            raise ValueError(f"resume folder {os.fspath(folder)!r} holds encodings of another model (its config or "
                             "weights differ); delete it or give another folder")
        if found.get("windows") != windows:
            raise ValueError(f"resume folder {os.fspath(folder)!r} holds encodings of other windows "
                             f"({found.get('windows')}, now {windows}); run with the same windows, or delete it")
        if {**found, "weights": weights} != manifest:
            raise ValueError(f"resume folder {os.fspath(folder)!r} holds shards of another video list or shard size "
                             f"({found['num_videos']} videos in shards of {found['shard_size']}); delete it or give "
                             "another folder")
    else:
        atomic_write_json(manifest_file, manifest)  # several processes may write it: same content, atomic
    return folder


def prepare_shard_folder(folder: str | os.PathLike, model, paths: Sequence[str], shard_size: int,
                         weights: str | None = None, say: Callable[[str], None] = print,
                         windows: dict[str, Any] | None = None) -> Path:
    """Make ``folder`` ready for :func:`encode_shards` (one process, before the others start): claim it as tvr's
    (refusing a folder of other files), start over when its shards were encoded by other model weights (one line
    through ``say``), and drop the finished shards one of whose videos changed since (size or content), so they
    are encoded again.

    Raises:
        OutputDirError: ``folder`` holds files tvr did not write.
        ValueError: it holds shards of another video list or shard size.
    """
    folder = claim_output_dir(folder, SHARDS_KIND, legacy=SHARD_PATTERNS, what="resume folder")
    manifest_file = folder / MANIFEST_FILE
    if manifest_file.is_file():
        found, expected = _read_json(manifest_file), _manifest(model, paths, shard_size, weights)
        if found.get("weights", weights) != weights:
            other = f"other model weights ({found.get('weights')} then, {weights} now)"
        elif found.get("model") != expected["model"]:
            other = "a model of another config"
        else:
            other = None
        if other:
            say(f"resume folder {os.fspath(folder)!r}: its shards were encoded by {other}: encoding all videos again")
            _remove_tvr_files(folder, keep_folder=True)
    folder.mkdir(parents=True, exist_ok=True)
    write_marker(folder, SHARDS_KIND)
    open_shard_folder(folder, model, paths, shard_size, weights, windows)
    changed = []
    for shard in range(num_shards(len(paths), shard_size)):
        record_file = folder / f"shard-{shard:06d}.json"
        if not record_file.is_file():
            continue
        recorded = _read_json(record_file).get("videos")
        stale = [path for path in paths[shard * shard_size:(shard + 1) * shard_size]
                 if recorded is not None and not same_file(recorded.get(path), path)]
        if stale:
            record_file.unlink()  # encoded again; its .safetensors is rewritten first
            changed += stale
    if changed:
        say(f"resume folder {os.fspath(folder)!r}: {len(changed)} video(s) changed since they were encoded (first: "
            f"{changed[0]}): encoding their shards again")
    return folder


def remove_shard_folder(folder: str | os.PathLike) -> None:
    """Delete what tvr wrote in a partial folder (manifest, shards, marker, leftovers of killed writers) and the
    folder itself once empty; anything else put there stays."""
    _remove_tvr_files(Path(folder), keep_folder=False)


def _remove_tvr_files(folder: Path, keep_folder: bool) -> None:
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        ours = entry.name in (MANIFEST_FILE, MARKER) or (entry.name.startswith("shard-") and entry.suffix in (
            ".json", ".safetensors")) or (entry.name.startswith(".") and TMP_MARK in entry.name)
        if ours and entry.is_file():
            entry.unlink()
    if not keep_folder:
        with contextlib.suppress(OSError):  # not empty: someone else's files stay, with the folder
            folder.rmdir()


@contextlib.contextmanager
def index_lock(index_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold the exclusive lock of the ``tvr index`` runs writing ``index_dir`` (``fcntl.flock`` on
    ``.<name>.lock`` beside it, removed on exit), so that two runs never write one index or its partial folder.

    Raises:
        OutputDirError: another run holds it (one line naming its process).
    """
    index_dir = Path(index_dir).expanduser().absolute()
    lock_file = index_dir.parent / f".{index_dir.name}.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = open(lock_file, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise OutputDirError(f"index folder {os.fspath(index_dir)!r} is being written by another `tvr index` run "
                                 f"(process {holder} holds {os.fspath(lock_file)!r}); wait for it to finish or choose "
                                 "another folder") from None
        # the holder before us may have removed the file after we opened it: lock the file that is there
        try:
            if os.fstat(handle.fileno()).st_ino == os.stat(lock_file).st_ino:
                break
        except FileNotFoundError:
            pass
        handle.close()
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield lock_file
    finally:
        with contextlib.suppress(OSError):
            lock_file.unlink()  # still locked: a run waiting on this inode retries on a fresh file
        handle.close()


def num_shards(num_videos: int, shard_size: int) -> int:
    return -(-num_videos // shard_size)


def shard_done(folder: Path, shard: int) -> bool:
    return (folder / f"shard-{shard:06d}.json").is_file()


def encode_shards(model, processor, paths: Sequence[str], folder: str | os.PathLike, shard_size: int = 256,
                  batch_size: int = 16, rank: int = 0, world_size: int = 1, on_bad_video: str = "skip",
                  progress: bool = True, dtype: torch.dtype | None = None, weights: str | None = None,
                  prepare: bool = True, windows: dict[str, Any] | None = None) -> list[int]:
    """Encode this process's unfinished shards of ``paths`` into ``folder``; returns the shards it encoded.

    Args:
        model, processor: a tvr model (``encode_video``) and its processor.
        shard_size: videos per shard (the unit of resumption); must stay the same across restarts.
        batch_size: videos decoded and encoded per forward pass.
        rank, world_size: this process and the number of processes sharing the work.
        on_bad_video: ``"skip"`` (listed in the shard) or ``"error"``.
        dtype: floating fields are stored in this dtype (``torch.float16`` halves the disk and the pages re-ranking
            reads, but re-scored rankings may then differ from ``tvr eval``'s on near ties); default: the model's.
        weights: the fingerprint of the model's weights (:func:`tvr.utils.fingerprint.weights_fingerprint`),
            recorded in the manifest: a restart with other weights starts over.
        prepare: check the folder first (:func:`prepare_shard_folder`); a launcher's other processes pass ``False``
            once the main process has done it.
        windows: ``{"scales": [seconds, ...], "stride": fraction}``: each video becomes one row per window
            (:func:`tvr.processing.windows.encode_windows`), its start and end recorded in the shard; ``None``: one
            row per video.
    """
    if shard_size < 1 or batch_size < 1:
        raise ValueError(f"shard_size and batch_size must be >= 1, got {shard_size} and {batch_size}")
    paths = list(paths)
    if prepare:
        folder = prepare_shard_folder(folder, model, paths, shard_size, weights, windows=windows)
    folder = open_shard_folder(folder, model, paths, shard_size, weights, windows)
    mine = [shard for shard in range(rank, num_shards(len(paths), shard_size), world_size)
            if not shard_done(folder, shard)]
    for shard in tqdm(mine, desc=f"encoding shards (process {rank})", disable=not progress):
        videos = paths[shard * shard_size:(shard + 1) * shard_size]
        # fingerprinted before decoding: a video rewritten meanwhile no longer matches on a restart
        fingerprints = {path: fingerprint_or_none(path) for path in videos}
        if windows is not None:  # a row per window: its video's path, start and end
            encoded = encode_windows(model, processor, videos, windows["scales"], windows["stride"], batch_size,
                                     on_bad_video, to_cpu=True, mute_decoder_logs=True)
            write_shard(folder, shard, encoded.encodings, [videos[position] for position, _, _ in encoded.rows],
                        encoded.failed, dtype, fingerprints, spans=[(start, end) for _, start, end in encoded.rows])
            continue
        encoded = encode_video_batches(model, processor, videos, batch_size, on_bad_video=on_bad_video, to_cpu=True,
                                       mute_decoder_logs=True)
        write_shard(folder, shard, encoded.encodings, [videos[position] for position in encoded.kept],
                    encoded.failed, dtype, fingerprints)
    return mine


def encode_collection(model, processor, paths: Sequence[str], batch_size: int = 16,
                      resume_dir: str | os.PathLike | None = None, on_bad_video: str = "skip", progress: bool = True,
                      weights: str | None = None, shard_size: int | None = None, dtype: torch.dtype | None = None,
                      desc: str = "indexing videos", windows: dict[str, Any] | None = None):
    """Encode ``paths`` the one way an index does, a fresh build or an update alike: through the shards of
    ``resume_dir`` (resumable, :func:`encode_shards`) when given, else in memory; whole videos, or with ``windows``
    (``{"scales", "stride"}``) one row per window of each video (:func:`tvr.processing.windows.encode_windows`).

    Returns:
        ``(encoding, indexed, failed, fingerprints, spans)``: the encodings of the rows (``None`` when no video
        decoded), each row's video path, ``{path: error}`` of the videos that failed, ``{path: fingerprint}`` taken
        before decoding, and ``(starts, ends)`` of the rows with ``windows`` (else ``None``).
    """
    paths = list(paths)
    if resume_dir is not None:
        size = shard_size or batch_size
        encode_shards(model, processor, paths, resume_dir, shard_size=size, batch_size=batch_size,
                      on_bad_video=on_bad_video, progress=progress, weights=weights, dtype=dtype, windows=windows)
        encoding, indexed, failed = read_shards(resume_dir, paths)
        _, starts, ends = read_shard_windows(resume_dir)
        return encoding, indexed, failed, read_provenance(resume_dir)[1], (starts, ends) if windows else None
    fingerprints = {path: fingerprint_or_none(path) for path in paths}  # before decoding: what was encoded
    if windows is not None:
        encoded = encode_windows(model, processor, paths, windows["scales"], windows["stride"], batch_size,
                                 on_bad_video, progress, to_cpu=True, mute_decoder_logs=True)
        rows = encoded.rows
    else:
        encoded = encode_video_batches(model, processor, paths, batch_size, on_bad_video=on_bad_video, to_cpu=True,
                                       progress=progress, desc=desc, mute_decoder_logs=True)
        rows = [(position, None, None) for position in encoded.kept]
    encoding = concat_encodings(encoded.encodings) if encoded.encodings else None
    if encoding is not None and dtype is not None:
        encoding = type(encoding)(**{name: value.to(dtype) if value.is_floating_point() else value
                                     for name, value in encoding.items()})
    spans = ([start for _, start, _ in rows], [end for _, _, end in rows]) if windows is not None else None
    return encoding, [paths[position] for position, _, _ in rows], encoded.failed, fingerprints, spans


def fingerprint_or_none(path: str) -> dict[str, Any] | None:
    """A video's :func:`~tvr.utils.fingerprint.file_fingerprint`, or ``None`` when it cannot be read."""
    try:
        return file_fingerprint(path)
    except OSError:  # missing: decoding reports it
        return None


def write_shard(folder: Path, shard: int, encodings: list[ModelOutput], paths: list[str],
                failed: dict[str, str], dtype: torch.dtype | None = None,
                fingerprints: dict[str, Any] | None = None, spans: list[tuple[float, float]] | None = None) -> None:
    from safetensors.torch import save

    record = {"paths": paths, "failed": failed, "encoding_class": None, "videos": fingerprints}
    if spans is not None:  # a windowed shard: each row's window, beside its path
        record["starts"], record["ends"] = [start for start, _ in spans], [end for _, end in spans]
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
        ValueError: a shard is missing (some process has not finished), or a file is damaged (named).
    """
    folder = Path(folder)
    manifest = _read_json(folder / MANIFEST_FILE)
    if manifest["videos_sha256"] != _list_hash(list(paths)):
        raise ValueError(f"shard folder {os.fspath(folder)!r} holds shards of another video list")
    count = num_shards(manifest["num_videos"], manifest["shard_size"])
    missing = [shard for shard in range(count) if not shard_done(folder, shard)]
    if missing:
        raise ValueError(f"shard folder {os.fspath(folder)!r}: {len(missing)} of {count} shards are not finished "
                         f"(first: shard-{missing[0]:06d}); run the indexing again to finish them")
    encodings, indexed, failed = [], [], {}
    for shard in range(count):
        record = _read_json(folder / f"shard-{shard:06d}.json")
        if record["paths"]:
            encoding_class = tvr_encoding_class(record["encoding_class"], f"shard folder {os.fspath(folder)!r}")
            encodings.append(encoding_class(**_load_shard_tensors(folder / f"shard-{shard:06d}.safetensors")))
            indexed += record["paths"]
        failed.update(record["failed"])
    return (concat_encodings(encodings) if encodings else None), indexed, failed


def read_shard_windows(folder: str | os.PathLike) -> tuple[dict[str, Any] | None, list[float] | None,
                                                      list[float] | None]:
    """The windows of a finished shard folder: ``(its {"scales", "stride"}, every row's start, every row's end)`` in
    the row order of :func:`read_shards`; ``(None, None, None)`` when its rows are whole videos."""
    folder = Path(folder)
    manifest = _read_json(folder / MANIFEST_FILE)
    if manifest.get("windows") is None:
        return None, None, None
    starts, ends = [], []
    for shard in range(num_shards(manifest["num_videos"], manifest["shard_size"])):
        record = _read_json(folder / f"shard-{shard:06d}.json")
        starts += record["starts"]
        ends += record["ends"]
    return manifest["windows"], starts, ends


def read_provenance(folder: str | os.PathLike) -> tuple[str | None, dict[str, Any]]:
    """What a finished shard folder was built from: ``(weights fingerprint, {path: video fingerprint})``."""
    folder = Path(folder)
    manifest = _read_json(folder / MANIFEST_FILE)
    videos = {}
    for shard in range(num_shards(manifest["num_videos"], manifest["shard_size"])):
        videos.update(_read_json(folder / f"shard-{shard:06d}.json").get("videos") or {})
    return manifest.get("weights"), videos


def _load_shard_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except Exception as error:  # noqa: BLE001  (safetensors' errors do not name the file)
        raise ValueError(f"{os.fspath(path)!r} is damaged ({type(error).__name__}: {error}); delete it and its .json "
                         "and run `tvr index` again to encode its shard anew") from None


def list_video_files(video_dir: str | os.PathLike) -> list[str]:
    """Video files under ``video_dir`` (recursively, sorted), recognised by extension (:data:`VIDEO_EXTENSIONS`).

    Raises:
        FileNotFoundError: ``video_dir`` is not a folder.
        ValueError: it holds no video file.
    """
    if not os.path.isdir(video_dir):
        raise FileNotFoundError(f"video folder {os.fspath(video_dir)!r} does not exist or is not a folder")
    paths = []  # absolute, so a saved index and search results name the files from any working directory
    for root, folders, files in os.walk(os.path.abspath(video_dir)):
        folders.sort()
        paths += [os.path.join(root, name) for name in sorted(files)
                  if not name.startswith(".") and name.lower().endswith(VIDEO_EXTENSIONS)]
    if not paths:
        raise ValueError(f"video folder {os.fspath(video_dir)!r} holds no video files (extensions {VIDEO_EXTENSIONS})")
    return paths


def tvr_encoding_class(name: str, where: str) -> type:
    """The tvr video-encoding class called ``name`` (``module.QualName``); nothing else is accepted, so an index
    folder can never make tvr import a module of its choosing."""
    import tvr.methods  # noqa: F401  (defines every method's encoding class)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    allowed = {f"{cls.__module__}.{cls.__qualname__}": cls
               for cls in (VideoEncoding, *subclasses(VideoEncoding)) if cls.__module__.startswith("tvr.")}
    # an index saved by tvr 0.1 names the modules the methods lived in then (tvr.modeling.modeling_eercf, ...)
    moved_from = {new: old for old, new in MOVED_MODULES.items()}
    allowed |= {f"{moved_from[module]}.{qualname}": cls for module, qualname, cls in
                (key.rsplit(".", 1) + [cls] for key, cls in list(allowed.items())) if module in moved_from}
    if name not in allowed:
        raise ValueError(f"{where}: encoding_class {name!r} is not a tvr video encoding; expected one of "
                         f"{sorted(allowed)}")
    return allowed[name]


def video_inputs(source) -> tuple[list[str], dict[str, str] | None]:
    """The video paths of ``source`` and ``{path: video_id}`` when it has ids.

    ``source`` is a folder of videos (searched recursively), a list file (``.txt``, one path a line, relative to the
    file's folder), a ``datasets.Dataset`` / a dataset folder saved with ``save_to_disk`` / a tvr annotation file
    (``.jsonl``) with ``video_id`` and ``video_path`` columns (the ``test`` split of a ``DatasetDict``). A video
    captioned several times is indexed once.
    """
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


__all__ = ["VIDEO_EXTENSIONS", "encode_collection", "encode_shards", "index_lock", "list_video_files",
           "open_shard_folder", "prepare_shard_folder", "read_provenance", "read_shard_windows", "read_shards",
           "remove_shard_folder", "tvr_encoding_class", "video_inputs", "write_shard"]
