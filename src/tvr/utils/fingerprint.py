"""Fingerprints: what an artefact was built from, cheap to record and cheap to check again.

An index records the fingerprint of the model weights it encoded with and of every video it encoded; an adapter
records its base's; a frame-cache entry its video's. A reader recomputes them and names both sides when they differ
(:func:`check_fingerprint`), so nothing is silently used with weights or videos it was not built from.

A file's fingerprint is its size, modification time and a BLAKE2 hash of its first and last MiB (the whole file
when smaller): a re-encoded, retrained or rewritten file changes it even when size and mtime are kept (``cp -p``).
Weights are hashed the same way at a few more places (every safetensors file of a folder, by name), since
retraining changes every tensor; checkpoints, which must detect any edit, hash whole files
(:func:`content_hash`).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

MIB = 1 << 20
# weights: a sampled hash (this many 1 MiB blocks spread over the file, first and last included)
WEIGHT_BLOCKS = 8


def _sampled_hash(path: Path, size: int, blocks: int) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        if size <= blocks * MIB:
            for chunk in iter(lambda: handle.read(MIB), b""):
                digest.update(chunk)
        else:
            for i in range(blocks):
                handle.seek((size - MIB) * i // (blocks - 1))
                digest.update(handle.read(MIB))
    return digest.hexdigest()


def content_hash(path: str | os.PathLike) -> str:
    """BLAKE2 hash (hex) of a whole file's bytes: detects any edit, at the cost of reading it all."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(4 * MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """``{"size", "mtime_ns", "hash"}`` of one file (a video): hash of its first and last MiB.

    Raises:
        FileNotFoundError: naming the file.
    """
    path = Path(path)
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "hash": _sampled_hash(path, stat.st_size, 2)}


def same_file(recorded: dict[str, Any] | None, path: str | os.PathLike) -> bool:
    """Whether ``path`` still is the file ``recorded`` describes (size and content hash; a changed mtime alone,
    as after a plain ``cp``, does not count as a change)."""
    if not recorded:
        return False
    try:
        current = file_fingerprint(path)
    except OSError:
        return False
    return current["size"] == recorded.get("size") and current["hash"] == recorded.get("hash")


def weights_fingerprint(model_dir: str | os.PathLike) -> str:
    """One hash for the weights of a saved model folder: every ``*.safetensors`` file in it (an adapter folder: its
    adapter file; a DAVRL run's ``base/`` is fingerprinted separately), by name, size and sampled content.

    Raises:
        FileNotFoundError: when the folder holds no safetensors file.
    """
    model_dir = Path(model_dir)
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"{model_dir}: no *.safetensors weights to fingerprint")
    digest = hashlib.blake2b(digest_size=16)
    for file in files:
        size = file.stat().st_size
        digest.update(f"{file.name}:{_sampled_hash(file, size, WEIGHT_BLOCKS)};".encode())
    return digest.hexdigest()


class FingerprintMismatch(ValueError):
    """An artefact is used with inputs other than those it was built from."""


def check_fingerprint(what: str, recorded: Any, current: Any, fix: str) -> None:
    """Raise :class:`FingerprintMismatch` naming both sides when ``recorded`` (what the artefact was built from) is
    not ``current``; ``fix`` says what to do (``"rebuild the index, or pass --allow-model-change"``). A missing
    record (an artefact from an older tvr) passes."""
    if recorded is None or recorded == current:
        return
    raise FingerprintMismatch(f"{what}: built from {recorded}, now {current}; {fix}")


__all__ = [
    "FingerprintMismatch",
    "check_fingerprint",
    "content_hash",
    "file_fingerprint",
    "same_file",
    "weights_fingerprint",
]
