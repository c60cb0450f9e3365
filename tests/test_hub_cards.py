"""Model cards and Hub upload, offline: cards are parsed back, uploads go to a fake Hub client."""

import json

import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import save_file

import tvr
import tvr.hub_cards.push as push_module
from test_evaluation_harness import make_tiny_clip4clip
from tvr.cli import main
from tvr.hub_cards import (
    build_model_card,
    curve_panel,
    files_to_upload,
    load_eval_results,
    plot_training_curves,
    push_to_hub,
    training_series,
    write_model_card,
)
from tvr.retrieval import VideoIndex

CONFIG = {"model_type": "clip4clip", "sim_header": "meanP", "projection_dim": 8, "text_config": {"hidden_size": 8}}
EVAL = {
    "dataset": "msrvtt",
    "split": "test",
    "num_texts": 1000,
    "t2v_R@1": 44.512,
    "t2v_R@5": 71.4,
    "t2v_R@10": 81.6,
    "t2v_MedR": 2.0,
    "t2v_MeanR": 15.3,
    "v2t_R@1": 42.0,
    "dsl/t2v_R@1": 47.0,
}
LOG = [
    {"step": 0, "loss": 4.0, "lr": 0.0},
    {"step": 10, "loss": 3.0, "lr": 1e-4, "epoch": 0},
    {"step": 20, "loss": float("nan"), "lr": 5e-5},
    {"step": 20, "t2v_R@1": 12.5, "note": "eval"},
]


class FakeHfApi:
    """Records what would be uploaded (file contents are read at call time, while the files still exist)."""

    instances = []

    def __init__(self, token=None):
        self.token, self.repos, self.commits = token, [], []
        FakeHfApi.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        self.repos.append((repo_id, kwargs))

    def create_commit(self, repo_id, operations, **kwargs):
        files = {}
        for operation in operations:
            source = operation.path_or_fileobj
            files[operation.path_in_repo] = source if isinstance(source, bytes) else open(source, "rb").read()
        self.commits.append((repo_id, files, kwargs))
        return "commit"


def _model_folder(path):
    path.mkdir(exist_ok=True)
    (path / "config.json").write_text(json.dumps(CONFIG))
    save_file({"a": torch.zeros(3, 4), "b": torch.zeros(5)}, str(path / "model.safetensors"))
    (path / "processor_config.json").write_text("{}")
    (path / "tokenizer.json").write_text("{}")
    for state in ("optimizer.bin", "scheduler.bin", "random_states_0.pkl", "scaler.pt"):
        (path / state).write_bytes(b"state")
    (path / "checkpoints" / "checkpoint_0").mkdir(parents=True)
    (path / "checkpoints" / "checkpoint_0" / "model.safetensors").write_bytes(b"old")
    return path


def test_card_metadata_and_model_index():
    card = build_model_card(CONFIG, "me/clip4clip", [EVAL], base_model="openai/clip-vit-base-patch32", license="mit")
    data = ModelCard(str(card)).data  # parse the written text back
    assert data.library_name == "tvr"
    assert data.pipeline_tag == "video-classification"
    assert data.tags == ["tvr", "video-text-retrieval", "text-to-video-retrieval", "zero-shot-video-classification",
                         "clip4clip"]
    assert data.datasets == ["msrvtt"]
    assert data.base_model == "openai/clip-vit-base-patch32"
    assert data.license == "mit"
    assert data.model_name == "me/clip4clip"
    results = {(r.task_type, r.metric_type): r for r in data.eval_results}
    # plain metrics only: 5 t2v + 1 v2t, no DSL
    assert len(data.eval_results) == 6
    r1 = results["text-to-video-retrieval", "recall@1"]
    assert (r1.metric_value, r1.metric_name, r1.dataset_type, r1.dataset_name, r1.dataset_split) == (
        44.51, "t2v R@1", "msrvtt", "MSR-VTT", "test",
    )
    assert r1.task_name == "Text-to-Video Retrieval"
    assert results["text-to-video-retrieval", "median_rank"].metric_value == 2.0
    assert results["video-to-text-retrieval", "recall@1"].metric_value == 42.0
    # the README table shows the DSL row, marked
    assert "| MSR-VTT | test | t2v | none | 44.5 | 71.4 | 81.6 | 2.0 | 15.3 |" in card.text
    assert "| MSR-VTT | test | t2v | dsl † | 47.0 |" in card.text
    assert 'AutoModel.from_pretrained("me/clip4clip")' in card.text and "import tvr" in card.text
    assert 'pipeline("video-text-retrieval", model="me/clip4clip")' in card.text
    assert 'pipeline("zero-shot-video-classification", model="me/clip4clip")' in card.text
    assert "huggingface.co/spaces" not in card.text  # no Space given


def test_card_links_the_space():
    card = build_model_card(CONFIG, "me/clip4clip", space="me/clip4clip-demo")
    assert "[me/clip4clip-demo](https://huggingface.co/spaces/me/clip4clip-demo)" in card.text


def test_card_without_results_has_no_model_index():
    card = build_model_card(CONFIG, "local/dir")
    assert "model-index" not in str(card)
    assert ModelCard(str(card)).data.eval_results is None


def test_bad_eval_results_are_named(tmp_path):
    with pytest.raises(ValueError, match="no metric keys"):
        load_eval_results({"dataset": "msrvtt", "loss": 1.0})
    path = tmp_path / "eval.json"
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match=f"{path}: expected a JSON object"):
        load_eval_results(path)
    with pytest.raises(ValueError, match="no 'model_type'"):
        build_model_card({"sim_header": "meanP"}, "x")


def test_training_series_and_plot(tmp_path):
    assert training_series(LOG) == {
        "loss": ([0, 10], [4.0, 3.0]),  # NaN dropped
        "lr": ([0, 10, 20], [0.0, 1e-4, 5e-5]),
        "t2v_R@1": ([20], [12.5]),
    }
    assert training_series([{"loss": 2.0}, {"loss": 1.0}]) == {"loss": ([0, 1], [2.0, 1.0])}  # no step: position
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps(record) + "\n" for record in LOG))
    path = plot_training_curves(log, tmp_path / "curves.png")
    from matplotlib.image import imread

    image = imread(path)
    assert image.shape[:2] == (660, 600)  # 3 panels x 2.2 in x 100 dpi, 6 in wide
    assert image[..., :3].std() > 0.05  # something is drawn
    with pytest.raises(ValueError, match="no numeric series"):
        plot_training_curves([{"step": 1, "note": "x"}], tmp_path / "empty.png")
    # learning-rate groups share a panel, as do recalls and ranks: 5 panels for 9 series
    grouped = [{"step": 1, "loss": 2.0, "lr/clip": 1e-7, "lr/other": 1e-4, "grad_norm": 3.0},
               {"step": 2, "t2v_R@1": 10.0, "v2t_R@1": 12.0, "t2v_R@5": 40.0, "t2v_MedR": 7.0, "v2t_MeanR": 9.5}]
    assert [curve_panel(name) for name in training_series(grouped)] == [
        "loss", "learning rate", "learning rate", "grad_norm", "recall (%)", "recall (%)", "recall (%)", "rank",
        "rank"]
    assert imread(plot_training_curves(grouped, tmp_path / "grouped.png")).shape[:2] == (1100, 600)


def test_write_model_card_into_folder(tmp_path):
    folder = _model_folder(tmp_path / "model")
    log = tmp_path / "metrics.jsonl"
    log.write_text("".join(json.dumps(record) + "\n" for record in LOG))
    (tmp_path / "train.yaml").write_text("lr: 0.0001\nepochs: 5\n")
    (tmp_path / "eval.json").write_text(json.dumps(EVAL))
    write_model_card(folder, [tmp_path / "eval.json"], train_log=log, training_config=tmp_path / "train.yaml")
    text = (folder / "README.md").read_text()
    assert (folder / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![Training curves](training_curves.png)" in text
    assert "```yaml\nlr: 0.0001\nepochs: 5\n```" in text
    assert "| `parameters` | `0.0M` |" in text  # 3 * 4 + 5 = 17 parameters
    assert "| `sim_header` | `meanP` |" in text
    # issue 18: the folder's name, never the machine's path, which means nothing on the Hub
    assert f'AutoModel.from_pretrained("{folder.name}")' in text and str(tmp_path) not in text
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        write_model_card(tmp_path)


def test_push_folder_uploads_model_processor_and_card_only(tmp_path):
    folder = _model_folder(tmp_path / "model")
    write_model_card(folder, [EVAL], model_id="me/model")
    api = FakeHfApi()
    push_to_hub(folder, "me/model", private=True, api=api)
    assert api.repos == [("me/model", {"private": True, "exist_ok": True, "repo_type": "model"})]
    [(repo_id, files, kwargs)] = api.commits
    assert repo_id == "me/model"
    # no training state, no checkpoint sub-folders
    assert sorted(files) == ["README.md", "config.json", "model.safetensors", "processor_config.json", "tokenizer.json"]
    assert files["README.md"] == (folder / "README.md").read_bytes()
    assert ModelCard(files["README.md"].decode()).data.eval_results[0].metric_value == 44.51
    assert kwargs["commit_message"] == "Upload tvr model" and kwargs["create_pr"] is False
    assert files_to_upload(folder) == sorted(files)


def test_push_model_object_saves_model_processor_and_builds_a_card(tmp_path):
    class Saved:
        def __init__(self, files):
            self.files = files

        def save_pretrained(self, path):
            for name, content in self.files.items():
                (path / name).write_text(content)

    model = Saved({"config.json": json.dumps(CONFIG), "model.safetensors": "w"})
    processor = Saved({"processor_config.json": "{}", "vocab.json": "{}"})
    api = FakeHfApi()
    push_to_hub(model, "me/new", processor=processor, api=api)
    [(_, files, _)] = api.commits
    assert sorted(files) == ["README.md", "config.json", "model.safetensors", "processor_config.json", "vocab.json"]
    card = ModelCard(files["README.md"].decode())
    assert card.data.library_name == "tvr" and 'from_pretrained("me/new")' in card.text
    with pytest.raises(ValueError, match="processor is saved with a model object"):
        push_to_hub(tmp_path, "me/x", processor=processor, api=api)


def test_push_without_a_fake_client_stays_offline(tmp_path):
    from huggingface_hub.errors import OfflineModeIsEnabled

    with pytest.raises(OfflineModeIsEnabled):
        push_to_hub(_model_folder(tmp_path / "model"), "me/model")


def test_card_cli_writes_and_pushes(tmp_path, monkeypatch):
    folder = _model_folder(tmp_path / "model")
    (tmp_path / "eval.json").write_text(json.dumps(EVAL))
    (tmp_path / "train.json").write_text(json.dumps({"lr": 1e-4}))
    monkeypatch.setattr(push_module, "HfApi", FakeHfApi)
    FakeHfApi.instances.clear()
    code = main(
        ["card", str(folder), "--eval-results", str(tmp_path / "eval.json"), "--config", str(tmp_path / "train.json"),
         "--base-model", "openai/clip-vit-base-patch32", "--push-to-hub", "me/cli-model"]
    )
    assert code == 0
    card = ModelCard.load(folder / "README.md")
    assert card.data.base_model == "openai/clip-vit-base-patch32"
    assert 'from_pretrained("me/cli-model")' in card.text and "lr: 0.0001" in card.text
    [api] = FakeHfApi.instances
    [(repo_id, files, _)] = api.commits
    assert repo_id == "me/cli-model" and files["README.md"] == (folder / "README.md").read_bytes()


def test_usage_snippet_runs_on_a_saved_model(tmp_path, monkeypatch):
    import re
    import shutil

    model, processor, dataset = make_tiny_clip4clip(tmp_path, num_videos=2)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    card = write_model_card(folder)
    pipelines_code, contract_code = re.findall(r"```python\n(.*?)```", card.text, re.DOTALL)[:2]
    for index, path in enumerate(dataset["video_path"], 1):
        shutil.copy(path, tmp_path / f"video{index}.mp4")
    VideoIndex.build(model, processor, list(dataset["video_path"]), progress=False).save(tmp_path / "my_videos.index")
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(pipelines_code, namespace)  # both pipelines, from the saved folder
    assert isinstance(namespace["retriever"], tvr.pipelines.VideoTextRetrievalPipeline)
    namespace = {}
    exec(contract_code, namespace)
    texts = processor(text=["a person is cooking", "a dog runs on the beach"], return_tensors="pt")
    videos = processor(videos=list(dataset["video_path"]), return_tensors="pt")
    with torch.no_grad():
        expected = model(**texts, **videos).logits_per_text
    torch.testing.assert_close(namespace["scores"], expected)


def _adapter_run(tmp_path):
    """A tiny DAVRL run laid out as `tvr train` writes it: RUN/base (the base) and RUN/best (adapter + processor)."""
    from test_dual_attention_training import DAVRL_KWARGS, make_tiny_clip
    from tvr import DualAttentionModel
    from tvr.peft import prepare_adapter_training, save_adapter

    clip_dir, _, processor = make_tiny_clip(tmp_path / "clip")
    run = tmp_path / "run"
    peft_model = prepare_adapter_training(DualAttentionModel.from_image_text_model(str(clip_dir), **DAVRL_KWARGS),
                                          run / "base")
    with torch.no_grad():  # a "trained" adapter: B is zero at init
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.3)
    save_adapter(peft_model.eval(), run / "best", run / "base")
    processor.save_pretrained(run / "best")
    return run, clip_dir, processor, peft_model


def test_adapter_card_and_push_work_where_the_folder_goes(tmp_path, monkeypatch):
    """`tvr card ADAPTER_DIR` writes the adapter's card (before: "config.json not found"), with no absolute local path;
    its pipeline snippet runs on the folder; pushed, the repo holds the base in base/ and loads on its own."""
    import re
    import shutil

    from transformers import AutoProcessor

    from tvr.data import make_synthetic_dataset

    run, clip_dir, processor, peft_model = _adapter_run(tmp_path)
    assert main(["card", str(run / "best"), "--base-model", str(clip_dir)]) == 0
    card = (run / "best" / "README.md").read_text()
    assert "LoRA adapter only" in card and str(tmp_path) not in card and "/tmp" not in card
    assert 'pipeline("video-text-retrieval", model="best")' in card and "`../base`, relative to this folder" in card

    dataset = make_synthetic_dataset(tmp_path / "data", 2, size=32, fps=4, duration=2.0, num_events=(1, 1), progress=False)
    for index, path in enumerate(dataset["video_path"], 1):
        shutil.copy(path, run / f"video{index}.mp4")
    pipelines_code = re.findall(r"```python\n(.*?)```", card, re.DOTALL)[1]  # [0]: the PeftModel snippet
    assert "retriever = pipeline" in pipelines_code
    pipelines_code = pipelines_code.replace('retriever("a dog runs on the beach", index="my_videos.index", top_k=10)',
                                            "")  # no index here: the pipeline loads the adapter folder
    monkeypatch.chdir(run)
    namespace = {}
    exec(pipelines_code, namespace)
    model = namespace["retriever"].model
    assert type(model).__name__ == "PeftModel" and model.tvr_model_dir == "best"
    assert isinstance(AutoProcessor.from_pretrained("best"), tvr.TVRProcessor)

    # pushed: adapter + processor + card at the top, the base (and a processor) in base/, the adapter pointing there
    api = FakeHfApi()
    push_to_hub(run / "best", "me/davrl", api=api)
    [(_, files, _)] = api.commits
    assert {"adapter_config.json", "adapter_model.safetensors", "adapter_base.json", "README.md",
            "processor_config.json", "base/config.json", "base/model.safetensors", "base/processor_config.json"
            } <= set(files)
    assert json.loads(files["adapter_config.json"])["base_model_name_or_path"] == "./base"
    assert json.loads((run / "best" / "adapter_config.json").read_text())["base_model_name_or_path"] == "../base"
    repo = tmp_path / "downloaded"  # what a download of the repo gives
    for name, content in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_bytes(content)
    monkeypatch.chdir(tmp_path)
    from transformers import pipeline

    retriever = pipeline("video-text-retrieval", model=str(repo), device="cpu")
    inputs = processor(text=["a red circle"], videos=list(dataset["video_path"]), return_tensors="pt")
    with torch.no_grad():
        expected = peft_model(**inputs).logits_per_text[0]
    ranked = retriever("a red circle", videos=list(dataset["video_path"]))
    torch.testing.assert_close(torch.tensor([item["score"] for item in sorted(ranked, key=lambda r: r["index"])]),
                               expected, atol=1e-5, rtol=0)
