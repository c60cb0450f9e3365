"""``tvr eval``: evaluate a saved model on a dataset split and write the results JSON.

Example::

    tvr eval runs/clip4clip --dataset msrvtt --annotations data/msrvtt --videos data/msrvtt/videos --dsl \\
        --output runs/clip4clip/eval_results.json
    tvr eval runs/clip4clip --task zero-shot-classification --dataset ucf101 --annotations data/ucfTrainTestlist \\
        --videos data/UCF-101 --templates clip-ucf101 --output runs/clip4clip/ucf101_zero_shot.json
    tvr eval runs/clip4clip --task moments --dataset charades-sta --annotations data/charades \\
        --videos data/charades/videos --windows 4,8,16 --output runs/clip4clip/charades_moments.json
"""

from __future__ import annotations

import argparse
import os

GENERIC_FORMATS = ("csv", "jsonl")


def add_parser(subparsers) -> argparse.ArgumentParser:
    from ..data import READERS
    from ..data.classification import CLASSIFICATION_READERS
    from .templates import TEMPLATE_SETS

    parser = subparsers.add_parser(
        "eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_dir", help="folder saved with save_pretrained (model + processor), or a peft adapter "
                        "folder (DAVRL: RUN/best), loaded onto the base its adapter_config.json names")
    parser.add_argument("--allow-base-change", action="store_true",
                        help="an adapter folder: load it even if its base's weights changed since it was saved")
    parser.add_argument("--task", choices=list(TASKS), default="retrieval",
                        help="what to measure: text-video retrieval (R@K, default), zero-shot classification "
                             "(top-1 / top-5 / mean class accuracy of class-name prompts) or moments (where in its "
                             "video each caption happens: R@k at temporal IoU, mIoU)")
    parser.add_argument(
        "--dataset", required=True,
        choices=sorted(set(READERS) | set(GENERIC_FORMATS) | set(CLASSIFICATION_READERS) | set(MOMENT_DATASETS)),
        help="annotation format; csv / jsonl are your own files (retrieval: columns video_id or video_path, caption, "
             "start, end: the clip; moments: the same, start / end the moment; zero-shot-classification: csv with "
             "video_path, label); kinetics400/600/700, ucf101, hmdb51, ssv2, folder: zero-shot-classification "
             "benchmarks; charades-sta (and didemo): --task moments",
    )
    parser.add_argument("--annotations", required=True, help="annotation folder (csv / jsonl: the file or its folder)")
    parser.add_argument("--dataset-name", default=None,
                        help="how results and model cards name the data (default: the benchmark, or for csv / jsonl "
                             "the annotation file's folder and name)")
    parser.add_argument("--videos", default=None, help="video folder (csv / jsonl: default the annotation folder)")
    parser.add_argument("--split", default=None,
                        help="split to evaluate (default: test; for a csv / jsonl file named after a split, that split)")
    parser.add_argument("--processor", default=None,
                        help="processor folder or Hub id (default: the model folder's; converted folders written "
                             "without --tokenizer need one)")
    parser.add_argument("--batch-size", type=int, default=16, help="texts / videos per forward pass")
    parser.add_argument("--block-size", type=int, default=None, help="texts x videos per similarity call")
    parser.add_argument("--num-workers", type=int, default=0, help="video decoding workers")
    parser.add_argument("--frame-cache", default=None, metavar="DIR",
                        help="folder caching the decoded frames on disk: later evaluations of the same videos with "
                             "the same video settings read them instead of decoding")
    parser.add_argument("--device", default=None, help="e.g. cuda, cpu (default: cuda when available)")
    parser.add_argument("--mixed-precision", choices=("no", "bf16", "fp16"), default="no",
                        help="encode and score under bf16 / fp16 autocast (faster on GPUs; scores change within "
                             "the precision)")
    parser.add_argument("--dsl", action="store_true", help="also report dual-softmax (transductive) metrics")
    parser.add_argument("--inverted-softmax", action="store_true", help="also report inverted-softmax metrics")
    parser.add_argument("--qb-norm", action="store_true", help="also report QB-Norm metrics (bank: --qb-norm-split)")
    parser.add_argument("--qb-norm-split", default="train", help="split whose captions form the QB-Norm query bank")
    parser.add_argument(
        "--rerank-top-k", type=int, default=None,
        help="two-stage models: candidates re-scored per text (default: the model config's; 0: first stage only)",
    )
    parser.add_argument("--ties", choices=("pessimistic", "optimistic"), default="pessimistic",
                        help="a candidate scoring exactly as the ground truth ranks above it (pessimistic, default) "
                             "or below it (optimistic: the original code's rule)")
    parser.add_argument("--on-bad-video", choices=("skip", "error"), default="skip",
                        help="a video that cannot be decoded: skip it and its captions (listed in the results) or "
                             "stop with an error")
    parser.add_argument("--templates", default=None, metavar="NAME|FILE",
                        help="zero-shot-classification: prompt templates, a set (" + ", ".join(TEMPLATE_SETS)
                             + "; default single: 'a video of {}.') or a file with one template a line holding {}")
    parser.add_argument("--num-views", type=int, default=1,
                        help="zero-shot-classification: clips scored per video (equal spans), logits averaged")
    parser.add_argument("--fold", type=int, default=None,
                        help="zero-shot-classification on ucf101 / hmdb51: the official split 1, 2 or 3 (default 1)")
    parser.add_argument("--windows", default=None, metavar="SCALES",
                        help="moments: window lengths in seconds (4,8,16) or multiples of the model's clip length "
                             "(1x,2x); default by dataset: charades-sta / csv / jsonl 4,8,16, didemo 5,10,...,30")
    parser.add_argument("--stride", type=float, default=None,
                        help="moments: step between windows as a fraction of their length (default 0.5; didemo 1)")
    parser.add_argument("--nms-iou", type=float, default=None,
                        help="moments: temporal NMS drops a window overlapping a better one by this IoU (default 0.5)")
    parser.add_argument("--output", default=None, help="results JSON (default: print only)")
    parser.add_argument("--save-similarity", default=None, help="also torch.save the similarity matrix here")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    return TASKS[args.task](args)


def run_retrieval(args: argparse.Namespace) -> int:
    import torch

    from ..loading import load_model_and_processor
    from .harness import EvaluationOptions, evaluate_retrieval, save_eval_results

    _check_task_options(args, retrieval_datasets())
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    # names a missing folder or a damaged model.safetensors (transformers' own errors name neither)
    model, processor = load_model_and_processor(args.model_dir, device, processor=args.processor,
                                                allow_base_change=args.allow_base_change)
    args.split = args.split or _default_split(args)
    dataset = _load_split(args, args.split, args.videos)
    postprocessing = [name for name, on in (("dsl", args.dsl), ("inverted_softmax", args.inverted_softmax),
                                            ("qb_norm", args.qb_norm)) if on]
    postprocessing = postprocessing or None  # none asked for: the model's default (InternVideo reports DSL)
    query_bank = _captions(_load_split(args, args.qb_norm_split, None)) if args.qb_norm else None

    options = EvaluationOptions(
        batch_size=args.batch_size,
        postprocessing=postprocessing,
        query_bank=query_bank,
        block_size=args.block_size,
        rerank_top_k=args.rerank_top_k,
        ties=args.ties,
        device=device,
        mixed_precision=args.mixed_precision,
        num_workers=args.num_workers,
        on_bad_video=args.on_bad_video,
        frame_cache_dir=args.frame_cache,
        return_similarity=args.save_similarity is not None,
    )
    result = evaluate_retrieval(model, processor, dataset, options)
    from ..hub_cards.card import dataset_label

    metadata = dict(
        model=os.path.abspath(args.model_dir),
        dataset=args.dataset_name or dataset_label(args.dataset, args.annotations),
        split=args.split,
        num_texts=len(result.text_to_video),
        num_videos=len(result.video_ids),
        num_skipped_videos=len(result.skipped_videos),
        skipped_videos=result.skipped_videos,
        ties=args.ties,
        rerank_top_k=args.rerank_top_k,
    )
    if args.output:
        save_eval_results(args.output, result.metrics, **metadata)
    if args.save_similarity:
        torch.save(
            {"similarity": result.similarity, "video_ids": result.video_ids, "text_to_video": result.text_to_video},
            args.save_similarity,
        )
    print(f"{args.dataset} {args.split}: {metadata['num_texts']} texts, {metadata['num_videos']} videos scored, "
          f"{metadata['num_skipped_videos']} skipped (could not be decoded)")
    return _print_results(result.skipped_videos, result.metrics)


def _load_split(args: argparse.Namespace, split: str, video_dir: str | None):
    from ..data import load_annotations

    if args.dataset in GENERIC_FORMATS:
        path = args.annotations
        if os.path.isdir(path):  # the folder may hold both formats: take the one asked for
            path = os.path.join(path, f"{split}.{args.dataset}")
        return load_annotations("generic", path, video_dir, split)
    return load_annotations(args.dataset, args.annotations, video_dir, split)


def _default_split(args: argparse.Namespace) -> str:
    """``test``, or the split a csv / jsonl file is named after (``val.jsonl`` -> ``val``)."""
    from ..data.readers import SPLIT_NAMES

    stem = os.path.splitext(os.path.basename(args.annotations))[0]
    if args.dataset in GENERIC_FORMATS and not os.path.isdir(args.annotations) and stem in SPLIT_NAMES:
        return stem
    return "test"


def _captions(dataset) -> list[str]:
    """Every caption of a split (MSR-VTT's unexpanded train split keeps all sentences in ``captions``)."""
    if "captions" in dataset.column_names:
        return [caption for captions in dataset["captions"] for caption in captions]
    return list(dataset["caption"])


def run_zero_shot(args: argparse.Namespace) -> int:
    """``--task zero-shot-classification``: classify the split's videos among its classes with prompt templates."""
    import torch

    from ..data.classification import CLASSIFICATION_READERS, load_classification
    from ..hub_cards.card import dataset_label
    from ..loading import load_model_and_processor
    from .harness import save_eval_results
    from .templates import resolve_templates
    from .zero_shot import ZeroShotOptions, evaluate_zero_shot, zero_shot_results

    _check_task_options(args, CLASSIFICATION_READERS)
    options = ZeroShotOptions(templates=args.templates, num_views=args.num_views, batch_size=args.batch_size,
                              block_size=args.block_size, mixed_precision=args.mixed_precision,
                              num_workers=args.num_workers, on_bad_video=args.on_bad_video,
                              frame_cache_dir=args.frame_cache)
    resolve_templates(args.templates)  # a bad set name or file is reported before the model loads
    reader_options = {} if args.fold is None else {"fold": args.fold}
    dataset = load_classification(args.dataset, args.annotations, args.videos, args.split, **reader_options)
    args.split = dataset[0]["split"]
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, processor = load_model_and_processor(args.model_dir, device, processor=args.processor,
                                                allow_base_change=args.allow_base_change)
    result = evaluate_zero_shot(model, processor, dataset, options, device=device)
    results = zero_shot_results(result, args.dataset_name or dataset_label(args.dataset, args.annotations),
                                args.split, args.templates, args.num_views, model=os.path.abspath(args.model_dir),
                                **reader_options)
    if args.output:
        save_eval_results(args.output, {}, **results)
    print(f"{args.dataset} {args.split}: {len(result.video_ids)} videos, {len(result.classes)} classes, "
          f"{len(result.templates)} templates, {args.num_views} view(s); {len(result.skipped_videos)} skipped")
    return _print_results(result.skipped_videos, result.metrics)


def run_moments(args: argparse.Namespace) -> int:
    """``--task moments``: find each caption's moment in its own video among windows of it, against the annotation."""
    import torch

    from ..data.moments import load_moments
    from ..hub_cards.card import dataset_label
    from ..loading import load_model_and_processor
    from .harness import save_eval_results
    from .moments import DEFAULT_WINDOWS, MomentEvaluationOptions, evaluate_moments

    _check_task_options(args, MOMENT_DATASETS)
    fmt = "generic" if args.dataset in GENERIC_FORMATS else args.dataset
    windows, stride = DEFAULT_WINDOWS[fmt]
    options = MomentEvaluationOptions(
        windows=args.windows or windows, stride=args.stride if args.stride is not None else stride,
        nms_iou=args.nms_iou if args.nms_iou is not None else MomentEvaluationOptions.nms_iou,
        batch_size=args.batch_size, block_size=args.block_size, mixed_precision=args.mixed_precision,
        num_workers=args.num_workers, on_bad_video=args.on_bad_video)
    args.split = args.split or _default_split(args)
    annotations = args.annotations
    if fmt == "generic" and os.path.isdir(annotations):  # the folder may hold both formats: take the one asked for
        annotations = os.path.join(annotations, f"{args.split}.{args.dataset}")
    dataset = load_moments(args.dataset, annotations, args.videos, args.split)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model, processor = load_model_and_processor(args.model_dir, device, processor=args.processor,
                                                allow_base_change=args.allow_base_change)
    result = evaluate_moments(model, processor, dataset, options, device=device)
    video_ids = dataset["video_id"]
    metadata = dict(
        task="moments",
        model=os.path.abspath(args.model_dir),
        dataset=args.dataset_name or dataset_label(args.dataset, args.annotations),
        split=args.split,
        windows=result.windows,
        stride=options.stride,
        nms_iou=options.nms_iou,
        num_texts=len(result.rows),
        num_videos=len({video_ids[row] for row in result.rows}),
        num_windows=result.num_windows,
        num_skipped_videos=len(result.skipped_videos),
        skipped_videos=result.skipped_videos,
    )
    if args.output:
        save_eval_results(args.output, result.metrics, **metadata)
    print(f"{args.dataset} {args.split}: {metadata['num_texts']} captions in {metadata['num_videos']} videos, "
          f"{result.num_windows} windows of {','.join(f'{scale:g}' for scale in result.windows)} s (stride "
          f"{options.stride:g}), {metadata['num_skipped_videos']} videos skipped")
    return _print_results(result.skipped_videos, result.metrics)


def _print_results(skipped_videos: dict[str, str], metrics: dict[str, float]) -> int:
    """The first skipped videos and the metrics, one a line, as every task prints them."""
    from ..processing.bad_videos import print_bad_videos

    print_bad_videos(skipped_videos, "  skipped", "the --output FILE")
    for key, value in metrics.items():
        print(f"  {key:<28} {value:8.2f}")
    return 0


def retrieval_datasets() -> set[str]:
    from ..data import READERS

    return set(READERS) | set(GENERIC_FORMATS)


def _check_task_options(args: argparse.Namespace, datasets) -> None:
    """``--dataset`` must be one of the task's formats, and the options only another task reads
    (:data:`TASK_OPTIONS`) must not be set (they would be ignored)."""
    if args.dataset not in datasets:
        raise ValueError(f"--dataset {args.dataset} is not a {args.task} dataset (those are "
                         f"{', '.join(sorted(datasets))}); pass the --task it is for ({', '.join(TASKS)})")
    defaults = {"num_views": 1, "ties": "pessimistic"}
    others = [name for task, names in TASK_OPTIONS.items() if task != args.task for name in names]
    given = [name for name in others if getattr(args, name, None) not in (None, False, defaults.get(name))]
    if given:
        raise ValueError(f"--{given[0].replace('_', '-')} does not apply to --task {args.task}")


# the formats `tvr eval --task moments` reads (tvr.data.moments; csv / jsonl: your own)
MOMENT_DATASETS = ("charades-sta", "didemo", *GENERIC_FORMATS)
# task -> the function that runs it (`tvr eval --task`): one entry per task
TASKS = {
    "retrieval": run_retrieval,
    "zero-shot-classification": run_zero_shot,
    "moments": run_moments,
}
# task -> the options only it reads: the other tasks refuse them
TASK_OPTIONS = {
    "retrieval": ("dsl", "inverted_softmax", "qb_norm", "rerank_top_k", "ties", "save_similarity"),
    "zero-shot-classification": ("templates", "num_views", "fold"),
    "moments": ("windows", "stride", "nms_iou"),
}
