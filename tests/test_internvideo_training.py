"""InternVideo through the shared training loop (`tvr train --model_type internvideo --init_from ...`) with the
original's recipe (BertAdam, lr / coef_lr groups, --freeze_layer_num 0, logit-scale clamp) on tiny synthetic videos."""

import json

import numpy as np
import pytest
import torch
from accelerate.state import AcceleratorState

from tvr import InternVideoConfig, InternVideoModel, TVRProcessor, TVRVideoProcessor, train_clip_tokenizer
from tvr.cli import main as tvr_main
from tvr.data import make_synthetic_dataset
from tvr.training import read_metrics

NUM_VIDEOS, MAX_FRAMES, MAX_WORDS = 8, 4, 8


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


def fixed_batch_loss(model, processor, dataset) -> float:
    """The eval-mode in-batch loss of every training video with its caption (one batch)."""
    batch = processor(text=list(dataset["caption"]), videos=list(dataset["video_path"]), return_tensors="pt")
    model.eval()
    with torch.no_grad():
        return model(**batch, return_loss=True).loss.item()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("internvideo_data")
    train_set = make_synthetic_dataset(root, NUM_VIDEOS, seed=0, split="train", size=32, fps=4, duration=4.0,
                                       num_events=(1, 2), progress=False)
    tokenizer = train_clip_tokenizer(list(train_set["caption"]) * 2, root / "tokenizer", vocab_size=600)
    processor = TVRProcessor(
        video_processor=TVRVideoProcessor(size=32, crop_size=32, max_frames=MAX_FRAMES, frame_sampling="stride"),
        tokenizer=tokenizer,
        max_words=MAX_WORDS,
    )
    return train_set, processor


def tiny_model(tokenizer) -> InternVideoModel:
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, max_position_embeddings=MAX_WORDS, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32,
                  patch_size=16)
    torch.manual_seed(0)
    # as a converted checkpoint: the branch is pretrained, so it trains at lr * coef_lr like the tower
    config = InternVideoConfig(text_config=text, vision_config=vision, projection_dim=32, extractor_layers=[0, 1],
                               max_frames=MAX_FRAMES, max_words=MAX_WORDS, temporal_branch_pretrained=True)
    return InternVideoModel(config)


def test_evaluation_reports_dsl_beside_the_plain_metrics(data):
    from tvr.evaluation import evaluate_retrieval, internvideo_metrics

    train_set, processor = data
    model = tiny_model(processor.tokenizer)
    result = evaluate_retrieval(model, processor, train_set, batch_size=4, return_similarity=True, progress=False)
    assert {"t2v_R@1", "dsl/t2v_R@1", "dsl/v2t_MeanR"} <= set(result.metrics)
    assert "dsl/t2v_R@1" not in evaluate_retrieval(model, processor, train_set, postprocessing=(), progress=False).metrics
    original = internvideo_metrics(result.similarity, result.text_to_video, ties="pessimistic")
    assert original["t2v_R@1"] == result.metrics["t2v_R@1"]  # one caption per video: the protocols agree
    assert original["dsl/t2v_R@1"] == result.metrics["dsl/t2v_R@1"]


def test_tvr_train_lowers_the_loss_with_the_original_recipe(tmp_path, data):
    train_set, processor = data
    model = tiny_model(processor.tokenizer)
    with torch.no_grad():
        model.clip.logit_scale.fill_(5.0)  # above ln 100: clamped after the first step
    model.save_pretrained(tmp_path / "init")
    processor.save_pretrained(tmp_path / "init")
    initial_loss = fixed_batch_loss(model, processor, train_set)

    annotations = tmp_path / "train.jsonl"
    annotations.write_text("".join(json.dumps({"video_id": row["video_id"], "video_path": row["video_path"],
                                               "caption": row["caption"]}) + "\n" for row in train_set))
    code = tvr_main(["train", "--model_type", "internvideo", "--init_from", str(tmp_path / "init"),
                     "--train_data", "name=generic", f"annotation_dir={annotations}", "split=train",
                     "--optimizer", "bertadam", "--lr", "1e-3", "--coef_lr", "2", "--batch_size", "4",
                     "--epochs", "6", "--warmup_proportion", "0.1", "--freeze_layer_num", "0",
                     "--gradient_checkpointing", "true", "--cache_videos", "true", "--seed", "0",
                     "--output_dir", str(tmp_path / "run")])
    assert code == 0
    step_losses = [record["loss"] for record in read_metrics(tmp_path / "run") if "loss" in record]
    assert len(step_losses) == 12 and all(np.isfinite(step_losses))
    trained = InternVideoModel.from_pretrained(tmp_path / "run" / "final")
    assert trained.clip.logit_scale.item() <= np.log(100) + 1e-6  # started at 5.0, clamped after every step
    # the original's --freeze_layer_num 0: embeddings, the renamed vision top, query and balance stay as they were
    for name in ("temporal.query", "temporal.balance", "clip.visual_projection.weight",
                 "clip.vision_model.embeddings.patch_embedding.weight"):
        assert torch.equal(trained.get_parameter(name), model.get_parameter(name)), name
    for name in ("temporal.layers.0.q_proj.weight", "temporal.position_convs.1.weight",
                 "clip.vision_model.encoder.layers.0.mlp.fc1.weight"):
        assert not torch.equal(trained.get_parameter(name), model.get_parameter(name)), name
    final_loss = fixed_batch_loss(trained, processor, train_set)
    print(f"fixed-batch loss {initial_loss:.4f} -> {final_loss:.4f}")
    assert final_loss < 0.8 * initial_loss, (initial_loss, final_loss)
