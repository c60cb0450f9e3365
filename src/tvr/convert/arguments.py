"""What every converter's command line shares: `--original-args` (the original run's flags, pasted as they were
passed to its `main.py`) and `--set KEY=VALUE` (config fields), read into config overrides.

A converter declares every flag the original script accepts (`OriginalFlags`), how the ones that shape the model map
to its config (`FlagMap`: original flag name -> config field, or -> a function returning a dict of fields), and the
keys `--set` may name (`config_keys`), then calls `config_overrides(args, flag_map, original=..., known=...)`; `--set`
wins over `--original-args`, which win over what the converter reads from the checkpoint's keys.

Both are strict: a flag the original script does not have, or a `--set` key that is not a config field, is an error
with a "did you mean" (a typo must never leave the model at a default). Flags are matched as the original's argparse
matched them, abbreviations included (`--max_fr 12` is `--max_frames 12`).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from typing import Any, Callable, Iterable, Mapping

from ..utils.values import check_known_keys, did_you_mean, parse_key_values, parse_scalar

FlagMap = Mapping[str, str | Callable[[Any], dict[str, Any]]]


@dataclasses.dataclass(frozen=True)
class OriginalFlags:
    """Every flag an original script's argparse accepts (those that do not change the model too), e.g.
    `OriginalFlags("CLIP4Clip's main_task_retrieval.py", "do_train max_frames ...")`."""

    script: str
    names: frozenset[str] | str  # a str: the names separated by spaces

    def __post_init__(self):
        object.__setattr__(self, "names", frozenset(self.names.split() if isinstance(self.names, str) else self.names))

    def resolve(self, flags: Iterable[str]) -> dict[str, str]:
        """`{flag as written: the script's flag}`; a unique prefix is that flag, as argparse reads it.

        Raises:
            ValueError: listing every flag the script does not have, with the closest one.
        """
        resolved, unknown = {}, []
        for flag in flags:
            matches = [flag] if flag in self.names else sorted(name for name in self.names if name.startswith(flag))
            if len(matches) == 1:
                resolved[flag] = matches[0]
            else:
                close = did_you_mean(f"--{flag}", [f"--{name}" for name in (matches or self.names)])
                unknown.append(f"'--{flag}'{' (ambiguous)' if matches else ''}{close}")
        if unknown:
            raise ValueError(f"--original-args: {self.script} has no flag {', '.join(unknown)}; fix the spelling (the "
                             "flags are the original's, as passed to it) or leave the flag out")
        return resolved


def config_keys(config_class: type, *options: str, towers: Iterable[str] = ()) -> frozenset[str]:
    """The keys `--set` may name for a converter: the fields of `config_class`, the converter's own `options`, and
    `tower.field` for each sub-config in `towers` whose fields the converter sets one by one (`vision_config.*`)."""
    keys = {field.name for field in dataclasses.fields(config_class)} | set(options)
    for tower in towers:
        sub_config = config_class.sub_configs[tower]
        keys |= {f"{tower}.{field.name}" for field in dataclasses.fields(sub_config)}
    return frozenset(keys)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `--original-args "FLAGS"` and repeatable `--set KEY=VALUE` to a converter's parser."""
    parser.add_argument(
        "--original-args",
        default="",
        metavar='"FLAGS"',
        help="the original run's command-line flags as passed to its main.py, in one quoted string "
        "(e.g. \"--max_frames 12 --sim_header seqTransf\"); flags that do not change the model are ignored, a flag the "
        "original script does not have is an error",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a config field (value read as YAML: 12, 0.5, [20,21], true); repeatable; wins over --original-args; "
        "a key that is not a field of the model's config is an error",
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
    args: argparse.Namespace,
    flag_map: FlagMap,
    explicit: dict[str, Any] | None = None,
    *,
    original: OriginalFlags,
    known: Iterable[str],
) -> dict[str, Any]:
    """Config fields from `--original-args` (through `flag_map`; the script's other flags are ignored), then `--set`,
    then `explicit` (a converter's own options, e.g. `--max-frames`; `None` values are left out).

    Args:
        args: parsed arguments of a parser given `add_config_arguments`.
        flag_map: original flag -> config field name, or -> `fn(value) -> {field: value, ...}`.
        explicit: values of the converter's dedicated options, which win when given.
        original: every flag of the original script (see `OriginalFlags`).
        known: the keys `--set` may name (see `config_keys`).

    Raises:
        ValueError: for a flag the original script does not have or a `--set` key that is not in `known`, naming the
            closest one.
    """
    overrides: dict[str, Any] = {}
    flags = parse_original_args(getattr(args, "original_args", "") or "")
    for written, flag in original.resolve(flags).items():
        target = flag_map.get(flag)
        if target is None:
            continue
        overrides.update(target(flags[written]) if callable(target) else {target: flags[written]})
    set_values = parse_set_arguments(getattr(args, "set", None) or [])
    check_known_keys(set_values, known, "--set (a config field of the converted model or an option of this converter)")
    overrides.update(set_values)
    overrides.update({key: value for key, value in (explicit or {}).items() if value is not None})
    return overrides


__all__ = [
    "FlagMap",
    "OriginalFlags",
    "add_config_arguments",
    "config_keys",
    "config_overrides",
    "parse_original_args",
    "parse_set_arguments",
]
