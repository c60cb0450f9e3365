"""Training step: tvr vs the original CLIP4Clip code, same device, same random ViT-B/32 weights, same batch.

    PYTHONPATH=src .venv/bin/python benchmarks/bench_train.py --device cpu --batch-size 4 --repeats 5
    PYTHONPATH=src .venv/bin/python benchmarks/bench_train.py --device cuda --batch-size 64 --repeats 20 \
        --variants original tvr-fp32 tvr-bf16 tvr-bf16-compile

The original needs its code in `.original/CLIP4Clip` (see benchmarks/original.py). Variants:

- `original`: CLIP4Clip's `train_epoch` step (forward in training mode with its AllGather and barrier over a
  one-process gloo group, `backward`, `float(loss)`, global `clip_grad_norm_(1.0)`, its BertAdam with the
  `prep_optimizer` groups, `zero_grad`, logit-scale clamp). It gets its loader's float64 frames. CLIP weights fp16 on
  CUDA as it builds them; fp32 on the CPU (fp16 would be emulated there, far slower: not a fair baseline).
- `tvr-fp32`: `tvr train`'s step (`ContrastiveStep`: encode, contrastive loss; `clip_grad_norm_(1.0)`; AdamW as
  `build_optimizer` makes it; the warmup-cosine scheduler; logit-scale clamp), fp32, uint8 frames normalised on the
  device. `tvr-bertadam` is the same with the seeds' BertAdam.
- `tvr-bf16`: the recommended settings: bf16 autocast around the forward (what Accelerate's `mixed_precision="bf16"`
  does in one process), fused AdamW, SDPA attention (tvr's default everywhere).
- `tvr-bf16-compile`: `tvr-bf16` with the step module under `torch.compile` (`torch_compile: true`); the first step
  (compilation) is reported apart.

Steps of all variants alternate (one step of each per round) so machine load hits them alike. Reported: min / median
ms per step over `--repeats` rounds after `--warmup` rounds, clips/s at the median, peak memory, and the median
ratio original / variant. Before timing, the script checks that the two models give the same similarity matrix.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import math
import time

import original as reference
import torch
from original import PeakMemory, summarise, synchronize

VARIANTS = ("original", "tvr-fp32", "tvr-bertadam", "tvr-bf16", "tvr-bf16-compile")
# method: (builder of its two models, its checkout under .original/, its optimiser module)
ORIGINALS = {
    "clip4clip": (reference.build_models, "CLIP4Clip", "modules.optimization"),
    "emcl": (reference.build_emcl_models, "EMCL", "emcl_original.models.optimization"),
    "eercf": (reference.build_eercf_models, "EERCF", "modules.optimization"),
    "davrl": (reference.build_davrl_models, "DAVRL", "davrl_original.models.optimization_adamw"),
}


def original_step(model, optimization, inputs: dict, method: str = "clip4clip", total_steps: int = 1000,
                  anomaly_detection: bool = True):
    """The original's `prep_optimizer` + one `train_epoch` iteration, as a closure. CLIP4Clip, EMCL-Net and EERCF:
    BertAdam over the four groups; DAVRL: AdamW over its adapter with a warmup-cosine scheduler. EMCL-Net and DAVRL
    run `backward` under `torch.autograd.detect_anomaly()`, as their loops do."""
    if method == "davrl":
        trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
        optimizer = optimization.AdamW([{"params": trained, "lr": 6e-4}], weight_decay=0.2)
        scheduler = optimization.get_cosine_schedule_with_warmup(optimizer, int(0.1 * total_steps), total_steps)
    else:
        named = list(model.named_parameters())
        no_decay = ["bias", "LayerNorm.bias", "LayerNorm.weight"]
        decay = [(n, p) for n, p in named if not any(nd in n for nd in no_decay)]
        no_decay_params = [(n, p) for n, p in named if any(nd in n for nd in no_decay)]
        lr, coef_lr, weight_decay = 1e-4, 1e-3, 0.2
        groups = [
            {"params": [p for n, p in decay if "clip." in n], "weight_decay": weight_decay, "lr": lr * coef_lr},
            {"params": [p for n, p in decay if "clip." not in n], "weight_decay": weight_decay},
            {"params": [p for n, p in no_decay_params if "clip." in n], "weight_decay": 0.0, "lr": lr * coef_lr},
            {"params": [p for n, p in no_decay_params if "clip." not in n], "weight_decay": 0.0},
        ]
        optimizer = optimization.BertAdam(groups, lr=lr, warmup=0.1, schedule="warmup_cosine", b1=0.9, b2=0.98,
                                          e=1e-6, t_total=total_steps, weight_decay=weight_decay, max_grad_norm=1.0)
        scheduler = None
    model.train()
    if method in ("emcl", "davrl"):  # text_ids, text_mask, video (B, T, 3, H, W), video_mask, idx, global_step
        batch_size = inputs["input_ids"].shape[0]
        args = [inputs["input_ids"].view(batch_size, -1), inputs["input_mask"].view(batch_size, -1),
                inputs["video"].view(batch_size, -1, *inputs["video"].shape[-3:]).float(),
                inputs["video_mask"].view(batch_size, -1), torch.arange(batch_size), 0]
        forward = lambda: model(*args)  # noqa: E731
    elif method == "eercf":  # its train_epoch combines the model's logits and terms into the loss
        forward = lambda: reference.eercf_original_loss(model, inputs)  # noqa: E731
    else:
        args = [inputs[name] for name in ("input_ids", "segment_ids", "input_mask", "video", "video_mask")]
        forward = lambda: model(*args)  # noqa: E731
    anomaly = method in ("emcl", "davrl") and anomaly_detection
    detect = torch.autograd.detect_anomaly if anomaly else contextlib.nullcontext

    def step() -> float:
        loss = forward()
        with detect():
            loss.backward()
        value = float(loss)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        optimizer.zero_grad()
        torch.clamp_(model.clip.logit_scale.data, max=math.log(100))
        return value

    return step


def tvr_step(model, inputs: dict, optimizer_name: str, bf16: bool, compile_step: bool, device: str):
    """One `tvr train` optimiser step (one process, no accumulation), as a closure."""
    from tvr import TVRVideoProcessor
    from tvr.training.optimization import build_optimizer, build_scheduler
    from tvr.training.trainer import ContrastiveStep, clamp_logit_scale

    step_module = ContrastiveStep(model, TVRVideoProcessor())  # normalises the uint8 frames on the device
    optimizer = build_optimizer(model, optimizer_name, lr=1e-4, coef_lr=1e-3, weight_decay=0.2)
    scheduler = build_scheduler(optimizer, 1000, 0.1)
    forward = torch.compile(step_module) if compile_step else step_module
    autocast = torch.autocast(device.split(":")[0], dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    model.train()

    def step() -> float:
        with autocast:
            loss = forward(**inputs)
        loss.backward()
        value = float(loss)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        clamp_logit_scale(model)
        return value

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=tuple(ORIGINALS), default="clip4clip")
    parser.add_argument("--original", default=None, help="the original's checkout (default .original/CLIP4Clip, "
                                                          ".original/EMCL, .original/EERCF, .original/DAVRL)")
    parser.add_argument("--no-anomaly-detection", action="store_true",
                        help="EMCL-Net, DAVRL: time their step without the detect_anomaly() their train loops wrap "
                             "backward in")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sim-headers", nargs="+", default=["meanP", "seqTransf"])
    parser.add_argument("--variants", nargs="+", default=["original", "tvr-fp32", "tvr-bf16"], choices=VARIANTS)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    device = args.device
    print(f"# {reference.machine_line(device)} | batch {args.batch_size} x {args.frames} frames, ViT-B/32")
    print("| head | variant | ms/step min / median | clips/s | peak memory | speed-up vs original |")
    print("|---|---|---|---|---|---|")
    sim_headers = args.sim_headers if args.method == "clip4clip" else ["seqTransf"]
    for sim_header in sim_headers:
        label = {"clip4clip": sim_header, "emcl": "EMCL-Net (seqTransf)", "eercf": "EERCF (seqTransf)",
                 "davrl": "DAVRL (LoRA adapter)"}[args.method]
        original_inputs, batch = reference.random_batch(args.batch_size, args.frames)
        if args.method == "clip4clip":
            original, model = reference.build_models(args.original or reference.DEFAULT_ORIGINAL, sim_header,
                                                     device=device, original_fp16=device.startswith("cuda"),
                                                     max_frames=args.frames)
        else:
            build, folder, _ = ORIGINALS[args.method]
            original, model = build(args.original or reference.ORIGINALS / folder, device=device,
                                    original_fp16=device.startswith("cuda"), max_frames=args.frames)
        with reference.gloo_group():
            difference = reference.parity(args.method, original, model, original_inputs, batch)
        optimization = importlib.import_module(ORIGINALS[args.method][2])
        checked = "training loss (train mode)" if args.method == "eercf" else "max |similarity| (eval)"
        print(f"# {label}: difference original vs tvr, fp32 {checked} = {difference:.2e}")
        original_inputs = {name: value.to(device) for name, value in original_inputs.items()}
        steps, compile_seconds = {}, None
        with reference.gloo_group():
            for variant in args.variants:
                if variant == "original":
                    steps[variant] = original_step(original, optimization, original_inputs, args.method,
                                                   anomaly_detection=not args.no_anomaly_detection)
                else:
                    steps[variant] = tvr_step(model, {name: value.to(device) for name, value in batch.items()},
                                              "bertadam" if variant == "tvr-bertadam" else "adamw",
                                              bf16="bf16" in variant, compile_step="compile" in variant,
                                              device=device)
            if "tvr-bf16-compile" in steps:
                start = time.perf_counter()
                steps["tvr-bf16-compile"]()
                synchronize(device)
                compile_seconds = time.perf_counter() - start
            times = {variant: [] for variant in steps}
            peaks = {variant: 0 for variant in steps}
            for round_index in range(args.warmup + args.repeats):
                for variant, step in steps.items():
                    synchronize(device)
                    with PeakMemory(device) as memory:
                        start = time.perf_counter()
                        loss = step()
                        synchronize(device)
                        elapsed = time.perf_counter() - start
                    if not math.isfinite(loss):
                        raise RuntimeError(f"{variant}: non-finite loss {loss}")
                    if round_index >= args.warmup:
                        times[variant].append(elapsed)
                        peaks[variant] = max(peaks[variant], memory.peak_bytes)
        base = summarise(times["original"])[1] if "original" in times else None
        for variant in steps:
            fastest, median = summarise(times[variant])
            ratio = f"{base / median:.2f}x" if base else "-"
            print(f"| {label} | {variant} | {fastest * 1e3:.0f} / {median * 1e3:.0f} | "
                  f"{args.batch_size / median:.2f} | {peaks[variant] / 2**20:.0f} MiB | {ratio} |")
        if compile_seconds is not None:
            print(f"# {label}: tvr-bf16-compile first step (compilation) {compile_seconds:.1f} s")
        del original, model, steps


if __name__ == "__main__":
    main()
