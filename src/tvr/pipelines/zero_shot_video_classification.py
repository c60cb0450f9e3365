"""``pipeline("zero-shot-video-classification")``: label videos with any captions, like transformers'
zero-shot-image-classification; labels are scored with the templates and averaging of ``tvr eval --task
zero-shot-classification`` (:func:`tvr.evaluation.zero_shot.class_logits`)."""

from __future__ import annotations

import os
from typing import Any, Sequence

from ..evaluation.templates import TEMPLATE_SETS, check_template, resolve_templates
from ..evaluation.zero_shot import class_logits, class_prompts
from .base import VideoTextPipeline, as_text_list, as_video_list, check_top_k, ranked

DEFAULT_HYPOTHESIS_TEMPLATE = TEMPLATE_SETS["single"][0]  # "a video of {}."


def check_hypothesis_template(template: str) -> str:
    """``template`` if it puts a label in exactly one place (one ``{}``); else a ``ValueError`` naming it (not the bare
    ``IndexError`` / ``KeyError`` of ``str.format``, which the app would report as an unreadable video)."""
    return check_template(template, "hypothesis_template")


class ZeroShotVideoClassificationPipeline(VideoTextPipeline):
    """Zero-shot video classification with any tvr model: each candidate label, put into ``hypothesis_template``,
    is a caption (with ``templates=``, several per label, averaged as ``tvr eval --task zero-shot-classification``
    averages them); the model scores every caption against the video (``model.score_gallery``) and the scores become
    probabilities over the labels (softmax; sigmoid per label for models trained with SigLIP's sigmoid loss, as
    transformers does for SigLIP).

    Example:

    ```python
    >>> import tvr  # registers the pipelines
    >>> from transformers import pipeline
    >>> classifier = pipeline("zero-shot-video-classification", model="runs/clip4clip/best")  # doctest: +SKIP
    >>> classifier("beach.mp4", candidate_labels=["a dog", "a cat", "cooking"])  # doctest: +SKIP
    [{'score': 0.93, 'label': 'a dog'}, {'score': 0.05, 'label': 'cooking'}, {'score': 0.02, 'label': 'a cat'}]
    ```
    """

    def __call__(self, videos: Any = None, candidate_labels: list[str] | None = None, **kwargs):
        """Label ``videos``.

        Args:
            videos: one video or a list (a path, bytes or a ``(frames, height, width, 3)`` uint8 array each).
            candidate_labels: the labels, formatted with ``hypothesis_template`` (pass ``"{}"`` when they are
                already captions).
            hypothesis_template: default ``"a video of {}."``.
            templates: instead of one ``hypothesis_template``, several, averaged per label as ``tvr eval --task
                zero-shot-classification`` does: a set's name (``"clip-kinetics"``, ...; see
                :data:`tvr.evaluation.templates.TEMPLATE_SETS`), a file of templates or a list.
            top_k: labels returned per video (default all).
            batch_size: videos / captions per forward pass.
            progress: show a progress bar while decoding (default: for more than 32 videos).

        Returns:
            For one video, a list of ``{"score", "label"}`` best first (scores sum to 1 with softmax); for a list of
            videos, one such list each.
        """
        if videos is None:
            videos = kwargs.pop("video", None)
        if videos is None:
            raise ValueError("zero-shot-video-classification needs a video (or a list of videos)")
        if candidate_labels is None:
            raise ValueError("zero-shot-video-classification needs candidate_labels=[...]")
        labels, _ = as_text_list(candidate_labels, "candidate_labels")
        videos, single = as_video_list(videos)
        return super().__call__({"videos": videos, "labels": labels, "single": single}, **kwargs)

    def _sanitize_parameters(self, hypothesis_template: str | None = None, top_k: int | None = None,
                             progress: bool | None = None,
                             templates: str | os.PathLike | Sequence[str] | None = None, **kwargs):
        if kwargs:
            raise TypeError(f"zero-shot-video-classification got unexpected arguments {sorted(kwargs)}")
        preprocess, postprocess = {}, {}
        if hypothesis_template is not None and templates is not None:
            raise ValueError("give hypothesis_template (one template) or templates (a set's name, a file or a list), "
                             "not both")
        if hypothesis_template is not None:
            preprocess["templates"] = [check_hypothesis_template(hypothesis_template)]
        if templates is not None:
            preprocess["templates"] = resolve_templates(templates)
        if progress is not None:
            preprocess["progress"] = progress
        if top_k is not None:
            postprocess["top_k"] = check_top_k(top_k)
        return preprocess, {}, postprocess

    def preprocess(self, inputs: dict, batch_size: int, templates: Sequence[str] = (DEFAULT_HYPOTHESIS_TEMPLATE,),
                   progress: bool | None = None) -> dict:
        captions = class_prompts(inputs["labels"], templates)
        return {**inputs, "num_templates": len(templates), "text_batches": self.text_batches(captions, batch_size),
                "video_batches": self.video_batches(inputs["videos"], batch_size, progress)}

    def _forward(self, model_inputs: dict) -> dict:
        text_encoding, video_encoding = self.encode(model_inputs["text_batches"], model_inputs["video_batches"])
        logits = class_logits(self.model, text_encoding, video_encoding, model_inputs["num_templates"])
        return {**model_inputs, "logits": logits.float().cpu()}  # (num_videos, num_labels)

    def postprocess(self, model_outputs: dict, top_k: int | None = None):
        logits = model_outputs["logits"]  # (num_videos, num_labels)
        sigmoid = getattr(self.model.config, "loss_type", "softmax") == "sigmoid"
        probabilities = (logits.sigmoid() if sigmoid else logits.softmax(dim=-1)).tolist()
        labels = model_outputs["labels"]
        results = [[{"score": row[j], "label": labels[j]} for j in ranked(row, top_k)] for row in probabilities]
        return results[0] if model_outputs["single"] else results
