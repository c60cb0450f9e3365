# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""`peft` adapters for tvr models: DAVRL's LoRA, adapter-only saving and loading.

DAVRL trains rank-r deltas on every attention's fused q/k/v projection with ONE down-projection shared by q, k and v
and no scaling. On `DualAttentionModel`, whose attentions have one fused `qkv_proj` `nn.Linear`, that is exactly stock
`peft` LoRA: `LoraConfig(r, lora_alpha=r, lora_dropout=0, target_modules=["qkv_proj"])` (`lora_A` `(r, width)` is
the shared down-projection, `lora_B` `(3 * width, r)` the three up-projections, scaling `alpha / r = 1`).

The global video tokens go into the adapter too (`modules_to_save=["global_tokens"]`), frozen unless the config says
`global_tokens_trainable`, so an adapter is self-contained on any base built from the same CLIP
(`DualAttentionModel.from_clip(...)`).

Layout of a saved adapter (`save_adapter`): `adapter_config.json` (with `base_model_name_or_path` = the base folder or
Hub id) + `adapter_model.safetensors` (kilobytes to ~2 MB). It loads three ways:

```python
>>> model = AutoModel.from_pretrained(adapter_dir)  # transformers' PEFT integration: base + adapter
>>> model = PeftModel.from_pretrained(AutoModel.from_pretrained(base_dir), adapter_dir)
>>> merged = model.merge_and_unload()  # a plain DualAttentionModel with the deltas merged into qkv_proj
```
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from torch import nn

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
# the fingerprint of the base's weights an adapter was saved against (`save_adapter`, checked by `check_adapter_base`)
BASE_RECORD_NAME = "adapter_base.json"


# model_type -> the function wrapping a model of that type with its adapter: filled by each method's entry
# (`Method.adapter`, registered by `tvr.methods.register_method`) for methods that train a `peft` adapter
ADAPTER_FACTORIES: dict[str, Callable[[nn.Module], nn.Module]] = {}


def _adapter_factory(model_type: str | None):
    return ADAPTER_FACTORIES.get(model_type)


def set_modules_to_save_trainable(model: nn.Module, trainable: bool) -> None:
    """Set `requires_grad` of the adapter's `modules_to_save` copies (DAVRL's global tokens: frozen unless its config
    says `global_tokens_trainable`)."""
    from peft.utils.other import ModulesToSaveWrapper

    for module in model.modules():
        if isinstance(module, ModulesToSaveWrapper):
            module.modules_to_save.requires_grad_(trainable)


def needs_adapter(model: nn.Module) -> bool:
    """Whether `model` is a tvr model of a method that trains a `peft` adapter, not wrapped yet."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return _adapter_factory(model_type) is not None and not is_peft_model(model)


def prepare_adapter_training(model: nn.Module, base_dir: str | os.PathLike, save_base: bool = True) -> nn.Module:
    """For a method that trains an adapter (`needs_adapter`): write its frozen base model to `base_dir` (the folder
    every adapter the run saves points to) and return it wrapped with its adapter; any other model unchanged.

    Args:
        model: the tvr model built for training.
        base_dir: where the base is saved (`save_pretrained`, replacing what is there: a resumed run writes the
            same weights again, a new run in an old folder must not point to an old base).
        save_base: whether this process writes it (the main process).
    """
    if not needs_adapter(model):
        return model
    if save_base:
        model.save_pretrained(base_dir)  # before peft injects its layers into the model's modules
    return _adapter_factory(model.config.model_type)(model)


def load_adapter_for_training(adapter_dir: str | os.PathLike, **base_kwargs) -> nn.Module:
    """A saved adapter on its base (`base_model_name_or_path`), trainable: `PeftModel.from_pretrained(...,
    is_trainable=True)`, with the global tokens trainable as the base's config says."""
    from peft import PeftModel
    from transformers import AutoModel

    base_dir = resolve_adapter_base(adapter_dir)
    check_adapter_base(adapter_dir, base_dir)
    base = AutoModel.from_pretrained(base_dir, **base_kwargs)
    peft_model = PeftModel.from_pretrained(base, adapter_dir, is_trainable=True)
    # what the adapters this training saves point to: the resolved base, not the relative path read from adapter_dir
    peft_model.peft_config["default"].base_model_name_or_path = base_dir
    set_modules_to_save_trainable(peft_model, getattr(base.config, "global_tokens_trainable", False))
    return peft_model


def _find_peft_model(module: nn.Module):
    from peft import PeftModel

    return next((sub for sub in module.modules() if isinstance(sub, PeftModel)), None)


def is_peft_model(model: nn.Module) -> bool:
    """Whether `model` is a `peft.PeftModel` (a wrapped base whose `save_pretrained` writes the adapter only)."""
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)


def save_adapter(model: nn.Module, directory: str | os.PathLike, base_model_name_or_path: str | None = None) -> Path:
    """Write the adapter of a `PeftModel` (`adapter_config.json` + `adapter_model.safetensors`) to `directory`, and
    the fingerprint of its base's weights (`BASE_RECORD_NAME`) when the base is a local folder.

    A local base inside `directory` (a converted DAVRL folder: `base`) or inside its parent (a training run:
    `RUN/best` -> `../base`) is recorded as a path relative to `directory`, so the folder still loads when the run
    is moved (:func:`resolve_adapter_base`); any other local base as an absolute path; a Hub id as it is.

    Args:
        model: the `PeftModel`.
        directory: the adapter folder.
        base_model_name_or_path: the base folder or Hub id recorded in `adapter_config.json` (what the adapter is
            loaded onto); default the one peft recorded.
    """
    from .utils.atomic import atomic_write_json
    from .utils.fingerprint import weights_fingerprint

    directory = Path(directory)
    model.save_pretrained(directory)
    path = directory / ADAPTER_CONFIG_NAME
    adapter_config = json.loads(path.read_text(encoding="utf-8"))
    base = base_model_name_or_path or adapter_config.get("base_model_name_or_path")
    if base is not None and (Path(base) / "config.json").is_file():
        atomic_write_json(directory / BASE_RECORD_NAME, {"base_weights_fingerprint": weights_fingerprint(base)})
        base = _relative_base(directory, Path(base))
    if base is not None:
        adapter_config["base_model_name_or_path"] = os.fspath(base)
        path.write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return directory


def _relative_base(directory: Path, base: Path) -> str:
    """`base` relative to `directory` when it lies inside `directory` or its parent, else absolute."""
    directory, base = directory.resolve(), base.resolve()
    if any(base == anchor or anchor in base.parents for anchor in (directory, directory.parent)):
        return Path(os.path.relpath(base, directory)).as_posix()
    return os.fspath(base)


def adapter_base_model(directory: str | os.PathLike) -> str | None:
    """`base_model_name_or_path` of a saved adapter folder as recorded, or `None` when `directory` holds no
    adapter (see :func:`resolve_adapter_base` for the folder or Hub id it names)."""
    path = Path(directory) / ADAPTER_CONFIG_NAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except ValueError as error:
        raise ValueError(f"adapter config {os.fspath(path)!r} is not valid JSON ({error}): the file is truncated or "
                         "damaged; save or convert the adapter again") from None


def resolve_adapter_base(directory: str | os.PathLike) -> str:
    """The base an adapter folder loads onto: its recorded `base_model_name_or_path`, a relative path resolved
    against the adapter folder (not the working directory), an absolute path or a Hub id as recorded.

    Raises:
        FileNotFoundError: the folder is not an adapter, records no base, or its local base is missing.
    """
    recorded = adapter_base_model(directory)
    if not recorded:
        raise FileNotFoundError(f"{os.fspath(directory)!r} is not a peft adapter folder with a base "
                                f"({ADAPTER_CONFIG_NAME} with base_model_name_or_path)")
    local = _local_base(directory, recorded)
    if local is not None:
        if not (local / "config.json").is_file():
            raise FileNotFoundError(
                f"adapter {os.fspath(directory)!r}: its base model {recorded!r} ({os.fspath(local)}) is not a saved "
                f"model folder (no config.json); put the base back there or set base_model_name_or_path in "
                f"{ADAPTER_CONFIG_NAME} to the base's folder or Hub id")
        return os.fspath(local)
    return recorded  # a Hub id


def _local_base(directory: str | os.PathLike, recorded: str) -> Path | None:
    """The local folder a recorded base names (relative: against the adapter folder), or `None` for a Hub id."""
    path = Path(recorded).expanduser()
    if path.is_absolute():
        return path
    if recorded.startswith(".") or (Path(directory) / path).exists() or not _looks_like_hub_id(recorded):
        return (Path(directory) / path).resolve()
    return None


def _looks_like_hub_id(text: str) -> bool:
    import re

    return re.fullmatch(r"[\w.-]+(/[\w.-]+)?", text) is not None and ".." not in text


def check_adapter_base(directory: str | os.PathLike, base: str | os.PathLike, allow_base_change: bool = False) -> None:
    """Check that `base` (a local folder) has the weights the adapter in `directory` was saved against (its
    `BASE_RECORD_NAME`); adapters saved before the record existed, Hub bases and `allow_base_change` pass.

    Raises:
        tvr.utils.fingerprint.FingerprintMismatch: naming both fingerprints and the fix.
    """
    from .utils.fingerprint import check_fingerprint, weights_fingerprint

    record = Path(directory) / BASE_RECORD_NAME
    if allow_base_change or not record.is_file() or not os.path.isdir(base):
        return
    try:
        recorded = json.loads(record.read_text(encoding="utf-8"))["base_weights_fingerprint"]
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{os.fspath(record)!r} is damaged ({type(error).__name__}: {error}); save the adapter "
                         "again, or pass allow_base_change=True (--allow-base-change) to load it without the check")
    check_fingerprint(
        f"adapter {os.fspath(directory)!r}: its base {os.fspath(base)!r} has other weights than the adapter was "
        "trained on (base weights fingerprint)", recorded, weights_fingerprint(base),
        "the base was rewritten (e.g. by a later run in the same folder): load the adapter onto the base it was "
        "trained on, or pass allow_base_change=True (--allow-base-change) if you mean to use this base")


def install_relative_base_resolution() -> None:
    """Let transformers' own adapter loading (`AutoModel.from_pretrained(adapter_dir)`, `pipeline(..., model=
    adapter_dir)`) resolve a relative `base_model_name_or_path` against the adapter folder, as tvr does.

    transformers reads `base_model_name_or_path` relative to the working directory; tvr writes it relative to the
    adapter folder (`../base`) so that a moved run still loads. This wraps transformers'
    `find_adapter_config_file` where it is used: for a local adapter folder with such a relative base (or a Hub repo
    holding its base, `./base`, as `tvr card --push-to-hub` uploads an adapter: that folder is downloaded), it returns
    the path of a copy of `adapter_config.json` naming the resolved base; anything else is unchanged. `import tvr`
    installs it: each module is wrapped once it has been imported (now, or when transformers imports it), so
    `import tvr` itself imports no transformers.
    """
    from ._lazy import after_import

    for name in ("transformers.models.auto.auto_factory", "transformers.integrations.peft", "transformers.pipelines"):
        after_import(name, _wrap_find_adapter_config_file)


def _wrap_find_adapter_config_file(module) -> None:
    find = getattr(module, "find_adapter_config_file", None)
    if find is not None and not getattr(find, "_tvr_resolves_relative_base", False):
        module.find_adapter_config_file = _resolving(find)


def _resolving(find):
    import functools
    import hashlib
    import tempfile

    @functools.wraps(find)
    def find_adapter_config_file(model_id, *args, **kwargs):
        found = find(model_id, *args, **kwargs)
        if not found or not os.path.isfile(found):
            return found
        folder = model_id if os.path.isdir(model_id) else None
        recorded = adapter_base_model(Path(found).parent)
        if not recorded or Path(recorded).is_absolute():
            return found
        if folder is None:  # a Hub repo whose base is inside it (a pushed DAVRL adapter: ./base): fetch that too
            if not recorded.startswith("."):
                return found
            from huggingface_hub import snapshot_download

            folder = snapshot_download(model_id, revision=kwargs.get("revision"), token=kwargs.get("token"),
                                       allow_patterns=[ADAPTER_CONFIG_NAME, f"{Path(recorded).as_posix()}/*"])
        elif _local_base(folder, recorded) is None:
            return found
        adapter_config = json.loads(Path(found).read_text(encoding="utf-8"))
        adapter_config["base_model_name_or_path"] = resolve_adapter_base(folder)
        text = json.dumps(adapter_config, sort_keys=True)
        copy = Path(tempfile.gettempdir()) / f"tvr-adapter-config-{hashlib.sha1(text.encode()).hexdigest()[:16]}.json"
        if not copy.is_file():
            from .utils.atomic import atomic_write_text

            atomic_write_text(copy, text)  # whole or absent: another process may be reading it
        return os.fspath(copy)

    find_adapter_config_file._tvr_resolves_relative_base = True
    return find_adapter_config_file


__all__ = [
    "ADAPTER_FACTORIES",
    "set_modules_to_save_trainable",
    "BASE_RECORD_NAME",
    "adapter_base_model",
    "check_adapter_base",
    "install_relative_base_resolution",
    "is_peft_model",
    "load_adapter_for_training",
    "needs_adapter",
    "prepare_adapter_training",
    "resolve_adapter_base",
    "save_adapter",
]
