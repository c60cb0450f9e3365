"""Evaluation, model side: tvr vs the original CLIP4Clip code, same device, same random ViT-B/32 weights.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_eval.py --device cpu --encode-videos 64 \
        --heads seqTransf:256x1000 tightTransf:16x1000 --repeats 3
    PYTHONPATH=src .venv/bin/python benchmarks/bench_eval.py --device cuda --encode-videos 1000 --encode-texts 1000 \
        --heads meanP:1000x1000 seqTransf:1000x1000 tightTransf:1000x1000 --repeats 3

Two measurements per head (the original needs `.original/CLIP4Clip`, see benchmarks/original.py):

- encode (with the first head only: the towers are the same for every head): `--encode-videos` videos
  (`--frames` frames each) and `--encode-texts` captions in batches of
  `--batch-size-val` (the README's 16). Original: `get_sequence_output` / `get_visual_output` per loader batch,
  frames handed over as its loader makes them (float64, normalised). tvr: what `evaluate_retrieval` does per batch:
  uint8 frames normalised on the device (`normalize_videos`), `encode_video`, `encode_text`. One random batch is
  reused for every batch index, as in gpu_baseline.md.
- score: `TEXTSxVIDEOS` similarity from text and frame features. Original: `_run_on_single_gpu`, i.e.
  `get_similarity_logits` for every (text batch, video batch) pair, then `.cpu()`; its seqTransf head runs inside
  every call. tvr: the head applied once per video (`encode_frame_features`) then `score_gallery` (tightTransf: pair
  chunks by the device's memory budget).

Variants: `original` (fp32 on the CPU; on CUDA its CLIP in fp16 as it builds it), `tvr-fp32`, `tvr-bf16` (the
`--mixed-precision bf16` switch of `tvr eval`: autocast). Calls alternate between variants; min / median over
`--repeats` after one warm-up; the score matrices are compared with the original's.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np
import original as reference
import torch
from original import summarise, synchronize

VARIANTS = ("original", "tvr-fp32", "tvr-bf16")


def original_encode(model, inputs: dict, num_videos: int, num_texts: int, batch_size: int) -> None:
    """The original's eval_epoch encoding loop (single-sentence path) over one reused loader batch."""
    video = inputs["video"][:batch_size]
    video_mask = inputs["video_mask"][:batch_size]
    input_ids, segment_ids, input_mask = (inputs[name][:batch_size] for name in ("input_ids", "segment_ids",
                                                                                  "input_mask"))
    for _ in range(0, num_texts, batch_size):
        model.get_sequence_output(input_ids, segment_ids, input_mask)
    for _ in range(0, num_videos, batch_size):
        model.get_visual_output(video, video_mask)


def tvr_encode(model, video_processor, inputs: dict, num_videos: int, num_texts: int, batch_size: int) -> None:
    """What `evaluate_retrieval` does per batch once the frames are on the device."""
    from tvr.processing import normalize_videos

    frames, video_mask = inputs["pixel_values_videos"][:batch_size], inputs["video_mask"][:batch_size]
    input_ids, attention_mask = inputs["input_ids"][:batch_size], inputs["attention_mask"][:batch_size]
    for _ in range(0, num_texts, batch_size):
        model.encode_text(input_ids, attention_mask)
    for _ in range(0, num_videos, batch_size):
        model.encode_video(normalize_videos(frames, video_mask, video_processor), video_mask)


def original_score(model, text_features, frame_features, video_mask, batch_size: int) -> np.ndarray:
    """`_run_on_single_gpu`: `get_similarity_logits` per (text batch, video batch), each result to the host."""
    rows = []
    masks_t = torch.ones(text_features.shape[0], 1, dtype=torch.long, device=text_features.device)
    for t in range(0, text_features.shape[0], batch_size):
        row = []
        for v in range(0, frame_features.shape[0], batch_size):
            logits, *_ = model.get_similarity_logits(text_features[t:t + batch_size, None],
                                                     frame_features[v:v + batch_size], masks_t[t:t + batch_size],
                                                     video_mask[v:v + batch_size], loose_type=model.loose_type)
            row.append(logits.cpu().detach().numpy())
        rows.append(np.concatenate(row, axis=-1))
    return np.concatenate(rows, axis=0)


def tvr_score(model, text_features, frame_features, video_mask) -> torch.Tensor:
    """The head once per video, then the gallery scoring the harness calls."""
    from tvr.modeling.outputs import TextEncoding

    video = model.encode_frame_features(frame_features, video_mask)
    return model.score_gallery(TextEncoding(text_features=text_features), video)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", default=reference.DEFAULT_ORIGINAL, help="the original CLIP4Clip checkout")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--heads", nargs="+", default=["seqTransf:256x1000", "tightTransf:16x1000"],
                        help="HEAD:TEXTSxVIDEOS scored per head")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--encode-videos", type=int, default=64, help="videos encoded (0: skip encoding)")
    parser.add_argument("--encode-texts", type=int, default=64)
    parser.add_argument("--batch-size-val", type=int, default=16)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = args.device
    autocast_type = device.split(":")[0]
    print(f"# {reference.machine_line(device)} | ViT-B/32, {args.frames} frames, batch_size_val "
          f"{args.batch_size_val}")
    print("| head | work | variant | s min / median | speed-up vs original | max abs diff vs original |")
    print("|---|---|---|---|---|---|")
    from tvr import TVRVideoProcessor

    video_processor = TVRVideoProcessor()
    for spec in args.heads:
        sim_header, sizes = spec.split(":")
        num_texts, num_videos = (int(value) for value in sizes.split("x"))
        original, model = reference.build_models(args.original, sim_header, device=device,
                                                 original_fp16=device.startswith("cuda"), max_frames=args.frames)
        original.eval(), model.eval()
        original_inputs, batch = reference.random_batch(args.batch_size_val, args.frames)
        original_inputs = {name: value.to(device) for name, value in original_inputs.items()}
        batch = {name: value.to(device) for name, value in batch.items()}
        generator = torch.Generator().manual_seed(1)
        text_features = torch.randn(num_texts, 512, generator=generator).to(device)
        frame_features = torch.randn(num_videos, args.frames, 512, generator=generator).to(device)
        video_mask = torch.ones(num_videos, args.frames, dtype=torch.long, device=device)
        video_mask[1::3, args.frames // 2:] = 0  # a third of the videos are short

        def precision(variant):
            if variant == "tvr-bf16":
                return torch.autocast(autocast_type, dtype=torch.bfloat16)
            return contextlib.nullcontext()

        works = {}
        if args.encode_videos and spec == args.heads[0]:  # the towers are the same for every head
            works[f"encode {args.encode_videos} videos + {args.encode_texts} texts"] = {
                "original": lambda: original_encode(original, original_inputs, args.encode_videos,
                                                    args.encode_texts, args.batch_size_val),
                "tvr": lambda: tvr_encode(model, video_processor, batch, args.encode_videos, args.encode_texts,
                                          args.batch_size_val),
            }
        works[f"score {num_texts} x {num_videos}"] = {
            "original": lambda: original_score(original, text_features, frame_features, video_mask,
                                               args.batch_size_val),
            "tvr": lambda: tvr_score(model, text_features, frame_features, video_mask),
        }
        for work, functions in works.items():
            times = {variant: [] for variant in args.variants}
            outputs = {}
            for round_index in range(1 + args.repeats):
                for variant in args.variants:
                    function = functions["original" if variant == "original" else "tvr"]
                    synchronize(device)
                    start = time.perf_counter()
                    with torch.no_grad(), precision(variant):
                        outputs[variant] = function()
                    synchronize(device)
                    if round_index:
                        times[variant].append(time.perf_counter() - start)
            base = summarise(times["original"])[1] if "original" in times else None
            for variant in args.variants:
                fastest, median = summarise(times[variant])
                difference = "-"
                if variant != "original" and outputs.get("original") is not None:
                    difference = f"{np.abs(outputs[variant].numpy() - outputs['original']).max():.1e}"
                ratio = f"{base / median:.2f}x" if base else "-"
                print(f"| {sim_header} | {work} | {variant} | {fastest:.2f} / {median:.2f} | {ratio} | {difference} |",
                      flush=True)
        del original, model


if __name__ == "__main__":
    main()
