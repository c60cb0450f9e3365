"""tvr.methods: one folder per method, each holding everything only that method uses (configuration, model,
converter, its own parts) and declaring its :class:`Method` entry in its ``__init__.py``.

Adding a method is adding its folder and its name to :data:`PACKAGES`. Importing this package registers every method
with the transformers Auto classes (see :func:`register_method`).
"""

from __future__ import annotations

import importlib

from .registry import METHODS, Method, register_method

PACKAGES = ("clip4clip", "emcl", "eercf", "internvideo", "dual_attention")

for _package in PACKAGES:
    register_method(importlib.import_module(f"{__name__}.{_package}").METHOD)

__all__ = ["METHODS", "Method", "PACKAGES", "register_method"]
