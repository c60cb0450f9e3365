"""Score post-processing that re-weights a query x gallery similarity matrix before ranking.

All three use other queries' scores for the same gallery item as a prior (a "hub" video that is close to many
queries is pushed down). DSL and inverted softmax with the test queries as the bank are *transductive*: they
look at the whole test query set, so their numbers are reported beside the plain ones (keys ``dsl/...``,
``inverted_softmax/...``, ``qb_norm/...``), never instead of them.

The defaults assume tvr similarities, i.e. CLIP logits (cosine x ``logit_scale`` ~ 100): a temperature or
inverse temperature given for cosine similarities is divided (temperature multiplied) by 100.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch

from .metrics import compute_retrieval_metrics

POSTPROCESSING = ("dsl", "inverted_softmax", "qb_norm")


def dual_softmax(sim: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Dual softmax (DSL at inference, CAMoE): ``S * softmax(S / temperature, dim=0)``.

    The softmax runs over the queries (rows) of each gallery column. ``temperature=1`` on CLIP logits is
    InternVideo's setting; EMCL's ``softmax(S / 0.01)`` on cosine similarities is the same thing. EMCL also
    multiplies by the number of queries, which changes no ranking and is left out.

    Args:
        sim: ``(num_queries, num_gallery)`` scores.
        temperature: softmax temperature.

    Returns:
        ``(num_queries, num_gallery)`` float64 scores; rank each row.
    """
    sim = _as_float64(sim)
    return sim * torch.softmax(sim / temperature, dim=0)


def inverted_softmax(sim: torch.Tensor, bank_sim: torch.Tensor | None = None, beta: float = 1.0) -> torch.Tensor:
    """Inverted softmax (Smith et al. 2017): ``exp(beta S[q, g]) / sum_b exp(beta B[b, g])``, in log form.

    Returned as ``beta * S[q, g] - logsumexp_b(beta * B[b, g])``: the log of the formula, which ranks every row
    identically but cannot underflow to ties.

    Args:
        sim: ``(num_queries, num_gallery)`` scores.
        bank_sim: ``(bank_size, num_gallery)`` scores of the query bank against the same gallery; ``None`` uses
            the queries themselves (transductive).
        beta: inverse temperature.

    Returns:
        ``(num_queries, num_gallery)`` float64 scores; rank each row.
    """
    sim = _as_float64(sim)
    bank_sim = sim if bank_sim is None else _check_bank(sim, bank_sim)
    return beta * sim - torch.logsumexp(beta * bank_sim, dim=0, keepdim=True)


def qb_norm(sim: torch.Tensor, bank_sim: torch.Tensor, beta: float = 0.2, k: int = 1) -> torch.Tensor:
    """Querybank normalisation with the dynamic inverted softmax (Bogolin et al., CVPR 2022).

    Gallery items that are among the top-``k`` of some bank query are "activated". A query whose best gallery
    item is activated gets the inverted softmax over the bank (:func:`inverted_softmax`, log form); every other
    query keeps its raw scores. Each row stays internally consistent, so rank rows only.

    The paper's bank is the *training* captions (not transductive) and its ``beta=20`` is for cosine
    similarities, i.e. ``0.2`` on CLIP logits (the default here).

    Args:
        sim: ``(num_queries, num_gallery)`` scores.
        bank_sim: ``(bank_size, num_gallery)`` scores of the query bank against the same gallery.
        beta: inverse temperature.
        k: how many top gallery items each bank query activates.

    Returns:
        ``(num_queries, num_gallery)`` float64 scores; rank each row.
    """
    sim = _as_float64(sim)
    bank_sim = _check_bank(sim, bank_sim)
    activated = torch.zeros(sim.shape[1], dtype=torch.bool)
    activated[bank_sim.topk(min(k, sim.shape[1]), dim=1).indices.flatten()] = True
    normalised_rows = activated[sim.argmax(dim=1)][:, None]
    return torch.where(normalised_rows, inverted_softmax(sim, bank_sim, beta), sim)


def postprocessed_metrics(
    sim: torch.Tensor,
    text_to_video: torch.Tensor | Sequence[int] | None = None,
    methods: Sequence[str] = ("dsl",),
    bank_sim: torch.Tensor | None = None,
    options: Mapping[str, Mapping] | None = None,
    ties: str = "pessimistic",
) -> dict[str, float]:
    """Retrieval metrics after each post-processing method, keys prefixed ``"<method>/"``.

    t2v ranks rows of ``f(S)``; v2t ranks rows of ``f(S^T)`` (videos are the queries, texts the gallery), so
    each direction is normalised over its own queries as in InternVideo and EMCL. QB-Norm reports t2v only: its
    bank is text queries, and a v2t bank would need training videos.

    Args:
        sim: ``(num_texts, num_videos)`` scores.
        text_to_video: as in :func:`~tvr.evaluation.compute_retrieval_metrics`.
        methods: names from ``("dsl", "inverted_softmax", "qb_norm")``.
        bank_sim: ``(bank_size, num_videos)`` scores of the QB-Norm query bank (required for ``"qb_norm"``).
        options: keyword arguments per method, e.g. ``{"qb_norm": {"beta": 0.2, "k": 1}}``.
        ties: tie rule, see :func:`~tvr.evaluation.compute_retrieval_metrics`.

    Returns:
        e.g. ``{"dsl/t2v_R@1": ..., "dsl/v2t_R@1": ..., "qb_norm/t2v_R@1": ...}``.
    """
    unknown = set(methods) - set(POSTPROCESSING)
    if unknown:
        raise ValueError(f"unknown post-processing {sorted(unknown)}; expected names from {POSTPROCESSING}")
    if "qb_norm" in methods and bank_sim is None:
        raise ValueError("qb_norm needs bank_sim: the scores of a query bank (e.g. the training captions)")
    options = options or {}
    sim = _as_float64(sim)
    results = {}
    for method in methods:
        kwargs = options.get(method, {})
        if method == "qb_norm":
            scored = {"t2v_": qb_norm(sim, bank_sim, **kwargs)}
        else:
            function = dual_softmax if method == "dsl" else inverted_softmax
            scored = {"t2v_": function(sim, **kwargs), "v2t_": function(sim.T, **kwargs).T}
        for direction, scores in scored.items():
            metrics = compute_retrieval_metrics(scores, text_to_video, ties)
            results.update({f"{method}/{key}": value for key, value in metrics.items() if key.startswith(direction)})
    return results


def _as_float64(sim) -> torch.Tensor:
    # float64 keeps softmax tails from underflowing into ties
    return torch.as_tensor(sim).detach().cpu().double()


def _check_bank(sim: torch.Tensor, bank_sim) -> torch.Tensor:
    bank_sim = _as_float64(bank_sim)
    if bank_sim.ndim != 2 or bank_sim.shape[1] != sim.shape[1] or bank_sim.shape[0] == 0:
        raise ValueError(
            f"bank_sim must have shape (bank_size > 0, {sim.shape[1]}) to match sim {tuple(sim.shape)}, "
            f"got {tuple(bank_sim.shape)}"
        )
    return bank_sim
