"""`tvr convert <format> ...`: original checkpoints to transformers folders.

Each converter module defines `add_parser(subparsers)`; a module listed here that is not installed yet is skipped,
so new converters only add a line.
"""

from __future__ import annotations

import argparse
import importlib

CONVERTERS = (
    "tvr.convert.openai_clip",  # tvr convert clip OPENAI_FILE OUTPUT_DIR
    "tvr.convert.clip4clip",  # tvr convert clip4clip CHECKPOINT OUTPUT_DIR [--clip ...] [--max-frames N]
    "tvr.convert.emcl",
    "tvr.convert.eercf",
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("convert", help="convert original checkpoints to transformers folders")
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for module_name in CONVERTERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        module.add_parser(formats)
    return parser
