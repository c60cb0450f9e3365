"""Reading video files with decord: open, describe, and decode only the frames asked for."""

from __future__ import annotations

import io
import os

import numpy as np
from transformers.video_utils import VideoMetadata

VideoFile = str | os.PathLike | bytes


def video_name(video: object) -> str:
    """A short name for a video in error messages: its path, or its size when given as bytes."""
    if isinstance(video, (bytes, bytearray)):
        return f"<{len(video)} bytes>"
    if isinstance(video, (str, os.PathLike)):
        return os.fspath(video)
    return f"<{type(video).__name__}>"


def open_video(video: VideoFile, num_threads: int = 0):
    """Open a video file (path or encoded bytes) with decord.

    Args:
        video: path to a video file, or the file's bytes.
        num_threads: decoding threads (0 lets FFmpeg choose).

    Returns:
        A ``decord.VideoReader``.

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the file is not a video decord can read, or it has no frames.
    """
    import decord

    name = video_name(video)
    if isinstance(video, (bytes, bytearray)):
        source = io.BytesIO(video)
    else:
        source = os.fspath(video)
        if not os.path.isfile(source):
            raise FileNotFoundError(f"video '{name}': file not found")
    try:
        return decord.VideoReader(source, ctx=decord.cpu(0), num_threads=num_threads)
    except AssertionError:  # decord asserts a positive frame count after opening
        raise ValueError(f"video '{name}': 0 decodable frames") from None
    except (RuntimeError, decord.DECORDError) as error:
        reason = _first_line(error)
        if "cannot find video stream" in reason:  # FFmpeg finds no video stream with decodable frames
            raise ValueError(f"video '{name}': 0 decodable frames (no decodable video stream)") from None
        raise ValueError(f"video '{name}': not a video file decord can read ({reason})") from None


def read_metadata(reader) -> VideoMetadata:
    """Frame count and frame rate of an open ``decord.VideoReader`` (reading them decodes nothing)."""
    total_frames = len(reader)
    fps = float(reader.get_avg_fps())
    return VideoMetadata(
        total_num_frames=total_frames, fps=fps, duration=total_frames / fps if fps else None, video_backend="decord"
    )


def read_frames(reader, indices: np.ndarray, name: str = "<video>", video: VideoFile | None = None) -> np.ndarray:
    """Decode the frames at ``indices`` (in that order, repeats allowed) and nothing else.

    decord seeks to the keyframe before the first index and skips forward through the rest, so the cost
    grows with the span of the indices rather than with the video's length alone.

    Args:
        reader: an open ``decord.VideoReader``.
        indices: frame indices to return.
        name: the video's name for error messages.
        video: the file the reader was opened on; lets :func:`read_frames_pyav` stand in where decord fails.

    Returns:
        ``(len(indices), height, width, 3)`` uint8 RGB array.
    """
    import decord

    indices = np.asarray(indices, dtype=np.int64)
    unique, position = np.unique(indices, return_inverse=True)
    try:
        frames = reader.get_batch(unique.tolist())
    except (RuntimeError, decord.DECORDError) as error:
        # decord2 3.4 cannot copy frames of some widths (8, 12, 16, 24, 32, 48, 96, 144 px...): its FFmpeg
        # frames are row-padded and the copy into the batch checks sizes; PyAV reads them correctly
        if video is not None and "DECORDArrayCopyFromTo" in str(error):
            return read_frames_pyav(video, unique, name)[position]
        reason = _first_line(error)
        raise ValueError(f"video '{name}': frames {unique.tolist()} could not be decoded ({reason})") from None
    frames = frames.asnumpy() if hasattr(frames, "asnumpy") else np.asarray(frames)  # any decord bridge
    return frames[position]


def read_frames_pyav(video: VideoFile, indices: np.ndarray, name: str = "<video>") -> np.ndarray:
    """Decode the frames at increasing ``indices`` with PyAV, from the start up to the last one.

    Returns:
        ``(len(indices), height, width, 3)`` uint8 RGB array.
    """
    import av

    wanted = {int(index): position for position, index in enumerate(indices)}
    frames: list[np.ndarray | None] = [None] * len(wanted)
    source = io.BytesIO(video) if isinstance(video, (bytes, bytearray)) else os.fspath(video)
    with av.open(source) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                frames[wanted[index]] = frame.to_ndarray(format="rgb24")
            if index >= max(wanted):
                break
    missing = [index for index, position in wanted.items() if frames[position] is None]
    if missing:
        raise ValueError(f"video '{name}': frames {missing} could not be decoded")
    return np.stack(frames)


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
