"""``tvr space``: the Space folder (metadata, app.py, pinned requirements, model, videos / index), its ``app.py``
started and answering a query over HTTP, and ``--push-to-hub`` with a recording Hub client."""

import os
import sys

import pytest
import yaml
from app_server import call_api, running_app, save_demo_model

import tvr
from tvr.app.space import push_space, write_space
from tvr.cli import main
from tvr.retrieval import VideoIndex, load_model_and_processor


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory):
    """``(model_dir, video_dir, captions)``: the demo's tiny model with its processor, and 3 synthetic videos."""
    return save_demo_model(tmp_path_factory.mktemp("space"), 3)


def read_metadata(readme) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_space_folder_with_videos_starts_and_answers(demo_model, tmp_path):
    model_dir, video_dir, captions = demo_model
    space = tmp_path / "space"
    assert main(["space", str(model_dir), str(space), "--videos", str(video_dir), "--title", "Shapes search"]) == 0
    assert sorted(path.name for path in space.iterdir()) == ["README.md", "app.py", "model", "requirements.txt",
                                                             "videos"]
    metadata = read_metadata(space / "README.md")
    assert metadata["sdk"] == "gradio" and metadata["app_file"] == "app.py" and metadata["title"] == "Shapes search"
    gradio = pytest.importorskip("gradio", reason="gradio is not installed (pip install 'tvr[app]')")
    assert metadata["sdk_version"] == gradio.__version__
    assert (space / "requirements.txt").read_text() == f"tvr[app]=={tvr.__version__}\n"
    assert (space / "model" / "config.json").is_file() and (space / "model" / "tokenizer.json").is_file()
    assert sorted(path.name for path in (space / "videos").iterdir()) == sorted(os.listdir(video_dir))

    # expected: the pipeline's ranking of the Space's own videos
    model, processor = load_model_and_processor(model_dir, device="cpu")
    retriever = tvr.pipelines.VideoTextRetrievalPipeline(model=model, processor=processor, device="cpu")
    expected = retriever(captions[1], videos=sorted(str(path) for path in (space / "videos").iterdir()))
    with running_app([sys.executable, "app.py"], space, tmp_path) as url:  # as a Space runs it, from its folder
        gallery, table = call_api(url, "search", captions[1], 3)
    assert len(gallery) == 3
    assert [row.split(" | ")[1] for row in table.splitlines() if row.startswith("| 1 ")] == [
        os.path.basename(expected[0]["video"])]
    assert f"{expected[0]['score']:.3f}" in table


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
    with pytest.raises(FileExistsError, match="not empty"):
        write_space(model_dir, space)
    with pytest.raises(ValueError, match="not both"):
        write_space(model_dir, tmp_path / "other", index=tmp_path, videos=video_dir)
    with pytest.raises(ValueError, match="local folder"):
        write_space("me/clip4clip", tmp_path / "third", index=tmp_path)


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
    assert repo_id == "me/demo" and kwargs["repo_type"] == "space"
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
