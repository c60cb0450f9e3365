"""``tvr space``: the Space folder (metadata, app.py, tvr's wheel, requirements, model, videos / index), the folder
rules, ``--push-to-hub`` with a recording Hub client. The Space installed in a fresh environment and queried over
HTTP: test_journey_space.py."""

import os
import shutil
from pathlib import Path

import pytest
import yaml

import tvr
from app_server import run_tvr, save_demo_model
from tvr.app import space as space_module
from tvr.app.space import push_space, write_space
from tvr.cli import main
from tvr.retrieval import VideoIndex, load_model_and_processor
from tvr.utils.output_dir import MARKER

WHEEL = f"tvr-{tvr.__version__}-py3-none-any.whl"


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """``(model_dir, video_dir, captions)``: the demo's tiny model with its processor, and 3 synthetic videos."""
    return save_demo_model(tmp_path_factory.mktemp("space"), 3)


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory):
    """tvr's wheel, built once (6 s) for the tests that write Spaces in this process."""
    return space_module.build_tvr_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(autouse=True)
def reuse_wheel(built_wheel, monkeypatch):
    monkeypatch.setattr(space_module, "build_tvr_wheel",
                        lambda destination: Path(shutil.copy2(built_wheel, Path(destination) / built_wheel.name)))


def read_metadata(readme) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_space_folder_rules_through_the_cli(demo_model, tmp_path):
    model_dir, video_dir, _ = demo_model
    space = tmp_path / "space"
    assert run_tvr("space", model_dir, space, "--videos", video_dir, "--title", "Shapes search").returncode == 0
    assert read_metadata(space / "README.md")["title"] == "Shapes search"
    # a Space tvr wrote is rewritten whole (nothing stale kept)
    result = run_tvr("space", model_dir, space)
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in space.iterdir()) == sorted(
        [MARKER, "README.md", "app.py", "model", "requirements.txt", WHEEL])

    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    result = run_tvr("space", model_dir, project, "--videos", video_dir)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"tvr: error: output folder '{project}' is not a tvr space folder and holds "
                                    "'notes.txt'")
    assert os.listdir(project) == ["notes.txt"] and (project / "notes.txt").read_text() == "mine"

    result = run_tvr("space", model_dir, video_dir / "space", "--videos", video_dir)
    assert result.returncode == 1 and "is inside the input folder" in result.stderr
    assert not (video_dir / "space").exists()


def test_space_folder_with_an_index_keeps_it_relative(demo_model, tmp_path, monkeypatch):
    model_dir, video_dir, captions = demo_model
    model, processor = load_model_and_processor(model_dir, device="cpu")
    index = VideoIndex.build(model, processor, video_dir, model_dir=model_dir, progress=False)
    index.save(tmp_path / "index")
    space = write_space(model_dir, tmp_path / "space", index=tmp_path / "index")
    assert "index='index'" in (space / "app.py").read_text()
    monkeypatch.chdir(space)  # the Space opens its index from its own folder
    copied = VideoIndex.load("index", model=model, processor=processor)
    assert copied.paths == [f"videos/{os.path.basename(path)}" for path in index.paths]
    assert all(os.path.isfile(path) for path in copied.paths)
    assert [os.path.basename(path) for path, _ in copied.search(captions[0], top_k=3)] == [
        os.path.basename(path) for path, _ in index.search(captions[0], top_k=3)]


def test_space_for_a_hub_model_and_bad_arguments(demo_model, tmp_path):
    model_dir, video_dir, _ = demo_model
    space = write_space("me/clip4clip", tmp_path / "space", videos=video_dir)
    assert not (space / "model").exists()
    assert "RetrievalDemo('me/clip4clip', index=None, videos='videos')" in (space / "app.py").read_text()
    assert read_metadata(space / "README.md")["models"] == ["me/clip4clip"]
    assert read_metadata(space / "README.md")["title"] == "tvr video search: me/clip4clip"
    (space / "mine.txt").write_text("a file tvr did not write")
    with pytest.raises(ValueError, match="holds 'mine.txt'"):
        write_space(model_dir, space)
    with pytest.raises(ValueError, match="not both"):
        write_space(model_dir, tmp_path / "other", index=tmp_path, videos=video_dir)
    with pytest.raises(ValueError, match="local folder"):
        write_space("me/clip4clip", tmp_path / "third", index=tmp_path / "an-index")


class RecordingHfApi:
    """Records what a push would send to the Hub; touches no network."""

    instances = []

    def __init__(self, token=None):
        self.repos, self.uploads = [], []
        RecordingHfApi.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        self.repos.append((repo_id, kwargs))

    def upload_folder(self, folder_path, repo_id, **kwargs):
        files = sorted(os.path.relpath(os.path.join(root, name), folder_path)
                       for root, _, names in os.walk(folder_path) for name in names)
        self.uploads.append((repo_id, files, kwargs))
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/spaces/{repo_id}/commit/0"})()


def test_push_to_hub_uploads_the_space_folder(demo_model, tmp_path, monkeypatch, capsys):
    model_dir, video_dir, _ = demo_model
    api = RecordingHfApi()
    space = write_space(model_dir, tmp_path / "space", videos=video_dir)
    push_space(space, "me/demo", private=True, api=api)
    assert api.repos == [("me/demo", {"repo_type": "space", "space_sdk": "gradio", "private": True,
                                      "exist_ok": True})]
    [(repo_id, files, kwargs)] = api.uploads
    assert repo_id == "me/demo" and kwargs["repo_type"] == "space" and kwargs["ignore_patterns"] == [MARKER]
    assert WHEEL in files
    assert {"README.md", "app.py", "requirements.txt", "model/config.json", "model/model.safetensors"} <= set(files)
    assert sum(name.startswith("videos/") for name in files) == len(os.listdir(video_dir))
    with pytest.raises(FileNotFoundError, match="app.py"):
        push_space(tmp_path, "me/demo", api=api)

    RecordingHfApi.instances.clear()
    monkeypatch.setattr("huggingface_hub.HfApi", RecordingHfApi)
    assert main(["space", str(model_dir), str(tmp_path / "cli-space"), "--push-to-hub", "me/cli-demo"]) == 0
    [cli_api] = RecordingHfApi.instances
    assert cli_api.repos[0][0] == "me/cli-demo" and "app.py" in cli_api.uploads[0][1]
    assert "tvr card MODEL_DIR --space me/cli-demo" in capsys.readouterr().out
