"""Command-line values read the one way every tvr command reads them: YAML scalars, ``KEY=VALUE`` pairs."""

from __future__ import annotations

from typing import Any

import yaml


def parse_scalar(text: str) -> Any:
    """A value as a YAML scalar (``12``, ``0.5``, ``[20, 21]``, ``true``), with ``1e-4`` read as a number (YAML 1.1
    reads an exponent without a dot as a string) and text YAML cannot parse kept as it is."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def parse_key_values(pairs: list[str], option: str = "KEY=VALUE") -> dict[str, Any]:
    """``["max_frames=12", "extractor_layers=[20,21]"]`` -> ``{"max_frames": 12, "extractor_layers": [20, 21]}``.

    Raises:
        ValueError: naming ``option`` and the pair without ``=`` or key.
    """
    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{option} expects KEY=VALUE (a config field key=value), got {pair!r}")
        values[key] = parse_scalar(value)
    return values


__all__ = ["parse_key_values", "parse_scalar"]
