"""The Space journey as a user types it, through the real CLI: a model folder -> `tvr space` -> the Space's
requirements installed in a fresh virtual environment (third-party packages only: no registry has tvr) -> its
`app.py`, which installs the wheel bundled with it, answering a query over HTTP. And the one-line errors met on the
way (a mistyped model folder, `--device cuda` without a GPU, a processor setting of the wrong type, a DAVRL config
that fails its checks): exit 1, one line, no traceback."""

import json
import os
import subprocess

import pytest
import yaml

import tvr
from app_server import call_api, fresh_venv, run_tvr, running_app, save_demo_model
from tvr.app.space import wheel_requirements
from tvr.cli import main
from tvr.retrieval import load_model_and_processor
from tvr.utils.output_dir import MARKER

MODEL_NAME = "shapes-clip4clip"
WHEEL = f"tvr-{tvr.__version__}-py3-none-any.whl"


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """``(model_dir, video_dir, captions)``: the demo's tiny model with its processor and a card naming it, and 3
    synthetic videos."""
    model_dir, video_dir, captions = save_demo_model(tmp_path_factory.mktemp("journey"), 3)
    (model_dir / "README.md").write_text(f"---\nmodel_name: {MODEL_NAME}\n---\n\n# {MODEL_NAME}\n")
    return model_dir, video_dir, captions


def read_metadata(readme) -> dict:
    return yaml.safe_load(readme.read_text(encoding="utf-8").split("---\n")[1])


def assert_one_line_error(result: subprocess.CompletedProcess, start: str) -> str:
    """Exit 1, no traceback, and a last stderr line ``tvr: error: <start>...``; returns that line."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"tvr: error: {start}"), line
    return line


def test_space_installs_in_a_fresh_venv_and_answers_over_http(demo_model, tmp_path):
    """The journey: `tvr space` -> the Space's requirements installed without tvr from a registry -> `python app.py`
    (which installs the bundled wheel) -> a query over HTTP."""
    model_dir, video_dir, captions = demo_model
    space = tmp_path / "space"
    result = run_tvr("space", model_dir, space, "--videos", video_dir)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in space.iterdir()) == sorted(
        [MARKER, "README.md", "app.py", "model", "requirements.txt", "videos", WHEEL])
    metadata = read_metadata(space / "README.md")
    assert metadata["sdk"] == "gradio" and metadata["app_file"] == "app.py"
    assert metadata["title"] == f"tvr video search: {MODEL_NAME}"  # from the card, not the folder's name
    gradio = pytest.importorskip("gradio", reason="gradio is not installed (pip install -e '.[app]')")
    assert metadata["sdk_version"] == gradio.__version__
    requirements = (space / "requirements.txt").read_text().splitlines()
    assert requirements == wheel_requirements(space / WHEEL)
    assert "torch>=2.4" in requirements and "gradio<7,>=6.0" in requirements
    assert not any(line.lower().startswith("tvr") for line in requirements)  # no registry has tvr
    assert (space / "model" / "config.json").is_file() and (space / "model" / "tokenizer.json").is_file()
    assert sorted(path.name for path in (space / "videos").iterdir()) == sorted(os.listdir(video_dir))

    python = fresh_venv(tmp_path)
    bare = {"PATH": os.environ["PATH"], "HF_HUB_OFFLINE": "1"}  # no PYTHONPATH: the venv's own packages only
    no_tvr = subprocess.run([python, "-c", "import tvr"], cwd=tmp_path, capture_output=True, text=True, env=bare)
    assert "No module named 'tvr'" in no_tvr.stderr
    install = subprocess.run([python, "-m", "pip", "install", "--no-index", "-r", "requirements.txt"], cwd=space,
                             capture_output=True, text=True, env=bare)
    assert install.returncode == 0, install.stderr  # every third-party requirement is met, nothing downloaded
    assert "Requirement already satisfied: torch>=2.4" in install.stdout

    # expected: the pipeline's ranking of the Space's own videos
    model, processor = load_model_and_processor(model_dir, device="cpu")
    retriever = tvr.pipelines.VideoTextRetrievalPipeline(model=model, processor=processor, device="cpu")
    expected = retriever(captions[1], videos=sorted(str(path) for path in (space / "videos").iterdir()))
    log = []
    with running_app([str(python), "app.py"], space, tmp_path, repo_on_path=False, log_lines=log) as url:
        gallery, table, _ = call_api(url, "search", captions[1], 3)  # as a Space runs it (spans: no windows)
    assert f"installing {WHEEL}" in log
    assert len(gallery) == 3
    assert [row.split(" | ")[1] for row in table.splitlines() if row.startswith("| 1 ")] == [
        os.path.basename(expected[0]["video"])]
    assert f"{expected[0]['score']:.3f}" in table
    installed = subprocess.check_output([python, "-c", "import tvr; print(tvr.__file__)"], cwd=tmp_path, text=True,
                                        env=bare)
    assert installed.startswith(str(tmp_path / "venv"))  # the Space's wheel, not this checkout


def test_a_mistyped_model_folder_is_told_at_once_without_the_hub(tmp_path):
    (tmp_path / "runs" / "best").mkdir(parents=True)
    (tmp_path / "runs" / "best" / "config.json").write_text("{}")
    # the Hub unreachable at once (a closed port) and allowed: an attempt would show as a Hub error, or as retries
    result = run_tvr("app", "runs/bset", cwd=tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9")
    assert_one_line_error(result, "model folder 'runs/bset' does not exist (did you mean 'best'?): give a folder "
                                  "saved with save_pretrained")
    result = run_tvr("space", "runs/bset", "space", cwd=tmp_path, HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9")
    assert_one_line_error(result, "model folder 'runs/bset' does not exist")
    assert not (tmp_path / "space").exists()


def test_device_cuda_without_a_gpu_is_one_line_for_every_command(tmp_path, monkeypatch):
    result = run_tvr("search", tmp_path / "an-index", "a red square", "--device", "cuda", CUDA_VISIBLE_DEVICES="")
    assert_one_line_error(result, "--device cuda: torch sees no CUDA GPU on this machine")
    # every command that takes --device: the same check, before anything is read
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for argv in (["app", "m"], ["eval", "m", "--dataset", "jsonl", "--annotations", "a"], ["index", "m", "v", "o"],
                 ["search", "i", "q"]):
        with pytest.raises(ValueError, match=r"^--device cuda:1: torch sees no CUDA GPU"):
            main([*argv, "--device", "cuda:1"])
    with pytest.raises(ValueError, match="'gpu' is not a device name torch knows"):
        main(["search", "i", "q", "--device", "gpu"])


def test_a_processor_setting_of_the_wrong_type_names_the_setting(demo_model, tmp_path):
    model_dir, video_dir, _ = demo_model
    result = run_tvr("train", "--init-from", model_dir, "--processor-kwargs", "max_frames=abc", "--train-data",
                     "name=jsonl", f"annotation_path={video_dir.parent}", "split=test", "--epochs", "1",
                     "--output-dir", tmp_path / "run")
    assert_one_line_error(result, "processor setting max_frames='abc' is not valid: expected int; fix it in "
                                  "--processor-kwargs")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_davrl_config_that_fails_its_checks_is_one_line(demo_model, tmp_path):
    from model_testers import model_testers

    _, video_dir, _ = demo_model
    model_dir = tmp_path / "davrl"
    model_testers()["dual_attention"].get_config().save_pretrained(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**config, "alpha": 2}))
    result = run_tvr("eval", model_dir, "--dataset", "jsonl", "--annotations", video_dir.parent, "--device", "cpu")
    assert_one_line_error(result, "invalid model configuration: alpha must be in [0, 1], got 2")
