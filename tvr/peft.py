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

from torch import nn

LORA_TARGET_MODULES = ["qkv_proj"]
GLOBAL_TOKENS_MODULE = "global_tokens"
ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"


def dual_attention_lora_config(config, inference_mode: bool = False):
    """The `peft.LoraConfig` of a `DualAttentionConfig`: DAVRL's shared-A LoRA of rank `config.lora_rank` on every
    `qkv_proj` of both towers, with the global tokens carried as `modules_to_save`.

    Example:

    ```python
    >>> from peft import get_peft_model
    >>> peft_model = get_peft_model(model, dual_attention_lora_config(model.config))
    ```
    """
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_rank,  # scaling 1: the original adds the delta unscaled
        lora_dropout=0.0,
        bias="none",
        target_modules=list(LORA_TARGET_MODULES),
        modules_to_save=[GLOBAL_TOKENS_MODULE],
        inference_mode=inference_mode,
    )


def set_global_tokens_trainable(model: nn.Module, trainable: bool) -> None:
    """Set `requires_grad` of the adapter's copy of the global tokens (the `modules_to_save` copy); the original keeps
    them frozen (`DualAttentionConfig.global_tokens_trainable=False`)."""
    from peft.utils.other import ModulesToSaveWrapper

    for module in model.modules():
        if isinstance(module, ModulesToSaveWrapper):
            module.modules_to_save.requires_grad_(trainable)


def get_dual_attention_peft_model(model: nn.Module):
    """Wrap a `DualAttentionModel` with its LoRA adapter (`dual_attention_lora_config`): only the LoRA matrices (and,
    with `config.global_tokens_trainable`, the global tokens) require grad.

    Returns:
        A `peft.PeftModel`; `peft_model.print_trainable_parameters()` shows 491,520 at ViT-B/32, r=8.
    """
    from peft import get_peft_model

    peft_model = get_peft_model(model, dual_attention_lora_config(model.config))
    set_global_tokens_trainable(peft_model, model.config.global_tokens_trainable)
    return peft_model


# model_type -> the function wrapping a model of that type with its adapter (methods that train through peft)
ADAPTER_METHODS = {"dual_attention": get_dual_attention_peft_model}


def needs_adapter(model: nn.Module) -> bool:
    """Whether `model` is a tvr model of a method that trains a `peft` adapter, not wrapped yet."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return model_type in ADAPTER_METHODS and not is_peft_model(model)


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
    return ADAPTER_METHODS[model.config.model_type](model)


def load_adapter_for_training(adapter_dir: str | os.PathLike, **base_kwargs) -> nn.Module:
    """A saved adapter on its base (`base_model_name_or_path`), trainable: `PeftModel.from_pretrained(...,
    is_trainable=True)`, with the global tokens trainable as the base's config says."""
    from peft import PeftModel
    from transformers import AutoModel

    base = AutoModel.from_pretrained(adapter_base_model(adapter_dir), **base_kwargs)
    peft_model = PeftModel.from_pretrained(base, adapter_dir, is_trainable=True)
    set_global_tokens_trainable(peft_model, getattr(base.config, "global_tokens_trainable", False))
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
    """Write the adapter of a `PeftModel` (`adapter_config.json` + `adapter_model.safetensors`) to `directory`.

    Args:
        model: the `PeftModel`.
        directory: the adapter folder.
        base_model_name_or_path: the base folder or Hub id recorded in `adapter_config.json` (what
            `AutoModel.from_pretrained(directory)` loads the adapter onto); default the one peft recorded.
    """
    directory = Path(directory)
    model.save_pretrained(directory)
    if base_model_name_or_path is not None:
        path = directory / ADAPTER_CONFIG_NAME
        adapter_config = json.loads(path.read_text(encoding="utf-8"))
        adapter_config["base_model_name_or_path"] = os.fspath(base_model_name_or_path)
        path.write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return directory


def adapter_base_model(directory: str | os.PathLike) -> str | None:
    """`base_model_name_or_path` of a saved adapter folder, or `None` when `directory` holds no adapter."""
    path = Path(directory) / ADAPTER_CONFIG_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("base_model_name_or_path")


__all__ = [
    "ADAPTER_METHODS",
    "GLOBAL_TOKENS_MODULE",
    "LORA_TARGET_MODULES",
    "adapter_base_model",
    "dual_attention_lora_config",
    "get_dual_attention_peft_model",
    "is_peft_model",
    "load_adapter_for_training",
    "needs_adapter",
    "prepare_adapter_training",
    "save_adapter",
    "set_global_tokens_trainable",
]
