"""Batched retrieval evaluation of any tvr model on a caption dataset.

The harness follows the model contract only (``encode_text``, ``encode_video``, ``similarity``), so it evaluates
every method the same way: encode each caption and each unique video once, score texts x videos in blocks
(methods such as tightTransf or EMCL score pairs, not dot products), then rank.

Zero-shot evaluation of CLIP is this harness on a model initialised from CLIP and never trained, e.g. a
mean-pooling CLIP4Clip, whose score is CLIP's logit-scaled cosine between the caption and the mean frame
embedding::

    model = tvr.CLIP4ClipModel.from_clip("openai/clip-vit-base-patch32", sim_header="meanP")
    dataset = tvr.data.load_annotations("msrvtt", annotation_dir, video_dir, split="test")
    results = evaluate_retrieval(model, processor, dataset, postprocessing=("dsl",))
    results.metrics["t2v_R@1"], results.metrics["dsl/t2v_R@1"]

(``tvr eval`` does the same from a saved model folder.) The options can also travel as one object,
``evaluate_retrieval(model, processor, dataset, EvaluationOptions(postprocessing=("dsl",)))``; videos are encoded
by tvr's one decode -> skip bad videos -> encode loop (:mod:`tvr.processing.encode_loop`), as ``tvr index`` does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from tqdm.auto import tqdm
from transformers.utils import ModelOutput

from ..data.videos import missing_videos
from ..modeling.outputs import concat_encodings
from ..processing.bad_videos import check_bad_video_policy, warn_bad_videos
from ..processing.encode_loop import encode_video_batches
from ..utils.values import options_with
from .metrics import TIE_RULES, compute_retrieval_metrics
from .postprocessing import POSTPROCESSING, postprocessed_metrics

MIXED_PRECISION_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class RetrievalEvaluation:
    """What :func:`evaluate_retrieval` found.

    Attributes:
        metrics: ``t2v_R@1`` ... ``v2t_MeanR`` plus ``<method>/...`` keys for each post-processing method.
        video_ids: the unique videos in first-appearance order (the columns of ``similarity``).
        text_to_video: ``(num_texts,)`` column index of each dataset row's video.
        similarity: ``(num_texts, num_videos)`` float32 scores on CPU, when asked for.
        skipped_videos: ``{video_path: error}`` of the videos that could not be decoded; they and their captions
            are left out of ``video_ids``, ``text_to_video`` and the metrics.
    """

    metrics: dict[str, float]
    video_ids: list[str]
    text_to_video: torch.Tensor
    similarity: torch.Tensor | None = None
    skipped_videos: dict[str, str] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class EvaluationOptions:
    """How :func:`evaluate_retrieval` evaluates; every option has a default, ``tvr eval``'s flags set them.

    Example::

        options = EvaluationOptions(batch_size=64, postprocessing=("dsl",), mixed_precision="bf16")
        results = evaluate_retrieval(model, processor, dataset, options=options)
        # the same, by keyword (options given and keywords: the keywords win)
        results = evaluate_retrieval(model, processor, dataset, batch_size=64, postprocessing=("dsl",),
                                     mixed_precision="bf16")

    Attributes:
        batch_size: texts / videos encoded per forward pass.
        postprocessing: names from ``("dsl", "inverted_softmax", "qb_norm")``; reported beside the plain metrics.
            ``None``: the model's ``default_postprocessing`` if it declares one (InternVideo: ``("dsl",)``), else none.
        postprocessing_options: keyword arguments per method, e.g. ``{"dsl": {"temperature": 1.0}}``.
        query_bank: captions for QB-Norm's query bank (the paper uses the training captions); needed for
            ``"qb_norm"``.
        block_size: passed to ``model.score_gallery``, which scores the gallery the way the method is evaluated
            (its own blocks by default: EMCL's ``eval_block_size``, on which its results depend).
        rerank_top_k: passed to ``model.score_gallery`` for two-stage models (EERCF; default its
            ``config.rerank_top_k``, ``0`` for the first stage only).
        ties: tie rule, see :func:`~tvr.evaluation.compute_retrieval_metrics`.
        device: where to run; default ``accelerator.device``, else the model's device.
        mixed_precision: ``"no"`` (the model's dtype), ``"bf16"`` or ``"fp16"``: encode and score under autocast
            (faster on GPUs and on CPUs with bf16 units; scores change within the precision). An ``accelerator``
            brings its own.
        num_workers: DataLoader workers that decode videos.
        on_bad_video: ``"skip"``: a video that cannot be decoded (by decord or PyAV) is left out with its captions,
            warned about and listed in ``skipped_videos``; ``"error"``: it raises, naming the video.
        frame_cache_dir: a folder caching the decoded frames of every video on disk (see
            :class:`~tvr.data.frame_cache.CachedVideoProcessor`): later evaluations of the same videos with the same
            video settings read them instead of decoding; ``None``: decode every time.
        return_similarity: keep the similarity matrix in the result.
        progress: show tqdm progress bars (main process only).

    Raises:
        ValueError: an option outside its range (named), an unknown post-processing name, ``"qb_norm"`` without a
            ``query_bank``.
    """

    batch_size: int = 16
    postprocessing: Sequence[str] | None = None
    postprocessing_options: Mapping[str, Mapping] | None = None
    query_bank: Sequence[str] | None = None
    block_size: int | None = None
    rerank_top_k: int | None = None
    ties: str = "pessimistic"
    device: torch.device | str | None = None
    mixed_precision: str = "no"
    num_workers: int = 0
    on_bad_video: str = "skip"
    frame_cache_dir: str | os.PathLike | None = None
    return_similarity: bool = False
    progress: bool = True

    def __post_init__(self):
        if self.postprocessing is not None:
            _check_postprocessing(self.postprocessing, self.query_bank)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
        if self.ties not in TIE_RULES:
            raise ValueError(f"ties must be one of {TIE_RULES}, got {self.ties!r}")
        if self.mixed_precision != "no" and self.mixed_precision not in MIXED_PRECISION_DTYPES:
            raise ValueError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {self.mixed_precision!r}")
        check_bad_video_policy(self.on_bad_video)


def evaluate_retrieval(model: Any, processor: Any, dataset: Any, options: EvaluationOptions | None = None, *,
                       accelerator: Any = None, **option_values: Any) -> RetrievalEvaluation:
    """Encode a caption dataset, score every text against every video and compute retrieval metrics.

    Each dataset row is one text query; rows sharing a ``video_id`` share one video (multi-caption sets).
    The model is put in eval mode for the call and restored afterwards. Videos are encoded by the one
    decode -> skip bad videos -> encode loop (:func:`tvr.processing.encode_loop.encode_video_batches`).

    Example::

        results = evaluate_retrieval(model, processor, dataset, batch_size=64)
        results = evaluate_retrieval(model, processor, dataset, EvaluationOptions(batch_size=64, ties="optimistic"))

    Args:
        model: a tvr model (or one wrapped by ``accelerator.prepare``).
        processor: a ``TVRProcessor`` (or a processor wrapping one, with its ``video_processor``), callable as
            ``processor(text=[...], return_tensors="pt")`` -> ``input_ids``, ``attention_mask`` and
            ``processor(videos=[paths], start=[...], end=[...], do_rescale=False, do_normalize=False,
            return_tensors="pt")`` -> uint8 ``pixel_values_videos``, ``video_mask``; uint8 frames are normalised on
            the device with the ``video_processor``'s settings (:func:`~tvr.processing.normalize_videos`), float
            frames used as given.
        dataset: a ``datasets.Dataset`` (or dict of lists) with columns ``video_id``, ``video_path``,
            ``caption`` and optionally ``start``, ``end`` (seconds, ``None`` for the whole video).
        options: an :class:`EvaluationOptions` (default: its defaults).
        accelerator: an ``accelerate.Accelerator``; gives the device, autocast and unwraps the model. Every
            process computes the full result (encoding is not yet split across processes).
        **option_values: any :class:`EvaluationOptions` field by keyword (``batch_size=64``), over ``options``.

    Returns:
        A :class:`RetrievalEvaluation`.

    Raises:
        TypeError: an unknown option (with the closest name), or ``options`` that is not an ``EvaluationOptions``.
    """
    options = options_with(EvaluationOptions, options, option_values, "evaluate_retrieval")
    postprocessing = options.postprocessing
    if postprocessing is None:
        unwrapped = accelerator.unwrap_model(model) if accelerator is not None else model
        postprocessing = tuple(getattr(unwrapped, "default_postprocessing", ()))
        _check_postprocessing(postprocessing, options.query_bank)
    captions, videos, text_to_video = _group_by_video(dataset)
    if options.frame_cache_dir is not None:
        from ..data.frame_cache import CachedVideoProcessor

        processor = CachedVideoProcessor(processor, options.frame_cache_dir)
    device, progress = options.device, options.progress
    if accelerator is not None:
        model = accelerator.unwrap_model(model)
        device = device or accelerator.device
        progress = progress and accelerator.is_local_main_process
    device = torch.device(device) if device is not None else next(model.parameters()).device
    gallery_options = {"block_size": options.block_size, "progress": progress}
    if options.rerank_top_k is not None:
        gallery_options["rerank_top_k"] = options.rerank_top_k
    autocast = accelerator.autocast() if accelerator is not None else mixed_precision_autocast(
        device, options.mixed_precision)
    batch_size = options.batch_size

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast:
            # videos with no file and videos that cannot be decoded: one policy, left out and listed together
            skipped = missing_videos(videos["video_id"], videos["video_path"], options.on_bad_video,
                                     "evaluation dataset")
            present = [index for index, path in enumerate(videos["video_path"]) if path]

            def of_present(name: str) -> list:
                return [videos[name][index] for index in present]

            encoded = encode_video_batches(
                model, processor, of_present("video_path"), batch_size, starts=of_present("start"),
                ends=of_present("end"), on_bad_video=options.on_bad_video, device=device,
                num_workers=options.num_workers, progress=progress,
            )
            if not encoded.encodings:
                raise ValueError(f"none of the {len(present)} videos could be decoded; first error: "
                                 f"{next(iter(encoded.failed.values()))}")
            video_encoding = concat_encodings(encoded.encodings)
            kept, skipped = [present[position] for position in encoded.kept], {**skipped, **encoded.failed}
            if skipped:
                captions, videos, text_to_video = _drop_videos(captions, videos, text_to_video, kept)
                warn_bad_videos(skipped, len(kept) + len(skipped), "left out of the evaluation with their captions")
            text_encoding = encode_texts(model, processor, captions, batch_size, device, progress)
            sim = model.score_gallery(text_encoding, video_encoding, **gallery_options)
            bank_sim = None
            if "qb_norm" in postprocessing:
                bank_encoding = encode_texts(model, processor, list(options.query_bank), batch_size, device, progress)
                bank_sim = model.score_gallery(bank_encoding, video_encoding, **gallery_options)
    finally:
        model.train(was_training)

    metrics = compute_retrieval_metrics(sim, text_to_video, options.ties)
    if postprocessing:
        metrics.update(postprocessed_metrics(sim, text_to_video, postprocessing, bank_sim,
                                             options.postprocessing_options, options.ties))
    return RetrievalEvaluation(metrics, videos["video_id"], text_to_video,
                               sim if options.return_similarity else None, skipped)


def _check_postprocessing(postprocessing: Sequence[str], query_bank: Sequence[str] | None) -> None:
    unknown = set(postprocessing) - set(POSTPROCESSING)
    if unknown:
        raise ValueError(f"unknown post-processing {sorted(unknown)}; expected names from {POSTPROCESSING}")
    if "qb_norm" in postprocessing and not query_bank:
        raise ValueError("post-processing 'qb_norm' needs query_bank: a list of captions, e.g. the training set's")



def mixed_precision_autocast(device: torch.device, mixed_precision: str):
    """``torch.autocast`` on ``device`` for ``"bf16"`` / ``"fp16"`` (what Accelerate's ``mixed_precision`` does in
    one process); a no-op for ``"no"``."""
    if mixed_precision == "no":
        return contextlib.nullcontext()
    if mixed_precision not in MIXED_PRECISION_DTYPES:
        raise ValueError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {mixed_precision!r}")
    return torch.autocast(torch.device(device).type, dtype=MIXED_PRECISION_DTYPES[mixed_precision])


def encode_texts(
    model: Any, processor: Any, texts: Sequence[str], batch_size: int, device: torch.device, progress: bool = True
) -> ModelOutput:
    """``model.encode_text`` over ``texts`` in batches; the batches' encodings concatenated on ``device``."""
    encodings = []
    for start in tqdm(range(0, len(texts), batch_size), desc="encoding texts", disable=not progress):
        inputs = processor(text=list(texts[start : start + batch_size]), return_tensors="pt")
        encodings.append(
            model.encode_text(
                input_ids=inputs["input_ids"].to(device), attention_mask=inputs["attention_mask"].to(device)
            )
        )
    return concat_encodings(encodings)


def encode_videos(
    model: Any,
    processor: Any,
    video_paths: Sequence[str],
    batch_size: int,
    device: torch.device,
    starts: Sequence[float | None] | None = None,
    ends: Sequence[float | None] | None = None,
    num_workers: int = 0,
    progress: bool = True,
) -> ModelOutput:
    """``model.encode_video`` over ``video_paths`` (clipped to ``starts``/``ends`` seconds where given), decoded in
    DataLoader workers to uint8 frames that are normalised on ``device``; the batches' encodings concatenated on
    ``device``. A video that cannot be decoded raises (the loop this runs,
    :func:`tvr.processing.encode_loop.encode_video_batches`, leaves such videos out with ``on_bad_video="skip"``)."""
    encoded = encode_video_batches(model, processor, video_paths, batch_size, starts=starts, ends=ends,
                                   on_bad_video="error", device=device, num_workers=num_workers, progress=progress)
    return concat_encodings(encoded.encodings)


def _drop_videos(captions: list[str], videos: dict[str, list], text_to_video: torch.Tensor, kept: list[int]
                 ) -> tuple[list[str], dict[str, list], torch.Tensor]:
    """Keep only the videos at positions ``kept`` and the captions of those videos (columns renumbered)."""
    column = torch.full((len(videos["video_id"]),), -1, dtype=torch.long)
    column[torch.tensor(kept)] = torch.arange(len(kept))
    rows = (column[text_to_video] >= 0).nonzero().flatten()
    videos = {name: [values[position] for position in kept] for name, values in videos.items()}
    return [captions[row] for row in rows.tolist()], videos, column[text_to_video[rows]]


def _group_by_video(dataset) -> tuple[list[str], dict[str, list], torch.Tensor]:
    """Captions, the unique videos (``video_id``, ``video_path``, ``start``, ``end`` lists in first-appearance
    order, from each video's first row) and each row's video index."""
    names = dataset.column_names if hasattr(dataset, "column_names") else list(dataset)
    missing = {"video_id", "video_path", "caption"} - set(names)
    if missing:
        raise ValueError(f"dataset lacks columns {sorted(missing)}; it has {names}")
    wanted = ("video_id", "video_path", "caption", "start", "end")
    columns = {name: list(dataset[name]) for name in wanted if name in names}
    if not columns["video_id"]:
        raise ValueError("dataset has no rows to evaluate")
    video_index: dict[str, int] = {}
    first_rows = []
    for row, video_id in enumerate(columns["video_id"]):
        if video_id not in video_index:
            video_index[video_id] = len(video_index)
            first_rows.append(row)
    videos = {
        name: [columns[name][row] for row in first_rows] if name in columns else [None] * len(first_rows)
        for name in ("video_id", "video_path", "start", "end")
    }
    text_to_video = torch.tensor([video_index[video_id] for video_id in columns["video_id"]])
    return columns["caption"], videos, text_to_video


def save_eval_results(path: str | os.PathLike, metrics: Mapping[str, float], **metadata: Any) -> dict[str, Any]:
    """Write an eval-results JSON: ``metadata`` (e.g. ``dataset="msrvtt"``, ``split="test"``) then the metric keys,
    flat, as ``tvr eval`` writes and ``tvr card`` reads. Returns the written dict."""
    from ..utils.atomic import atomic_write_text

    results = {**metadata, **metrics}
    atomic_write_text(path, json.dumps(results, indent=2) + "\n")
    return results
