"""The ``tvr`` console command.

``tvr`` and ``tvr --help`` list the commands without importing ``tvr``: importing it registers every model with the
transformers Auto classes, which loads torch and transformers (seconds of start-up). Every other call runs
:func:`tvr.cli.console_main`, which builds each command's own parser (``tvr COMMAND --help``).
"""

from __future__ import annotations

import sys

DESCRIPTION = "Text-to-video retrieval on transformers."

# command -> its one-line help, as its parser declares it (tests/test_newcomer.py checks the two agree)
COMMAND_HELP = {
    "compress": "re-encode a folder of videos at 3 fps, shorter side 224 (as the original code's compress_video.py)",
    "convert": "convert original checkpoints to transformers folders",
    "train": "train a retrieval model",
    "eval": "evaluate a saved model on a dataset split (R@K, MedR, MeanR; optional DSL / QB-Norm)",
    "index": "encode a folder of videos with a saved model into a searchable index",
    "search": "rank the videos of an index for a text query",
    "merge": "merge a peft adapter folder (DAVRL) into its base: a plain model folder for every command",
    "card": "write a model card into a saved model folder (and optionally push the folder to the Hub)",
    "demo": "synthetic data -> tokenizer -> train CLIP4Clip from scratch -> evaluate -> card -> search",
    "app": "serve a browser app: text search over videos, zero-shot labels and captions for an upload",
    "space": "write a Hugging Face Space (Gradio) running `tvr app` for a model, optionally push it",
}


def usage() -> str:
    """What ``tvr --help`` prints."""
    width = max(map(len, COMMAND_HELP))
    commands = "\n".join(f"  {name:<{width}}  {text}" for name, text in COMMAND_HELP.items())
    return (f"usage: tvr [-h] COMMAND ...\n\n{DESCRIPTION}\n\ncommands:\n{commands}\n\n"
            "`tvr COMMAND --help` shows a command's options.")


def main(argv: list[str] | None = None) -> int:
    """Run the ``tvr`` command line; returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv in (["-h"], ["--help"]):
        print(usage())
        return 0
    if not argv:
        print(f"{usage()}\ntvr: error: give a command", file=sys.stderr)
        return 2
    from tvr.cli import console_main

    return console_main(argv)


if __name__ == "__main__":
    sys.exit(main())
