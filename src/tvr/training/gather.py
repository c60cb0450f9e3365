"""All-gather of encodings across processes WITH gradients, for the contrastive loss over the global batch.

``accelerator.gather`` returns tensors without autograd history, so in-batch negatives from other processes
would give no gradient. ``torch.distributed.nn.functional.all_gather`` is differentiable: its backward sums, over
processes, the gradient each process computed for this process's slice.

Why that gives the single-process update: every process computes the same global loss ``L`` on the same
gathered encodings, so the summed gradient reaching process ``r``'s local encodings is ``R * dL/d(local)``
(``R`` processes); DDP then averages parameter gradients over the ``R`` processes, which leaves exactly
``dL/dtheta`` -- the gradient of one process on the concatenated batch (``logit_scale`` too: each process already
has the full ``dL/ds`` and the average keeps it). CLIP4Clip's own AllGather returned only the local slice of the
gradient without the sum, so after DDP's average its encoder gradients were ``dL/dtheta / R`` while
``logit_scale`` got the full ``dL/ds``; Adam-type updates hide most of that ``1/R`` (they normalise per
parameter) but not its interaction with ``eps`` and gradient clipping. tvr uses the exact gradient.
"""

from __future__ import annotations

import warnings
from typing import TypeVar

import torch
import torch.distributed as dist
from transformers.utils import ModelOutput

Encoding = TypeVar("Encoding", bound=ModelOutput)


def _world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from every process along dim 0, differentiably; the identity on one process.

    Args:
        tensor: ``(local_batch_size, ...)``, the same shape on every process.

    Returns:
        ``(world_size * local_batch_size, ...)``, process 0's rows first.
    """
    if _world_size() == 1:
        return tensor
    with warnings.catch_warnings():
        # torch marks the autograd collectives as deprecated in favour of private functional collectives
        # that do not run on every backend (gloo has no reduce_scatter); this one does.
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(torch.distributed.nn.functional.all_gather(tensor), dim=0)


def gather_encoding(encoding: Encoding) -> Encoding:
    """All-gather every tensor field of a ``TextEncoding`` / ``VideoEncoding`` (batch is dim 0 of each field)."""
    return type(encoding)(**{
        name: all_gather_with_grad(value) if isinstance(value, torch.Tensor) else value
        for name, value in encoding.items()
    })
