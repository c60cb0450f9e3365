"""Optimisation as the seeds train: CLIP / non-CLIP parameter groups, layer freezing, BertAdam, warmup + cosine.

The seeds (CLIP4Clip, EMCL-Net, EERCF) share one recipe: four parameter groups (CLIP or not x weight decay or
not), CLIP parameters at ``lr * coef_lr``, the lower CLIP layers frozen below ``freeze_layer_num``, BertAdam and the
``warmup_cosine`` schedule. Parameter names follow the tvr model contract: CLIP parameters live under ``clip.``
with transformers' names (``clip.text_model.encoder.layers.{i}.``, ``clip.vision_model.post_layernorm``, ...).
"""

from __future__ import annotations

import math
import re
from typing import Iterable

import torch
from torch import nn

# The original excludes these substrings from weight decay. CLIP's LayerNorms are not called "LayerNorm", so in
# practice only biases escape decay: LayerNorm weights, embeddings and logit_scale are decayed, as in the seeds.
NO_DECAY_KEYWORDS = ("bias", "LayerNorm.bias", "LayerNorm.weight")

# Inside `clip`, the top of each tower always trains whatever `freeze_layer_num` says: final LayerNorms,
# projections, logit_scale. So does the 3d linear patch (CLIP4Clip `linear_patch="3d"`), which is new: the original
# meant to keep it trainable, but its test (`name.find("conv2.")`, truthy for every name) froze nothing at all.
# Matched as name components so that nesting (`text_model.text_model.`) does not matter.
_ALWAYS_TRAINABLE = re.compile(
    r"(^|\.)(final_layer_norm|post_layernorm|text_projection|visual_projection|logit_scale|patch_embedding_3d)(\.|$)")
_ENCODER_LAYER = re.compile(r"(^|\.)encoder\.layers\.(\d+)\.")


def is_clip_parameter(name: str) -> bool:
    """Whether a parameter belongs to the CLIP towers (``clip.`` at the start, or after a wrapper's prefix such as
    peft's ``base_model.model.``)."""
    return name.startswith("clip.") or ".clip." in name


def freeze_clip_layers(model: nn.Module, freeze_layer_num: int) -> list[str]:
    """Freeze the CLIP parameters below layer ``freeze_layer_num`` (CLIP4Clip's ``--freeze_layer_num``).

    Within ``model.clip``: final LayerNorms, projections, ``logit_scale``, the 3d patch embedding and encoder layers
    with index ``>= freeze_layer_num`` stay trainable; everything else (token / position / patch embeddings, the
    pre-LayerNorm and the lower layers) is frozen, so ``0`` still freezes the embeddings. ``-1`` disables freezing.
    Parameters outside ``clip`` are never touched.

    Returns:
        The names (relative to ``model.clip``) of the parameters frozen.
    """
    if freeze_layer_num < 0:
        return []
    clip = getattr(model, "clip", None)
    if clip is None:
        raise ValueError(f"freeze_layer_num={freeze_layer_num} needs a model with a `clip` attribute; "
                         f"{type(model).__name__} has none (use freeze_layer_num=-1)")
    frozen = []
    for name, parameter in clip.named_parameters():
        if _ALWAYS_TRAINABLE.search(name):
            continue
        layer = _ENCODER_LAYER.search(name)
        if layer is not None and int(layer.group(2)) >= freeze_layer_num:
            continue
        parameter.requires_grad_(False)
        frozen.append(name)
    return frozen


def parameter_groups(model: nn.Module, lr: float, coef_lr: float, weight_decay: float) -> list[dict]:
    """The seeds' four optimiser groups over the trainable parameters, empty groups left out.

    CLIP parameters (:func:`is_clip_parameter`) get ``lr * coef_lr``, the others ``lr``; names containing a
    :data:`NO_DECAY_KEYWORDS` entry get no weight decay. Each group carries a ``"name"`` for logging:
    ``clip_decay``, ``clip_no_decay``, ``decay``, ``no_decay``.
    """
    groups: dict[str, dict] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        clip = is_clip_parameter(name)
        decay = not any(keyword in name for keyword in NO_DECAY_KEYWORDS)
        group_name = ("clip_" if clip else "") + ("decay" if decay else "no_decay")
        group = groups.setdefault(group_name, {
            "name": group_name,
            "params": [],
            "lr": lr * coef_lr if clip else lr,
            "weight_decay": weight_decay if decay else 0.0,
        })
        group["params"].append(parameter)
    order = ("clip_decay", "decay", "clip_no_decay", "no_decay")  # the original's group order
    return [groups[name] for name in order if name in groups]


class BertAdam(torch.optim.Optimizer):
    """Adam as the seeds use it (the BERT optimiser): no bias correction, decoupled weight decay added to the
    update, and each parameter's gradient clipped to norm ``max_grad_norm`` before the moments are updated.

    Per parameter ``p`` with gradient ``g`` (after clipping):
    ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g*g``, ``p -= lr * (m / (sqrt(v) + eps) + weight_decay * p)``.
    The learning-rate schedule is applied from outside (a ``LambdaLR``), as with any torch optimiser.
    """

    def __init__(self, params: Iterable, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.98),
                 eps: float = 1e-6, weight_decay: float = 0.0, max_grad_norm: float = 1.0):
        if lr < 0:
            raise ValueError(f"BertAdam: lr must be >= 0, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"BertAdam: betas must be in [0, 1), got {betas}")
        if eps < 0:
            raise ValueError(f"BertAdam: eps must be >= 0, got {eps}")
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, max_grad_norm=max_grad_norm)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for parameter in group["params"]:
                if parameter.grad is None:
                    continue
                if group["max_grad_norm"] > 0:
                    torch.nn.utils.clip_grad_norm_(parameter, group["max_grad_norm"])
                grad = parameter.grad
                state = self.state[parameter]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(parameter)
                    state["exp_avg_sq"] = torch.zeros_like(parameter)
                exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
                exp_avg.mul_(beta1).add_(grad, alpha=1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                update = exp_avg / (exp_avg_sq.sqrt() + group["eps"])
                if group["weight_decay"] > 0:
                    update.add_(parameter, alpha=group["weight_decay"])
                parameter.add_(update, alpha=-group["lr"])
                state["step"] += 1
        return loss


def warmup_cosine(progress: float, warmup: float) -> float:
    """The seeds' ``warmup_cosine`` factor at ``progress = step / total_steps``: linear warmup to 1 over the first
    ``warmup`` fraction, then ``0.5 * (1 + cos(pi * progress))`` -- the cosine of the whole progress, not restarted
    after warmup, so the factor drops slightly (to ``0.5 * (1 + cos(pi * warmup))``) when warmup ends."""
    if progress < warmup:
        return progress / warmup
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, name: str, lr: float, coef_lr: float, weight_decay: float,
                    betas: tuple[float, float] = (0.9, 0.98), eps: float = 1e-6,
                    max_grad_norm: float = 1.0) -> torch.optim.Optimizer:
    """``"adamw"`` (torch AdamW) or ``"bertadam"`` (:class:`BertAdam`, with per-parameter clipping at
    ``max_grad_norm``) over :func:`parameter_groups`."""
    groups = parameter_groups(model, lr, coef_lr, weight_decay)
    if not groups:
        raise ValueError(f"{type(model).__name__} has no trainable parameters (check freeze_layer_num)")
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    if name == "bertadam":
        return BertAdam(groups, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, max_grad_norm=max_grad_norm)
    raise ValueError(f"optimizer must be 'adamw' or 'bertadam', got {name!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                    warmup_proportion: float) -> torch.optim.lr_scheduler.LambdaLR:
    """:func:`warmup_cosine` over ``total_steps`` optimiser steps: the ``k``-th step (from 0) uses
    ``lr * warmup_cosine(k / total_steps, warmup_proportion)``, as BertAdam's internal schedule did."""
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: warmup_cosine(step / total_steps, warmup_proportion))
