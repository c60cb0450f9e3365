"""What tvr's two pipelines share: inputs checked where they enter, captions and videos encoded in batches of
``batch_size`` (videos decoded lazily, once per call, through the processor), and the model's own gallery scoring.

The model is used only through the tvr model contract (``encode_text``, ``encode_video``, ``score_gallery``), so a
method's scoring policy -- EMCL's EM blocks, tightTransf's pair chunks, EERCF's two stages -- is what the pipelines
return, exactly as ``tvr eval`` scores a gallery.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from transformers import Pipeline

from ..loading import load_processor, not_a_retrieval_model
from ..modeling.outputs import concat_encodings
from ..processing.encode_loop import encode_video_batches

DEFAULT_BATCH_SIZE = 8  # videos (and captions) per forward pass when neither the pipeline nor the call sets one
PROGRESS_MIN_VIDEOS = 32  # a progress bar is shown (progress=None) for longer video lists
CONTRACT = ("encode_text", "encode_video", "score_gallery")


class VideoTextPipeline(Pipeline):
    """Base of tvr's pipelines: ``preprocess`` tokenises the captions and prepares lazy batches of decoded videos,
    ``_forward`` encodes both and scores them with ``model.score_gallery``, subclasses' ``postprocess`` rank.

    ``batch_size`` (at construction or per call, as in transformers) is the number of videos decoded and encoded
    per forward pass, and of captions per text forward pass (default 8); ``device`` and ``dtype`` are transformers'
    (video frames are cast to the model's dtype, scores come back as float32).
    """

    # tried, not required: an adapter's processor is in the adapter folder, which transformers does not look in (it
    # reads the base's); __init__ then loads it from the folder the model came from
    _load_processor = None
    _load_tokenizer = False
    _load_image_processor = False
    _load_video_processor = False
    _load_feature_extractor = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        missing = [name for name in CONTRACT if not callable(getattr(self.model, name, None))]
        if missing:
            config = getattr(self.model, "config", None)
            reason = not_a_retrieval_model(getattr(config, "model_type", None), getattr(config, "_name_or_path", ""))
            if reason:  # a plain CLIP folder: say what it is and how to build a tvr model from it
                raise ValueError(f"{self.task or type(self).__name__} needs a tvr retrieval model: {reason}")
            raise ValueError(f"{self.task or type(self).__name__} needs a tvr retrieval model (with {CONTRACT}); "
                             f"{type(self.model).__name__} has no {', '.join(missing)}")
        model_dir = getattr(self.model, "tvr_model_dir", None)
        if model_dir is not None and self.processor is None:
            self.processor = load_processor(model_dir, self.model.config)
        if self.processor is None or not callable(self.processor):
            raise ValueError(f"{self.task or type(self).__name__} needs the model's processor (a TVRProcessor): save "
                             "it next to the model (processor.save_pretrained) or pass processor=")

    def __call__(self, inputs: dict[str, Any], batch_size: int | None = None, **kwargs):
        batch_size = batch_size or self._batch_size or DEFAULT_BATCH_SIZE
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        preprocess, forward, postprocess = self._sanitize_parameters(**kwargs)
        preprocess = {**self._preprocess_params, **preprocess, "batch_size": batch_size}
        forward = {**self._forward_params, **forward}
        postprocess = {**self._postprocess_params, **postprocess}
        return self.run_single(inputs, preprocess, forward, postprocess)

    # ------------------------------------------------------------------------------------------ preprocessing

    def text_batches(self, texts: list[str], batch_size: int) -> list[dict[str, torch.Tensor]]:
        """``input_ids`` / ``attention_mask`` of ``texts``, ``batch_size`` captions per batch."""
        return [dict(self.processor(text=texts[start:start + batch_size], return_tensors="pt"))
                for start in range(0, len(texts), batch_size)]

    def video_batches(self, videos: list[Any], batch_size: int, progress: bool | None) -> "VideoBatches":
        """The videos to encode, ``batch_size`` per batch: decoded lazily by :meth:`score` (so memory holds one
        batch); a video that cannot be decoded raises the processor's error, which names it."""
        show = len(videos) > PROGRESS_MIN_VIDEOS if progress is None else progress
        return VideoBatches(self.processor, list(videos), batch_size, show)

    # ---------------------------------------------------------------------------------------------- forward

    def score(self, text_batches: list[dict], video_batches: "VideoBatches") -> torch.Tensor:
        """``(num_texts, num_videos)`` float32 scores on CPU: every caption against every video, as the model scores
        a gallery (``score_gallery``). Videos go through tvr's one decode -> encode loop
        (:func:`tvr.processing.encode_loop.encode_video_batches`; frames cast to the model's dtype)."""
        return self.model.score_gallery(*self.encode(text_batches, video_batches)).float().cpu()

    def encode(self, text_batches: list[dict], video_batches: "VideoBatches") -> tuple[Any, Any]:
        """``(text_encoding, video_encoding)`` of every caption and every video (what :meth:`score` scores)."""
        device, dtype = self.device, self.model.dtype
        text_encoding = concat_encodings([
            self.model.encode_text(batch["input_ids"].to(device), batch["attention_mask"].to(device))
            for batch in text_batches
        ])
        return text_encoding, concat_encodings(video_batches.encode(self.model, device, dtype))


@dataclass(frozen=True)
class VideoBatches:
    """The videos of one pipeline call and how to batch them, decoded only when :meth:`encode` runs. (Not a tuple:
    transformers' pipelines would move a tuple's items to the device and lose it.)"""

    processor: Any
    videos: list[Any]
    batch_size: int
    progress: bool

    def encode(self, model: Any, device: torch.device, dtype: torch.dtype) -> list[Any]:
        """The batches' ``model.encode_video`` outputs, through the one loop; float frames from the processor (as
        transformers' pipelines hand them over), a bad video raises."""
        return encode_video_batches(model, self.processor, self.videos, self.batch_size, on_bad_video="error",
                                    device=device, dtype=dtype, uint8_frames=False, progress=self.progress,
                                    desc="decoding videos").encodings


def as_video_list(videos: Any, name: str = "videos") -> tuple[list[Any], bool]:
    """``(list of videos, whether one video was given)``: a path, bytes, a ``(frames, height, width, 3)`` array or
    tensor is one video; a list or tuple of those is several."""
    if isinstance(videos, (str, os.PathLike, bytes, np.ndarray, torch.Tensor)):
        return [videos], True
    if isinstance(videos, (list, tuple)):
        if not videos:
            raise ValueError(f"{name} is empty: give at least one video (a path, bytes or a frame array)")
        return list(videos), False
    raise TypeError(f"{name} must be a video (path, bytes, frame array) or a list of videos, "
                    f"got {type(videos).__name__}")


def as_text_list(texts: Any, name: str) -> tuple[list[str], bool]:
    """``(list of captions, whether one caption was given)``, checked."""
    if isinstance(texts, str):
        return [texts], True
    if isinstance(texts, (list, tuple)) and texts and all(isinstance(text, str) for text in texts):
        return list(texts), False
    raise ValueError(f"{name} must be a string or a non-empty list of strings, got {texts!r:.80}")


def video_name(video: Any, position: int) -> str | int:
    """How a result names a video: its path, else its position in the list given."""
    return os.fspath(video) if isinstance(video, (str, os.PathLike)) else position


def ranked(scores: Sequence[float], top_k: int | None) -> list[int]:
    """Positions of the ``top_k`` best scores, best first (ties keep the input order)."""
    order = torch.argsort(torch.as_tensor(scores), descending=True, stable=True).tolist()
    return order if top_k is None else order[:top_k]


def check_top_k(top_k: int | None) -> int | None:
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive integer or None (all), got {top_k!r}")
    return top_k
