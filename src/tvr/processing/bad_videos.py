"""One policy for videos that cannot be decoded, used by ``tvr train``, ``tvr eval`` and ``tvr index``.

``on_bad_video="skip"`` (the default): the video is left out, counted, and listed with its error in the command's
output; ``"error"``: the first bad video stops the command with an error naming it. Before a video counts as bad,
the processor has already tried both decoders (decord, then PyAV; see :mod:`tvr.processing.decoding`).
Evaluation, indexing (whole or in shards) and the pipelines (always "error") apply it through one loop,
:func:`tvr.processing.encode_loop.encode_video_batches`; training through its collator.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping, NamedTuple, Sequence

import torch

BAD_VIDEO_POLICIES = ("skip", "error")


def check_bad_video_policy(on_bad_video: str) -> str:
    if on_bad_video not in BAD_VIDEO_POLICIES:
        raise ValueError(f"on_bad_video must be one of {BAD_VIDEO_POLICIES}, got {on_bad_video!r}")
    return on_bad_video


class DecodedVideos(NamedTuple):
    """What :func:`process_videos` made of a batch.

    Attributes:
        inputs: the processor's video outputs (``pixel_values_videos``, ``video_mask``) of the decodable videos, in
            order, or ``None`` when none was.
        kept: positions (in the batch given) of the decodable videos, the rows of ``inputs``.
        failed: ``{path: "ErrorType: message"}`` of the others.
    """

    inputs: Mapping[str, torch.Tensor] | None
    kept: list[int]
    failed: dict[str, str]


def process_videos(processor: Any, videos: Sequence[Any], start: Sequence[Any] | None = None,
                   end: Sequence[Any] | None = None, on_bad_video: str = "skip", **options: Any) -> DecodedVideos:
    """``processor(videos=..., start=..., end=..., return_tensors="pt", **options)`` that leaves out the videos it
    cannot decode (``on_bad_video="skip"``) instead of failing the batch. ``options`` go to every processor call,
    e.g. ``do_rescale=False, do_normalize=False`` for uint8 frames.

    The batch is processed at once; only when that fails is each video processed alone, to find the bad ones (the
    good ones' outputs are concatenated, which equals one call on them).

    Raises:
        The processor's error, ``on_bad_video="error"``.
    """
    check_bad_video_policy(on_bad_video)
    videos = list(videos)
    times = {} if start is None and end is None else {"start": _per_video(start, len(videos)),
                                                      "end": _per_video(end, len(videos))}
    try:
        return DecodedVideos(processor(videos=videos, return_tensors="pt", **times, **options),
                             list(range(len(videos))), {})
    except Exception:  # noqa: BLE001  (any decoder error: find the videos responsible below)
        if on_bad_video == "error":
            raise
    outputs, kept, failed = [], [], {}
    for position, video in enumerate(videos):
        alone = {name: [values[position]] for name, values in times.items()}
        try:
            outputs.append(processor(videos=[video], return_tensors="pt", **alone, **options))
            kept.append(position)
        except Exception as error:  # noqa: BLE001  (reported to the caller, never swallowed)
            failed[str(video)] = f"{type(error).__name__}: {error}"
    if not outputs:
        return DecodedVideos(None, [], failed)
    inputs = {name: torch.cat([output[name] for output in outputs]) for name in ("pixel_values_videos", "video_mask")}
    return DecodedVideos(inputs, kept, failed)


def warn_bad_videos(failed: Mapping[str, str], total: int, what: str, stacklevel: int = 3) -> None:
    """One warning naming how many of ``total`` videos were skipped and the first few with their errors."""
    if not failed:
        return
    shown = "; ".join(f"{path}: {error}" for path, error in list(failed.items())[:3])
    warnings.warn(f"{len(failed)} of {total} videos could not be decoded and were {what} ({shown}"
                  f"{'; ...' if len(failed) > 3 else ''})", stacklevel=stacklevel)


#: bad videos a command names on the terminal; the rest are counted (thousands of dead clips would bury its result)
SHOWN_BAD_VIDEOS = 5


def print_bad_videos(failed: Mapping[str, str], label: str, listed_in: str) -> None:
    """Print the first :data:`SHOWN_BAD_VIDEOS` of ``failed`` ``{path: error}``, one a line (``label: path:
    error``), then how many more there are and where ``listed_in`` they all are."""
    for path, error in list(failed.items())[:SHOWN_BAD_VIDEOS]:
        print(f"{label}: {path}: {error}")
    if len(failed) > SHOWN_BAD_VIDEOS:
        print(f"... and {len(failed) - SHOWN_BAD_VIDEOS} more ({listed_in} lists them all)")


def _per_video(values: Sequence[Any] | None, count: int) -> list:
    return list(values) if values is not None else [None] * count


__all__ = ["BAD_VIDEO_POLICIES", "DecodedVideos", "check_bad_video_policy", "print_bad_videos", "process_videos",
           "warn_bad_videos"]
