"""``tvr demo`` end to end on a very reduced setting: every output is written and consistent with the package."""

import json

import pytest

from tvr.cli import main
from tvr.data import load_generic
from tvr.evaluation import evaluate_retrieval
from tvr.retrieval import VideoIndex, load_model_and_processor

METRIC_KEYS = [f"{direction}_{metric}" for direction in ("t2v", "v2t")
               for metric in ("R@1", "R@5", "R@10", "MedR", "MeanR")]


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--output", str(output), "--train-videos", "8", "--val-videos", "4", "--test-videos", "5",
                 "--epochs", "1", "--batch-size", "4"])
    assert code == 0
    return output


def test_demo_writes_model_card_curves_and_metrics(demo_output):
    for name in ("config.json", "model.safetensors", "processor_config.json", "tokenizer.json", "README.md",
                 "training_curves.png"):
        assert (demo_output / "model" / name).is_file(), name
    results = json.loads((demo_output / "eval_results.json").read_text())
    assert (results["dataset"], results["split"], results["num_videos"]) == ("tvr-synthetic", "test", 5)
    assert set(METRIC_KEYS) <= set(results)
    assert 0 <= results["time_reversal_accuracy"] <= 100
    # the metrics are those of the saved model on the saved test split
    model, processor = load_model_and_processor(demo_output / "model", device="cpu")
    test_set = load_generic(demo_output / "data" / "test.jsonl")
    expected = evaluate_retrieval(model, processor, test_set, progress=False).metrics
    assert {key: results[key] for key in METRIC_KEYS} == pytest.approx(expected)
    card = (demo_output / "model" / "README.md").read_text()
    assert "text-to-video-retrieval" in card and f"value: {round(results['t2v_R@1'], 2)}" in card
    # training ran on the 8 training videos: 2 steps of 4 and one validation
    records = [json.loads(line) for line in (demo_output / "training" / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records if "loss" in record] == [2]
    assert sum("t2v_R@1" in record for record in records) == 1


def test_demo_index_answers_queries(demo_output):
    answers = json.loads((demo_output / "search_results.json").read_text())
    test_set = load_generic(demo_output / "data" / "test.jsonl")
    assert [answer["query"] for answer in answers] == list(test_set["caption"])[:3]
    index = VideoIndex.load(demo_output / "index", device="cpu")
    assert sorted(index.paths) == sorted(test_set["video_path"])
    for answer in answers:
        results = index.search(answer["query"], top_k=5)
        assert [path for path, _ in results] == [result["path"] for result in answer["results"]]
        assert [score for _, score in results] == pytest.approx([result["score"] for result in answer["results"]],
                                                                abs=1e-5)
