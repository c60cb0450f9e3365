"""Video and text processing: frame sampling, decord decoding, the video processor, the processor, a tokenizer
trainer and the ``tvr compress`` command."""

from .._lazy import lazy_names

# module -> the names it gives the package, each loaded on first use (`import tvr.X.cli` stays light)
EXPORTS = {
    "normalization": ("normalize_videos",),
    "processing_tvr": ("TEXT_PADDINGS", "TVRProcessor", "TVRProcessorKwargs", "processor_for_image_text_model"),
    "sampling": ("clip_frame_range", "order_frame_indices", "per_second_frame_indices", "sample_frame_indices",
                 "segment_middle_frame_indices", "slice_frame_indices"),
    "tokenizer": ("train_clip_tokenizer",),
    "video_processing_tvr": ("TVRVideoProcessor", "TVRVideoProcessorKwargs", "TVRVideosKwargs"),
}
__getattr__, __dir__ = lazy_names(__name__, EXPORTS)
__all__ = sorted({name for names in EXPORTS.values() for name in names})
