"""InternVideo's evaluation protocol (`tvr.methods.internvideo.evaluation`) against its `metrics.py` / `eval_epoch`, written out
here as the reference, and against the metrics the original recorded for the fixtures."""

import json
from pathlib import Path

import numpy as np
import pytest
import safetensors.torch
import torch

from tvr.methods.internvideo.evaluation import internvideo_metrics

FIXTURES = Path(__file__).parent / "fixtures" / "internvideo"


def softmax(x, axis):
    """scipy.special.softmax, which the original uses."""
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ---- the original's metrics.py (InternVideo @ 3965eef), as the reference
def compute_metrics(x):
    sx = np.sort(-x, axis=1)
    d = np.diag(-x)[:, np.newaxis]
    ind = np.where(sx - d == 0)[1]
    return {"R1": float(np.sum(ind == 0)) * 100 / len(ind), "R5": float(np.sum(ind < 5)) * 100 / len(ind),
            "R10": float(np.sum(ind < 10)) * 100 / len(ind), "MR": np.median(ind) + 1, "MeanR": np.mean(ind) + 1}


def tensor_text_to_video_metrics(sim_tensor):
    sim_tensor = torch.tensor(sim_tensor)
    stacked = sim_tensor.permute(1, 0, 2)
    second_argsort = torch.argsort(torch.argsort(stacked, dim=-1, descending=True), dim=-1, descending=False)
    ranks = torch.flatten(torch.diagonal(second_argsort, dim1=1, dim2=2))
    data = torch.flatten(torch.diagonal(sim_tensor, dim1=0, dim2=2))
    valid = ranks[~torch.logical_or(torch.isinf(data), torch.isnan(data))]
    results = {f"R{k}": float(torch.sum(valid < k) * 100 / len(valid)) for k in (1, 5, 10)}
    results["MR"] = float(torch.median(valid + 1))
    results["MeanR"] = float(np.mean(valid.numpy() + 1))
    return results


def tensor_video_to_text_sim(sim_tensor):
    sim_tensor = torch.tensor(sim_tensor)
    values, _ = torch.max(sim_tensor, dim=1, keepdim=True)
    return torch.squeeze(values).T.numpy()


def reshape_by_video(sim, cut_off_points):
    """eval_epoch's multi-sentence reshape: (videos, max captions, videos) padded with -inf."""
    ends = [point + 1 for point in cut_off_points]
    max_length = max(e - s for s, e in zip([0] + ends[:-1], ends))
    return np.stack([np.concatenate((sim[s:e], np.full((max_length - e + s, sim.shape[1]), -np.inf)), axis=0)
                     for s, e in zip([0] + ends[:-1], ends)])


def as_tvr(original, prefix):
    names = {"R1": "R@1", "R5": "R@5", "R10": "R@10", "MR": "MedR", "MeanR": "MeanR"}
    return {f"{prefix}{names[key]}": float(value) for key, value in original.items()}


def test_multi_caption_protocol_equals_the_original():
    rng = np.random.default_rng(0)
    captions_per_video = [1, 3, 2, 2, 1, 3, 2, 1, 1, 2, 3, 1]
    text_to_video = np.repeat(np.arange(len(captions_per_video)), captions_per_video)
    sim = rng.normal(scale=10.0, size=(len(text_to_video), len(captions_per_video)))  # no ties
    cut_off_points = list(np.cumsum(captions_per_video) - 1)
    dsl = sim * softmax(sim, axis=0)
    expected = {}
    for prefix, scores in (("", sim), ("dsl/", dsl)):
        reshaped = reshape_by_video(scores, cut_off_points)
        expected.update(as_tvr(tensor_text_to_video_metrics(reshaped), f"{prefix}t2v_"))
        expected.update(as_tvr(compute_metrics(tensor_video_to_text_sim(reshaped)), f"{prefix}v2t_"))
    actual = internvideo_metrics(torch.from_numpy(sim), text_to_video)
    assert actual == pytest.approx(expected)
    assert actual["v2t_R@1"] != pytest.approx(actual["t2v_R@1"])  # a real multi-caption case


def test_single_caption_protocol_equals_the_original():
    sim = np.random.default_rng(1).normal(scale=10.0, size=(15, 15))
    expected = {**as_tvr(compute_metrics(sim), "t2v_"), **as_tvr(compute_metrics(sim.T), "v2t_"),
                **as_tvr(compute_metrics(sim * softmax(sim, axis=0)), "dsl/t2v_"),
                **as_tvr(compute_metrics(sim.T * softmax(sim.T, axis=0)), "dsl/v2t_")}
    assert internvideo_metrics(sim) == pytest.approx(expected)


@pytest.mark.parametrize("case", ["tiny_w32_f4_ret23", "tiny_w36_f6_ret123"])
def test_fixture_metrics_as_the_original_recorded_them(case):
    recorded = json.loads((FIXTURES / case / "meta.json").read_text())["metrics"]
    for name, file in (("finetuned", "expected"), ("zeroshot", "expected_zeroshot")):
        sim = safetensors.torch.load_file(FIXTURES / case / f"{file}.safetensors")["sim_matrix"]
        metrics = internvideo_metrics(sim)
        for direction in ("t2v", "v2t"):
            expected = as_tvr(recorded[name][direction], f"{direction}_")
            assert {key: metrics[key] for key in expected} == pytest.approx(expected), (name, direction)
