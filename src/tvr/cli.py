"""The ``tvr`` command line: ``tvr <command> --help`` for each command.

Each command lives next to the code it drives; a module listed in :data:`COMMANDS` (with the command's one-line
help) exposes ``add_parser(subparsers) -> argparse.ArgumentParser`` and sets ``func`` on the parser it creates
(``parser.set_defaults(func=run)``), where ``run(args)`` returns an exit code or ``None``. A command module imports
torch and transformers inside ``run`` only, and ``tvr`` imports only the module of the command given, so
``tvr --help`` and ``tvr COMMAND --help`` answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NamedTuple

DESCRIPTION = "Text-to-video retrieval on transformers."


class Command(NamedTuple):
    module: str  # the module whose add_parser(subparsers) defines the command
    help: str  # its one line in `tvr --help`


# every command: its module (imported only when the command runs or shows its --help) and its one-line help
COMMANDS = {
    "compress": Command("tvr.processing.compress", "re-encode a folder of videos at 3 fps, shorter side 224 (as the "
                        "original code's compress_video.py)"),
    "convert": Command("tvr.convert.cli", "convert original checkpoints to transformers folders"),
    "train": Command("tvr.training.cli", "train a retrieval model"),
    "eval": Command("tvr.evaluation.cli", "evaluate a saved model on a dataset split (R@K, MedR, MeanR; optional DSL / "
                    "QB-Norm)"),
    "index": Command("tvr.retrieval.cli", "encode a folder of videos with a saved model into a searchable index"),
    "search": Command("tvr.retrieval.cli", "rank the videos of an index for a text query"),
    "merge": Command("tvr.loading", "merge a peft adapter folder (DAVRL) into its base: a plain model folder for every "
                     "command"),
    "card": Command("tvr.hub_cards.cli", "write a model card into a saved model folder (and optionally push the folder "
                    "to the Hub)"),
    "demo": Command("tvr.demo", "synthetic data -> tokenizer -> train CLIP4Clip from scratch -> evaluate -> card -> "
                    "search"),
    "app": Command("tvr.app.cli", "serve a browser app: text search over videos, zero-shot labels and captions for an "
                   "upload"),
    "space": Command("tvr.app.space", "write a Hugging Face Space (Gradio) running `tvr app` for a model, optionally "
                     "push it"),
}


class _Commands(argparse._SubParsersAction):
    """`tvr`'s sub-commands: a command's help (and default description) is its line in :data:`COMMANDS`."""

    def add_parser(self, name, **kwargs):
        if name in COMMANDS:
            kwargs["help"] = COMMANDS[name].help
            kwargs.setdefault("description", COMMANDS[name].help)
        return super().add_parser(name, **kwargs)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``tvr`` parser. Its commands' modules are imported for ``command`` only (every command's when ``None``):
    the others are listed by their help line, so ``tvr --help`` and ``tvr COMMAND --help`` import no torch."""
    parser = argparse.ArgumentParser(prog="tvr", description=DESCRIPTION,
                                     epilog="`tvr COMMAND --help` shows a command's options.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", action=_Commands,
                                       title="commands")
    modules = [spec.module for name, spec in COMMANDS.items() if command is None or name == command]
    for module_name in dict.fromkeys(modules):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if not (module_name == error.name or module_name.startswith(f"{error.name}.")):
                raise  # a real import error inside the command's module
            continue  # a partial install: the command is listed, and says so when run
        module.add_parser(subparsers)
    for name in COMMANDS:  # the commands not loaded: their line in the listing
        if name not in subparsers.choices:
            subparsers.add_parser(name, add_help=False).set_defaults(func=_not_installed)
    subparsers._choices_actions.sort(key=lambda action: list(COMMANDS).index(action.dest))  # COMMANDS' order
    return parser


def _not_installed(args: argparse.Namespace) -> int:
    raise SystemExit(f"tvr: error: `tvr {args.command}` needs {COMMANDS[args.command].module}, which this "
                     "installation lacks")


# what a user's input can cause (a missing file, a bad value, a tokenizer that does not fit): one line, no traceback
USER_ERRORS = (ValueError, OSError, TypeError, KeyError)
TRACEBACK_ENV = "TVR_TRACEBACK"


def main(argv: list[str] | None = None) -> int:
    """Run ``tvr <command>`` and return its exit code; errors propagate (for callers and tests)."""
    argv = sys.argv[1:] if argv is None else [str(arg) for arg in argv]
    args = build_parser(argv[0] if argv and argv[0] in COMMANDS else "").parse_args(argv)
    if getattr(args, "device", None) is not None:  # every command's --device, checked before anything loads
        from tvr.utils.device import check_device

        check_device(args.device)
    return int(args.func(args) or 0)


def user_error_message(error: BaseException) -> str | None:
    """The one-line message of an error the user's input caused, or ``None`` for a bug (shown with its traceback).

    Besides :data:`USER_ERRORS`: huggingface_hub's strict-dataclass errors, which transformers' configs raise for a
    field of the wrong type or a failed check (a DAVRL ``alpha`` out of range, in ``config.json``, ``model_kwargs``
    or ``--set``); their message is the cause's, without the validator's name."""
    hub_errors = sys.modules.get("huggingface_hub.errors")  # loaded whenever one of its errors was raised
    if hub_errors is not None and isinstance(error, hub_errors.StrictDataclassClassValidationError):
        return f"invalid model configuration: {error.__cause__ or error}"
    if hub_errors is not None and isinstance(error, hub_errors.StrictDataclassError):  # a field's type
        return f"invalid setting: {error.__cause__ or error}"
    if not isinstance(error, USER_ERRORS):
        return None
    message = str(error) if not isinstance(error, KeyError) else f"missing key {error}"
    if isinstance(error, OSError) and error.filename and error.strerror and str(error.filename) not in message:
        message = f"{error.filename}: {error.strerror}"
    return message


def console_main(argv: list[str] | None = None) -> int:
    """The ``tvr`` command (``python -m tvr``): :func:`main`, where an error caused by the input prints one line,
    ``tvr: error: <message>``, and returns 1 (``TVR_TRACEBACK=1`` shows the traceback); argparse's own usage
    errors exit with 2 as usual."""
    try:
        return main(argv)
    except KeyboardInterrupt:
        print("tvr: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001  (a bug is re-raised below, with its traceback)
        message = user_error_message(error)
        if message is None or os.environ.get(TRACEBACK_ENV):
            raise
        print(f"tvr: error: {' '.join(message.split()) or type(error).__name__} (set {TRACEBACK_ENV}=1 for the "
              "traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(console_main())
