"""The DAVRL adapter journey as a user types it (issue 22 item 2, issue 23 item 3): `tvr train --model-type
dual_attention` writes an adapter run; `tvr eval`, `tvr index` + `tvr search`, `tvr card`, the card's pipeline snippet
and the app take `RUN/best` like any model folder; the run still loads after it is moved; `tvr merge` writes a plain
model folder with the same metrics; a rewritten base is refused, naming both fingerprints; a plain CLIP folder is
named as an image-text model. Everything runs through the real CLI in subprocesses, on a tiny random CLIP."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_dual_attention_training import DAVRL_KWARGS, make_tiny_clip
from tvr.data import make_synthetic_dataset
from tvr.loading import merge_adapter as tvr_merge

ROOT = Path(__file__).resolve().parents[1]


def tvr(*args, cwd=None, check=True) -> subprocess.CompletedProcess:
    """`python -m tvr ARGS` in a fresh process, as a user runs it (this checkout's tvr, offline)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-m", "tvr", *map(str, args)], cwd=cwd or ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, f"tvr {' '.join(map(str, args))}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def python(code: str, cwd) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def evaluate(model_dir, data, output) -> tuple[dict, torch.Tensor]:
    """`tvr eval MODEL_DIR` on the test split: (metrics, similarity matrix)."""
    output = Path(output)
    tvr("eval", model_dir, "--dataset", "jsonl", "--annotations", data / "test.jsonl", "--videos", data,
        "--device", "cpu", "--output", output.with_suffix(".json"), "--save-similarity", output.with_suffix(".pt"))
    results = json.loads(output.with_suffix(".json").read_text())
    metrics = {key: value for key, value in results.items() if key.startswith(("t2v_", "v2t_"))}
    return metrics, torch.load(output.with_suffix(".pt"))["similarity"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny DAVRL run trained with `tvr train` (1 epoch of 8 videos): (run folder, data folder, CLIP folder)."""
    root = tmp_path_factory.mktemp("journey")
    options = dict(size=32, fps=4, duration=4.0, num_events=(1, 2), progress=False)
    make_synthetic_dataset(root / "data", 8, seed=0, split="train", **options)
    make_synthetic_dataset(root / "data", 4, seed=1, split="test", **options)
    clip_dir, processor_dir, _ = make_tiny_clip(root / "clip")
    kwargs = [f"{key}={json.dumps(value)}" for key, value in DAVRL_KWARGS.items()]
    split = lambda name: ["name=generic", f"annotation_dir={root / 'data'}", f"video_dir={root / 'data'}",
                          f"split={name}"]
    tvr("train", "--model-type", "dual_attention", "--from-clip", clip_dir, "--processor", processor_dir,
        "--model-kwargs", *kwargs, "--train-data", *split("train"), "--eval-data", *split("test"),
        "--output-dir", root / "run", "--batch-size", "4", "--epochs", "1", "--lr", "2e-2", "--seed", "3")
    return root / "run", root / "data", clip_dir


def test_adapter_run_through_eval_index_search_card_pipeline_app_and_merge(run, tmp_path):
    run_dir, data, clip_dir = run
    best = run_dir / "best"
    adapter_config = json.loads((best / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "../base"  # relative: the run can move
    assert {"processor_config.json", "adapter_base.json"} <= {path.name for path in best.iterdir()}

    # tvr eval RUN/best (before: "has no config.json")
    metrics, similarity = evaluate(best, data, tmp_path / "adapter")
    assert set(metrics) >= {"t2v_R@1", "v2t_R@1"} and similarity.shape == (4, 4)

    # tvr index RUN/best VIDEOS IDX, then tvr search
    tvr("index", best, data / "videos", tmp_path / "idx", "--device", "cpu")
    found = tvr("search", tmp_path / "idx", "a red circle", "--top-k", "2", "--device", "cpu").stdout
    assert len([path for path in (data / "videos").iterdir() if path.name in found]) == 2, found

    # tvr card RUN/best: the adapter's card, no absolute local path in it
    tvr("card", best)
    card = (best / "README.md").read_text()
    assert "LoRA adapter only" in card and 'pipeline("video-text-retrieval", model="best")' in card
    assert str(run_dir) not in card and str(clip_dir) not in card and "tvr merge best" in card

    # the card's pipeline snippet, from another working directory (the adapter records its base relative to itself)
    videos = sorted(str(path) for path in (data / "videos").glob("test_*.mp4"))
    code = (f"import json, tvr\nfrom transformers import pipeline\n"
            f"retriever = pipeline('video-text-retrieval', model={str(best)!r}, device='cpu')\n"
            f"print(json.dumps(retriever('a red circle', videos={videos!r})))\n"
            f"classifier = pipeline('zero-shot-video-classification', model={str(best)!r}, device='cpu')\n"
            f"print(json.dumps(classifier({videos[0]!r}, candidate_labels=['red', 'blue'])))")
    ranked, labels = map(json.loads, python(code, cwd=tmp_path).strip().splitlines()[-2:])
    assert sorted(item["video"] for item in ranked) == videos
    assert sorted(item["label"] for item in labels) == ["blue", "red"]

    # tvr merge RUN/best MERGED: a plain model folder with the same metrics
    tvr("merge", best, tmp_path / "merged")
    merged_files = {path.name for path in (tmp_path / "merged").iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json"} <= merged_files
    assert "adapter_config.json" not in merged_files
    merged_metrics, merged_similarity = evaluate(tmp_path / "merged", data, tmp_path / "merged")
    assert merged_metrics == metrics
    torch.testing.assert_close(merged_similarity, similarity, atol=1e-5, rtol=0)
    # ... into an occupied folder tvr did not write: refused, nothing touched
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    from tvr.utils.output_dir import OutputDirError

    with pytest.raises(OutputDirError, match="holds 'notes.txt': tvr does not replace"):
        tvr_merge(best, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"

    # the run moved elsewhere still loads (its base found relative to the adapter folder), with the same weights
    moved = tmp_path / "elsewhere" / "run"
    shutil.copytree(run_dir, moved, ignore=shutil.ignore_patterns("checkpoint*"))
    from tvr.loading import load_model

    loaded, original = load_model(moved / "best").state_dict(), load_model(best).state_dict()
    assert loaded.keys() == original.keys() and all(torch.equal(loaded[key], original[key]) for key in loaded)


def test_app_loads_an_adapter_folder(run):
    from tvr.app.demo import RetrievalDemo

    run_dir, data, _ = run
    demo = RetrievalDemo(run_dir / "best", videos=data / "videos", device="cpu")
    gallery, table = demo.search("a red circle", top_k=2)
    assert len(gallery) == 2 and table.startswith("Top 2 for")
    labels, _ = demo.analyse(str(next((data / "videos").glob("test_*.mp4"))), labels="red, blue")
    assert sorted(labels) == ["blue", "red"] and sum(labels.values()) == pytest.approx(1.0)
    # a template with two places for the label is named as the template (before: "could not read ... as a video")
    labels, message = demo.analyse(str(next((data / "videos").glob("test_*.mp4"))), labels="red", template="{} and {}")
    assert labels == {} and message.startswith("hypothesis_template must contain") and "video" not in message.split(
        ";")[0]


def test_a_rewritten_base_is_refused_naming_both_fingerprints(run, tmp_path):
    from tvr.utils.fingerprint import weights_fingerprint

    run_dir, data, _ = run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("checkpoint-*"))
    recorded = json.loads((copy / "best" / "adapter_base.json").read_text())["base_weights_fingerprint"]
    assert recorded == weights_fingerprint(copy / "base")
    # a later run rewrites base/ with other weights
    from safetensors.torch import load_file, save_file

    weights = load_file(copy / "base" / "model.safetensors")
    save_file({key: value + 0.01 if value.is_floating_point() else value for key, value in weights.items()},
              copy / "base" / "model.safetensors", metadata={"format": "pt"})
    now = weights_fingerprint(copy / "base")
    refused = tvr("eval", copy / "best", "--dataset", "jsonl", "--annotations", data / "test.jsonl", "--videos", data,
                  "--device", "cpu", check=False)
    assert refused.returncode == 1, refused.stderr
    assert recorded in refused.stderr and now in refused.stderr and "--allow-base-change" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    from tvr.loading import load_model
    from tvr.utils.fingerprint import FingerprintMismatch

    with pytest.raises(FingerprintMismatch, match="allow_base_change=True"):
        load_model(copy / "best")
    load_model(copy / "best", allow_base_change=True)  # the opt-out
    with pytest.raises(FingerprintMismatch):  # merging onto the changed base too
        tvr_merge(copy / "best", tmp_path / "merged")
    assert not (tmp_path / "merged").exists()


def test_a_plain_clip_folder_is_named_as_an_image_text_model(run, tmp_path):
    _, data, clip_dir = run
    result = tvr("eval", clip_dir, "--dataset", "jsonl", "--annotations", data / "test.jsonl", "--videos", data,
                 "--device", "cpu", check=False)
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "'clip' model, not a tvr retrieval model" in result.stderr, result.stderr
    assert f"tvr train --from-clip {clip_dir}" in result.stderr and "from_image_text_model" in result.stderr
    # the same loader behind tvr index, tvr app and the pipelines (before: 'CLIPConfig' has no attribute 'max_frames')
    from transformers import pipeline

    from tvr.retrieval import load_model_and_processor

    for load in (lambda: load_model_and_processor(clip_dir, "cpu"),
                 lambda: pipeline("video-text-retrieval", model=str(clip_dir))):
        with pytest.raises(ValueError, match="'clip' model, not a tvr retrieval model"):
            load()


def test_a_space_from_an_adapter_run_serves_the_merged_model(run, tmp_path):
    """`tvr space RUN/best SPACE`: the Space cannot reach the run's base, so it carries the adapter merged into it
    (before: refused, "has no config.json"); the run's base/ is a complete model folder, processor included."""
    from transformers import AutoProcessor

    from tvr.loading import load_model

    run_dir, data, _ = run
    assert type(AutoProcessor.from_pretrained(run_dir / "base")).__name__ == "TVRProcessor"
    tvr("space", run_dir / "best", tmp_path / "space", "--videos", data / "videos")
    model_files = {path.name for path in (tmp_path / "space" / "model").iterdir()}
    assert {"config.json", "model.safetensors", "processor_config.json"} <= model_files
    assert "adapter_config.json" not in model_files
    merged, adapter = load_model(tmp_path / "space" / "model").state_dict(), load_model(run_dir / "best")
    expected = adapter.merge_and_unload().state_dict()
    assert merged.keys() == expected.keys() and all(torch.equal(merged[key], expected[key]) for key in merged)
