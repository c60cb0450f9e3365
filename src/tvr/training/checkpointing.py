"""Training checkpoints that survive ``kill -9`` and never run foreign code when resumed.

A checkpoint folder holds only data tvr wrote itself, in formats that cannot carry code::

    model.safetensors            the model's weights (safetensors)
    optimizer.pt                 the optimiser's state dict (tensors and numbers; read with weights_only=True)
    scheduler.json               the learning-rate schedule's state (plus scaler.json under fp16)
    rng_state_<rank>.json        Python and NumPy RNG states of each process
    rng_state_<rank>.safetensors torch CPU / CUDA RNG states of each process
    trainer_state.json           the loop's progress (:class:`~tvr.training.trainer.TrainingProgress`)
    tvr_checkpoint.json          written last: the step and every file's size and content hash

It is filled in ``checkpoints/.checkpoint-<step>.tmp-0`` and renamed to ``checkpoints/checkpoint-<step>`` once
every file is on disk (:mod:`tvr.utils.atomic`), so a folder named ``checkpoint-<step>`` is complete; ``latest``
still checks the manifest and takes the newest folder that passes. Resuming hashes every file again: a file edited
after saving (even at the same size) is refused, naming it. Accelerate's own ``save_state`` is not used: it
pickles (``custom_checkpoint_*.pkl``, ``random_states_*.pkl``, ``sampler.bin``) and unpickles with
``weights_only=False``, so resuming from a folder made elsewhere could execute code.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..utils.atomic import commit_directory, fsync_path, remove_leftovers, staging_directory
from ..utils.fingerprint import content_hash

CHECKPOINT_PREFIX = "checkpoint-"
MANIFEST_FILE = "tvr_checkpoint.json"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.json"
SCALER_FILE = "scaler.json"
PROGRESS_FILE = "trainer_state.json"
FORMAT = "tvr-checkpoint"
FORMAT_VERSION = 2  # 2: files map to {"size", "hash"} (1: to their size)

# called with the name of each phase of a checkpoint write as it ends ("model", "optimizer", "scheduler", "rng",
# "progress", "manifest", "commit", "rotate"); the fault-injection tests kill the process there
phase_hook: Callable[[str], None] | None = None


def _phase_done(name: str) -> None:
    if phase_hook is not None:
        phase_hook(name)


def _rng_files(rank: int) -> tuple[str, str]:
    return f"rng_state_{rank}.json", f"rng_state_{rank}.safetensors"


# ------------------------------------------------------------------------------------------------- finding


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Checkpoint folders under ``output_dir/checkpoints``, oldest step first (complete or not: see
    :func:`verify_checkpoint`)."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), path) for path in root.iterdir()
             if (m := re.fullmatch(re.escape(CHECKPOINT_PREFIX) + r"(\d+)", path.name)) and path.is_dir()]
    return [path for _, path in sorted(found)]


class CheckpointChanged(ValueError):
    """A complete checkpoint whose files were changed after it was saved (never the result of a crash: the folder
    is renamed into place only once every file is written)."""


def verify_checkpoint(checkpoint: str | os.PathLike, content: bool = True) -> dict[str, Any]:
    """The manifest of a complete tvr checkpoint folder.

    Args:
        checkpoint: the folder.
        content: also hash every file and compare with the manifest (reads the whole checkpoint); ``False`` checks
            only that the listed files are there at their sizes.

    Raises:
        ValueError: the folder has no readable manifest (incomplete, or not written by tvr), or it holds files tvr
            does not write (e.g. accelerate's pickles, which tvr never loads).
        CheckpointChanged: a listed file is missing, has another size or (``content``) other bytes than written.
    """
    checkpoint = Path(checkpoint)
    try:
        manifest = json.loads((checkpoint / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"checkpoint {os.fspath(checkpoint)!r} is not a complete tvr checkpoint: {MANIFEST_FILE} "
                         f"is missing or unreadable ({type(error).__name__}: {error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"),
                                                                                          dict):
        raise ValueError(f"checkpoint {os.fspath(checkpoint)!r}: {MANIFEST_FILE} is not a tvr checkpoint manifest")
    for name, written in manifest["files"].items():
        path = checkpoint / name
        written = written if isinstance(written, dict) else {"size": written}  # format 1: sizes only
        if not path.is_file():
            raise CheckpointChanged(f"checkpoint {os.fspath(checkpoint)!r}: {name} is missing")
        if path.stat().st_size != written["size"]:
            raise CheckpointChanged(f"checkpoint {os.fspath(checkpoint)!r}: {name} has {path.stat().st_size} bytes, "
                                    f"{written['size']} were written; the folder was changed after it was saved")
        if content and "hash" in written and content_hash(path) != written["hash"]:
            raise CheckpointChanged(f"checkpoint {os.fspath(checkpoint)!r}: {name} is not the file that was saved "
                                    "(its content hash differs, at the same size): it was edited or damaged after "
                                    "saving; resume from another checkpoint")
    foreign = sorted(set(os.listdir(checkpoint)) - set(manifest["files"]) - {MANIFEST_FILE})
    if foreign:
        raise ValueError(f"checkpoint {os.fspath(checkpoint)!r} holds files tvr did not write ({', '.join(foreign)});"
                         " tvr resumes only from its own checkpoints and never unpickles files")
    return manifest


def _is_complete(checkpoint: Path) -> bool:
    try:
        verify_checkpoint(checkpoint, content=False)
        return True
    except ValueError:
        return False


def resolve_checkpoint(resume_from: str, output_dir: str | os.PathLike) -> Path:
    """``"latest"`` -> the newest complete checkpoint of ``output_dir`` (incomplete ones, a killed writer's, are
    skipped with a warning; a changed one is refused); otherwise the folder given, which must be a complete tvr
    checkpoint. Files are hashed when the checkpoint is loaded (:func:`load_checkpoint`), not here."""
    if resume_from == "latest":
        checkpoints = list_checkpoints(output_dir)
        for checkpoint in reversed(checkpoints):
            try:
                verify_checkpoint(checkpoint, content=False)
                return checkpoint
            except CheckpointChanged:
                raise
            except ValueError as error:
                warnings.warn(f"resume_from='latest': skipping {error}", stacklevel=2)
        raise FileNotFoundError(f"resume_from='latest': no complete checkpoint under "
                                f"{Path(output_dir) / 'checkpoints'} ({len(checkpoints)} incomplete)")
    if not Path(resume_from).is_dir():
        raise FileNotFoundError(f"resume_from {resume_from!r} is not a checkpoint folder")
    verify_checkpoint(resume_from, content=False)
    return Path(resume_from)


# ------------------------------------------------------------------------------------------------- RNG


def rng_state() -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """This process's RNG states: Python and NumPy as JSON-able values, torch's as tensors."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    plain = {"python": [version, list(internal), gauss],
             "numpy": [kind, keys.tolist(), int(position), int(has_gauss), float(cached)]}
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors.update({f"torch_cuda_{index}": state for index, state in enumerate(torch.cuda.get_rng_state_all())})
    return plain, tensors


def set_rng_state(plain: dict[str, Any], tensors: dict[str, torch.Tensor]) -> None:
    """Restore what :func:`rng_state` returned."""
    version, internal, gauss = plain["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = plain["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(tensors["torch_cpu"])
    cuda = [tensors[f"torch_cuda_{index}"] for index in range(len(tensors) - 1)]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[:torch.cuda.device_count()])


# ------------------------------------------------------------------------------------------------- saving


def _write_json(path: Path, value: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2, allow_nan=False)
        handle.write("\n")


def save_checkpoint(accelerator, model: nn.Module, optimizer, scheduler, progress, output_dir: str | os.PathLike,
                    step: int, total_limit: int | None) -> Path:
    """Write ``checkpoints/checkpoint-<step>`` crash-safely (see the module doc), then keep the newest
    ``total_limit`` complete checkpoints.

    Args:
        accelerator: the run's ``Accelerator`` (processes, fp16 scaler).
        model: the unwrapped tvr model.
        optimizer, scheduler: as returned by ``accelerator.prepare``.
        progress: an object with ``state_dict()`` of JSON values (the loop's progress).

    Returns:
        The checkpoint folder.
    """
    root = Path(output_dir) / "checkpoints"
    final = root / f"{CHECKPOINT_PREFIX}{step}"
    if accelerator.is_main_process:
        remove_leftovers(final)
    accelerator.wait_for_everyone()
    staging = staging_directory(final, unique=False)  # every process writes its RNG state here
    if accelerator.is_main_process:
        _save_weights(model, staging / MODEL_FILE)
        _phase_done("model")
        torch.save(optimizer.state_dict(), staging / OPTIMIZER_FILE)
        _phase_done("optimizer")
        _write_json(staging / SCHEDULER_FILE, scheduler.state_dict())
        if accelerator.scaler is not None:
            _write_json(staging / SCALER_FILE, accelerator.scaler.state_dict())
        _phase_done("scheduler")
    from safetensors.torch import save_file

    plain, tensors = rng_state()
    json_name, tensors_name = _rng_files(accelerator.process_index)
    _write_json(staging / json_name, plain)
    save_file(tensors, staging / tensors_name)
    _phase_done("rng")
    if accelerator.is_main_process:
        _write_json(staging / PROGRESS_FILE, progress.state_dict())
        _phase_done("progress")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        files = {name: {"size": (staging / name).stat().st_size, "hash": content_hash(staging / name)}
                 for name in sorted(os.listdir(staging))}
        _write_json(staging / MANIFEST_FILE, {"format": FORMAT, "version": FORMAT_VERSION, "step": step,
                                              "num_processes": accelerator.num_processes, "files": files})
        _phase_done("manifest")
        commit_directory(staging, final)
        _phase_done("commit")
        if total_limit:  # only complete checkpoints count (and are deleted): a folder tvr did not write is kept
            for old in [path for path in list_checkpoints(output_dir) if _is_complete(path)][:-total_limit]:
                shutil.rmtree(old)
            fsync_path(root)
        _phase_done("rotate")
    accelerator.wait_for_everyone()
    return final


def _save_weights(model: nn.Module, path: Path) -> None:
    """The model's weights, or only the adapter of a ``peft`` model (its base is frozen and saved once)."""
    from safetensors.torch import save_file, save_model

    from ..peft import is_peft_model

    if is_peft_model(model):
        from peft.utils import get_peft_model_state_dict

        save_file({key: value.contiguous() for key, value in get_peft_model_state_dict(model).items()}, path)
    else:
        save_model(model, os.fspath(path))


def _load_weights(model: nn.Module, path: Path) -> None:
    from safetensors.torch import load_file, load_model

    from ..peft import is_peft_model

    device = str(next(model.parameters()).device)
    if not is_peft_model(model):
        load_model(model, os.fspath(path), device=device)
        return
    from peft.utils import set_peft_model_state_dict

    result = set_peft_model_state_dict(model, load_file(path, device=device))
    if result.unexpected_keys:
        raise ValueError(f"checkpoint adapter {os.fspath(path)!r} does not fit the model: unexpected keys "
                         f"{result.unexpected_keys}")


# ------------------------------------------------------------------------------------------------- loading


def load_checkpoint(checkpoint: str | os.PathLike, accelerator, model: nn.Module, optimizer, scheduler,
                    progress) -> None:
    """Restore a run from a checkpoint written by :func:`save_checkpoint` (verified first; nothing is unpickled:
    tensors come from safetensors or ``torch.load(weights_only=True)``, the rest from JSON).

    A missing RNG state (e.g. more processes than the run that saved it) is warned about loudly: the run then
    continues on another random trajectory (dropout, augmentation) than the uninterrupted one.
    """
    from safetensors.torch import load_file

    checkpoint = Path(checkpoint)
    manifest = verify_checkpoint(checkpoint)
    _load_weights(model, checkpoint / MODEL_FILE)
    optimizer.load_state_dict(torch.load(checkpoint / OPTIMIZER_FILE, map_location="cpu", weights_only=True))
    scheduler.load_state_dict(json.loads((checkpoint / SCHEDULER_FILE).read_text(encoding="utf-8")))
    if accelerator.scaler is not None and (checkpoint / SCALER_FILE).is_file():
        accelerator.scaler.load_state_dict(json.loads((checkpoint / SCALER_FILE).read_text(encoding="utf-8")))
    progress.load_state_dict(json.loads((checkpoint / PROGRESS_FILE).read_text(encoding="utf-8")))
    json_name, tensors_name = _rng_files(accelerator.process_index)
    if json_name in manifest["files"] and tensors_name in manifest["files"]:
        set_rng_state(json.loads((checkpoint / json_name).read_text(encoding="utf-8")),
                      load_file(checkpoint / tensors_name))
    else:
        warnings.warn(f"checkpoint {os.fspath(checkpoint)!r} has no RNG state for process "
                      f"{accelerator.process_index} (saved by {manifest.get('num_processes')} processes): the resumed "
                      "run's dropout and augmentation will NOT follow the uninterrupted run", stacklevel=2)


__all__ = [
    "CheckpointChanged",
    "list_checkpoints",
    "load_checkpoint",
    "resolve_checkpoint",
    "save_checkpoint",
    "verify_checkpoint",
]
