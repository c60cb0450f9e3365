"""``tvr demo``: the whole package end to end, offline, on CPU, in a few minutes.

1. make synthetic videos whose captions describe their content (colours, shapes, motion, order of events);
2. train a BPE tokenizer on the training captions and build a ``TVRProcessor``;
3. train a small CLIP4Clip from scratch with tvr's training loop (decoded videos cached in memory), on a tiny random
   CLIP tower (default) or SigLIP tower (``--tower siglip``: sigmoid loss, logit bias, attention-pooled frames);
4. evaluate the best checkpoint (by validation t2v R@1) on held-out test videos with the evaluation harness, plus
   a time-reversal check (:func:`time_reversal_accuracy`): does the model prefer each caption's video to the same
   video played backwards? And zero-shot classification of a labelled synthetic set (the class is the main
   object, ``"red square"``: 15 classes), prompted with the ``tvr-synthetic`` templates;
5. save it as a model folder with a model card and training curves;
6. index the test videos with ``VideoIndex`` and answer a few text queries.

Everything goes under ``--output``::

    data/                 videos/*.mp4 and {train,val,test}.jsonl; labelled/ (the zero-shot set: videos, test.csv)
    training/             the training run (metrics.jsonl, checkpoints/, best/, final/)
    model/                the demo model: save_pretrained + processor + README.md card + training_curves.png
    eval_results.json     test metrics (t2v_R@1 ... v2t_MeanR, time_reversal_accuracy)
    zero_shot_results.json  zero-shot classification of the labelled set (top1, top5, mean_class_accuracy)
    index/                the VideoIndex of the test videos
    search_results.json   the demo queries and their ranked videos

``--output`` is the demo's own folder: a re-run replaces what the demo wrote; a non-empty folder holding anything
else is refused before any work.

Example::

    tvr demo --output demo_output                        # seqTransf head
    tvr demo --output demo_meanp --sim-header meanP
    tvr demo --output demo_siglip --tower siglip          # SigLIP tower under the seqTransf head
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from .methods.clip4clip.configuration import SIM_HEADERS
from .utils.atomic import atomic_directory
from .utils.output_dir import claim_output_dir, write_marker

NUM_FRAMES = 8  # 8 s synthetic videos sampled at 1 frame per second
IMAGE_SIZE = 32  # frames are rendered at 64 px (decodes fastest) and resized to 32 for the model
MAX_WORDS = 32  # the longest 3-event caption is 23 tokens with the demo's tokenizer
NUM_QUERIES = 3  # test captions searched in the index at the end
DEMO_TOWERS = ("clip", "siglip")
OUTPUT_KIND = "demo"
# what the demo writes under --output ("data" first: every demo folder, tvr 0.1's unmarked ones included, has it)
DEMO_ENTRIES = ("data", "training", "model", "eval_results.json", "index", "search_results.json",
                "zero_shot_results.json")
ZERO_SHOT_LABELS = "object"  # the labelled set's class: colour and shape of its one object (15 classes)
ZERO_SHOT_TEMPLATES = "tvr-synthetic"  # the captions the demo model learnt, one per action


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "demo",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--output", default="demo_output", help="folder for everything the demo writes")
    parser.add_argument("--sim-header", choices=SIM_HEADERS, default="seqTransf", help="CLIP4Clip similarity head")
    parser.add_argument("--tower", choices=DEMO_TOWERS, default="clip",
                        help="image-text tower family of the (random, tiny) model")
    parser.add_argument("--train-videos", type=int, default=1500, help="synthetic training videos")
    parser.add_argument("--val-videos", type=int, default=100, help="validation videos (picks the best epoch)")
    parser.add_argument("--test-videos", type=int, default=100, help="held-out test videos")
    parser.add_argument("--labelled-videos", type=int, default=45,
                        help="videos of the labelled set classified zero-shot (15 classes: colour + shape)")
    parser.add_argument("--epochs", type=int, default=12, help="passes over the training videos")
    parser.add_argument("--batch-size", type=int, default=64, help="contrastive batch (negatives per caption - 1)")
    parser.add_argument("--lr", type=float, default=1e-3, help="learning rate (the whole model trains at it)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data, initialisation and training")
    parser.set_defaults(func=run)
    return parser


def build_demo_model(tokenizer, sim_header: str = "seqTransf", tower: str = "clip"):
    """A small random CLIP4Clip for the demo (about 1M parameters): 2-layer, 128-wide text and vision towers of the
    ``tower`` family on 32x32 frames in 8x8 patches, and a one-layer temporal transformer for ``seqTransf`` /
    ``tightTransf``."""
    from .methods.clip4clip import CLIP4ClipConfig, CLIP4ClipModel

    width = 128
    layers = dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=2, num_attention_heads=2)
    text_config = dict(layers, vocab_size=len(tokenizer), max_position_embeddings=MAX_WORDS,
                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=0 if tower == "clip" else tokenizer.pad_token_id)
    if tower == "siglip":
        text_config["projection_size"] = width  # SigLIP's text head projects into the vision width
    vision_config = dict(layers, image_size=IMAGE_SIZE, patch_size=8)
    config = CLIP4ClipConfig(tower_type=tower, text_config=text_config, vision_config=vision_config,
                             projection_dim=width, temporal_config={"num_hidden_layers": 1}, sim_header=sim_header,
                             max_frames=NUM_FRAMES, max_words=MAX_WORDS)
    return CLIP4ClipModel(config)


def build_demo_processor(tokenizer, tower: str = "clip"):
    """The demo's processor with the tower's conventions: CLIP4Clip's caption layout and CLIP frames, or SigLIP's
    max-length padding and square frames normalised to [-1, 1]."""
    from .modeling.towers import tower_family
    from .processing import TVRProcessor, TVRVideoProcessor

    frames = {"size": IMAGE_SIZE, "crop_size": IMAGE_SIZE}
    if tower == "siglip":
        frames = {"size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE}, "do_center_crop": False,
                  "image_mean": [0.5] * 3, "image_std": [0.5] * 3}
    video_processor = TVRVideoProcessor(fps=1, max_frames=NUM_FRAMES, **frames)
    return TVRProcessor(video_processor, tokenizer, max_words=MAX_WORDS, text_padding=tower_family(tower).text_padding)


def time_reversal_accuracy(model, processor, dataset, batch_size: int = 64, tolerance: float = 1e-4) -> float:
    """Percentage of captions that ``model`` scores higher with their video than with the same video played
    backwards, whose description differs (events in reverse order, left <-> right, up <-> down,
    appears <-> disappears). Near-ties (within ``tolerance``) count half, so 50 is chance: a head blind to frame
    order (meanP) scores a video and its reverse alike and gets exactly 50.
    """
    import copy

    import torch

    from .evaluation import encode_texts, encode_videos

    captions, paths = list(dataset["caption"]), list(dataset["video_path"])
    device = next(model.parameters()).device
    backwards = copy.deepcopy(processor)
    backwards.video_processor.frame_order = "reverse"
    with torch.no_grad():
        text = encode_texts(model, processor, captions, batch_size, device, progress=False)
        forward_scores = model.similarity(text, encode_videos(model, processor, paths, batch_size, device,
                                                              progress=False)).diagonal()
        backward_scores = model.similarity(text, encode_videos(model, backwards, paths, batch_size, device,
                                                               progress=False)).diagonal()
    margin = forward_scores - backward_scores
    wins = (margin > tolerance).float() + 0.5 * (margin.abs() <= tolerance).float()
    return 100 * wins.mean().item()


def run(args: argparse.Namespace) -> int:
    from accelerate.utils import set_seed

    from .data import make_synthetic_dataset
    from .data.synthetic import make_labelled_dataset
    from .evaluation import evaluate_retrieval, save_eval_results
    from .evaluation.zero_shot import evaluate_zero_shot, zero_shot_results
    from .hub_cards import write_model_card
    from .processing import train_clip_tokenizer
    from .retrieval import VideoIndex, load_model_and_processor
    from .retrieval.cli import format_results
    from .training import TrainingConfig, train
    from .training.config import rerunnable_config

    for name in ("train_videos", "val_videos", "test_videos", "labelled_videos", "epochs", "batch_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.train_videos < args.batch_size:
        raise ValueError(f"--train-videos ({args.train_videos}) must be at least --batch-size ({args.batch_size})")
    output = Path(args.output)
    claim_output_dir(output, OUTPUT_KIND, legacy=DEMO_ENTRIES)  # before any work: a foreign folder is refused
    output.mkdir(parents=True, exist_ok=True)
    write_marker(output, OUTPUT_KIND, files=DEMO_ENTRIES)
    started = time.perf_counter()

    def step(message: str) -> None:
        print(f"\n[{time.perf_counter() - started:6.1f} s] {message}", flush=True)

    step(f"1/6 synthetic videos: {args.train_videos} train, {args.val_videos} val, {args.test_videos} test")
    data_dir = output / "data"
    splits = {split: make_synthetic_dataset(data_dir, count, seed=args.seed, split=split)
              for split, count in (("train", args.train_videos), ("val", args.val_videos),
                                   ("test", args.test_videos))}
    print(f"e.g. {splits['train'][0]['video_path']}: {splits['train'][0]['caption']!r}")

    step("2/6 tokenizer trained on the training captions, processor")
    tokenizer = train_clip_tokenizer(list(splits["train"]["caption"]))  # saved with the model in step 5
    processor = build_demo_processor(tokenizer, args.tower)
    print(f"vocabulary: {len(tokenizer)} tokens; {NUM_FRAMES} frames of {IMAGE_SIZE}x{IMAGE_SIZE} per video")

    step(f"3/6 training CLIP4Clip ({args.sim_header}) on a {args.tower} tower from scratch")
    set_seed(args.seed)
    model = build_demo_model(tokenizer, args.sim_header, args.tower)
    print(f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    config = TrainingConfig(
        model_type="clip4clip", model_kwargs={"sim_header": args.sim_header},
        eval_data={"name": "tvr-synthetic", "split": "val"},
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        coef_lr=1.0,  # from scratch: the CLIP towers learn as fast as the head
        freeze_layer_num=-1,  # and nothing is frozen
        weight_decay=0.05, warmup_proportion=0.1, cache_videos=True, eval_batch_size=64, logging_steps=5,
        save_total_limit=1, seed=args.seed, output_dir=os.fspath(output / "training"),
    )
    train(config, model=model, processor=processor, train_dataset=splits["train"], eval_dataset=splits["val"])

    step("4/6 evaluating the best checkpoint on the test videos")
    model_dir = output / "model"
    with atomic_directory(model_dir) as staging:  # the demo's model/ (its folder is claimed): replaced whole
        shutil.copytree(output / "training" / "best", staging, dirs_exist_ok=True)
    model, processor = load_model_and_processor(model_dir, device="cpu")
    metrics = evaluate_retrieval(model, processor, splits["test"], batch_size=64).metrics
    metrics["time_reversal_accuracy"] = time_reversal_accuracy(model, processor, splits["test"])
    eval_results = save_eval_results(output / "eval_results.json", metrics, dataset="tvr-synthetic", split="test",
                                     num_texts=len(splits["test"]), num_videos=len(splits["test"]),
                                     sim_header=args.sim_header, tower=args.tower)
    print("  ".join(f"{key} {value:.1f}" for key, value in metrics.items()))
    print("(time_reversal_accuracy: % of captions scored higher with their video than with it played backwards; "
          "50 = blind to frame order)")
    labelled = make_labelled_dataset(data_dir / "labelled", args.labelled_videos, ZERO_SHOT_LABELS, seed=args.seed,
                                     progress=False)
    zero_shot = evaluate_zero_shot(model, processor, labelled, templates=ZERO_SHOT_TEMPLATES, batch_size=64,
                                   progress=False)
    zero_shot_result = zero_shot_results(zero_shot, "tvr-synthetic-labelled", "test", ZERO_SHOT_TEMPLATES)
    save_eval_results(output / "zero_shot_results.json", {}, **zero_shot_result)
    chance = 100 / len(zero_shot.classes)
    print(f"zero-shot classification of {len(labelled)} labelled videos ({len(zero_shot.classes)} classes, "
          f"templates {ZERO_SHOT_TEMPLATES}): top1 {zero_shot.metrics['top1']:.1f} (chance {chance:.1f})  top5 "
          f"{zero_shot.metrics['top5']:.1f}  mean_class_accuracy {zero_shot.metrics['mean_class_accuracy']:.1f}")

    step(f"5/6 model folder with card and training curves: {model_dir}")
    rerun = (f"tvr demo --output DIR --sim-header {args.sim_header} --tower {args.tower} --train-videos "
             f"{args.train_videos} --val-videos {args.val_videos} --test-videos {args.test_videos} --labelled-videos "
             f"{args.labelled_videos} --epochs "
             f"{args.epochs} --batch-size {args.batch_size} --lr {args.lr} --seed {args.seed}")
    write_model_card(model_dir, eval_results=[eval_results, zero_shot_result], train_log=output / "training" / "metrics.jsonl",
                     training_config=rerunnable_config(config.to_dict()), training_command=rerun)

    step("6/6 indexing the test videos and searching them")
    index = VideoIndex.build(model, processor, list(splits["test"]["video_path"]), batch_size=64,
                             model_dir=model_dir)
    index.save(output / "index")
    queries = list(splits["test"]["caption"])[:NUM_QUERIES]
    answers = index.search(queries, top_k=5)
    for query, results in zip(queries, answers):
        print(format_results(query, results))
    with open(output / "search_results.json", "w", encoding="utf-8") as file:
        json.dump([{"query": query, "results": [result._asdict() for result in results]}
                   for query, results in zip(queries, answers)], file, indent=2)
    step(f"done: test t2v R@1 {metrics['t2v_R@1']:.1f} (chance {100 / len(splits['test']):.1f}), zero-shot top-1 "
         f"{zero_shot.metrics['top1']:.1f} (chance {chance:.1f}); "
         f"try `tvr search {output / 'index'} \"a red square moves left\"`")
    return 0
