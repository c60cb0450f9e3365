"""The ``tvr`` command line: ``tvr <command> --help`` for each command.

Each command lives next to the code it drives; a module listed here exposes
``add_parser(subparsers) -> argparse.ArgumentParser`` and sets ``func`` on the parser it creates
(``parser.set_defaults(func=run)``), where ``run(args)`` returns an exit code or ``None``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# command name -> module that defines it (imported only when present, so a partial install still runs)
COMMANDS = {
    "compress": "tvr.processing.compress",
    "convert": "tvr.convert.cli",
    "train": "tvr.training.cli",
    "eval": "tvr.evaluation.cli",
    "index": "tvr.retrieval.cli",
    "search": "tvr.retrieval.cli",
    "merge": "tvr.loading",
    "card": "tvr.hub_cards.cli",
    "demo": "tvr.demo",
    "app": "tvr.app.cli",
    "space": "tvr.app.space",
}


def build_parser() -> argparse.ArgumentParser:
    from tvr_launcher import DESCRIPTION  # the console command's launcher lists the commands without importing tvr

    parser = argparse.ArgumentParser(prog="tvr", description=DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", required=True)
    seen = set()
    for module_name in COMMANDS.values():
        if module_name in seen:
            continue
        seen.add(module_name)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if not (module_name == error.name or module_name.startswith(f"{error.name}.")):
                raise  # a real import error inside the command's module
            continue
        module.add_parser(subparsers)
    return parser


# what a user's input can cause (a missing file, a bad value, a tokenizer that does not fit): one line, no traceback
USER_ERRORS = (ValueError, OSError, TypeError, KeyError)
TRACEBACK_ENV = "TVR_TRACEBACK"


def main(argv: list[str] | None = None) -> int:
    """Run ``tvr <command>`` and return its exit code; errors propagate (for callers and tests)."""
    args = build_parser().parse_args(argv)
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
