"""Zero-shot video classification, measured as the papers count it: class names -> prompts -> the model's own
scores -> top-1 / top-5 accuracy and mean class accuracy.

How a class is scored (:func:`class_logits`), by one rule:

- A model whose similarity is the scaled inner product of its normalised text embedding with ``video_embeds``
  and nothing else (``model.scores_by_embedding_product``: CLIP4Clip's loose heads, InternVideo, DAVRL) scores a
  class with CLIP's prompt ensemble: the L2-normalised embeddings of the class's prompts are averaged and
  re-normalised, and that one class embedding is scored by ``model.score_gallery``.
- Any other model (EMCL's EM blocks, EERCF's two stages, tightTransf's cross encoder: the text enters the score in
  more ways than one vector) scores every prompt with ``model.score_gallery`` and the class's logit is the mean
  of its prompts' logits.

With one template both give ``score_gallery`` of the one prompt. Several views of a video (``num_views``: the
video cut into that many equal spans, each sampled with the model's frame sampling) are scored separately and
their logits averaged. The ``zero-shot-video-classification`` pipeline scores with the same :func:`class_logits`.

Example::

    result = evaluate_zero_shot(model, processor, load_classification("ucf101", "ucfTrainTestlist", "UCF-101"),
                                templates="clip-ucf101", num_views=3)
    result.metrics   # {"top1": ..., "top5": ..., "mean_class_accuracy": ...}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..data.classification import class_names
from ..data.videos import missing_videos
from ..modeling.outputs import concat_encodings
from ..processing.bad_videos import check_bad_video_policy, warn_bad_videos
from ..processing.encode_loop import encode_video_batches
from ..utils.values import options_with
from .harness import MIXED_PRECISION_DTYPES, encode_texts, mixed_precision_autocast
from .templates import resolve_templates, templates_label

TOP_K = (1, 5)
TASK = "zero-shot-classification"


@dataclass
class ZeroShotOptions:
    """Options of :func:`evaluate_zero_shot`.

    Args:
        templates: a template set's name (:data:`tvr.evaluation.templates.TEMPLATE_SETS`), a file of templates or a
            list; default ``"single"`` (``"a video of {}."``).
        num_views: clips scored per video (equal spans of the video), logits averaged; 1: the whole video once.
        batch_size: prompts / videos per forward pass.
        block_size: prompts x videos per similarity call (default the model's).
        device: where to run; default the model's device.
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"`` autocast.
        num_workers: DataLoader workers that decode videos.
        on_bad_video: ``"skip"``: videos with no file or that cannot be decoded are left out and listed;
            ``"error"``: raise.
        frame_cache_dir: cache decoded frames here (:class:`~tvr.data.frame_cache.CachedVideoProcessor`).
        progress: tqdm progress bars.
    """

    templates: str | os.PathLike | Sequence[str] | None = None
    num_views: int = 1
    batch_size: int = 16
    block_size: int | None = None
    device: torch.device | str | None = None
    mixed_precision: str = "no"
    num_workers: int = 0
    on_bad_video: str = "skip"
    frame_cache_dir: str | os.PathLike | None = None
    progress: bool = True

    def __post_init__(self):
        for name in ("num_views", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {getattr(self, name)!r}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.mixed_precision != "no" and self.mixed_precision not in MIXED_PRECISION_DTYPES:
            raise ValueError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        check_bad_video_policy(self.on_bad_video)


@dataclass
class ZeroShotEvaluation:
    """What :func:`evaluate_zero_shot` returns.

    Attributes:
        metrics: ``top1``, ``top5`` (percent of videos whose class is among the k best; a class scoring exactly as
            the true one ranks above it) and ``mean_class_accuracy`` (top-1 per class, averaged over the classes
            with videos), all in percent.
        per_class_accuracy: ``{class: top-1 percent}`` of the classes with videos.
        logits: ``(num_videos, num_classes)`` class scores of the scored videos.
        video_ids: the scored videos' ids (rows of ``logits``); ``labels``: their class ids.
        classes: every class in id order (columns of ``logits``); ``templates``: the prompts' templates.
        skipped_videos: ``{video: error}`` of the videos left out (no file, or not decodable).
    """

    metrics: dict[str, float]
    per_class_accuracy: dict[str, float]
    logits: torch.Tensor
    video_ids: list[str]
    labels: list[int]
    classes: list[str]
    templates: list[str]
    skipped_videos: dict[str, str]


def class_prompts(classes: Sequence[str], templates: Sequence[str]) -> list[str]:
    """Every class in every template, class by class: ``[t0(c0), t1(c0), ..., t0(c1), ...]``."""
    return [template.format(name) for name in classes for template in templates]


def ensembles_embeddings(model: Any) -> bool:
    """Whether :func:`class_logits` averages a class's prompt embeddings (CLIP's ensemble) rather than its prompts'
    logits: the model declares ``scores_by_embedding_product`` (its similarity is the scaled inner product of the
    normalised text embedding with ``video_embeds``, nothing else); a model that does not say so is scored per
    prompt, which is right for any model."""
    return bool(getattr(model, "scores_by_embedding_product", False))


@torch.no_grad()
def class_logits(model: Any, prompt_encoding: Any, video_encoding: Any, num_templates: int,
                 **gallery_options: Any) -> torch.Tensor:
    """``(num_videos, num_classes)`` logits of every video for every class, from the encodings of
    :func:`class_prompts` (``num_classes * num_templates`` prompts, class by class) and of the videos.

    Embedding-product models (:func:`ensembles_embeddings`): a class's prompt ``text_features`` are L2-normalised,
    averaged and re-normalised, and the class embeddings scored by ``model.score_gallery``. Others: every prompt is
    scored by ``model.score_gallery`` and a class's logit is the mean of its prompts'.

    Args:
        gallery_options: passed to ``score_gallery`` (``block_size``, ``progress``).
    """
    num_prompts = prompt_encoding.text_features.shape[0]
    if num_templates < 1 or num_prompts % num_templates:
        raise ValueError(f"{num_prompts} prompts are not a whole number of classes x {num_templates} templates")
    num_classes = num_prompts // num_templates
    if ensembles_embeddings(model):
        features = prompt_encoding.text_features
        embeds = F.normalize(features.float(), dim=-1).view(num_classes, num_templates, -1).mean(dim=1)
        ensembled = {name: value[::num_templates] for name, value in prompt_encoding.items()}
        ensembled["text_features"] = F.normalize(embeds, dim=-1).to(features.dtype)
        scores = model.score_gallery(type(prompt_encoding)(**ensembled), video_encoding, **gallery_options)
    else:
        scores = model.score_gallery(prompt_encoding, video_encoding, **gallery_options)
        scores = scores.view(num_classes, num_templates, -1).mean(dim=1)
    return scores.t()


def classification_metrics(logits: torch.Tensor, labels: Sequence[int] | torch.Tensor, classes: Sequence[str],
                           top_k: Sequence[int] = TOP_K) -> tuple[dict[str, float], dict[str, float]]:
    """``({"top1", "top5", "mean_class_accuracy"}, {class: top-1})`` in percent, from ``(num_videos, num_classes)``
    logits and each video's class id.

    A class scoring exactly as much as the true class counts as ranked above it (as ``tvr eval`` counts retrieval
    ties); ``top5`` with fewer than 5 classes is 100. ``mean_class_accuracy`` averages the top-1 of the classes
    that have videos.
    """
    labels = torch.as_tensor(list(labels) if not torch.is_tensor(labels) else labels, dtype=torch.long)
    if logits.dim() != 2 or logits.shape != (len(labels), len(classes)):
        raise ValueError(f"logits must be (num_videos, num_classes) = ({len(labels)}, {len(classes)}), got "
                         f"{tuple(logits.shape)}")
    logits = logits.float()
    true = logits.gather(1, labels[:, None])
    rank = (logits > true).sum(dim=1) + (logits == true).sum(dim=1) - 1  # 0: best
    metrics = {f"top{k}": 100.0 * (rank < k).double().mean().item() for k in top_k}
    per_class = {}
    for class_id in sorted(set(labels.tolist())):
        rows = labels == class_id
        per_class[classes[class_id]] = 100.0 * (rank[rows] == 0).double().mean().item()
    metrics["mean_class_accuracy"] = sum(per_class.values()) / len(per_class)
    return metrics, per_class


def _duration_or_none(video: Any) -> float | None:
    """:func:`tvr.processing.windows.video_duration`, or ``None`` when the video cannot be opened (the encode loop
    then reports it)."""
    from ..processing.windows import video_duration

    try:
        return video_duration(video)
    except (OSError, ValueError):
        return None


def view_bounds(durations: Sequence[float | None], num_views: int) -> tuple[list, list]:
    """``(starts, ends)`` of ``num_views`` equal spans of each video, video by video (``[video0 view0, video0
    view1, ...]``): view k of a ``d``-second video is ``[k d / n, (k + 1) d / n]``. One view (or an unknown
    duration) is the whole video (``None``)."""
    starts, ends = [], []
    for duration in durations:
        for view in range(num_views):
            whole = num_views == 1 or not duration
            starts.append(None if whole else duration * view / num_views)
            ends.append(None if whole else duration * (view + 1) / num_views)
    return starts, ends


def evaluate_zero_shot(model: Any, processor: Any, dataset: Any, options: ZeroShotOptions | None = None,
                       **option_values: Any) -> ZeroShotEvaluation:
    """Classify every video of a labelled dataset among all its classes, zero-shot, and measure it.

    Args:
        model: a tvr model (``encode_text``, ``encode_video``, ``score_gallery``).
        processor: its ``TVRProcessor``.
        dataset: a classification dataset (:func:`tvr.data.classification.load_classification`; columns
            ``video_path``, ``label_id``, optionally ``video_id``; the classes are its ``label_id`` names).
        options: a :class:`ZeroShotOptions`; ``**option_values`` override its fields by keyword.

    Returns:
        A :class:`ZeroShotEvaluation`.
    """
    options = options_with(ZeroShotOptions, options, option_values, "evaluate_zero_shot")
    templates = resolve_templates(options.templates)
    classes = class_names(dataset)
    names = dataset.column_names if hasattr(dataset, "column_names") else list(dataset)
    absent = {"video_path", "label_id"} - set(names)
    if absent:
        raise ValueError(f"dataset lacks columns {sorted(absent)}; it has {names} (read it with load_classification)")
    paths, labels = list(dataset["video_path"]), list(dataset["label_id"])
    video_ids = list(dataset["video_id"]) if "video_id" in names else paths
    if not paths:
        raise ValueError("dataset has no videos to classify")
    if options.frame_cache_dir is not None:
        from ..data.frame_cache import CachedVideoProcessor

        processor = CachedVideoProcessor(processor, options.frame_cache_dir)
    device = torch.device(options.device) if options.device is not None else next(model.parameters()).device
    views = options.num_views
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), mixed_precision_autocast(device, options.mixed_precision):
            skipped = missing_videos(video_ids, paths, options.on_bad_video, "zero-shot dataset")
            present = [row for row, path in enumerate(paths) if path]
            durations = [_duration_or_none(paths[row]) for row in present] if views > 1 else [None] * len(present)
            starts, ends = view_bounds(durations, views)
            encoded = encode_video_batches(
                model, processor, [paths[row] for row in present for _ in range(views)], options.batch_size,
                starts=starts, ends=ends, on_bad_video=options.on_bad_video, device=device,
                num_workers=options.num_workers, progress=options.progress)
            # a video counts when all its views were decoded
            kept_views = {}
            for position, row in enumerate(encoded.kept):
                kept_views.setdefault(row // views, []).append(position)
            kept = [index for index in range(len(present)) if len(kept_views.get(index, ())) == views]
            for index in range(len(present)):
                if index not in kept and video_ids[present[index]] not in skipped:
                    skipped[video_ids[present[index]]] = encoded.failed.get(paths[present[index]], "a view could "
                                                                            "not be decoded")
            if not kept:
                raise ValueError(f"none of the {len(paths)} videos could be decoded; first error: "
                                 f"{next(iter(skipped.values()), 'no video file')}")
            if skipped:
                warn_bad_videos(skipped, len(paths), "left out of the zero-shot evaluation")
            rows = torch.tensor([position for index in kept for position in kept_views[index]])
            video_encoding = concat_encodings(encoded.encodings)
            video_encoding = type(video_encoding)(**{name: value[rows.to(value.device)]
                                                    for name, value in video_encoding.items()})
            prompt_encoding = encode_texts(model, processor, class_prompts(classes, templates), options.batch_size,
                                           device, options.progress)
            logits = class_logits(model, prompt_encoding, video_encoding, len(templates),
                                  block_size=options.block_size, progress=options.progress)
    finally:
        model.train(was_training)
    logits = logits.view(len(kept), views, len(classes)).mean(dim=1)
    kept_labels = [labels[present[index]] for index in kept]
    metrics, per_class = classification_metrics(logits, kept_labels, classes)
    return ZeroShotEvaluation(metrics, per_class, logits, [video_ids[present[index]] for index in kept], kept_labels,
                              classes, templates, skipped)


def zero_shot_results(result: ZeroShotEvaluation, dataset: str, split: str, templates: Any = None,
                      num_views: int = 1, **metadata: Any) -> dict[str, Any]:
    """The eval-results dict of a zero-shot evaluation (what ``tvr eval --task zero-shot-classification --output``
    writes and ``tvr card`` reads): ``task``, ``dataset``, ``split``, ``templates`` (a set's name or the list),
    ``num_views``, counts, the metrics and ``per_class_accuracy``."""
    return {"task": TASK, "dataset": dataset, "split": split, "templates": templates_label(templates),
            "num_views": num_views, "num_classes": len(result.classes), "num_videos": len(result.video_ids),
            "num_skipped_videos": len(result.skipped_videos), **metadata, **result.metrics,
            "per_class_accuracy": result.per_class_accuracy, "skipped_videos": result.skipped_videos}


__all__ = ["TASK", "ZeroShotEvaluation", "ZeroShotOptions", "class_logits", "class_prompts", "classification_metrics",
           "ensembles_embeddings", "evaluate_zero_shot", "view_bounds", "zero_shot_results"]
