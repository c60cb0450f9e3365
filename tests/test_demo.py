"""``tvr demo`` end to end on a very reduced setting: every output is written and consistent with the package."""

import json
import os
import subprocess
import sys

import pytest

from tvr.cli import main
from tvr.data import load_generic
from tvr.demo import DEMO_ENTRIES
from tvr.evaluation import evaluate_retrieval
from tvr.retrieval import VideoIndex, load_model_and_processor
from tvr.utils.output_dir import MARKER, read_marker

METRIC_KEYS = [f"{direction}_{metric}" for direction in ("t2v", "v2t")
               for metric in ("R@1", "R@5", "R@10", "MedR", "MeanR")]


@pytest.fixture(scope="module")
def demo_output(tmp_path_factory):
    output = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--output", str(output), "--train-videos", "8", "--val-videos", "4", "--test-videos", "5",
                 "--labelled-videos", "4", "--epochs", "1", "--batch-size", "4"])
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


def test_demo_reports_zero_shot_classification(demo_output):
    """Beside retrieval, the demo classifies its labelled set zero-shot: the numbers are those of the saved model, and
    the card carries them."""
    from tvr.data.classification import load_classification
    from tvr.evaluation.zero_shot import evaluate_zero_shot

    results = json.loads((demo_output / "zero_shot_results.json").read_text())
    assert (results["task"], results["dataset"], results["templates"]) == ("zero-shot-classification",
                                                                           "tvr-synthetic-labelled", "tvr-synthetic")
    assert (results["num_classes"], results["num_videos"]) == (15, 4)
    model, processor = load_model_and_processor(demo_output / "model", device="cpu")
    labelled = load_classification("csv", demo_output / "data" / "labelled" / "test.csv")
    assert labelled["label"] == ["red square", "red circle", "red triangle", "green square"]
    expected = evaluate_zero_shot(model, processor, labelled, templates="tvr-synthetic", progress=False).metrics
    assert {key: results[key] for key in expected} == pytest.approx(expected)
    card = (demo_output / "model" / "README.md").read_text()
    assert "type: zero-shot-video-classification" in card and f"value: {round(results['top1'], 2)}" in card


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


def test_demo_output_folder_is_its_own(demo_output, tmp_path):
    """The demo marks what it wrote; a folder holding anything else (a new one, or the demo's with a user's file
    added) is refused through the CLI before any work, and nothing in it is touched."""
    assert sorted(os.listdir(demo_output)) == sorted([MARKER, *DEMO_ENTRIES])
    assert read_marker(demo_output) == {"kind": "demo", "files": sorted(DEMO_ENTRIES)}
    project = tmp_path / "project"
    (project / "model").mkdir(parents=True)
    (project / "model" / "weights.bin").write_bytes(b"mine")
    (demo_output / "notes.txt").write_text("mine too")
    try:
        for folder, holds in ((project, "'model'"), (demo_output, "'notes.txt'")):
            result = subprocess.run([sys.executable, "-m", "tvr", "demo", "--output", str(folder)],
                                    capture_output=True, text=True, timeout=300)
            assert result.returncode == 1 and "Traceback" not in result.stderr
            assert result.stderr.startswith(f"tvr: error: output folder '{folder}' is ")
            assert f"holds {holds}: tvr does not replace or delete files it did not write" in result.stderr
        assert (project / "model" / "weights.bin").read_bytes() == b"mine" and os.listdir(project) == ["model"]
        assert (demo_output / "notes.txt").read_text() == "mine too"
    finally:
        (demo_output / "notes.txt").unlink()
