"""Retrieval metrics against rankings computed by hand."""

import numpy as np
import pytest
import torch

from tvr.evaluation import RETRIEVAL_METRICS_SCRIPT, compute_retrieval_metrics

KEYS = {f"{d}_{m}" for d in ("t2v", "v2t") for m in ("R@1", "R@5", "R@10", "MedR", "MeanR")}

# text i's own video is video i; by hand: t2v ranks [1, 3, 2], v2t ranks [1, 3, 1]
SQUARE = np.array(
    [
        [0.9, 0.5, 0.1],
        [0.8, 0.3, 0.4],
        [0.2, 0.7, 0.6],
    ]
)

# five captions of three videos (MSVD-style); by hand:
# t2v ranks [1, 3, 2, 1, 3];
# v2t: video 0's best caption t0 (0.9) is first -> 1; video 1's only caption t2 (0.6) is beaten by t1 (0.8) and
# tied with t4 (0.6) -> 3 pessimistic / 2 optimistic; video 2's best caption t4 (0.4) is beaten by t1 (0.5) and
# t2 (0.7) -> 3 (its other caption t3 = 0.3 does not count against it)
MULTI = np.array(
    [
        [0.9, 0.2, 0.1],
        [0.3, 0.8, 0.5],
        [0.4, 0.6, 0.7],
        [0.1, 0.2, 0.3],
        [0.5, 0.6, 0.4],
    ]
)
MULTI_TEXT_TO_VIDEO = [0, 0, 1, 2, 2]


def test_square_matrix_by_hand():
    metrics = compute_retrieval_metrics(SQUARE)
    assert set(metrics) == KEYS
    assert metrics["t2v_R@1"] == pytest.approx(100 / 3)
    assert metrics["t2v_R@5"] == metrics["t2v_R@10"] == 100.0
    assert metrics["t2v_MedR"] == 2.0
    assert metrics["t2v_MeanR"] == 2.0
    assert metrics["v2t_R@1"] == pytest.approx(200 / 3)
    assert metrics["v2t_MedR"] == 1.0
    assert metrics["v2t_MeanR"] == pytest.approx(5 / 3)


def _sim_with_ranks(ranks):
    """Square scores where text i's own video has exactly ``ranks[i] - 1`` videos strictly above it."""
    size = len(ranks)
    sim = np.full((size, size), -1.0)
    for text, rank in enumerate(ranks):
        sim[text, text] = 0.0
        others = [video for video in range(size) if video != text][: rank - 1]
        sim[text, others] = 1.0
    return sim


def test_recall_at_5_and_10_median_and_mean():
    ranks = [1, 1, 2, 5, 6, 10, 11, 12, 3, 1, 7, 4]
    metrics = compute_retrieval_metrics(_sim_with_ranks(ranks))
    assert metrics["t2v_R@1"] == pytest.approx(100 * 3 / 12)
    assert metrics["t2v_R@5"] == pytest.approx(100 * 7 / 12)  # 1, 1, 2, 5, 3, 1, 4
    assert metrics["t2v_R@10"] == pytest.approx(100 * 10 / 12)
    assert metrics["t2v_MedR"] == 4.5  # sorted: 1 1 1 2 3 4 | 5 6 7 10 11 12
    assert metrics["t2v_MeanR"] == pytest.approx(63 / 12)


def test_v2t_is_t2v_of_the_transpose():
    sim = np.random.default_rng(0).normal(size=(7, 7))
    metrics, transposed = compute_retrieval_metrics(sim), compute_retrieval_metrics(sim.T)
    for name in ("R@1", "R@5", "R@10", "MedR", "MeanR"):
        assert metrics[f"v2t_{name}"] == transposed[f"t2v_{name}"]


def test_ties_rank_the_ground_truth_last_by_default():
    sim = np.array(
        [
            [0.5, 0.5, 0.1],  # own 0.5 tied with video 1: pessimistic 2, optimistic 1
            [0.2, 0.2, 0.2],  # all tied: pessimistic 3, optimistic 1
            [0.3, 0.9, 0.3],  # own 0.3: 0.9 above, video 0 tied: pessimistic 3, optimistic 2
        ]
    )
    pessimistic = compute_retrieval_metrics(sim)
    assert pessimistic["t2v_R@1"] == 0.0
    assert pessimistic["t2v_MedR"] == 3.0
    assert pessimistic["t2v_MeanR"] == pytest.approx(8 / 3)
    optimistic = compute_retrieval_metrics(sim, ties="optimistic")
    assert optimistic["t2v_R@1"] == pytest.approx(200 / 3)
    assert optimistic["t2v_MedR"] == 1.0
    # one rank per query: the original's equality search would add entries for the tied candidates
    assert optimistic["t2v_MeanR"] == pytest.approx(4 / 3)


def test_constant_scores_get_the_worst_rank():
    metrics = compute_retrieval_metrics(np.zeros((4, 4)))
    assert metrics["t2v_R@1"] == metrics["v2t_R@1"] == 0.0
    assert metrics["t2v_MeanR"] == metrics["v2t_MeanR"] == 4.0


def test_multi_caption_by_hand():
    metrics = compute_retrieval_metrics(MULTI, MULTI_TEXT_TO_VIDEO)
    assert metrics["t2v_R@1"] == 40.0
    assert metrics["t2v_R@5"] == 100.0
    assert metrics["t2v_MedR"] == 2.0
    assert metrics["t2v_MeanR"] == 2.0
    assert metrics["v2t_R@1"] == pytest.approx(100 / 3)
    assert metrics["v2t_MedR"] == 3.0
    assert metrics["v2t_MeanR"] == pytest.approx(7 / 3)
    optimistic = compute_retrieval_metrics(MULTI, MULTI_TEXT_TO_VIDEO, ties="optimistic")
    assert optimistic["v2t_MedR"] == 2.0
    assert optimistic["v2t_MeanR"] == 2.0


def test_torch_and_bfloat16_inputs():
    expected = compute_retrieval_metrics(MULTI, MULTI_TEXT_TO_VIDEO)
    assert compute_retrieval_metrics(torch.tensor(MULTI), torch.tensor(MULTI_TEXT_TO_VIDEO)) == expected
    # 0.1 .. 0.9 stay distinct in bfloat16
    assert compute_retrieval_metrics(torch.tensor(MULTI, dtype=torch.bfloat16), MULTI_TEXT_TO_VIDEO) == expected


@pytest.mark.parametrize(
    "sim, text_to_video, ties, message",
    [
        (np.zeros((2, 3)), None, "pessimistic", "not square"),
        (np.array([[0.0, np.nan], [0.0, 0.0]]), None, "pessimistic", "NaN"),
        (np.zeros((3, 3)), [0, 0, 1], "pessimistic", r"videos \[2\] have no caption"),
        (np.zeros((3, 2)), [0, 1, 2], "pessimistic", "outside"),
        (np.zeros((3, 2)), [0, 1], "pessimistic", "one per row"),
        (np.zeros((2, 2)), None, "first", "ties must be one of"),
    ],
)
def test_bad_inputs_are_named(sim, text_to_video, ties, message):
    with pytest.raises(ValueError, match=message):
        compute_retrieval_metrics(sim, text_to_video, ties)


def test_evaluate_module_loads_from_path_and_delegates():
    evaluate = pytest.importorskip("evaluate")
    metric = evaluate.load(RETRIEVAL_METRICS_SCRIPT)
    expected = compute_retrieval_metrics(MULTI, MULTI_TEXT_TO_VIDEO)
    assert metric.compute(predictions=MULTI.tolist(), references=MULTI_TEXT_TO_VIDEO) == pytest.approx(expected)
    # streamed in two batches, with the tie rule passed through
    metric.add_batch(predictions=MULTI[:2].tolist(), references=MULTI_TEXT_TO_VIDEO[:2])
    metric.add_batch(predictions=MULTI[2:].tolist(), references=MULTI_TEXT_TO_VIDEO[2:])
    optimistic = compute_retrieval_metrics(MULTI, MULTI_TEXT_TO_VIDEO, ties="optimistic")
    assert metric.compute(ties="optimistic") == pytest.approx(optimistic)
