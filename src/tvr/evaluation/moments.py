"""Temporal moments: IoU of time spans, temporal non-maximum suppression, and the moment-retrieval metrics
(recall@k at temporal IoU thresholds, mean IoU) that Charades-STA, DiDeMo and TVR report.

Spans are ``(start, end)`` in seconds. ``R@k IoU=t`` is the percentage of queries for which at least one of the top
``k`` predicted moments overlaps the ground truth with IoU >= ``t``; ``mIoU`` is the mean IoU of the top-1 moment
(percent), as the moment-localisation papers count them.

:func:`evaluate_moments` measures a retrieval model on a moment dataset (:func:`tvr.data.moments.load_moments`)
without new weights: every video's windows (:mod:`tvr.processing.windows`) are encoded once, each caption is scored
against its own video's windows with the model's gallery scoring, and the best non-overlapping windows (temporal NMS)
are its predicted moments -- single-video moment retrieval, the Charades-STA / DiDeMo protocol (the caption's video
is given). Two baselines come with it: the whole video as the moment, and a random window of the ground truth's
length.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..utils.values import options_with

DEFAULT_RECALL_AT = (1, 5)
DEFAULT_IOU_THRESHOLDS = (0.3, 0.5, 0.7)


def temporal_iou(spans: np.ndarray | Sequence, other: np.ndarray | Sequence) -> np.ndarray:
    """IoU of every span of ``spans`` ``(n, 2)`` with every span of ``other`` ``(m, 2)``: ``(n, m)``. A pair with no
    length (both empty) has IoU 0."""
    a = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(other, dtype=np.float64).reshape(-1, 2)
    inter = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    union = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def temporal_nms(spans: np.ndarray | Sequence, scores: np.ndarray | Sequence, iou_threshold: float = 0.5,
                 top_k: int | None = None) -> list[int]:
    """Greedy non-maximum suppression over time: the positions of the spans kept, best score first, each
    overlapping every better kept span with IoU < ``iou_threshold``; at most ``top_k``. Ties keep the earlier span.

    Raises:
        ValueError: ``iou_threshold`` is outside ``(0, 1]``, or spans and scores differ in length.
    """
    if not 0 < iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    spans = np.asarray(spans, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if len(spans) != len(scores):
        raise ValueError(f"{len(spans)} spans for {len(scores)} scores")
    kept: list[int] = []
    for position in np.argsort(-scores, kind="stable"):
        if top_k is not None and len(kept) >= top_k:
            break
        if not kept or temporal_iou(spans[position], spans[kept]).max() < iou_threshold:
            kept.append(int(position))
    return kept


def moment_metrics(predictions: Sequence[Sequence[Sequence[float]]], ground_truth: Sequence[Sequence[float]],
                   recall_at: Sequence[int] = DEFAULT_RECALL_AT,
                   iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS) -> dict[str, float]:
    """Moment-retrieval metrics of ranked predictions, in percent.

    Args:
        predictions: per query, its predicted ``(start, end)`` moments, best first (after NMS).
        ground_truth: per query, its annotated ``(start, end)``.

    Returns:
        ``{"R@1_IoU0.3": ..., "R@5_IoU0.7": ..., "mIoU": ...}``; a query without predictions counts as missed.
    """
    if len(predictions) != len(ground_truth):
        raise ValueError(f"{len(predictions)} prediction lists for {len(ground_truth)} ground-truth moments")
    if not ground_truth:
        raise ValueError("no queries to evaluate")
    ious = [temporal_iou(np.asarray(ranked, dtype=np.float64).reshape(-1, 2), truth)[:, 0]
            for ranked, truth in zip(predictions, ground_truth)]
    metrics = {}
    for k in recall_at:
        for threshold in iou_thresholds:
            hits = [bool(len(iou) and iou[:k].max() >= threshold) for iou in ious]
            metrics[f"R@{k}_IoU{threshold:g}"] = 100.0 * float(np.mean(hits))
    metrics["mIoU"] = 100.0 * float(np.mean([iou[0] if len(iou) else 0.0 for iou in ious]))
    return metrics


# dataset format -> (window scales, stride) that suit its videos and moments (``tvr eval --task moments`` defaults)
DEFAULT_WINDOWS = {
    # ~30 s videos, moments of 2-25 s (8 s on average): three scales, half overlap
    "charades-sta": ("4,8,16", 0.5),
    # 30 s videos annotated in 5-s chunks: these scales at stride 1 are exactly the 21 chunk spans DiDeMo's moments
    # are made of
    "didemo": ("5,10,15,20,25,30", 1.0),
    "generic": ("4,8,16", 0.5),
}
BASELINES = ("whole_video", "random_window")


@dataclass(frozen=True)
class MomentEvaluationOptions:
    """How :func:`evaluate_moments` evaluates; ``tvr eval --task moments``'s flags set them.

    Attributes:
        windows: window scales, ``"4,8,16"`` (seconds) or multiples of the model's clip length (``"1x,2x"``), as
            :func:`tvr.processing.windows.parse_window_scales` reads them; :data:`DEFAULT_WINDOWS` per dataset.
        stride: step between two windows of one scale, as a fraction of its length.
        nms_iou: temporal NMS: a window overlapping a better kept one with IoU >= this is dropped.
        top_k: moments kept per caption (after NMS); at least the largest ``recall_at``.
        recall_at, iou_thresholds: the ``R@k IoU=t`` reported (:func:`moment_metrics`).
        baselines: also report the whole-video and random-window baselines (``whole_video/...``,
            ``random_window/...``; :func:`moment_baselines`).
        seed: the random-window baseline's seed.
        batch_size: windows / captions encoded per forward pass.
        block_size: passed to ``model.score_gallery``.
        device: where to run (default: the model's device).
        mixed_precision: ``"no"``, ``"bf16"`` or ``"fp16"`` autocast.
        num_workers: DataLoader workers that decode windows.
        on_bad_video: ``"skip"`` (left out with its captions, listed) or ``"error"``.
        progress: tqdm progress bars.
    """

    windows: str | Sequence[float | str] = DEFAULT_WINDOWS["generic"][0]
    stride: float = DEFAULT_WINDOWS["generic"][1]
    nms_iou: float = 0.5
    top_k: int = 5
    recall_at: Sequence[int] = DEFAULT_RECALL_AT
    iou_thresholds: Sequence[float] = DEFAULT_IOU_THRESHOLDS
    baselines: bool = True
    seed: int = 0
    batch_size: int = 16
    block_size: int | None = None
    device: Any = None
    mixed_precision: str = "no"
    num_workers: int = 0
    on_bad_video: str = "skip"
    progress: bool = True

    def __post_init__(self):
        from ..processing.bad_videos import check_bad_video_policy
        from ..processing.windows import check_stride

        check_stride(self.stride)
        if not 0 < self.nms_iou <= 1:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        if self.top_k < max(self.recall_at):
            raise ValueError(f"top_k ({self.top_k}) must be at least the largest recall_at ({max(self.recall_at)})")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ValueError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        check_bad_video_policy(self.on_bad_video)


@dataclass
class MomentEvaluation:
    """What :func:`evaluate_moments` found.

    Attributes:
        metrics: ``R@1_IoU0.3`` ... ``mIoU`` (percent), plus ``whole_video/...`` and ``random_window/...`` for the
            baselines when asked for.
        rows: the dataset row of each evaluated caption (the rows of videos that could be read), ascending.
        predictions: per evaluated caption, its moments ``(start, end, score)`` best first, after NMS.
        ground_truth: per evaluated caption, its moment ``(start, end)`` with the end clipped to the video's duration
            (an annotation past the end cannot be matched by any window of the video).
        durations: per evaluated caption, its video's duration in seconds.
        windows: the window scales in seconds.
        num_windows: windows encoded.
        skipped_videos: ``{video: error}`` of the videos left out with their captions (missing, undecodable).
    """

    metrics: dict[str, float]
    rows: list[int]
    predictions: list[list[tuple[float, float, float]]]
    ground_truth: list[tuple[float, float]]
    durations: list[float]
    windows: list[float]
    num_windows: int
    skipped_videos: dict[str, str] = dataclasses.field(default_factory=dict)


def evaluate_moments(model: Any, processor: Any, dataset: Any, options: MomentEvaluationOptions | None = None,
                     **option_values: Any) -> MomentEvaluation:
    """Single-video moment retrieval: find each caption's moment in its own video and score it against the ground
    truth.

    Each video's windows are encoded once (:func:`tvr.processing.windows.encode_windows`, the method's own frame
    sampling inside each window); each caption is scored against the windows of its video with
    ``model.score_gallery`` (the model's own scoring, as ``tvr eval`` ranks videos); temporal NMS
    (:func:`temporal_nms`) keeps the best ``top_k`` non-overlapping windows, whose spans are the predicted moments
    (:func:`moment_metrics`).

    Example::

        moments = tvr.data.load_moments("charades-sta", "data/charades", "data/charades/videos")
        result = evaluate_moments(model, processor, moments, windows="4,8,16", stride=0.5)
        result.metrics["R@1_IoU0.5"], result.metrics["random_window/R@1_IoU0.5"]

    Args:
        model: a tvr model.
        processor: its ``TVRProcessor``.
        dataset: a moment dataset (:func:`tvr.data.moments.load_moments`): ``video_id``, ``video_path``, ``caption``,
            ``start``, ``end`` (the ground-truth moment, seconds).
        options: a :class:`MomentEvaluationOptions`; keywords (``nms_iou=0.3``) override its fields.

    Raises:
        ValueError: a row without a moment (named), an unknown option (with the closest name), no decodable video.
    """
    import torch

    from ..data.videos import missing_videos
    from ..modeling.outputs import concat_encodings, slice_encoding
    from ..processing.bad_videos import warn_bad_videos
    from ..processing.windows import clip_seconds, encode_windows, parse_window_scales
    from .harness import _group_by_video, encode_texts, mixed_precision_autocast

    options = options_with(MomentEvaluationOptions, options, option_values, "evaluate_moments")
    scales = parse_window_scales(options.windows, clip_seconds(processor))
    captions, videos, text_to_video = _group_by_video(dataset)
    truth = _ground_truth(dataset)
    video_of = text_to_video.tolist()
    device = torch.device(options.device) if options.device is not None else next(model.parameters()).device
    skipped = missing_videos(videos["video_id"], videos["video_path"], options.on_bad_video, "moment dataset")
    present = [index for index, path in enumerate(videos["video_path"]) if path]

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), mixed_precision_autocast(device, options.mixed_precision):
            windowed = encode_windows(model, processor, [videos["video_path"][index] for index in present], scales,
                                      stride=options.stride, batch_size=options.batch_size,
                                      on_bad_video=options.on_bad_video, progress=options.progress, device=device,
                                      num_workers=options.num_workers)
            skipped.update(windowed.failed)
            if not windowed.rows:
                raise ValueError(f"none of the {len(videos['video_id'])} videos could be read; first error: "
                                 f"{next(iter(skipped.values()), 'no videos')}")
            window_encoding = concat_encodings(windowed.encodings)
            window_rows: dict[int, list[int]] = {}  # video -> its rows of window_encoding (consecutive)
            for row, (position, _, _) in enumerate(windowed.rows):
                window_rows.setdefault(present[position], []).append(row)
            # the captions of each video consecutive, so that each video scores one block of texts
            queries = sorted((row for row in range(len(captions)) if video_of[row] in window_rows),
                             key=lambda row: video_of[row])
            text_encoding = encode_texts(model, processor, [captions[row] for row in queries], options.batch_size,
                                         device, options.progress)
            predictions, durations = {}, {}
            first = 0
            for video, group in itertools.groupby(queries, key=video_of.__getitem__):
                last = first + len(list(group))
                rows = window_rows[video]
                spans = np.array([windowed.rows[row][1:] for row in rows], dtype=np.float64)
                scores = model.score_gallery(slice_encoding(text_encoding, first, last),
                                             slice_encoding(window_encoding, rows[0], rows[-1] + 1),
                                             block_size=options.block_size).float().numpy()
                for query, query_scores in zip(queries[first:last], scores):
                    kept = temporal_nms(spans, query_scores, options.nms_iou, options.top_k)
                    predictions[query] = [(float(spans[k, 0]), float(spans[k, 1]), float(query_scores[k]))
                                          for k in kept]
                    durations[query] = float(spans[:, 1].max())  # the last window of every scale ends at the end
                first = last
    finally:
        model.train(was_training)

    if skipped:
        warn_bad_videos(skipped, len(videos["video_id"]), "left out of the moment evaluation with their captions")
    rows = sorted(predictions)
    ground_truth = [(truth[row][0], max(truth[row][0], min(truth[row][1], durations[row]))) for row in rows]
    ranked = [predictions[row] for row in rows]
    metrics = moment_metrics([[span[:2] for span in moments] for moments in ranked], ground_truth,
                             options.recall_at, options.iou_thresholds)
    if options.baselines:
        baselines = moment_baselines(ground_truth, [durations[row] for row in rows], options.top_k, options.seed)
        for name, baseline in baselines.items():
            metrics.update({f"{name}/{key}": value for key, value in moment_metrics(
                baseline, ground_truth, options.recall_at, options.iou_thresholds).items()})
    return MomentEvaluation(metrics, rows, ranked, ground_truth, [durations[row] for row in rows], scales,
                            len(windowed.rows), skipped)


def moment_baselines(ground_truth: Sequence[Sequence[float]], durations: Sequence[float], top_k: int = 5,
                     seed: int = 0) -> dict[str, list[list[tuple[float, float]]]]:
    """The trivial moment predictions a model must beat, per query:

    - ``whole_video``: the whole video, ``(0, duration)`` (one prediction);
    - ``random_window``: ``top_k`` windows of the ground truth's length (at most the video's) placed uniformly at
      random in the video, drawn from ``numpy.random.default_rng(seed)`` query after query.
    """
    rng = np.random.default_rng(seed)
    whole, random = [], []
    for (start, end), duration in zip(ground_truth, durations):
        length = min(end - start, duration)
        whole.append([(0.0, float(duration))])
        random.append([(float(begin), float(begin + length)) for begin in rng.uniform(0, duration - length, top_k)])
    return {"whole_video": whole, "random_window": random}


def _ground_truth(dataset: Any) -> list[tuple[float, float]]:
    """Every row's moment ``(start, end)``; a row without one is an error naming it."""
    ids, starts, ends = dataset["video_id"], dataset["start"], dataset["end"]
    for row, (video_id, start, end) in enumerate(zip(ids, starts, ends)):
        if start is None or end is None or not end > start:
            raise ValueError(f"moment dataset row {row} (video {video_id!r}): no moment (start={start}, end={end}); "
                             "every row needs start < end in seconds: read the annotations with "
                             "tvr.data.load_moments")
    return [(float(start), float(end)) for start, end in zip(starts, ends)]


__all__ = ["BASELINES", "DEFAULT_IOU_THRESHOLDS", "DEFAULT_RECALL_AT", "DEFAULT_WINDOWS", "MomentEvaluation",
           "MomentEvaluationOptions", "evaluate_moments", "moment_baselines", "moment_metrics", "temporal_iou",
           "temporal_nms"]
