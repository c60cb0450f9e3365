"""Video and text processing: frame sampling, decord decoding, the video processor and the processor."""

from .sampling import (
    clip_frame_range,
    order_frame_indices,
    per_second_frame_indices,
    sample_frame_indices,
    segment_middle_frame_indices,
    slice_frame_indices,
)
from .video_processing_tvr import TVRVideoProcessor, TVRVideosKwargs

__all__ = [
    "TVRVideoProcessor",
    "TVRVideosKwargs",
    "clip_frame_range",
    "order_frame_indices",
    "per_second_frame_indices",
    "sample_frame_indices",
    "segment_middle_frame_indices",
    "slice_frame_indices",
]
