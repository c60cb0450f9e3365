"""DSL, inverted softmax and QB-Norm on matrices small enough to check by hand."""

import math

import numpy as np
import pytest
import torch

from tvr.evaluation import compute_retrieval_metrics, dual_softmax, inverted_softmax, postprocessed_metrics, qb_norm

# text 0's own video 0 (2) loses to the "hub" video 1 (3), which scores 3 for every text
HUB = torch.tensor([[2.0, 3.0], [0.0, 3.0]])
E2 = math.exp(2)


def test_dual_softmax_by_hand():
    # column softmax over texts: video 0 -> [e^2, 1] / (e^2 + 1), video 1 -> [1/2, 1/2]
    expected = torch.tensor([[2 * E2 / (E2 + 1), 1.5], [0.0, 1.5]], dtype=torch.float64)
    torch.testing.assert_close(dual_softmax(HUB), expected)
    # temperature 2: video 0 -> [e, 1] / (e + 1)
    expected_t2 = torch.tensor([[2 * math.e / (math.e + 1), 1.5], [0.0, 1.5]], dtype=torch.float64)
    torch.testing.assert_close(dual_softmax(HUB, temperature=2.0), expected_t2)


def test_inverted_softmax_by_hand():
    # exp form: exp(S[q, g]) / sum_q' exp(S[q', g]); returned as its log
    expected = torch.tensor([[E2 / (E2 + 1), 0.5], [1 / (E2 + 1), 0.5]], dtype=torch.float64)
    torch.testing.assert_close(inverted_softmax(HUB).exp(), expected)
    # an explicit bank replaces the queries in the denominator; beta scales the scores
    bank = torch.tensor([[0.0, 1.0]])
    torch.testing.assert_close(
        inverted_softmax(HUB, bank, beta=2.0).exp(),
        torch.tensor([[math.exp(4), math.exp(6 - 2)], [1.0, math.exp(6 - 2)]], dtype=torch.float64),
    )


def test_inverted_softmax_does_not_underflow_into_ties():
    # text 0: exp(0) / exp(2000) vs exp(-1) / exp(1990): both underflow to 0 in float64, the logs do not
    sim = torch.tensor([[0.0, -1.0], [2000.0, 1990.0]])
    naive = sim.double().exp() / sim.double().exp().sum(dim=0)
    assert naive[0, 0] == naive[0, 1]
    scores = inverted_softmax(sim)
    torch.testing.assert_close(scores[0], torch.tensor([-2000.0, -1991.0], dtype=torch.float64))


def test_qb_norm_normalises_only_queries_whose_best_item_is_activated():
    bank = torch.tensor([[0.0, 5.0], [1.0, 4.0]])  # both bank queries' top-1 is video 1
    queries = torch.tensor([[2.0, 3.0], [0.0, 3.0], [4.0, 1.0]])
    log_norm = torch.tensor([math.log(1 + math.e), 5 + math.log(1 + math.exp(-1))], dtype=torch.float64)
    expected = torch.stack(
        [
            queries[0].double() - log_norm,  # best item video 1 is activated -> inverted softmax over the bank
            queries[1].double() - log_norm,
            queries[2].double(),  # best item video 0 is not activated -> raw scores
        ]
    )
    torch.testing.assert_close(qb_norm(queries, bank, beta=1.0), expected)
    # k=2 activates both videos, so every query is normalised
    torch.testing.assert_close(qb_norm(queries, bank, beta=1.0, k=2), inverted_softmax(queries, bank, beta=1.0))
    # query 0 now prefers video 0: 2 - 1.31 > 3 - 5.31
    assert qb_norm(queries, bank, beta=1.0)[0].argmax() == 0


def test_postprocessed_metrics_are_prefixed_and_fix_the_hub():
    plain = compute_retrieval_metrics(HUB)
    assert plain["t2v_R@1"] == 50.0 and plain["v2t_R@1"] == 50.0  # video 1's column is a tie [3, 3]
    metrics = postprocessed_metrics(HUB, methods=("dsl", "inverted_softmax"))
    assert set(metrics) == {f"{m}/{k}" for m in ("dsl", "inverted_softmax") for k in plain}
    # t2v: DSL row 0 = [1.76, 1.5]. v2t runs on S^T (videos as queries, softmax over videos per text):
    # f(S^T)^T = [[2 * 0.269, 3 * 0.731], [0 * 0.047, 3 * 0.953]] -> both videos find their text first
    assert metrics["dsl/t2v_R@1"] == 100.0
    assert metrics["dsl/v2t_R@1"] == 100.0
    assert metrics["inverted_softmax/t2v_R@1"] == 100.0


def test_postprocessed_metrics_multi_caption_and_qb_norm():
    sim = torch.tensor(np.random.default_rng(0).normal(size=(6, 3)))
    text_to_video = [0, 0, 1, 1, 2, 2]
    bank = torch.tensor(np.random.default_rng(1).normal(size=(4, 3)))
    options = {"qb_norm": {"k": 2}}
    metrics = postprocessed_metrics(sim, text_to_video, ("dsl", "qb_norm"), bank_sim=bank, options=options)
    dsl = compute_retrieval_metrics(dual_softmax(sim), text_to_video)
    dsl_v2t = compute_retrieval_metrics(dual_softmax(sim.T).T, text_to_video)
    qb = compute_retrieval_metrics(qb_norm(sim, bank, k=2), text_to_video)
    assert metrics == {
        **{f"dsl/{k}": v for k, v in dsl.items() if k.startswith("t2v")},
        **{f"dsl/{k}": v for k, v in dsl_v2t.items() if k.startswith("v2t")},
        **{f"qb_norm/{k}": v for k, v in qb.items() if k.startswith("t2v")},  # no video bank -> t2v only
    }


def test_bad_postprocessing_inputs():
    with pytest.raises(ValueError, match="unknown post-processing"):
        postprocessed_metrics(HUB, methods=("softmax",))
    with pytest.raises(ValueError, match="qb_norm needs bank_sim"):
        postprocessed_metrics(HUB, methods=("qb_norm",))
    with pytest.raises(ValueError, match=r"bank_sim must have shape \(bank_size > 0, 2\)"):
        qb_norm(HUB, torch.zeros(3, 5))
