"""Reading video files with decord: open, describe, and decode only the frames asked for."""

from __future__ import annotations

import io
import os
from typing import Callable

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
    """Decode the frames at ``indices`` (any order, repeats allowed) with PyAV, from the start up to the last one.

    Returns:
        ``(len(indices), height, width, 3)`` uint8 RGB array.

    Raises:
        ValueError: some of those frames could not be decoded (the file is damaged or cut before them).
    """
    indices = np.asarray(indices, dtype=np.int64)
    unique, position = np.unique(indices, return_inverse=True)
    frames, decodable = _decode_pyav(video, set(unique.tolist()))
    missing = [int(index) for index in unique if index not in frames]
    if missing:
        raise ValueError(f"video '{name}': frames {missing} could not be decoded (PyAV decoded {decodable})")
    return np.stack([frames[int(index)] for index in unique])[position]


def read_video_pyav(video: VideoFile, name: str, sample: Callable[[VideoMetadata], np.ndarray]
                    ) -> tuple[np.ndarray, VideoMetadata, np.ndarray]:
    """Read a video decord refused with PyAV: describe it, sample with ``sample(metadata) -> indices``, decode.

    A file cut short (a moov-first mp4 whose end is missing) announces more frames than it holds: then the frames
    PyAV can decode are counted and sampled again from those.

    Returns:
        ``(frames, metadata, indices)``: ``(len(indices), height, width, 3)`` uint8 RGB frames.
    """
    import av

    source = io.BytesIO(video) if isinstance(video, (bytes, bytearray)) else os.fspath(video)
    try:
        with av.open(source) as container:
            if not container.streams.video:
                raise ValueError(f"video '{name}': no video stream")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            total = int(stream.frames or 0)
    except av.error.FFmpegError as error:
        raise ValueError(f"video '{name}': not a video file PyAV can read ({_first_line(error)})") from None
    if total <= 0:
        total = _decode_pyav(video, set())[1]
    metadata = _pyav_metadata(total, fps)
    indices = sample(metadata)
    unique = set(np.asarray(indices).tolist())
    frames, decodable = _decode_pyav(video, unique)
    if len(frames) < len(unique):  # fewer frames than announced: sample from those that decode
        if decodable == 0:
            raise ValueError(f"video '{name}': 0 decodable frames")
        metadata = _pyav_metadata(decodable, fps)
        indices = sample(metadata)
        frames, _ = _decode_pyav(video, set(np.asarray(indices).tolist()))
    return np.stack([frames[int(index)] for index in indices]), metadata, np.asarray(indices)


def _pyav_metadata(total_frames: int, fps: float) -> VideoMetadata:
    return VideoMetadata(total_num_frames=total_frames, fps=fps or None,
                         duration=total_frames / fps if fps else None, video_backend="pyav")


def _decode_pyav(video: VideoFile, wanted: set[int]) -> tuple[dict[int, np.ndarray], int]:
    """The frames at ``wanted`` indices that decode, and how many frames decoded in all (up to the last wanted one,
    or all of them when ``wanted`` is empty). Decoding stops at the first damaged packet: what follows a cut is
    not trusted."""
    import av

    frames: dict[int, np.ndarray] = {}
    last = max(wanted) if wanted else None
    count = 0
    source = io.BytesIO(video) if isinstance(video, (bytes, bytearray)) else os.fspath(video)
    try:
        with av.open(source) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                for frame in packet.decode():
                    if count in wanted:
                        frames[count] = frame.to_ndarray(format="rgb24")
                    count += 1
                    if last is not None and count > last:
                        return frames, count
    except (av.error.FFmpegError, IndexError):
        pass  # a damaged or cut file: keep the frames decoded before the damage
    return frames, count


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
