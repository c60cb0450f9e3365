"""Finding the video file of each annotation row, and reporting the ones that are not there."""

from __future__ import annotations

import os
import warnings
from typing import Callable, Literal, Sequence

MissingPolicy = Literal["warn", "error", "drop"]
MISSING_POLICIES = ("warn", "error", "drop")


def index_video_files(video_dir: str | os.PathLike, key: Literal["stem", "name"] = "stem") -> dict[str, str]:
    """Walk ``video_dir`` (recursively, in sorted order) and map each file to its path.

    Args:
        video_dir: folder holding the videos, possibly in sub-folders.
        key: ``"stem"`` maps the file name without its last extension (``"a.b.avi"`` -> ``"a.b"``; MSVD, LSMDC,
            ActivityNet, VATEX), ``"name"`` the full file name (DiDeMo).

    Returns:
        ``{key: path}``; when two files share a key the first in sorted walk order wins.
    """
    if not os.path.isdir(video_dir):
        raise FileNotFoundError(f"video_dir {os.fspath(video_dir)!r} is not a folder")
    index: dict[str, str] = {}
    for root, folders, files in os.walk(video_dir):
        folders.sort()
        for name in sorted(files):
            if name.startswith("."):
                continue
            index.setdefault(os.path.splitext(name)[0] if key == "stem" else name, os.path.join(root, name))
    return index


def resolve_video_paths(
    video_ids: Sequence[str],
    find: Callable[[str], str | None],
    missing: MissingPolicy = "warn",
    where: str = "",
    describe: Callable[[str], str] | None = None,
) -> list[str]:
    """Look up the file of each video and report the ones not found.

    Args:
        video_ids: one id per row (repeats allowed).
        find: returns the path of a video id, or ``None`` when there is no file.
        missing: what to do when some videos are missing: ``"warn"`` warns and keeps the rows with
            ``video_path=""``, ``"drop"`` warns and the caller drops them, ``"error"`` raises ``FileNotFoundError``.
        where: names the dataset and folder in the message.
        describe: how a missing video is shown (default its id), e.g. with the paths tried.

    Returns:
        One path per row, ``""`` where the video is missing.
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing={missing!r}: expected one of {MISSING_POLICIES}")
    found: dict[str, str] = {}
    for video_id in video_ids:
        if video_id not in found:
            found[video_id] = find(video_id) or ""
    absent = [video_id for video_id, path in found.items() if not path]
    if absent:
        shown = ", ".join(absent[:5]) + (", ..." if len(absent) > 5 else "")
        message = f"{where}: {len(absent)} of {len(found)} videos not found ({shown})"
        if describe is not None:
            message += f"; looked for {describe(absent[0])}"
        if missing == "error":
            raise FileNotFoundError(message)
        action = "dropping their rows" if missing == "drop" else "keeping their rows with video_path=''"
        warnings.warn(f"{message}; {action} (missing={missing!r})", stacklevel=3)
    return [found[video_id] for video_id in video_ids]


MISSING_VIDEO_ERROR = "FileNotFoundError: no video file on disk (missing when the annotations were read)"


def missing_videos(video_ids: Sequence[str], video_paths: Sequence[str], on_bad_video: str = "skip",
                   where: str = "dataset") -> dict[str, str]:
    """The rows' videos that have no file (``video_path`` empty: the readers keep such rows, warning, with their
    default ``missing="warn"``), as ``{video_id: error}``: ``tvr train`` and ``tvr eval`` leave them out and list
    them with the videos that could not be decoded, one policy for both (``on_bad_video="skip"``).

    Raises:
        FileNotFoundError: ``on_bad_video="error"`` and some video is missing, naming the first ones.
    """
    absent = dict.fromkeys(video_id for video_id, path in zip(video_ids, video_paths) if not path)
    if absent and on_bad_video == "error":
        shown = ", ".join(list(absent)[:5]) + (", ..." if len(absent) > 5 else "")
        raise FileNotFoundError(f"{where}: {len(absent)} videos have no file on disk ({shown}); on_bad_video='error' "
                                "stops at missing videos (with 'skip' they are left out and listed)")
    return {video_id: MISSING_VIDEO_ERROR for video_id in absent}


def first_existing(*paths: str) -> str | None:
    """The first of ``paths`` that is a file, or ``None``."""
    return next((path for path in paths if os.path.isfile(path)), None)
