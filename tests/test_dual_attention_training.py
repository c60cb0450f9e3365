"""Training DAVRL through peft on tiny synthetic videos: only the adapter trains (at the full lr), the frozen weights
stay bit-identical, checkpoints / resume / best / final hold the adapter, the card says so."""

import json

import pytest
import torch
from accelerate.state import AcceleratorState
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModel, CLIPConfig, CLIPModel

from tvr import DualAttentionModel
from tvr.cli import main as tvr_main
from tvr.data import make_synthetic_dataset
from tvr.training import TrainingConfig, read_metrics, train
from tvr.training.trainer import list_checkpoints
from tvr.utils.fingerprint import weights_fingerprint

NUM_FRAMES, MAX_WORDS = 4, 8
# 32 px frames, 16 px patches (4 patches + CLS), 3 vision layers: drop 1 patch before layer 1, one segment of all
# 4 frames before layer 2
DAVRL_KWARGS = dict(max_frames=NUM_FRAMES, max_words=MAX_WORDS, num_global_tokens=2, lora_rank=4, sel_layers=[1],
                    r_drop=1, seg_layers=[2], seg_num=[1], frame_per_seg=[4])


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    options = dict(size=32, fps=4, duration=4.0, num_events=(1, 2), progress=False)
    train_set = make_synthetic_dataset(root, 8, seed=0, split="train", **options)
    test_set = make_synthetic_dataset(root, 4, seed=1, split="test", **options)
    return root, train_set, test_set


def make_tiny_clip(root):
    """A tiny random CLIP folder and a processor folder (4 frames, 8 tokens) under `root`:
    `(clip_dir, processor_dir, processor)`."""
    from tvr import TVRProcessor, TVRVideoProcessor, train_clip_tokenizer

    corpus = ["a red circle moves left", "a blue square moves right", "a green triangle moves up and down"] * 4
    tokenizer = train_clip_tokenizer(corpus, root / "tokenizer", vocab_size=600)
    processor = TVRProcessor(video_processor=TVRVideoProcessor(size=32, crop_size=32, max_frames=NUM_FRAMES),
                             tokenizer=tokenizer, max_words=MAX_WORDS)
    processor.save_pretrained(root / "processor")
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=MAX_WORDS,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                           image_size=32, patch_size=16),
        projection_dim=32))
    clip.save_pretrained(root / "clip")
    return root / "clip", root / "processor", processor


@pytest.fixture(scope="module")
def clip_and_processor(tmp_path_factory):
    """A tiny random CLIP folder and a processor folder (4 frames, 8 tokens)."""
    return make_tiny_clip(tmp_path_factory.mktemp("clip"))


def training_values(tmp_path, name, **overrides):
    # the original's recipe (AdamW lr 6e-4, wd 0.2, betas (0.9, 0.999), cosine with 10 % warm-up, clip 1.0), with a
    # larger lr so that a few steps on a tiny model move the loss
    values = dict(model_type="dual_attention", output_dir=str(tmp_path / name), batch_size=4, epochs=4, lr=2e-2,
                  weight_decay=0.2, adam_beta2=0.999, warmup_proportion=0.1, max_grad_norm=1.0, seed=3,
                  cache_videos=True)
    return {**values, **overrides}


def step_losses(output_dir) -> dict[int, float]:
    return {record["step"]: record["loss"] for record in read_metrics(output_dir) if "loss" in record}


def test_tvr_train_trains_the_adapter_only_and_writes_an_adapter_best(tmp_path, data, clip_and_processor):
    root, _, _ = data
    clip_dir, processor_dir, _ = clip_and_processor
    output = tmp_path / "run"
    kwargs = [f"{key}={json.dumps(value)}" for key, value in DAVRL_KWARGS.items()]
    split = lambda name: ["name=generic", f"annotation_dir={root}", f"video_dir={root}", f"split={name}"]
    code = tvr_main(["train", "--model_type", "dual_attention", "--from_clip", str(clip_dir), "--processor",
                     str(processor_dir), "--model_kwargs", *kwargs, "--train_data", *split("train"), "--eval_data",
                     *split("test"), "--output_dir", str(output), "--batch_size", "4", "--epochs", "4", "--lr",
                     "2e-2", "--weight_decay", "0.2", "--adam_beta2", "0.999", "--cache_videos", "true", "--seed", "3"])
    assert code == 0
    losses = step_losses(output)
    assert sorted(losses) == list(range(1, 9))
    assert sum(list(losses.values())[-2:]) < sum(list(losses.values())[:2])  # the loss goes down
    lora_lrs = [record["lr/decay"] for record in read_metrics(output) if "lr/decay" in record]
    assert max(lora_lrs) == pytest.approx(2e-2, rel=0.05)  # LoRA at the full lr: no coef_lr group
    assert not any("lr/pretrained_decay" in record for record in read_metrics(output))

    # best/ and final/: the adapter, the processor and a card, no model weights
    for name in ("best", "final"):
        folder = output / name
        files = {path.name for path in folder.iterdir()}
        assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= files
        assert not files & {"model.safetensors", "config.json"}
        # the base relative to the adapter (the run can move), with the fingerprint of its weights
        assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "../base"
        assert json.loads((folder / "adapter_base.json").read_text()) == {
            "base_weights_fingerprint": weights_fingerprint(output / "base")}
    card = (output / "best" / "README.md").read_text()
    lora = (2 + 3) * 4 * (32 + 96)  # 2 text + 3 vision layers, rank 4: A (4, 32) and B (96, 4) each
    assert "LoRA adapter only" in card and f"{lora:,} trainable parameters" in card
    assert "PeftModel.from_pretrained" in card and "'sel_layers': [1]" in card
    assert 'from_image_text_model("IMAGE_TEXT_MODEL"' in card and "(a local folder, `clip`)" in card
    assert str(output) not in card.split("## Training")[0]  # no absolute path in what a reader copies
    assert "'architectures'" not in card
    assert "t2v R@1" in card or "t2v_R@1" in card

    # best/ goes to the Hub as it is: adapter, processor, card
    from tvr.hub_cards import push_to_hub

    class RecordingApi:
        def create_repo(self, *args, **kwargs):
            pass

        def create_commit(self, repo_id, operations, **kwargs):
            self.files = sorted(operation.path_in_repo for operation in operations)

    api = RecordingApi()
    push_to_hub(output / "best", "me/davrl", api=api)
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md"} <= set(api.files)
    assert "config.json" not in api.files

    # every checkpoint holds the adapter, not the model
    for checkpoint in list_checkpoints(output):
        weights = load_file(checkpoint / "model.safetensors")
        assert weights and all("lora_" in key or "global_tokens" in key for key in weights), sorted(weights)[:5]

    # the saved adapter loads three ways; the frozen weights are the base's (written before training) bit for bit,
    # and the base's tower is the CLIP's
    trained = AutoModel.from_pretrained(output / "final").eval()
    base_state = AutoModel.from_pretrained(output / "base").state_dict()
    clip_state = DualAttentionModel.from_image_text_model(str(clip_dir), **DAVRL_KWARGS).clip.state_dict()
    for name, value in trained.state_dict().items():
        if ".lora_" not in name:
            source = name.replace(".base_layer.", ".").replace(".modules_to_save.default.", ".").replace(
                ".original_module.", ".")
            assert torch.equal(value, base_state[source]), name
    assert all(torch.equal(value, clip_state[name[len("clip."):]]) for name, value in base_state.items()
               if name.startswith("clip."))
    assert any(".lora_B." in name and value.abs().sum() > 0 for name, value in trained.state_dict().items())
    inputs = _inputs(clip_and_processor[2], data[2])
    with torch.no_grad():
        expected = trained(**inputs).logits_per_text
        peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(output / "base"), output / "final").eval()
        torch.testing.assert_close(peft_model(**inputs).logits_per_text, expected)
        merged = peft_model.merge_and_unload()
        assert (merged(**inputs).logits_per_text - expected).abs().max() < 1e-4


def _inputs(processor, dataset):
    batch = processor(text=list(dataset["caption"]), videos=list(dataset["video_path"]), return_tensors="pt")
    return {key: batch[key] for key in ("input_ids", "attention_mask", "pixel_values_videos", "video_mask")}


def test_frozen_weights_stay_bit_identical_and_resume_reads_the_adapter(tmp_path, data, clip_and_processor):
    _, train_set, _ = data
    clip_dir, _, processor = clip_and_processor

    def run(name, **overrides):
        model = DualAttentionModel.from_image_text_model(str(clip_dir), **DAVRL_KWARGS)
        before = {name: value.clone() for name, value in model.state_dict().items()}
        config = TrainingConfig(**training_values(tmp_path, name, epochs=2, save_steps=1, save_total_limit=None,
                                                  **overrides))
        output = train(config, model=model, processor=processor, train_dataset=train_set)
        AcceleratorState._reset_state(reset_partial_state=True)
        return model, before, output

    model, before, full = run("full")
    after = model.state_dict()  # the same module objects, now with peft's layers injected
    trained = {name for name in after if ".lora_" in name}
    assert trained and all(after[name].abs().sum() > 0 for name in trained if ".lora_B." in name)
    for name, value in before.items():  # every pre-existing tensor, frozen global tokens included
        moved = name.replace("qkv_proj.", "qkv_proj.base_layer.").replace("global_tokens.",
                                                                          "global_tokens.original_module.")
        assert torch.equal(after.get(name, after.get(moved)), value), name

    # init_from a trained adapter: it loads trainable on its base and training goes on from it
    config = TrainingConfig(**training_values(tmp_path, "continued", epochs=1, lr=1e-3,
                                              init_from=str(full / "final")))
    continued = train(config, processor=processor, train_dataset=train_set)
    AcceleratorState._reset_state(reset_partial_state=True)
    assert json.loads((continued / "final" / "adapter_config.json").read_text())["base_model_name_or_path"] == str(
        (full / "base").resolve())
    assert step_losses(continued)[1] < step_losses(full)[1] - 0.1

    checkpoints = list_checkpoints(full)
    assert [path.name for path in checkpoints] == ["checkpoint-1", "checkpoint-2", "checkpoint-3", "checkpoint-4"]
    _, _, resumed = run("resumed", resume_from=str(checkpoints[1]))  # after step 2 (end of epoch 0)
    reference, continued = step_losses(full), step_losses(resumed)
    assert sorted(continued) == [3, 4]  # a fresh output folder: only the resumed steps are logged
    for step in (3, 4):
        assert continued[step] == pytest.approx(reference[step], rel=1e-5, abs=1e-6), step


def _two_process_worker(config, clip_dir, processor, dataset) -> None:
    AcceleratorState._reset_state(reset_partial_state=True)  # forked from pytest: forget the parent's state
    torch.manual_seed(0)  # the global tokens are drawn when the model is built
    model = DualAttentionModel.from_image_text_model(str(clip_dir), **DAVRL_KWARGS).double()
    train(config, model=model, processor=processor, train_dataset=dataset)
    AcceleratorState._reset_state(reset_partial_state=True)


def test_two_process_adapter_training_equals_one_process(tmp_path, data, clip_and_processor):
    """`accelerate launch` with two processes (gloo on CPU, each with half of every batch) follows the one-process
    run (float64: exact to rounding); the main process writes the adapter checkpoints."""
    from accelerate import debug_launcher

    _, train_set, _ = data
    clip_dir, _, processor = clip_and_processor
    configs = {n: TrainingConfig(**training_values(tmp_path, f"{n}proc", epochs=1, save_steps=1)) for n in (1, 2)}
    _two_process_worker(configs[1], clip_dir, processor, train_set)
    debug_launcher(_two_process_worker, args=(configs[2], clip_dir, processor, train_set), num_processes=2)
    one, two = (step_losses(configs[n].output_dir) for n in (1, 2))
    assert sorted(one) == sorted(two) == [1, 2]
    for step in one:
        assert two[step] == pytest.approx(one[step], rel=1e-9)
    adapters = [load_file(tmp_path / f"{n}proc" / "final" / "adapter_model.safetensors") for n in (1, 2)]
    assert adapters[0].keys() == adapters[1].keys() and any(".lora_B." in key for key in adapters[0])
    for key, value in adapters[0].items():
        torch.testing.assert_close(adapters[1][key], value, rtol=1e-9, atol=1e-12)
    weights = load_file(list_checkpoints(tmp_path / "2proc")[-1] / "model.safetensors")
    assert weights and all("lora_" in key or "global_tokens" in key for key in weights)
