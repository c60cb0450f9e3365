# Copyright 2026 The tvr authors. Licensed under the Apache License, Version 2.0.
"""DAVRL's adapter as stock `peft` LoRA (see `tvr.peft` for saving and loading adapters of any method).

DAVRL trains rank-r deltas on every attention's fused q/k/v projection with ONE down-projection shared by q, k and v
and no scaling. On `DualAttentionModel`, whose attentions have one fused `qkv_proj` `nn.Linear`, that is exactly stock
`peft` LoRA: `LoraConfig(r, lora_alpha=r, lora_dropout=0, target_modules=["qkv_proj"])` (`lora_A` `(r, width)` is
the shared down-projection, `lora_B` `(3 * width, r)` the three up-projections, scaling `alpha / r = 1`). The global
video tokens go into the adapter too (`modules_to_save=["global_tokens"]`), frozen unless the config says
`global_tokens_trainable`, so an adapter is self-contained on any base built from the same CLIP.
"""

from __future__ import annotations

from torch import nn

from ...peft import set_modules_to_save_trainable

LORA_TARGET_MODULES = ["qkv_proj"]
GLOBAL_TOKENS_MODULE = "global_tokens"


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


def get_dual_attention_peft_model(model: nn.Module):
    """Wrap a `DualAttentionModel` with its LoRA adapter (`dual_attention_lora_config`): only the LoRA matrices (and,
    with `config.global_tokens_trainable`, the global tokens) require grad.

    Returns:
        A `peft.PeftModel`; `peft_model.print_trainable_parameters()` shows 491,520 at ViT-B/32, r=8.
    """
    from peft import get_peft_model

    peft_model = get_peft_model(model, dual_attention_lora_config(model.config))
    set_modules_to_save_trainable(peft_model, model.config.global_tokens_trainable)
    return peft_model


__all__ = ["GLOBAL_TOKENS_MODULE", "LORA_TARGET_MODULES", "dual_attention_lora_config", "get_dual_attention_peft_model"]
