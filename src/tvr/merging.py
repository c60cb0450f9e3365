"""Weight-space ensembling: interpolate two state dicts of the same model (InternVideo's "MergeClip", WiSE-FT)."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

StateDict = Mapping[str, torch.Tensor]


def merge_weights(a: StateDict | nn.Module, b: StateDict | nn.Module, weight: float = 0.5) -> dict[str, torch.Tensor]:
    """`weight * a + (1 - weight) * b` for every key the two state dicts share; `b`'s other keys are kept as they are.

    This is InternVideo's MergeClip rule with `a` = CLIP and `b` = the InternVideo model (`weight` = CLIP's share,
    0.5 in the original): keys only `b` has (modules CLIP lacks) keep `b`'s values, keys only `a` has are ignored.
    Half-precision values are upcast to float32 before mixing (the original reads CLIP's fp16 weights back from an
    fp32 model); integer tensors (e.g. `position_ids` buffers) must be equal and are kept.

    Args:
        a, b: state dicts (or modules, whose `state_dict()` is used) of the same architecture and key names.
        weight: `a`'s share, in [0, 1].

    Returns:
        A new state dict with `b`'s keys, in `b`'s order.

    Raises:
        ValueError: for a weight outside [0, 1], or a shared key whose shapes (or integer values) differ.

    Example:

    ```python
    >>> merged = tvr.merge_weights(zero_shot.state_dict(), fine_tuned.state_dict(), weight=0.5)
    >>> fine_tuned.load_state_dict(merged)
    ```
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight is a's share and must be in [0, 1], got {weight}")
    a = a.state_dict() if isinstance(a, nn.Module) else a
    b = b.state_dict() if isinstance(b, nn.Module) else b
    merged = {}
    for key, value_b in b.items():
        value_a = a.get(key)
        if value_a is None:
            merged[key] = value_b
            continue
        if value_a.shape != value_b.shape:
            raise ValueError(
                f"merge_weights: {key!r} has shape {tuple(value_a.shape)} in a, {tuple(value_b.shape)} in b"
            )
        if not (value_a.is_floating_point() and value_b.is_floating_point()):
            if not torch.equal(value_a, value_b):
                raise ValueError(f"merge_weights: non-floating {key!r} differs between a and b")
            merged[key] = value_b
            continue
        merged[key] = _at_least_float32(value_a) * weight + _at_least_float32(value_b) * (1.0 - weight)
    return merged


def _at_least_float32(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.float() if torch.finfo(tensor.dtype).bits < 32 else tensor


__all__ = ["merge_weights"]
