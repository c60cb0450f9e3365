"""Command-line values read the one way every tvr command reads them: YAML scalars, ``KEY=VALUE`` pairs."""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Iterable, Mapping

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


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'max_frames'?)"`` for the closest of ``choices`` to ``name``, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def options_with(options_class: type, options: Any, values: Mapping[str, Any], function: str) -> Any:
    """``options`` (an instance of the dataclass ``options_class``, or ``None`` for its defaults) with the keyword
    ``values`` over it, as the evaluation functions take them (``evaluate_retrieval(model, processor, dataset,
    options, batch_size=8)``).

    Raises:
        TypeError: ``options`` is something else, or a keyword is not a field (naming the closest one).
    """
    if options is not None and not isinstance(options, options_class):
        raise TypeError(f"{function}'s fourth argument is options={options_class.__name__}(...), got "
                        f"{type(options).__name__} {options!r:.40}; pass the options by keyword")
    names = [field.name for field in dataclasses.fields(options_class)]
    unknown = [name for name in values if name not in names]
    if unknown:
        raise TypeError(f"{function} got an unknown option {unknown[0]!r}{did_you_mean(unknown[0], names)}; "
                        f"options: {', '.join(names)}")
    return dataclasses.replace(options or options_class(), **values)


def check_known_keys(keys: Iterable[str], known: Iterable[str], what: str) -> None:
    """Refuse keys that are not in ``known``: a typo must not silently fall back to a default.

    Raises:
        ValueError: ``"unknown key 'max_framez' in processor_kwargs (did you mean 'max_frames'?)"``, naming ``what``
        and listing every unknown key.
    """
    known = set(known)
    unknown = [key for key in keys if key not in known]
    if unknown:
        parts = [f"{key!r}{did_you_mean(key, known)}" for key in unknown]
        raise ValueError(f"unknown key{'s' if len(unknown) > 1 else ''} in {what}: {', '.join(parts)}")


__all__ = ["check_known_keys", "did_you_mean", "parse_key_values", "parse_scalar"]
