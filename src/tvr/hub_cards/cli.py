"""``tvr card``: write a model card (README.md + training curves) into a saved model folder, optionally push it.

Example::

    tvr card runs/clip4clip --eval-results runs/clip4clip/eval_results.json --train-log runs/clip4clip/metrics.jsonl \\
        --config runs/clip4clip/train_config.json --base-model openai/clip-vit-base-patch32 --push-to-hub you/clip4clip
"""

from __future__ import annotations

import argparse


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "card",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model_dir", help="folder saved with save_pretrained")
    parser.add_argument("--eval-results", nargs="+", default=[], help="eval-results JSON file(s) from `tvr eval`")
    parser.add_argument("--train-log", default=None, help="JSON-lines training log to plot (step, loss, lr, ...)")
    parser.add_argument("--config", default=None, help="training config (JSON or YAML) to show in the card")
    parser.add_argument("--base-model", default=None, help="checkpoint the model was initialised from")
    parser.add_argument("--datasets", nargs="+", default=None, help="Hub dataset ids for the card metadata")
    parser.add_argument("--license", default="apache-2.0",
                        help="license id for the card metadata (default: apache-2.0, tvr's; e.g. mit, other)")
    parser.add_argument("--space", metavar="SPACE_ID", default=None,
                        help="a Space running the model (`tvr space`), linked from the card")
    parser.add_argument("--push-to-hub", metavar="REPO_ID", default=None, help="upload the folder to this repo")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..training.config import rerunnable_config
    from .card import _read_config, write_model_card
    from .push import push_to_hub

    write_model_card(
        args.model_dir,
        eval_results=args.eval_results,
        train_log=args.train_log,
        training_config=rerunnable_config(_read_config(args.config)) if args.config else None,
        model_id=args.push_to_hub,
        base_model=args.base_model,
        datasets=args.datasets,
        license=args.license,
        space=args.space,
    )
    print(f"wrote {args.model_dir}/README.md")
    if args.push_to_hub:
        commit = push_to_hub(args.model_dir, args.push_to_hub, private=args.private or None)
        print(f"pushed to {getattr(commit, 'commit_url', args.push_to_hub)}")
    return 0
