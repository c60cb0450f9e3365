"""Crash-safe writing: every file and folder tvr writes appears complete or not at all.

A writer fills a temporary sibling (``.<name>.tmp-...``), flushes it to disk (``fsync`` of each file and folder),
then renames it into place; a rename within one folder is atomic on POSIX file systems, so a reader (or a run
restarted after ``kill -9`` or a power cut) sees either the old version or the new one, never a mix.

Replacing an existing folder takes two renames (no POSIX call swaps two folders portably); between them the old
version waits as ``.<name>.old-<pid>``, and :func:`recover_directory` puts it back if the writer died there.

Example::

    with atomic_directory("out/index") as staging:   # staging: a fresh empty folder
        write_files(staging)
    # out/index now holds exactly what write_files wrote; an exception leaves the old out/index untouched
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator

from .output_dir import claim_output_dir, write_marker

TMP_MARK = ".tmp-"
OLD_MARK = ".old-"


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's or folder's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: str | os.PathLike) -> None:
    """``fsync`` every file and folder under ``root`` (``root`` included), deepest first."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            fsync_path(os.path.join(folder, name))
        fsync_path(folder)


def _sibling(path: Path, mark: str, unique: bool = True) -> Path:
    suffix = f"{os.getpid()}-{uuid.uuid4().hex[:8]}" if unique else "0"
    return path.parent / f".{path.name}{mark}{suffix}"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, ``fsync`` and rename: a crash leaves the old file or the
    new one, never a torn one."""
    path = Path(path)
    tmp = _sibling(path, TMP_MARK)
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` of UTF-8 ``text``."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, value: Any) -> None:
    """:func:`atomic_write_text` of ``value`` as indented JSON; non-finite floats are refused (bare ``NaN`` is not
    JSON)."""
    atomic_write_text(path, json.dumps(value, indent=2, allow_nan=False) + "\n")


def staging_directory(final: str | os.PathLike, unique: bool = True) -> Path:
    """A fresh, empty temporary sibling of ``final`` to fill and then :func:`commit_directory`.

    ``unique=False`` gives every process the same name (``.<name>.tmp-0``), for folders that several processes
    fill together (a distributed checkpoint); a leftover of a killed writer is removed first.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = _sibling(final, TMP_MARK, unique)
    if staging.exists() and unique:
        shutil.rmtree(staging)
    staging.mkdir(exist_ok=not unique)
    return staging


def commit_directory(staging: str | os.PathLike, final: str | os.PathLike) -> None:
    """Flush ``staging`` to disk and rename it to ``final``, replacing a folder already there.

    A replaced folder is first renamed aside (``.<name>.old-<pid>``) and deleted once the new one is in place;
    :func:`recover_directory` restores it if the process dies between the two renames.
    """
    staging, final = Path(staging), Path(final)
    fsync_tree(staging)
    old = None
    if final.exists():
        old = _sibling(final, OLD_MARK)
        os.rename(final, old)
    os.rename(staging, final)
    fsync_path(final.parent)
    # the replaced version, and any a writer killed after its second rename left aside
    for aside in final.parent.glob(f".{final.name}{OLD_MARK}*"):
        shutil.rmtree(aside, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(
    final: str | os.PathLike,
    kind: str | None = None,
    inputs: Iterable[str | os.PathLike] = (),
    legacy: tuple[str, ...] = (),
) -> Iterator[Path]:
    """Fill a staging folder (yielded) and rename it to ``final`` on success; on an exception the staging folder is
    deleted and ``final`` is left as it was.

    ``kind`` (every command's writer gives one): ``final`` is claimed first and again before it is replaced
    (:func:`tvr.utils.output_dir.claim_output_dir`: an occupied folder that tvr did not write as ``kind`` is
    refused, never replaced), and the marker listing what was written is added to the new folder.
    """
    if kind is not None:
        claim_output_dir(final, kind, inputs=inputs, legacy=legacy)
    remove_leftovers(final, only_dead_writers=True)
    staging = staging_directory(final)
    try:
        yield staging
        if kind is not None:
            write_marker(staging, kind, files=[entry.name for entry in staging.iterdir()])
            claim_output_dir(final, kind, inputs=inputs, legacy=legacy)  # nothing moved in meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    commit_directory(staging, final)


def recover_directory(final: str | os.PathLike) -> bool:
    """Put back the previous version of ``final`` when a writer died between the two renames of
    :func:`commit_directory` (``final`` missing, ``.<name>.old-*`` present). Returns whether it did."""
    final = Path(final)
    if final.exists() or not final.parent.is_dir():
        return False
    # a writer that is alive is between its two renames (its new version appears at once): not ours to undo
    olds = sorted((old for old in final.parent.glob(f".{final.name}{OLD_MARK}*")
                   if not _writer_alive(old.name.rsplit(OLD_MARK, 1)[1].split("-")[0])),
                  key=lambda path: path.stat().st_mtime)
    if not olds:
        return False
    os.rename(olds[-1], final)
    fsync_path(final.parent)
    return True


def remove_leftovers(final: str | os.PathLike, only_dead_writers: bool = False) -> None:
    """Delete the staging folders and files killed writers of ``final`` left behind (``.<name>.tmp-*``);
    ``only_dead_writers``: only those whose writing process (the pid in the name) no longer runs."""
    final = Path(final)
    if not final.parent.is_dir():
        return
    for leftover in final.parent.glob(f".{final.name}{TMP_MARK}*"):
        if only_dead_writers and _writer_alive(leftover.name.rsplit(TMP_MARK, 1)[1].split("-")[0]):
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _writer_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


__all__ = [
    "atomic_directory",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "commit_directory",
    "fsync_path",
    "fsync_tree",
    "recover_directory",
    "remove_leftovers",
    "staging_directory",
]
