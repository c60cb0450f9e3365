"""The training loop on a tiny CLIP4Clip and tiny synthetic videos: resume, accumulation, checkpointing, outputs."""

import json

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState

from model_testers import RetrievalModelTester
from tvr import CLIP4ClipModel
from tvr.cli import main as tvr_main
from tvr.data import make_synthetic_dataset
from tvr.training import TrainingConfig, read_metrics, train
from tvr.training.data import CachedVideoProcessor, CaptionVideoSamples, TrainingCollator, order_frames
from tvr.training.trainer import ContrastiveStep, list_checkpoints, resolve_checkpoint

NUM_VIDEOS, MAX_FRAMES, MAX_WORDS = 8, 3, 8


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each run builds its own Accelerator; forget the previous one's process-wide state."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    train_set = make_synthetic_dataset(root, NUM_VIDEOS, seed=0, split="train", size=32, fps=4, duration=4.0,
                                       num_events=(1, 2), progress=False)
    test_set = make_synthetic_dataset(root, 4, seed=0, split="test", size=32, fps=4, duration=4.0,
                                      num_events=(1, 2), progress=False)
    return train_set, test_set


@pytest.fixture(scope="module")
def processor(tmp_path_factory):
    from tvr import TVRProcessor, TVRVideoProcessor, train_clip_tokenizer

    corpus = ["a red circle moves left", "a blue square moves right", "a green triangle moves up and down"] * 4
    tokenizer = train_clip_tokenizer(corpus, tmp_path_factory.mktemp("tokenizer"), vocab_size=600)
    video_processor = TVRVideoProcessor(size=32, crop_size=32, max_frames=MAX_FRAMES)
    return TVRProcessor(video_processor=video_processor, tokenizer=tokenizer, max_words=MAX_WORDS)


def tiny_model(processor) -> CLIP4ClipModel:
    tokenizer = processor.tokenizer
    text = dict(vocab_size=len(tokenizer), max_position_embeddings=MAX_WORDS, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(num_hidden_layers=1, image_size=32, patch_size=16)
    return RetrievalModelTester(text_config=text, vision_config=vision, sim_header="seqTransf", max_frames=12,
                                max_words=32).model().train()


def base_config(tmp_path, name, **overrides) -> TrainingConfig:
    values = dict(output_dir=str(tmp_path / name), batch_size=4, epochs=3, lr=1e-3, coef_lr=0.1,
                  warmup_proportion=0.2, freeze_layer_num=-1, cache_videos=True, seed=3,
                  train_frame_order="shuffle")
    values.update(overrides)
    return TrainingConfig(**values)


def losses(output_dir) -> dict[int, float]:
    return {record["step"]: record["loss"] for record in read_metrics(output_dir) if "loss" in record}


# ------------------------------------------------------------------------------------------------ resume


class Killed(Exception):
    pass


def test_killed_run_resumes_on_the_same_loss_trajectory(tmp_path, videos, processor):
    train_set, _ = videos
    # uninterrupted: 3 epochs x 2 batches = 6 steps, a checkpoint every 3 steps (step 3 is mid-epoch 1)
    full = train(base_config(tmp_path, "full", save_steps=3), model=tiny_model(processor), processor=processor,
                 train_dataset=train_set)
    reference = losses(full)
    assert sorted(reference) == [1, 2, 3, 4, 5, 6]
    assert len(set(reference.values())) == 6

    # the same run killed during step 5; checkpoints: step 2 (end of epoch 0, rotated out), 3 (mid-epoch 1),
    # 4 (end of epoch 1); resume from the mid-epoch one
    model = tiny_model(processor)
    encode_text, calls = model.encode_text, []

    def dying_encode_text(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise Killed()
        return encode_text(*args, **kwargs)

    model.encode_text = dying_encode_text
    config = base_config(tmp_path, "killed", save_steps=3)
    with pytest.raises(Killed):
        train(config, model=model, processor=processor, train_dataset=train_set)
    checkpoints = list_checkpoints(config.output_dir)
    assert [path.name for path in checkpoints] == ["checkpoint-3", "checkpoint-4"]
    assert resolve_checkpoint("latest", config.output_dir) == checkpoints[-1]
    assert sorted(losses(config.output_dir)) == [1, 2, 3, 4]

    AcceleratorState._reset_state(reset_partial_state=True)
    config.resume_from = str(checkpoints[0])
    resumed = train(config, model=tiny_model(processor), processor=processor, train_dataset=train_set)
    resumed_losses = losses(resumed)
    assert sorted(resumed_losses) == [1, 2, 3, 4, 5, 6]  # the log after step 3 was dropped and redone
    for step in range(1, 7):
        assert resumed_losses[step] == pytest.approx(reference[step], rel=1e-6, abs=1e-7), step
    for name, value in CLIP4ClipModel.from_pretrained(full / "final").state_dict().items():
        torch.testing.assert_close(CLIP4ClipModel.from_pretrained(resumed / "final").state_dict()[name], value)


# ------------------------------------------------------------------------------------------------ data


def test_caption_choice_and_frame_order_are_seeded_per_epoch():
    from datasets import Dataset

    dataset = Dataset.from_dict({"video_id": ["a", "b"], "video_path": ["a.mp4", "b.mp4"], "caption": ["x", "y"],
                                 "captions": [[f"a{i}" for i in range(20)], [f"b{i}" for i in range(20)]],
                                 "start": [None, 1.0], "end": [None, 3.5]})
    samples = CaptionVideoSamples(dataset, seed=5)
    epoch0 = [samples[i] for i in range(2)]
    assert epoch0 == [samples[i] for i in range(2)]  # deterministic
    assert epoch0[1]["video"] == ("b.mp4", 1.0, 3.5) and epoch0[0]["video"] == ("a.mp4", None, None)
    seen = set()
    for epoch in range(6):
        samples.set_epoch(epoch)
        seen.add(samples[0]["caption"])
    assert len(seen) > 2 and seen <= {f"a{i}" for i in range(20)}

    video = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    mask = torch.tensor([1, 1, 1, 0])
    reversed_ = order_frames(video, mask, "reverse", np.random.default_rng(0))
    assert reversed_[:, 0, 0, 0].tolist() == [2.0, 1.0, 0.0, 3.0]  # padding stays at the end
    shuffled = order_frames(video, mask, "shuffle", np.random.default_rng(0))
    assert sorted(shuffled[:3, 0, 0, 0].tolist()) == [0.0, 1.0, 2.0] and shuffled[3, 0, 0, 0] == 3.0


def test_cached_processor_matches_decoding(videos, processor):
    train_set, _ = videos
    cached = CachedVideoProcessor(processor)
    paths = list(train_set["video_path"][:3])
    cached.fill([(path, None, None) for path in paths], batch_size=2, show_progress=False)
    assert len(cached.store) == 3
    direct = processor(text=["a red circle"], videos=paths, return_tensors="pt")
    from_cache = cached(text=["a red circle"], videos=paths, return_tensors="pt")
    for key in ("input_ids", "attention_mask", "pixel_values_videos", "video_mask"):
        torch.testing.assert_close(from_cache[key], direct[key], rtol=0, atol=1e-6)
    uint8 = processor(videos=paths, do_rescale=False, do_normalize=False, return_tensors="pt")
    assert torch.equal(cached(videos=paths, do_rescale=False, do_normalize=False)["pixel_values_videos"],
                       uint8["pixel_values_videos"])

    collator = TrainingCollator(cached, "normal")
    batch = collator([{"caption": "a red circle", "video": (path, None, None), "augment_seed": 0} for path in paths])
    assert batch["pixel_values_videos"].shape == (3, MAX_FRAMES, 3, 32, 32)
    assert torch.equal(batch["pixel_values_videos"], uint8["pixel_values_videos"])  # uint8, normalised on device
    assert batch["input_ids"].shape == (3, MAX_WORDS)


def test_epochs_reach_persistent_workers():
    """Workers keep their copy of the dataset across epochs; the epoch (caption choice, augmentation seeds) is
    shared memory, so their samples still change with it."""
    from datasets import Dataset

    dataset = Dataset.from_dict({"video_path": ["a.mp4"] * 4, "caption": ["x"] * 4,
                                 "captions": [[f"c{i}" for i in range(50)]] * 4})
    samples = CaptionVideoSamples(dataset, seed=1)
    loader = torch.utils.data.DataLoader(samples, batch_size=4, num_workers=1, persistent_workers=True,
                                         collate_fn=lambda batch: [sample["augment_seed"] for sample in batch])
    seen = []
    for epoch in range(2):
        samples.set_epoch(epoch)
        seen.append(next(iter(loader)))
        assert seen[-1] == [samples[index]["augment_seed"] for index in range(4)]
    assert seen[0] != seen[1]


def test_frame_cache_dir_trains_the_same_and_a_second_run_reads_it(tmp_path, videos, processor, monkeypatch):
    from tvr.processing.video_processing_tvr import TVRVideoProcessor

    train_set, _ = videos
    decoded = train(base_config(tmp_path, "decoded", epochs=2, cache_videos=False), model=tiny_model(processor),
                    processor=processor, train_dataset=train_set)
    cache = tmp_path / "frames"
    cached = train(base_config(tmp_path, "cached", epochs=2, cache_videos=False, frame_cache_dir=str(cache)),
                   model=tiny_model(processor), processor=processor, train_dataset=train_set)
    assert len(list(cache.rglob("*.npy"))) == NUM_VIDEOS
    assert losses(cached) == losses(decoded) and len(losses(decoded)) == 4

    def no_decoding(*args, **kwargs):
        raise RuntimeError("decoder called")

    monkeypatch.setattr(TVRVideoProcessor, "_decode_and_sample_videos", no_decoding)
    AcceleratorState._reset_state(reset_partial_state=True)
    again = train(base_config(tmp_path, "again", epochs=2, cache_videos=False, frame_cache_dir=str(cache),
                              on_bad_video="error"),
                  model=tiny_model(processor), processor=processor, train_dataset=train_set)
    assert losses(again) == losses(decoded)


# ------------------------------------------------------------------------------------------------ loop features


def one_step_gradients(processor, batch, checkpointing: bool) -> tuple[dict[str, torch.Tensor], int]:
    """Gradients of one training step, and how often a CLIP text layer ran its forward."""
    model = tiny_model(processor)
    if checkpointing:
        model.activation_checkpointing_enable()
    calls, mlp = [], model.clip.text_model.encoder.layers[1].mlp
    forward = mlp.forward

    def counting_forward(*args, **kwargs):  # not a forward hook: torch silences those during recomputation
        calls.append(1)
        return forward(*args, **kwargs)

    mlp.forward = counting_forward
    model.train()
    ContrastiveStep(model, processor.video_processor)(**batch).backward()
    return {name: p.grad for name, p in model.named_parameters() if p.grad is not None}, len(calls)


def test_gradient_checkpointing_gives_the_same_gradients(videos, processor):
    train_set, _ = videos
    samples = CaptionVideoSamples(train_set.select(range(4)), seed=0)
    batch = TrainingCollator(processor)([samples[i] for i in range(4)])
    plain, plain_calls = one_step_gradients(processor, batch, checkpointing=False)
    checkpointed, checkpointed_calls = one_step_gradients(processor, batch, checkpointing=True)
    assert (plain_calls, checkpointed_calls) == (1, 2)  # the layer was recomputed in backward
    assert plain.keys() == checkpointed.keys()
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, rtol=1e-5, atol=1e-7)


def test_accumulation_bf16_logging_and_outputs(tmp_path, videos, processor):
    train_set, test_set = videos
    evaluated = []

    def stand_in_evaluate(model, data_processor, dataset, config):
        # the real harness on the same model and data, counted so the test sees one call per epoch
        from tvr.evaluation.harness import evaluate_retrieval

        evaluated.append(len(dataset))
        return evaluate_retrieval(model, data_processor, dataset, batch_size=4, progress=False).metrics

    config = base_config(tmp_path, "accumulate", batch_size=2, gradient_accumulation_steps=2, epochs=2,
                         mixed_precision="bf16", optimizer="bertadam", logging_steps=1)
    output_dir = train(config, model=tiny_model(processor), processor=processor, train_dataset=train_set,
                       eval_dataset=test_set, evaluate_fn=stand_in_evaluate)
    records = read_metrics(output_dir)
    steps = [record for record in records if "loss" in record]
    # 8 videos / batch 2 = 4 batches per epoch, 2 per optimiser step -> 2 steps per epoch
    assert [record["step"] for record in steps] == [1, 2, 3, 4]
    assert evaluated == [4, 4]
    evals = [record for record in records if "t2v_R@1" in record]
    assert [record["step"] for record in evals] == [2, 4] and evals[0]["epoch"] == 1
    # warmup_cosine over 4 steps with warmup 0.2: factors 0, cos schedule at 1/4, 2/4, 3/4
    expected = [0.0, 0.5 * (1 + np.cos(np.pi * 0.25)), 0.5, 0.5 * (1 + np.cos(np.pi * 0.75))]
    for record, factor in zip(steps, expected):
        assert record["lr/decay"] == pytest.approx(1e-3 * factor)
        assert record["lr/pretrained_decay"] == pytest.approx(1e-4 * factor)
        assert record["grad_norm"] > 0 and record["samples_per_second"] > 0
    for name in ("best", "final"):
        reloaded = CLIP4ClipModel.from_pretrained(output_dir / name)
        assert reloaded.config.sim_header == "seqTransf"
        assert (output_dir / name / "README.md").exists()
    assert TrainingConfig.from_file(output_dir / "training_config.yaml") == config
    logit_scale = CLIP4ClipModel.from_pretrained(output_dir / "final").clip.logit_scale
    assert logit_scale.item() <= np.log(100) + 1e-6


def test_logit_scale_is_clamped_after_every_step(tmp_path, videos, processor):
    train_set, _ = videos
    model = tiny_model(processor)
    with torch.no_grad():
        model.clip.logit_scale.fill_(6.0)  # above ln 100 = 4.605
    output_dir = train(base_config(tmp_path, "clamp", epochs=1, lr=1e-6), model=model, processor=processor,
                       train_dataset=train_set)
    assert CLIP4ClipModel.from_pretrained(output_dir / "final").clip.logit_scale.item() == pytest.approx(np.log(100))


@pytest.mark.parametrize("model_type, extra", [
    ("clip4clip", {"sim_header": "tightTransf"}),
    ("emcl", {"em_num_bases": 4}),
    ("eercf", {}),
])
def test_every_method_trains_from_a_config(tmp_path, videos, processor, model_type, extra):
    """The loop only uses the model contract: each registered method builds from model_type + model_kwargs and
    trains (its own compute_loss, its own gather_for_loss)."""
    from transformers import AutoModel

    train_set, _ = videos
    tokenizer = processor.tokenizer
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=MAX_WORDS, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=32,
                  patch_size=16)
    model_kwargs = dict(text_config=text, vision_config=vision, projection_dim=32, max_frames=MAX_FRAMES,
                        temporal_config={"num_hidden_layers": 1}, **extra)
    config = base_config(tmp_path, model_type, model_type=model_type, model_kwargs=model_kwargs, epochs=1,
                         warmup_proportion=0.0, freeze_layer_num=0)
    output_dir = train(config, processor=processor, train_dataset=train_set)
    step_losses = losses(output_dir)
    assert sorted(step_losses) == [1, 2] and all(np.isfinite(list(step_losses.values())))
    trained = AutoModel.from_pretrained(output_dir / "final")
    assert trained.config.model_type == model_type
    AcceleratorState._reset_state(reset_partial_state=True)
    from tvr.training import build_model

    torch.manual_seed(config.seed)  # train() seeds before building, so this is the initial model
    initial = build_model(config).state_dict()
    changed = {name for name, value in trained.state_dict().items() if not torch.equal(value, initial[name])}
    frozen = {name for name in initial if ".embeddings." in name or "pre_layrnorm" in name}
    assert frozen and not frozen & changed  # freeze_layer_num=0 kept CLIP's embeddings (and the rebuild is exact)
    assert len(changed) > 10


def test_model_and_processor_from_a_clip_checkpoint(tmp_path, processor):
    from transformers import CLIPConfig, CLIPModel

    from tvr import TVRProcessor
    from tvr.training import build_model, build_processor

    tokenizer = processor.tokenizer
    clip = CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=MAX_WORDS,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16),
        projection_dim=32))
    clip.save_pretrained(tmp_path / "clip")
    tokenizer.save_pretrained(tmp_path / "clip")
    config = TrainingConfig(from_clip=str(tmp_path / "clip"), model_kwargs={"sim_header": "meanP", "max_frames": 4},
                            processor_kwargs={"max_frames": 4, "max_words": 6, "slice_framepos": "head"})
    model = build_model(config)
    torch.testing.assert_close(model.clip.visual_projection.weight, clip.visual_projection.weight)
    built = build_processor(config, model)
    assert isinstance(built, TVRProcessor) and built.max_words == 6
    assert built.video_processor.max_frames == 4 and built.video_processor.slice_framepos == "head"
    assert built.video_processor.crop_size["height"] == 32  # the model's image size
    assert built(text=["a red circle"], return_tensors="pt")["input_ids"].shape == (1, 6)


def test_tvr_train_from_a_siglip_checkpoint_uses_its_conventions(tmp_path, videos, processor):
    """`tvr train --from_image_text_model SIGLIP_DIR`: SigLIP towers, its processor conventions and its sigmoid loss,
    every weight of the checkpoint loaded, the tower trained at lr * coef_lr."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    train_set, _ = videos
    tokenizer = processor.tokenizer
    torch.manual_seed(0)
    siglip = SiglipModel(SiglipConfig(
        text_config=dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=MAX_WORDS, projection_size=32,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=16)))
    siglip_dir = tmp_path / "siglip"
    siglip.save_pretrained(siglip_dir)
    tokenizer.save_pretrained(siglip_dir)
    SiglipImageProcessor(size={"height": 32, "width": 32}).save_pretrained(siglip_dir)
    annotations = tmp_path / "train.jsonl"
    annotations.write_text("".join(json.dumps({"video_id": row["video_id"], "video_path": row["video_path"],
                                               "caption": row["caption"]}) + "\n" for row in train_set))
    code = tvr_main([
        "train", "--from_image_text_model", str(siglip_dir), "--model_kwargs", "sim_header=seqTransf",
        f"max_frames={MAX_FRAMES}", "temporal_config={num_hidden_layers: 1}",
        "--processor_kwargs", f"max_frames={MAX_FRAMES}",
        "--train_data", "name=generic", f"annotation_dir={annotations}", "split=train",
        "--output_dir", str(tmp_path / "run"),
        "--batch_size", "4", "--epochs", "1", "--lr", "1e-3", "--coef_lr", "0.1", "--freeze_layer_num", "-1",
    ])
    assert code == 0
    trained = CLIP4ClipModel.from_pretrained(tmp_path / "run" / "final")
    assert (trained.config.tower_type, trained.config.loss_type) == ("siglip", "sigmoid")
    saved = json.loads((tmp_path / "run" / "final" / "processor_config.json").read_text())
    assert saved["text_padding"] == "max_length" and saved["max_words"] == MAX_WORDS  # the text tower's positions
    assert saved["video_processor"]["do_center_crop"] is False and saved["video_processor"]["image_mean"] == [0.5] * 3
    records = read_metrics(tmp_path / "run")
    assert [record["step"] for record in records if "loss" in record] == [1, 2]
    lrs = next(record for record in records if "loss" in record)
    assert lrs["lr/pretrained_decay"] == pytest.approx(0.1 * lrs["lr/decay"])
    changed = [name for name, value in trained.clip.state_dict().items()
               if not torch.equal(value, siglip.state_dict()[name])]
    assert "logit_bias" in changed and "vision_model.head.probe" in changed


# ------------------------------------------------------------------------------------------------ config + CLI


def test_config_file_and_cli_overrides(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("lr: 0.001\nbatch_size: 64\nmodel_kwargs:\n  sim_header: seqTransf\n")
    import argparse

    from tvr.training.config import add_config_arguments, config_from_args

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    args = parser.parse_args(["--config", str(path), "--lr", "3e-4", "--model_kwargs", "sim_header=meanP",
                              "linear_patch=3d", "--gradient_checkpointing", "true", "--max_steps", "none"])
    config = config_from_args(args)
    assert config.lr == 3e-4 and config.batch_size == 64  # flag beats file, file beats default
    assert config.model_kwargs == {"sim_header": "meanP", "linear_patch": "3d"}
    assert config.gradient_checkpointing is True and config.max_steps is None
    assert config.coef_lr == 1e-3  # default
    json_path = tmp_path / "cfg.json"
    config.save(json_path)
    assert TrainingConfig.from_file(json_path) == config
    with pytest.raises(ValueError, match="unknown training config keys \\['learning_rate'\\]"):
        TrainingConfig.from_dict({"learning_rate": 1.0})
    with pytest.raises(ValueError, match="optimizer"):
        TrainingConfig(optimizer="sgd")


def test_tvr_train_command(tmp_path, videos, processor, monkeypatch):
    uploads = {}

    class RecordingHubApi:  # stands in for huggingface_hub.HfApi: records the one commit push_to_hub makes
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, **kwargs):
            uploads["repo"] = repo_id

        def create_commit(self, repo_id, operations, **kwargs):
            uploads["files"] = sorted(operation.path_in_repo for operation in operations)

    monkeypatch.setattr("tvr.hub_cards.push.HfApi", RecordingHubApi)
    train_set, _ = videos
    model_dir = tmp_path / "init"
    tiny_model(processor).save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    annotations = tmp_path / "train.jsonl"
    annotations.write_text("".join(json.dumps({"video_id": row["video_id"], "video_path": row["video_path"],
                                               "caption": row["caption"]}) + "\n" for row in train_set))
    code = tvr_main(["train", "--init_from", str(model_dir), "--train_data", "name=generic",
                     f"annotation_dir={annotations}", "split=train", "--batch_size", "4", "--epochs", "1",
                     "--output_dir", str(tmp_path / "cli"), "--freeze_layer_num", "1", "--num_workers", "1",
                     "--push_to_hub", "true", "--hub_model_id", "me/tiny"])
    assert code == 0
    # no evaluation set: final/ is published, with model, processor and card, and no training state
    final_files = sorted(path.name for path in (tmp_path / "cli" / "final").iterdir() if path.is_file())
    assert uploads["repo"] == "me/tiny" and uploads["files"] == final_files
    assert {"README.md", "config.json", "model.safetensors", "processor_config.json"} <= set(final_files)
    assert sorted(losses(tmp_path / "cli")) == [1, 2]
    trained = CLIP4ClipModel.from_pretrained(tmp_path / "cli" / "final")
    initial = CLIP4ClipModel.from_pretrained(model_dir)
    # freeze_layer_num 1: embeddings and layer 0 unchanged, layer 1 trained
    frozen = "clip.text_model.encoder.layers.0.mlp.fc1.weight"
    trained_name = "clip.text_model.encoder.layers.1.mlp.fc1.weight"
    torch.testing.assert_close(trained.state_dict()[frozen], initial.state_dict()[frozen])
    assert not torch.equal(trained.state_dict()[trained_name], initial.state_dict()[trained_name])


def test_accelerate_launch_entry_point_runs_a_config_file(tmp_path, videos, processor):
    """`accelerate launch -m tvr.training --config ...` runs `tvr.training.__main__.main` in each process."""
    from tvr.training.__main__ import main

    train_set, _ = videos
    model_dir = tmp_path / "init"
    tiny_model(processor).save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    train_set.to_json(tmp_path / "train.jsonl")
    (tmp_path / "cfg.yaml").write_text(
        f"init_from: {model_dir}\n"
        f"train_data: {{name: generic, annotation_dir: {tmp_path / 'train.jsonl'}, split: train}}\n"
        "batch_size: 8\nepochs: 2\ncache_videos: true\nprocessor_kwargs: {max_frames: 2}\n")
    assert main(["--config", str(tmp_path / "cfg.yaml"), "--output_dir", str(tmp_path / "run")]) == 0
    assert sorted(losses(tmp_path / "run")) == [1, 2]
    from tvr import TVRProcessor

    assert TVRProcessor.from_pretrained(tmp_path / "run" / "final").video_processor.max_frames == 2


def test_flags_md_example_is_a_valid_config():
    import pathlib
    import re

    import yaml

    import tvr.training

    text = (pathlib.Path(tvr.training.__file__).parent / "FLAGS.md").read_text()
    example = re.search(r"```yaml\n(.*?)```", text, re.S).group(1)
    config = TrainingConfig.from_dict(yaml.safe_load(example))
    assert config.model_kwargs["sim_header"] == "meanP" and config.processor_kwargs["slice_framepos"] == "uniform"


def test_torch_compile_trains_on_the_same_losses(tmp_path, videos, processor, monkeypatch):
    # the compiled step (inductor, on the CPU here) is the eager step: same losses, same weights at the end
    train_set, _ = videos
    eager = train(base_config(tmp_path, "eager", epochs=1), model=tiny_model(processor), processor=processor,
                  train_dataset=train_set)
    compiled_calls = []
    compile_module = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile",
                        lambda module, *args, **kwargs: (compiled_calls.append(type(module).__name__),
                                                         compile_module(module, *args, **kwargs))[1])
    AcceleratorState._reset_state(reset_partial_state=True)
    compiled = train(base_config(tmp_path, "compiled", epochs=1, torch_compile=True), model=tiny_model(processor),
                     processor=processor, train_dataset=train_set)
    assert compiled_calls == ["ContrastiveStep"]
    eager_losses, compiled_losses = losses(eager), losses(compiled)
    assert sorted(compiled_losses) == sorted(eager_losses) == [1, 2]
    for step, loss in eager_losses.items():
        assert compiled_losses[step] == pytest.approx(loss, rel=1e-4), step
    eager_weights = CLIP4ClipModel.from_pretrained(eager / "final").state_dict()
    for name, value in CLIP4ClipModel.from_pretrained(compiled / "final").state_dict().items():
        torch.testing.assert_close(value, eager_weights[name], rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------ the run, as typed


def error_lines(stderr: str) -> list[str]:
    """The `tvr: error: ...` lines of a command's stderr (progress bars aside)."""
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("tvr: error: ")]


@pytest.fixture()
def cli_run(tmp_path, videos, processor):
    """A saved tiny model + processor and its training annotations; `tvr train` flags of a 2-step run on them."""
    train_set, _ = videos
    model_dir = tmp_path / "init"
    tiny_model(processor).save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    annotations = tmp_path / "train.jsonl"
    annotations.write_text("".join(json.dumps({"video_id": row["video_id"], "video_path": row["video_path"],
                                               "caption": row["caption"]}) + "\n" for row in train_set))
    return ["train", "--init-from", str(model_dir), "--train-data", "name=generic", f"annotation_dir={annotations}",
            "split=train", "--batch-size", "4", "--epochs", "1", "--save-steps", "1", "--lr", "1e-3",
            "--warmup-proportion", "0.2", "--freeze-layer-num", "-1"]


def test_tvr_train_refuses_a_folder_it_does_not_own_and_resumes_in_its_own(tmp_path, cli_run, capsys):
    import subprocess
    import sys

    from tvr.cli import console_main
    from tvr.utils.output_dir import read_marker

    project = tmp_path / "project"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    result = subprocess.run([sys.executable, "-m", "tvr", *cli_run, "--output-dir", str(project)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"tvr: error: training output_dir '{project}' is not a tvr training run folder and holds 'notes.txt': tvr "
        "does not replace or delete files it did not write; choose a new or empty folder (set TVR_TRACEBACK=1 for "
        "the traceback)"]
    assert sorted(path.name for path in project.iterdir()) == ["notes.txt"]  # nothing written before the refusal
    assert console_main([*cli_run, "--output-dir", str(tmp_path / "init" / "run")]) == 1
    assert "is inside the input folder" in capsys.readouterr().err

    run = tmp_path / "run"
    assert console_main([*cli_run, "--output-dir", str(run)]) == 0
    out = capsys.readouterr().out
    assert "training on 1 process (cpu)" in out and "resuming" not in out
    assert read_marker(run)["kind"] == "training run" and read_marker(run / "final")["kind"] == "model"
    assert sorted(read_marker(run / "final")["files"]) == sorted(
        path.name for path in (run / "final").iterdir() if path.name != ".tvr-output.json")
    # the same command, one epoch more, resumes in its own folder and says from where
    assert console_main([*cli_run, "--output-dir", str(run), "--epochs", "2", "--resume-from", "latest"]) == 0
    assert "resuming from checkpoint-2 (step 2)" in capsys.readouterr().out.splitlines()
    assert sorted(losses(run)) == [1, 2, 3, 4]


def test_resume_refuses_a_checkpoint_edited_at_the_same_size(tmp_path, cli_run, capsys):
    from tvr.cli import console_main

    run = tmp_path / "run"
    assert console_main([*cli_run, "--output-dir", str(run)]) == 0
    weights = run / "checkpoints" / "checkpoint-2" / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as handle:  # one byte of tensor data, in place: same size, same header
        handle.seek(size - 10)
        byte = handle.read(1)
        handle.seek(size - 10)
        handle.write(bytes([byte[0] ^ 0xFF]))
    assert weights.stat().st_size == size
    capsys.readouterr()
    assert console_main([*cli_run, "--output-dir", str(run), "--epochs", "2", "--resume-from", "latest"]) == 1
    [error] = error_lines(capsys.readouterr().err)
    assert error.startswith(f"tvr: error: checkpoint '{weights.parent}': model.safetensors is not the file that was "
                            "saved (its content hash differs, at the same size)")
    assert sorted(losses(run)) == [1, 2]  # nothing trained on the edited weights


def test_a_resumed_run_applies_a_new_lr(tmp_path, cli_run, capsys):
    """`--lr` on resume (after a divergence, "Lower lr"): the schedule continues from the step reached on the new
    base rates, and a line says so."""
    from tvr.cli import console_main
    from tvr.training import warmup_cosine

    run = tmp_path / "run"
    assert console_main([*cli_run, "--output-dir", str(run)]) == 0
    capsys.readouterr()
    assert console_main([*cli_run, "--output-dir", str(run), "--epochs", "2", "--resume-from", "latest",
                         "--lr", "2e-4"]) == 0
    out = capsys.readouterr().out
    assert ("learning rates changed since the checkpoint: base rates 0.001/1e-06 -> 0.0002/2e-07 (lr, lr * "
            "coef_lr); the schedule continues from step 2 at the new rates") in out
    records = {record["step"]: record for record in read_metrics(run) if "loss" in record}
    assert records[2]["lr/decay"] == pytest.approx(1e-3 * warmup_cosine(1 / 2, 0.2))  # before: the old run's
    for step in (3, 4):  # 4 steps in all now
        assert records[step]["lr/decay"] == pytest.approx(2e-4 * warmup_cosine((step - 1) / 4, 0.2))
        assert records[step]["lr/pretrained_decay"] == pytest.approx(2e-7 * warmup_cosine((step - 1) / 4, 0.2))
