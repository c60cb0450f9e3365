"""Synthetic video-caption data: real mp4 files written with PyAV, deterministic for a seed."""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np


def write_video(path: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray], fps: float = 30) -> str:
    """Write RGB frames to an H.264 mp4 file.

    Args:
        path: output file (parent folders are created).
        frames: uint8 array of shape ``(num_frames, height, width, 3)`` (even height and width) or a list of
            ``(height, width, 3)`` arrays.
        fps: frame rate stored in the file.

    Returns:
        The path written, as a string.
    """
    import av
    from fractions import Fraction

    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (num_frames, height, width, 3), got {frames.shape}")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # near-lossless so tests can recognise frames by colour
        stream.options = {"crf": "1", "preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
