"""The folder a converter writes: claimed first (an occupied folder tvr did not write as a model is refused, nothing in
it is touched), written whole through a staging folder, and marked as a tvr model folder.

Re-converting into a folder an earlier `tvr convert` wrote replaces it; a folder holding anything else (a project
folder, the checkpoint's own folder, another tool's output) is refused with one line naming it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Iterator

from ..utils.atomic import atomic_directory
from ..utils.output_dir import claim_output_dir

KIND = "model"
# No `legacy` patterns: a folder without tvr's marker that holds a config.json and weights is as likely a model
# downloaded from the Hub as one converted by tvr 0.1, and replacing it would delete what tvr did not write. Such a
# folder is refused; convert into a new one.


def command_inputs(args: argparse.Namespace) -> list[str]:
    """The folders a converter's command reads (a `--tokenizer` folder): its output may not be one of them."""
    return [path for path in (getattr(args, name, None) for name in ("checkpoint", "clip", "tokenizer"))
            if path and Path(path).is_dir()]


def claim_model_dir(output_dir: str | os.PathLike, args: argparse.Namespace | None = None) -> Path:
    """Claim `output_dir` for a converted model (`tvr.utils.output_dir.claim_output_dir`), early, before any work."""
    return claim_output_dir(output_dir, KIND, inputs=command_inputs(args) if args else ())


@contextlib.contextmanager
def converted_folder(args: argparse.Namespace) -> Iterator[Path]:
    """`args.output_dir` claimed, then written whole: the converter fills the yielded staging folder, which replaces
    `args.output_dir` (a tvr model folder or nothing) once complete. On an error nothing is changed."""
    with atomic_directory(args.output_dir, kind=KIND, inputs=command_inputs(args)) as staging:
        yield staging


__all__ = ["KIND", "claim_model_dir", "command_inputs", "converted_folder"]
