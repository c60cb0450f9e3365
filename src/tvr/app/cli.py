"""``tvr app``: a browser app for a tvr model: search a video collection with text, label an uploaded video
zero-shot and rank captions for it. Needs gradio: ``pip install -e '.[app]'`` in a clone of tvr (or ``pip install
gradio``).

Example::

    tvr app runs/clip4clip/best --videos my_videos/              # index the folder in memory, then serve
    tvr app runs/clip4clip/best --index my_videos.index --port 8080
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

INSTALL_HINT = "tvr app needs gradio: pip install -e '.[app]' in tvr's clone (or pip install 'gradio>=6,<7')"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "app",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="folder saved with save_pretrained (model + processor), or a Hub id")
    gallery = parser.add_mutually_exclusive_group()
    gallery.add_argument("--index", default=None, help="folder written by `tvr index` with this model")
    gallery.add_argument("--videos", default=None, help="folder of videos to index in memory at start")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="port to serve on")
    parser.add_argument("--device", default=None, help="e.g. cuda, cpu (default: cuda when available)")
    parser.add_argument("--batch-size", type=int, default=8, help="videos per forward pass")
    parser.set_defaults(func=run)
    return parser


def check_model_argument(model: str | os.PathLike) -> bool:
    """Whether ``model`` is a local model folder (``True``) or a Hub id (``False``), decided before anything
    touches the Hub: a path that is not there (``runs/typo``: its first folder exists here, or it is not of the form
    ``owner/name``) is refused at once instead of after the Hub's retries.

    Raises:
        FileNotFoundError: a missing folder, or one without ``config.json`` / ``adapter_config.json``.
    """
    from ..hub_cards.card import HUB_ID
    from ..utils.values import did_you_mean

    model = os.fspath(model)
    if os.path.isdir(model):
        if not any(os.path.isfile(os.path.join(model, name)) for name in ("config.json", "adapter_config.json")):
            raise FileNotFoundError(f"model folder {model!r} has no config.json: expected a folder saved with "
                                    "save_pretrained (model + processor), or a Hub id")
        return True
    if os.path.exists(model) or not HUB_ID.match(model) or os.path.isdir(model.split("/")[0]):
        parent = Path(model).parent
        hint = did_you_mean(Path(model).name, os.listdir(parent)) if parent.is_dir() else ""
        raise FileNotFoundError(f"model folder {model!r} does not exist{hint}: give a folder saved with "
                                "save_pretrained (e.g. runs/clip4clip/best) or a Hub id (owner/name)")
    return False


def run(args: argparse.Namespace) -> int:
    check_model_argument(args.model)  # before gradio, the model or the Hub: a typo is told at once
    try:
        from . import ui
    except ImportError as error:
        if error.name != "gradio" and not (error.name or "").startswith("gradio."):
            raise
        raise SystemExit(f"tvr: error: {INSTALL_HINT}") from None
    from .demo import RetrievalDemo

    demo = RetrievalDemo(args.model, index=args.index, videos=args.videos, device=args.device,
                         batch_size=args.batch_size)
    print(f"tvr app: serving {args.model} at http://{args.host}:{args.port}", flush=True)
    ui.launch(demo, host=args.host, port=args.port)
    return 0
