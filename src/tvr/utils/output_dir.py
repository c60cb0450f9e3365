"""Output folders: a tvr writer owns what it writes and never deletes or overwrites anything else.

Every folder a tvr command writes carries a small marker, ``.tvr-output.json`` (``{"kind": "index", "files":
[...]}``), naming the kind of folder and, for a folder written whole, the entries tvr put there. A writer first
*claims* its output folder (:func:`claim_output_dir`):

- a missing or empty folder is free;
- a folder tvr wrote as the same kind is the writer's own: it may be replaced (written whole) or continued
  (a training run, a frame cache), provided it holds nothing tvr did not write there;
- anything else (a project folder, the input videos, a folder of another kind) is refused with one line naming it;
- an output folder equal to, or inside, one of the command's input folders is refused too (``OUT = VIDEOS``).

Folders written by tvr before the marker existed are recognised by the files their writer writes (``legacy``).

Example::

    claim_output_dir("out/index", "index", inputs=[video_dir])   # early, before any expensive work
    with atomic_directory("out/index", kind="index") as staging:  # re-checks, then writes the marker
        ...
"""

from __future__ import annotations

import fnmatch
import json
import os
from pathlib import Path
from typing import Iterable

MARKER = ".tvr-output.json"


class OutputDirError(ValueError):
    """tvr refuses to write into a folder it does not own."""


def read_marker(folder: str | os.PathLike) -> dict | None:
    """The marker of a folder tvr wrote (``{"kind", "files"}``), or ``None``."""
    try:
        marker = json.loads((Path(folder) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and isinstance(marker.get("kind"), str) else None


def write_marker(folder: str | os.PathLike, kind: str, files: Iterable[str] | None = None) -> None:
    """Mark ``folder`` as a tvr ``kind`` folder; ``files``: the entries tvr wrote there (``None``: a folder tvr
    keeps adding to under its own names, such as a training run)."""
    marker = Path(folder) / MARKER
    tmp = marker.with_name(f"{MARKER}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps({"kind": kind, "files": None if files is None else sorted(files)}, indent=2) + "\n")
    os.replace(tmp, marker)  # a marker is whole or absent


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def foreign_entries(folder: Path, kind: str, legacy: tuple[str, ...] = ()) -> list[str]:
    """The entries of ``folder`` that a ``kind`` writer did not write (all of them when it is not a ``kind`` folder).
    Hidden temporary siblings of tvr's own writers (``.name.tmp-*``, ``.name.old-*``) are tvr's."""
    entries = sorted(entry.name for entry in folder.iterdir() if entry.name != MARKER)
    entries = [name for name in entries if not (name.startswith(".") and (".tmp-" in name or ".old-" in name))]
    marker = read_marker(folder)
    if marker is not None:
        if marker["kind"] != kind:
            return entries
        if marker.get("files") is None:
            return []
        return [name for name in entries if name not in set(marker["files"])]
    if legacy and next(folder.glob(legacy[0]), None) is not None:
        return [name for name in entries if not any(fnmatch.fnmatch(name, pattern) for pattern in legacy)]
    return entries


def claim_output_dir(
    path: str | os.PathLike,
    kind: str,
    *,
    inputs: Iterable[str | os.PathLike] = (),
    legacy: tuple[str, ...] = (),
    what: str = "output folder",
) -> Path:
    """Check that a ``kind`` writer may write at ``path`` and return it resolved; see the module docstring.

    Args:
        path: the output folder.
        kind: what the writer writes (``"index"``, ``"model"``, ``"training run"``, ...), stored in the marker.
        inputs: folders (or files) the command reads; the output may be neither one of them nor inside one.
        legacy: glob patterns of the files this writer writes, the first one always matched: recognises folders
            written before the marker existed.
        what: how the error names ``path`` (``"index folder"``).

    Raises:
        OutputDirError: one line naming the folder, what is in it and the fix.
    """
    target = Path(path).expanduser().resolve()
    for source in inputs:
        source = Path(source).expanduser().resolve()
        if source.is_dir() and _inside(target, source):
            raise OutputDirError(
                f"{what} {str(path)!r} is inside the input folder {str(source)!r}: tvr does not write among its "
                "inputs; choose a folder outside it"
            )
    if target.exists() and not target.is_dir():
        raise OutputDirError(f"{what} {str(path)!r} is a file, not a folder; choose another path")
    if not target.is_dir():
        return target
    foreign = foreign_entries(target, kind, legacy)
    if foreign:
        marker = read_marker(target)
        holds = ", ".join(repr(name) for name in foreign[:3]) + (f" and {len(foreign) - 3} more" * (len(foreign) > 3))
        if marker is None or marker["kind"] != kind:
            mine = f"a tvr {marker['kind']} folder" if marker else f"not a tvr {kind} folder"
            holds = f"and holds {holds}"
        else:  # tvr's own folder, with files added since
            mine, holds = f"a tvr {kind} folder", f"that also holds {holds}"
        raise OutputDirError(
            f"{what} {str(path)!r} is {mine} {holds}: tvr does not replace or delete files it did not "
            "write; choose a new or empty folder"
        )
    return target


__all__ = ["MARKER", "OutputDirError", "claim_output_dir", "foreign_entries", "read_marker", "write_marker"]
