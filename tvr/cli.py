"""The ``tvr`` command line: ``tvr <command> --help`` for each command.

Each command lives next to the code it drives; a module listed here exposes
``add_parser(subparsers) -> argparse.ArgumentParser`` and sets ``func`` on the parser it creates
(``parser.set_defaults(func=run)``), where ``run(args)`` returns an exit code or ``None``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# command name -> module that defines it (imported only when present, so a partial install still runs)
COMMANDS = {
    "compress": "tvr.processing.compress",
    "convert": "tvr.convert.cli",
    "train": "tvr.training.cli",
    "eval": "tvr.evaluation.cli",
    "index": "tvr.retrieval.cli",
    "search": "tvr.retrieval.cli",
    "card": "tvr.hub_cards.cli",
    "demo": "tvr.demo",
    "app": "tvr.app.cli",
    "space": "tvr.app.space",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tvr", description="Text-to-video retrieval on transformers.")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    code = args.func(args)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
