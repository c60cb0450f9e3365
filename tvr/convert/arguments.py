"""What every converter's command line shares: `--original-args` (the original run's flags, pasted as they were
passed to its `main.py`) and `--set KEY=VALUE` (config fields), read into config overrides.

A converter declares how the original's flags map to its config (`FlagMap`: original flag name -> config field, or
-> a function returning a dict of fields) and calls `config_overrides(args, flag_map)`; `--set` wins over
`--original-args`, which win over what the converter reads from the checkpoint's keys.
"""

from __future__ import annotations

import argparse
import shlex
from typing import Any, Callable, Mapping

from ..utils.values import parse_key_values, parse_scalar

FlagMap = Mapping[str, str | Callable[[Any], dict[str, Any]]]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--original-args "FLAGS"` and repeatable `--set KEY=VALUE` to a converter's parser."""
    parser.add_argument(
        "--original-args",
        default="",
        metavar='"FLAGS"',
        help="the original run's command-line flags as passed to its main.py, in one quoted string "
        "(e.g. \"--max_frames 12 --sim_header seqTransf\"); flags that do not change the model are ignored",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a config field (value read as YAML: 12, 0.5, [20,21], true); repeatable; wins over --original-args",
    )


def parse_original_args(text: str) -> dict[str, Any]:
    """An original command line's flags -> `{name: value}`.

    `--name value` gives the value read as a YAML scalar (`12` -> 12, `8-9-10` stays a string), `--name v1 v2` a
    list, a bare `--flag` (followed by another flag or nothing) `True`; `--name=value` works too. Leading dashes are
    dropped and inner dashes kept, so names are the original's (`max_frames`, `seg_layer`).

    Raises:
        ValueError: for a token that is neither a flag nor a flag's value.
    """
    values: dict[str, Any] = {}
    name = None
    for token in shlex.split(text):
        if token.startswith("--"):
            name, sep, value = token[2:].partition("=")
            if not name:
                raise ValueError(f"--original-args: empty flag name in {text!r}")
            values[name] = parse_scalar(value) if sep else True
            if sep:
                name = None
        elif name is None:
            raise ValueError(f"--original-args: {token!r} is not a flag and follows no flag (in {text!r})")
        elif values[name] is True:
            values[name] = parse_scalar(token)
        elif isinstance(values[name], list):
            values[name].append(parse_scalar(token))
        else:
            values[name] = [values[name], parse_scalar(token)]
    return values


def parse_set_arguments(pairs: list[str]) -> dict[str, Any]:
    """`["max_frames=12", "extractor_layers=[20,21]"]` -> `{"max_frames": 12, "extractor_layers": [20, 21]}`."""
    return parse_key_values(pairs, "--set")


def config_overrides(
    args: argparse.Namespace, flag_map: FlagMap, explicit: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Config fields from `--original-args` (through `flag_map`; flags it does not name are ignored), then `--set`,
    then `explicit` (a converter's own options, e.g. `--max-frames`; `None` values are left out).

    Args:
        args: parsed arguments of a parser given `add_config_arguments`.
        flag_map: original flag -> config field name, or -> `fn(value) -> {field: value, ...}`.
        explicit: values of the converter's dedicated options, which win when given.
    """
    overrides: dict[str, Any] = {}
    for flag, value in parse_original_args(getattr(args, "original_args", "") or "").items():
        target = flag_map.get(flag)
        if target is None:
            continue
        overrides.update(target(value) if callable(target) else {target: value})
    overrides.update(parse_set_arguments(getattr(args, "set", None) or []))
    overrides.update({key: value for key, value in (explicit or {}).items() if value is not None})
    return overrides


__all__ = ["FlagMap", "add_config_arguments", "config_overrides", "parse_original_args", "parse_set_arguments"]
