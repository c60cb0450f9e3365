"""The Expectation-Maximization module of EMCL-Net (Jin et al., NeurIPS 2022).

EMCL treats the ``dim`` feature channels of a block of ``num_samples`` embeddings as the data points of an EM
clustering whose ``num_bases`` bases live in sample space (each base is a vector over the samples of the block).
The embeddings are then pulled towards their low-rank reconstruction from those bases:
``features + beta * reconstruction``. The EM runs without gradients, so gradients flow only through the identity
term, and the result depends on which samples share a block.

The bases kept between calls have shape ``(1, num_bases)``: every base starts each call as a constant vector over
the samples, and in training they follow the mean of the converged bases by momentum.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# Added to denominators exactly where the original adds it, so results match to float precision.
_EPS = 1e-6


def initial_em_bases(num_bases: int, seed: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """The EM bases the original code starts from, shape ``(1, num_bases)``.

    The original draws ``N(0, sqrt(2 / num_bases))`` and divides by ``1e-6 + norm over dim 0``; dim 0 has size 1,
    so the bases are ``x / (1e-6 + |x|)``, i.e. about ``sign(x)``. It is the first consumer of the global RNG after
    ``torch.manual_seed(seed)`` (seed 0 by default), so ``initial_em_bases(K, seed=seed)`` reproduces the bases a
    checkpoint of the original was evaluated with (its bases are never saved).

    Args:
        num_bases: number of bases ``K`` (the original's ``--centerK``).
        seed: draw from a fresh ``torch.Generator`` seeded with this (same numbers as ``torch.manual_seed(seed)``).
        generator: draw from this generator instead; with neither, the global RNG is used.
    """
    if seed is not None and generator is not None:
        raise ValueError("initial_em_bases: give `seed` or `generator`, not both")
    if seed is not None:
        generator = torch.Generator().manual_seed(seed)
    bases = torch.empty(1, num_bases, dtype=torch.float32).normal_(0.0, math.sqrt(2.0 / num_bases), generator=generator)
    return bases / (_EPS + bases.norm(dim=0, keepdim=True))


class EMReconstruction(nn.Module):
    """Pulls a block of embeddings towards its EM reconstruction: ``features + beta * reconstruction``.

    Args:
        num_bases: number of bases ``K`` (original ``--centerK``, default 32).
        num_stages: EM iterations per call (original ``--stage_num``, default 9).
        temperature: softmax temperature of the E-step (original ``--lamd``, default 1).
        beta: weight of the reconstruction (original ``--beta``, default 3); 0 turns the module into the identity
            (the EM is then skipped and the bases are not updated).
        momentum: in training, ``bases <- momentum * bases + (1 - momentum) * mean of the converged bases``
            (original ``--momentum``, default 0.9).
        seed: the initial bases are ``initial_em_bases(num_bases, seed=seed)`` (the original's with ``--seed``).

    The bases are the buffer ``bases`` of shape ``(1, num_bases)``, kept in float32 and saved with the model.
    """

    def __init__(
        self,
        num_bases: int = 32,
        num_stages: int = 9,
        temperature: float = 1.0,
        beta: float = 3.0,
        momentum: float = 0.9,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_bases < 1 or num_stages < 1:
            raise ValueError(
                f"EMReconstruction needs num_bases >= 1 and num_stages >= 1, got {num_bases} and {num_stages}"
            )
        self.num_stages = num_stages
        self.temperature = temperature
        self.beta = beta
        self.momentum = momentum
        self.register_buffer("bases", initial_em_bases(num_bases, seed=seed), persistent=True)

    def _apply(self, fn, recurse=True):
        # `.to(dtype)` / `.half()` move the bases but keep them float32: momentum steps would vanish in half precision.
        # Only a change of dtype is undone, from the untouched float32 values (a meta tensor has none: it is cast).
        bases = self.bases
        super()._apply(fn, recurse)
        if self.bases.dtype != bases.dtype:
            self.bases = self.bases.to(bases.dtype) if bases.is_meta else bases.to(self.bases.device)
        return self

    @property
    def num_bases(self) -> int:
        return self.bases.shape[1]

    def extra_repr(self) -> str:
        return (
            f"num_bases={self.num_bases}, num_stages={self.num_stages}, temperature={self.temperature}, "
            f"beta={self.beta}, momentum={self.momentum}"
        )

    @torch.no_grad()
    def set_bases(self, bases: torch.Tensor) -> None:
        """Replace the bases, e.g. with those a checkpoint of the original was evaluated with.

        Args:
            bases: ``(1, num_bases)`` or ``(num_bases,)`` tensor.
        """
        bases = torch.as_tensor(bases)
        if bases.numel() != self.num_bases or bases.dim() > 2 or (bases.dim() == 2 and bases.shape[0] != 1):
            raise ValueError(
                f"EM bases must have shape (1, {self.num_bases}) or ({self.num_bases},), got {tuple(bases.shape)}"
            )
        self.bases.copy_(bases.reshape(1, -1).to(self.bases))

    @torch.no_grad()
    def fit(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the EM on one block; returns ``(bases, responsibilities)``.

        Args:
            features: ``(num_samples, dim)``; its ``dim`` channels are the data points.

        Returns:
            bases ``(num_samples, num_bases)``, each unit-norm over the samples, and responsibilities
            ``(dim, num_bases)``, each column normalised to sum to one over the channels.
        """
        features = features.float()
        bases = self.bases.to(features).expand(features.shape[0], -1)
        for _ in range(self.num_stages):
            # E-step: how much each channel belongs to each base
            responsibilities = torch.softmax(features.t() @ bases / self.temperature, dim=1)
            responsibilities = responsibilities / (_EPS + responsibilities.sum(dim=0, keepdim=True))
            # M-step: each base is the responsibility-weighted mean of the channels, then unit norm
            bases = features @ responsibilities
            bases = bases / (_EPS + bases.norm(dim=0, keepdim=True))
        return bases, responsibilities

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """Args: features ``(num_samples, dim)``. Returns ``features + beta * reconstruction``, same shape and dtype.

        In training mode this also moves the stored bases towards this block's converged bases.
        """
        if features.dim() != 2:
            raise ValueError(
                f"EMReconstruction expects features of shape (num_samples, dim), got {tuple(features.shape)}"
            )
        if self.beta == 0:
            return features
        # The EM and its reconstruction are constants for autograd, and always computed in float32.
        with torch.autocast(device_type=features.device.type, enabled=False):
            bases, responsibilities = self.fit(features)
            reconstruction = bases @ responsibilities.t()
        if self.training:
            with torch.no_grad():
                self.bases.mul_(self.momentum).add_(bases.mean(dim=0, keepdim=True), alpha=1.0 - self.momentum)
        return features + (self.beta * reconstruction).to(features.dtype)
