"""Video and text processing: frame sampling, decord decoding, the video processor, the processor, a tokenizer
trainer and the ``tvr compress`` command."""

from .normalization import normalize_videos
from .processing_tvr import TEXT_PADDINGS, TVRProcessor, TVRProcessorKwargs, processor_for_image_text_model
from .sampling import (
    clip_frame_range,
    order_frame_indices,
    per_second_frame_indices,
    sample_frame_indices,
    segment_middle_frame_indices,
    slice_frame_indices,
)
from .tokenizer import train_clip_tokenizer
from .video_processing_tvr import TVRVideoProcessor, TVRVideoProcessorKwargs, TVRVideosKwargs

__all__ = [
    "TEXT_PADDINGS",
    "TVRProcessor",
    "TVRProcessorKwargs",
    "TVRVideoProcessor",
    "TVRVideoProcessorKwargs",
    "TVRVideosKwargs",
    "clip_frame_range",
    "normalize_videos",
    "order_frame_indices",
    "processor_for_image_text_model",
    "per_second_frame_indices",
    "sample_frame_indices",
    "segment_middle_frame_indices",
    "slice_frame_indices",
    "train_clip_tokenizer",
]
