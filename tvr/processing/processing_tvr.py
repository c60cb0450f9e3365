"""``TVRProcessor``: a CLIP tokenizer and a :class:`TVRVideoProcessor` behind one call."""

import html
from typing import Any

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessingKwargs, ProcessorMixin, Unpack

from .video_processing_tvr import TVRVideosKwargs


class TVRProcessorKwargs(ProcessingKwargs, total=False):
    """Call options of :class:`TVRProcessor`: ``max_words`` plus every :class:`TVRVideosKwargs` option."""

    max_words: int
    videos_kwargs: TVRVideosKwargs


class TVRProcessor(ProcessorMixin):
    r"""Captions to ``input_ids`` / ``attention_mask`` and videos to ``pixel_values_videos`` / ``video_mask``.

    Text is tokenised as CLIP4Clip does: ``[<|startoftext|>] + bpe[: max_words - 2] + [<|endoftext|>]``, padded
    with id 0 to ``max_words`` (``attention_mask`` is 1 on the real tokens). As CLIP's own tokenizer, HTML entities
    are unescaped first; ``CLIPTokenizer`` then collapses whitespace and lower-cases. Videos go to the
    :class:`TVRVideoProcessor`, with any of its options passed through this call.

    Args:
        video_processor: a :class:`TVRVideoProcessor`.
        tokenizer: a ``CLIPTokenizer`` (the OpenAI vocabulary or one from :func:`train_clip_tokenizer`).
        max_words: caption length in tokens, start and end tokens included (CLIP4Clip: 32; paragraphs: 64).

    Example:
        >>> processor = TVRProcessor(TVRVideoProcessor(), CLIPTokenizer.from_pretrained(folder))  # doctest: +SKIP
        >>> batch = processor(text=["a dog runs"], videos=["dog.mp4"], return_tensors="pt")  # doctest: +SKIP
        >>> sorted(batch)  # doctest: +SKIP
        ['attention_mask', 'input_ids', 'pixel_values_videos', 'video_mask']
    """

    valid_processor_kwargs = TVRProcessorKwargs

    def __init__(self, video_processor=None, tokenizer=None, max_words: int = 32, **kwargs) -> None:
        if max_words < 2:
            raise ValueError(f"max_words must leave room for the start and end tokens (>= 2), got {max_words}")
        self.max_words = max_words
        super().__init__(video_processor, tokenizer, **kwargs)

    def __call__(
        self, text: str | list[str] | None = None, videos: Any = None, **kwargs: Unpack[TVRProcessorKwargs]
    ) -> BatchFeature:
        """Tokenise ``text`` and/or process ``videos``.

        Returns:
            ``BatchFeature`` with ``input_ids`` and ``attention_mask`` of shape ``(batch_size, max_words)`` (int64
            tensors with ``return_tensors="pt"``, else lists) for text, and ``pixel_values_videos``
            ``(batch_size, max_frames, 3, height, width)`` and ``video_mask`` ``(batch_size, max_frames)`` for videos.
        """
        if text is None and videos is None:
            raise ValueError("TVRProcessor needs text, videos or both")
        options = self._merge_kwargs(TVRProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        return_tensors = kwargs.get("return_tensors")
        data = {}
        if text is not None:
            data.update(self._tokenize(text, options.get("max_words", self.max_words)))
        if videos is not None:
            data.update(self.video_processor(videos, **options["videos_kwargs"]))
        return BatchFeature(data=data, tensor_type=return_tensors, skip_tensor_conversion=["video_metadata"])

    def _tokenize(self, text: str | list[str], max_words: int) -> dict[str, list[list[int]]]:
        """CLIP4Clip's caption layout: start token, at most ``max_words - 2`` BPE tokens, end token, zeros."""
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, (list, tuple)) or not all(isinstance(item, str) for item in texts):
            raise TypeError(f"text must be a string or a list of strings, got {type(text).__name__}")
        # CLIP's basic_clean unescapes HTML entities twice (CLIPTokenizer's normaliser does not)
        texts = [html.unescape(html.unescape(item)) for item in texts]
        # truncation keeps the special tokens: [start] + bpe[: max_words - 2] + [end]
        encoded = self.tokenizer(texts, truncation=True, max_length=max_words, add_special_tokens=True)["input_ids"]
        input_ids = [ids + [0] * (max_words - len(ids)) for ids in encoded]
        attention_mask = [[1] * len(ids) + [0] * (max_words - len(ids)) for ids in encoded]
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values_videos", "video_mask"]


__all__ = ["TVRProcessor", "TVRProcessorKwargs"]
