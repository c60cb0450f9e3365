"""``tvr train``: train a retrieval model from a config file and / or flags.

One process: ``tvr train --config cfg.yaml``. Several (GPUs, CPU processes, nodes): ``torchrun --nproc-per-node N -m
tvr.training --config cfg.yaml`` or ``accelerate launch --multi_gpu --num_processes N -m tvr.training ...``, which
take the same flags (the README lists the commands).
"""

from __future__ import annotations

import argparse

from .config import add_config_arguments, config_from_args

DESCRIPTION = (
    "Train a text-video retrieval model with the contrastive loss over the global batch. Values come from the "
    "defaults, then --config (YAML/JSON), then the flags. For several processes (GPUs, or gloo CPU processes on a "
    "machine without GPUs) use `torchrun --nproc-per-node N -m tvr.training ...` or `accelerate launch --multi_gpu "
    "--num_processes N -m tvr.training ...` with the same flags. tvr/training/FLAGS.md maps the original code's flags."
)


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("train", description=DESCRIPTION)
    add_config_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    import json

    from accelerate import PartialState

    from .trainer import SKIPPED_VIDEOS_FILE, train

    output_dir = train(config_from_args(args))
    if not PartialState().is_main_process:  # one report per run, not one per process
        return 0
    print(f"trained model: {output_dir / 'final'} (best by t2v R@1, when evaluated: {output_dir / 'best'})")
    skipped = output_dir / SKIPPED_VIDEOS_FILE
    if skipped.is_file():
        failed = json.loads(skipped.read_text(encoding="utf-8"))
        print(f"{len(failed)} training videos were left out, missing or undecodable (listed in {skipped}):")
        for path, error in failed.items():
            print(f"  skipped: {path}: {error}")
    return 0
