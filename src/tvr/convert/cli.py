"""`tvr convert <format> ...`: original checkpoints to transformers folders.

Each converter module defines `add_parser(subparsers)`: the CLIP converter, then each method's converter named by its
entry in `tvr.methods.METHODS`. A module that is not installed yet is skipped.
"""

from __future__ import annotations

import argparse
import functools
import importlib
from typing import Callable

DTYPE_HELP = "dtype of the saved weights (default float32: the original's fp16 weights are upcast)"


def converter_modules() -> list[str]:
    """`tvr.convert.openai_clip` (`tvr convert clip`), then every registered method's converter."""
    from ..methods import METHODS

    return ["tvr.convert.openai_clip"] + [method.converter for method in METHODS.values() if method.converter]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("convert")
    formats = parser.add_subparsers(dest="format", required=True, metavar="FORMAT")
    for module_name in converter_modules():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name != module_name:
                raise
            continue
        module.add_parser(formats)
    for converter in formats.choices.values():  # the option every converter shares, described once
        for action in converter._actions:
            if action.dest == "dtype" and action.help is None:
                action.help = DTYPE_HELP
        converter.set_defaults(func=_config_errors_are_user_errors(converter.get_default("func")))
    return parser


def _config_errors_are_user_errors(run: Callable[[argparse.Namespace], None]) -> Callable[[argparse.Namespace], None]:
    """A config built from --original-args / --set that its class refuses (huggingface_hub's strict dataclasses raise
    their own error type, not a ValueError) is the user's input: one line naming the rule, not a traceback."""
    from huggingface_hub.errors import StrictDataclassError

    @functools.wraps(run)
    def checked(args: argparse.Namespace) -> None:
        try:
            run(args)
        except StrictDataclassError as error:
            reason = error.__cause__ or error
            raise ValueError(f"tvr convert {args.format}: the converted model's config is invalid: {reason}; fix "
                             "--original-args / --set") from error

    return checked
