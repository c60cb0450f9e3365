"""``TVRProcessor``: a tokenizer and a :class:`TVRVideoProcessor` behind one call; the processor of an image-text
tower with its conventions (:func:`processor_for_image_text_model`)."""

import contextlib
import html
import os
from typing import Any, Iterator

from transformers.feature_extraction_utils import BatchFeature
from transformers.processing_utils import ProcessingKwargs, ProcessorMixin, Unpack

from .video_processing_tvr import TVRVideoProcessor, TVRVideoProcessorKwargs

TEXT_PADDINGS = ("clip4clip", "max_length")


class TVRProcessorKwargs(ProcessingKwargs, total=False):
    """Call options of :class:`TVRProcessor`: the tokenizer's (``padding``, ``max_length``, ``truncation``; default
    ``padding="max_length"`` to the processor's ``max_words``) and every :class:`TVRVideoProcessorKwargs` option.

    The defaults are what ``processor._merge_kwargs`` returns, so ``processor(text=t)`` equals
    ``processor.tokenizer(t, **processor._merge_kwargs(TVRProcessorKwargs, ...)["text_kwargs"])`` (before the
    ``"clip4clip"`` zero padding): ``padding`` and ``truncation`` here, ``max_length`` the instance's ``max_words``
    (``TVRProcessor.text_kwargs``, the per-processor defaults ``_merge_kwargs`` reads below these).
    """

    videos_kwargs: TVRVideoProcessorKwargs
    _defaults = {"text_kwargs": {"padding": "max_length", "truncation": True}}


class TVRProcessor(ProcessorMixin):
    r"""Captions to ``input_ids`` / ``attention_mask`` and videos to ``pixel_values_videos`` / ``video_mask``.

    Text goes through the tokenizer with ``padding="max_length"``, ``truncation=True`` and ``max_length=max_words``
    unless the call says otherwise (``padding="longest"``, ``max_length=64``, ...). With ``text_padding="clip4clip"``
    (CLIP towers) the padding positions hold id 0, CLIP4Clip's layout
    ``[<|startoftext|>] + bpe[: max_words - 2] + [<|endoftext|>] + [0, ...]``; with ``"max_length"`` (SigLIP,
    MetaCLIP 2) the tokenizer's own pad id. ``attention_mask`` is 1 on the real tokens. HTML entities are unescaped
    first, as CLIP's own tokenizer does. Videos go to the :class:`TVRVideoProcessor`, with any of its options
    passed through this call.

    Args:
        video_processor: a :class:`TVRVideoProcessor`.
        tokenizer: the tower's tokenizer (``CLIPTokenizer``: the OpenAI vocabulary or one from
            :func:`train_clip_tokenizer`; SigLIP's; MetaCLIP 2's).
        max_words: caption length in tokens, special tokens included (CLIP4Clip: 32; paragraphs: 64; SigLIP: 64);
            the default ``max_length`` of a call.
        text_padding: ``"clip4clip"`` (pad id 0) or ``"max_length"`` (the tokenizer's pad id), as above.

    Example:
        >>> processor = TVRProcessor(TVRVideoProcessor(), CLIPTokenizer.from_pretrained(folder))  # doctest: +SKIP
        >>> batch = processor(text=["a dog runs"], videos=["dog.mp4"], return_tensors="pt")  # doctest: +SKIP
        >>> sorted(batch)  # doctest: +SKIP
        ['attention_mask', 'input_ids', 'pixel_values_videos', 'video_mask']
    """

    valid_processor_kwargs = TVRProcessorKwargs

    def __init__(
        self, video_processor=None, tokenizer=None, max_words: int = 32, text_padding: str = "clip4clip", **kwargs
    ) -> None:
        if isinstance(max_words, bool) or not isinstance(max_words, int) or max_words < 2:
            raise ValueError(f"processor setting max_words={max_words!r} is not valid: an integer >= 2 (room for the "
                             "start and end tokens)")
        if text_padding not in TEXT_PADDINGS:
            raise ValueError(f"text_padding must be one of {TEXT_PADDINGS}, got {text_padding!r}")
        self.max_words = max_words
        self.text_padding = text_padding
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
        data = {}
        if text is not None:
            text_kwargs = dict(options["text_kwargs"])
            if text_kwargs.get("max_length") is None:  # a call's explicit max_length=None: still max_words long
                text_kwargs["max_length"] = self.max_words
            data.update(self._tokenize(text, text_kwargs))
        if videos is not None:
            data.update(self.video_processor(videos, **options["videos_kwargs"]))
        # a flat or nested return_tensors reaches every modality's kwargs
        return_tensors = options["text_kwargs"].get("return_tensors") or options["videos_kwargs"].get("return_tensors")
        return BatchFeature(data=data, tensor_type=return_tensors, skip_tensor_conversion=["video_metadata"])

    def _tokenize(self, text: str | list[str], text_kwargs: dict[str, Any]) -> dict[str, list[list[int]]]:
        """Captions -> ids and mask through the tokenizer, in the ``text_padding`` layout (see the class doc)."""
        texts = [text] if isinstance(text, str) else text
        if not isinstance(texts, (list, tuple)) or not all(isinstance(item, str) for item in texts):
            raise TypeError(f"text must be a string or a list of strings, got {type(text).__name__}")
        # CLIP's basic_clean unescapes HTML entities twice (CLIPTokenizer's normaliser does not)
        texts = [html.unescape(html.unescape(item)) for item in texts]
        text_kwargs.pop("return_tensors", None)
        # truncation keeps the special tokens: [start] + bpe[: max_length - 2] + [end]
        with _backend_settings_kept(self.tokenizer):
            encoded = self.tokenizer(texts, **text_kwargs)
        input_ids, attention_mask = encoded["input_ids"], encoded["attention_mask"]
        if self.text_padding == "clip4clip":
            input_ids = [
                [token if keep else 0 for token, keep in zip(ids, mask)] for ids, mask in zip(input_ids, attention_mask)
            ]
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    @property
    def text_kwargs(self) -> dict[str, int]:
        """This processor's own tokenizer defaults, ``{"max_length": max_words}``: the processor-attribute defaults
        ``_merge_kwargs`` reads (below ``TVRProcessorKwargs._defaults``, the tokenizer's init kwargs and the call's),
        so merged kwargs carry the caption length a call uses. A property, not saved: ``max_words`` is."""
        return {"max_length": self.max_words}

    @property
    def model_input_names(self) -> list[str]:
        return ["input_ids", "attention_mask", "pixel_values_videos", "video_mask"]


@contextlib.contextmanager
def _backend_settings_kept(tokenizer: Any) -> Iterator[None]:
    """Undo the truncation / padding a call leaves in a fast tokenizer's backend: otherwise the next save writes the
    last call's ``max_length`` into the folder, and the reloaded tokenizer imposes it on every later call."""
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is None:
        yield
        return
    truncation, padding = backend.truncation, backend.padding
    try:
        yield
    finally:
        if truncation is None:
            backend.no_truncation()
        else:
            backend.enable_truncation(**truncation)
        if padding is None:
            backend.no_padding()
        else:
            backend.enable_padding(**{key: value for key, value in padding.items() if key != "pad_type_id"},
                                   pad_type_id=padding.get("pad_type_id", 0))


def processor_for_image_text_model(
    image_text_model: str | os.PathLike, max_words: int | None = None, **video_kwargs: Any
) -> TVRProcessor:
    """The processor of a tvr model built on a transformers image-text model, with the tower's conventions.

    The tokenizer is the model's (``AutoTokenizer``), laid out as the tower was trained (``TowerFamily.text_padding``).
    Frames: CLIP towers keep the seeds' pipeline (shorter side to the model's image size, bicubic, centre crop, CLIP
    mean / std); other towers take size, resampling, crop and mean / std from the model's saved image processor
    (SigLIP: a square bicubic resize to the image size, no crop, mean / std 0.5).

    Args:
        image_text_model: a folder or Hub id holding the image-text model's config and tokenizer (and image
            processor, for non-CLIP towers).
        max_words: caption length; default 32 for CLIP towers (the seeds'), the text tower's positions otherwise.
        **video_kwargs: :class:`TVRVideoProcessor` settings that override the tower's (e.g. ``max_frames=12``).
    """
    from transformers import AutoConfig, AutoImageProcessor, AutoTokenizer

    from ..modeling.towers import tower_family
    from .tokenizer import check_tokenizer_fits

    config = AutoConfig.from_pretrained(image_text_model)
    family = tower_family(config.model_type)
    image_size = config.vision_config.image_size
    frames: dict[str, Any] = {"size": image_size, "crop_size": image_size}
    if family.text_padding != "clip4clip":
        image_processor = AutoImageProcessor.from_pretrained(image_text_model)
        frames = {
            name: getattr(image_processor, name)
            for name in ("size", "crop_size", "resample", "image_mean", "image_std", "do_rescale", "rescale_factor",
                         "do_normalize")
            if getattr(image_processor, name, None) is not None
        }
        frames["do_center_crop"] = bool(getattr(image_processor, "do_center_crop", False))  # SigLIP: unset, no crop
    if max_words is None:
        max_words = 32 if family.text_padding == "clip4clip" else config.text_config.max_position_embeddings
    tokenizer = AutoTokenizer.from_pretrained(image_text_model)
    check_tokenizer_fits(tokenizer, config.text_config.vocab_size, image_text_model)
    return TVRProcessor(
        TVRVideoProcessor(**{**frames, **video_kwargs}),
        tokenizer,
        max_words=max_words,
        text_padding=family.text_padding,
    )


__all__ = ["TEXT_PADDINGS", "TVRProcessor", "TVRProcessorKwargs", "processor_for_image_text_model"]
