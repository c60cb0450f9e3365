"""CLIP4Clip: parity with the original code (fixtures), CLIP initialisation, heads, and transformers conventions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import safetensors.torch
import torch
from transformers import AutoConfig, AutoModel
from transformers.modeling_layers import GradientCheckpointingLayer

from model_testers import tiny_clip4clip_config, tiny_clip4clip_model, tiny_inputs
from tvr.cli import main
from tvr.convert.openai_clip import load_original_state_dict
from tvr.methods.clip4clip.convert import convert_clip4clip_state_dict
from tvr.modeling import (
    CLIP4ClipConfig,
    CLIP4ClipModel,
    TextEncoding,
    VideoEncoding,
    concat_encodings,
    contrastive_loss,
    masked_mean,
    mean_pool_normalized,
)

FIXTURES = Path(__file__).parent / "fixtures" / "clip4clip"
CASES = ["meanP_2d", "seqLSTM_2d", "seqTransf_2d", "tightTransf_2d", "seqTransf_3d"]
FP32 = {"atol": 1e-5, "rtol": 1e-5}  # the fixture's fp32 tolerance
HEADS = ["meanP", "seqLSTM", "seqTransf", "tightTransf"]


def task_config(case: str) -> dict:
    return json.loads((FIXTURES / case / "meta.json").read_text())["task_config"]


@pytest.fixture(scope="module")
def original_inputs() -> dict[str, torch.Tensor]:
    """The fixture inputs, reshaped from the original layout to the tvr model inputs."""
    inputs = safetensors.torch.load_file(FIXTURES / "inputs.safetensors")
    return {
        "input_ids": inputs["input_ids"][:, 0],  # (B, pair=1, words) -> (B, words)
        "attention_mask": inputs["attention_mask"][:, 0],
        "pixel_values_videos": inputs["video"][:, 0, :, 0].float(),  # (B, 1, F, ts=1, 3, H, W) -> (B, F, 3, H, W)
        "video_mask": inputs["video_mask"][:, 0],
    }


@pytest.fixture(scope="module")
def converted_dir(tmp_path_factory):
    """Convert a fixture checkpoint through the CLI once per module; returns the output folder."""
    folders = {}

    def convert(case: str) -> Path:
        if case not in folders:
            output = tmp_path_factory.mktemp(case)
            checkpoint = FIXTURES / case / "pytorch_model.bin"
            arguments = ["convert", "clip4clip", str(checkpoint), str(output), "--max-frames", "4", "--max-words", "8"]
            assert main(arguments) == 0
            folders[case] = output
        return folders[case]

    return convert


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory) -> Path:
    """The fixture's OpenAI-format tiny CLIP converted to a transformers CLIPModel folder."""
    output = tmp_path_factory.mktemp("clip")
    assert main(["convert", "clip", str(FIXTURES / "clip_openai_state_dict.bin"), str(output)]) == 0
    return output


def no_dropout(model: torch.nn.Module) -> torch.nn.Module:
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    return model


def split_encoding(encoding, size: int) -> list:
    count = len(next(iter(encoding.values())))
    return [type(encoding)(**{k: v[i : i + size] for k, v in encoding.items()}) for i in range(0, count, size)]


# ---------------------------------------------------------------------------------------------- parity with original


@pytest.mark.parametrize("case", CASES)
def test_converted_checkpoint_matches_original_outputs(case, converted_dir, original_inputs):
    model = AutoModel.from_pretrained(converted_dir(case)).eval()
    assert isinstance(model, CLIP4ClipModel)
    expected = safetensors.torch.load_file(FIXTURES / case / "expected.safetensors")
    config = task_config(case)
    assert (model.config.sim_header, model.config.linear_patch) == (config["sim_header"], config["linear_patch"])
    if config["sim_header"] in ("seqTransf", "tightTransf"):  # counted from the checkpoint's keys
        assert model.config.temporal_config.num_hidden_layers == config["cross_num_hidden_layers"]
    assert (model.config.max_frames, model.config.max_words) == (4, 8)

    with torch.no_grad():
        # The original's eval encodes in batches of 2 and scores block by block.
        batch = {key: (value[:2], value[2:]) for key, value in original_inputs.items()}
        texts = [model.encode_text(*pair) for pair in zip(batch["input_ids"], batch["attention_mask"])]
        videos = [model.encode_video(*pair) for pair in zip(batch["pixel_values_videos"], batch["video_mask"])]
        blocks = torch.cat([torch.cat([model.similarity(t, v) for v in videos], dim=1) for t in texts])
        text, video = concat_encodings(texts), concat_encodings(videos)

    torch.testing.assert_close(text.text_features, expected["sequence_output"][:, 0], **FP32)
    torch.testing.assert_close(video.frame_features, expected["visual_output"], **FP32)
    torch.testing.assert_close(blocks, expected["sim_matrix"], **FP32)

    no_dropout(model).train()  # the fixture's loss ran in train mode with dropout p = 0
    output = model(**original_inputs, return_loss=True)
    torch.testing.assert_close(output.loss, expected["loss"], **FP32)
    torch.testing.assert_close(output.logits_per_text, expected["sim_matrix"], **FP32)


# ------------------------------------------------------------------------------------------- initialisation from CLIP


@pytest.mark.parametrize("case", ["seqLSTM_2d", "seqTransf_2d", "tightTransf_2d", "seqTransf_3d"])
def test_from_clip_initialises_like_the_original(case, clip_dir):
    config = task_config(case)
    model = CLIP4ClipModel.from_clip(
        clip_dir,
        sim_header=config["sim_header"],
        linear_patch=config["linear_patch"],
        temporal_config={"num_hidden_layers": config["cross_num_hidden_layers"]},
    )
    derived = safetensors.torch.load_file(FIXTURES / case / "init_from_clip.safetensors")

    # CLIP weights: the original checkpoint's clip.* tensors are CLIP's own (only conv2 was perturbed).
    original = load_original_state_dict(FIXTURES / case / "pytorch_model.bin")
    original = convert_clip4clip_state_dict(original, config["sim_header"])
    for key, value in model.clip.state_dict().items():
        if key != "patch_embedding_3d.weight":
            torch.testing.assert_close(value, original[f"clip.{key}"].float(), atol=0, rtol=0, msg=key)

    text_layers = model.clip.text_model.encoder.layers
    if config["sim_header"] == "seqTransf":
        positions = derived["frame_position_embeddings.weight"]
        torch.testing.assert_close(model.temporal.frame_position_embeddings.weight, positions)
        head_layers = model.temporal.transformer.layers
    elif config["sim_header"] == "tightTransf":
        positions = derived["cross.embeddings.position_embeddings.weight"]
        torch.testing.assert_close(model.cross.position_embeddings.weight, positions)
        head_layers = model.cross.transformer.layers
    else:  # seqLSTM: the original derives frame_position_embeddings but never uses them; tvr has none
        assert not any("position" in name for name, _ in model.temporal.named_parameters())
        head_layers = []
    for head_layer, text_layer in zip(head_layers, text_layers):  # "cut from beginning": layer i <- text layer i
        for (name, value), text_value in zip(head_layer.state_dict().items(), text_layer.state_dict().values()):
            torch.testing.assert_close(value, text_value, atol=0, rtol=0, msg=name)
        assert head_layer.layer_norm1.eps == 1e-12 and text_layer.layer_norm1.eps == 1e-5
    assert len(head_layers) == (0 if config["sim_header"] == "seqLSTM" else config["cross_num_hidden_layers"])

    if config["linear_patch"] == "3d":
        torch.testing.assert_close(model.clip.patch_embedding_3d.weight, derived["clip.visual.conv2.weight"].float())


def test_3d_patch_embedding_starts_equal_to_2d(clip_dir, original_inputs):
    model_2d = CLIP4ClipModel.from_clip(clip_dir).eval()
    model_3d = CLIP4ClipModel.from_clip(clip_dir, linear_patch="3d").eval()
    with torch.no_grad():
        frames_2d = model_2d.clip.encode_frames(original_inputs["pixel_values_videos"]).pooler_output
        frames_3d = model_3d.clip.encode_frames(original_inputs["pixel_values_videos"]).pooler_output
        # Now each frame sees the previous one (a random kernel: a constant one would vanish in the LayerNorm).
        previous_frame_kernel = model_3d.clip.patch_embedding_3d.weight[:, :, 0]
        previous_frame_kernel.copy_(0.1 * torch.randn_like(previous_frame_kernel))
        shifted = model_3d.clip.encode_frames(original_inputs["pixel_values_videos"]).pooler_output
    torch.testing.assert_close(frames_3d, frames_2d, **FP32)
    # The first frame has no previous frame (zero padding), later frames change.
    torch.testing.assert_close(shifted[:, 0], frames_2d[:, 0], **FP32)
    assert (shifted[:, 1:] - frames_2d[:, 1:]).abs().amax() > 1e-3


# ----------------------------------------------------------------------------------------------------------- heads


def test_seqlstm_reads_only_valid_frames_and_keeps_the_rest():
    model = tiny_clip4clip_model("seqLSTM")
    frames = torch.randn(2, 4, 32)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    with torch.no_grad():
        output = model.temporal(frames, mask)
        alone, _ = model.temporal.lstm(frames[1:, :2])
    torch.testing.assert_close(output[1, :2], alone[0] + frames[1, :2])
    torch.testing.assert_close(output[1, 2:], frames[1, 2:])  # past the length: residual only


@pytest.mark.parametrize("sim_header", ["seqTransf", "tightTransf"])
def test_transformer_heads_ignore_padded_frames(sim_header):
    model = tiny_clip4clip_model(sim_header)
    frames = torch.randn(2, 4, 32)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    changed = frames.clone()
    changed[1, 2:] = torch.randn(2, 32)
    text = torch.randn(3, 32)
    with torch.no_grad():
        if sim_header == "seqTransf":
            before, after = model.temporal(frames, mask)[1, :2], model.temporal(changed, mask)[1, :2]
        else:
            before = model.cross.score_all_pairs(text, frames, mask, chunk_size=4)
            after = model.cross.score_all_pairs(text, changed, mask, chunk_size=4)
    torch.testing.assert_close(before, after)


def test_tight_transf_scores_every_pair_in_chunks():
    model = tiny_clip4clip_model("tightTransf", cross_chunk_size=1)
    inputs = tiny_inputs()
    with torch.no_grad():
        text = model.encode_text(inputs["input_ids"], inputs["attention_mask"])
        video = model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"])
        chunked = model.similarity(text, video)
        pair_1_2 = model.cross(text.text_features[1:2], video.frame_features[2:3], video.video_mask[2:3])
        model.config.cross_chunk_size = 5  # chunks that cut through rows
        torch.testing.assert_close(model.similarity(text, video), chunked)
    assert chunked.shape == (3, 3)
    torch.testing.assert_close(chunked[1, 2], pair_1_2[0])


@pytest.mark.parametrize("training", [False, True])
def test_first_token_only_equals_the_full_transformer_at_position_0(training):
    # the tight head pools position 0 only; its last layer computes just what position 0 needs
    model = tiny_clip4clip_model("tightTransf").train(training)
    transformer = model.cross.transformer
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(5, 4, 32, generator=generator, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]])
    full = transformer(tokens, mask)[:, :1]
    first = transformer(tokens, mask, first_token_only=True)
    assert first.shape == (5, 1, 32)
    torch.testing.assert_close(first, full, rtol=1e-5, atol=1e-6)
    full_grads = torch.autograd.grad(full.square().sum(), [tokens, *transformer.parameters()])
    first_grads = torch.autograd.grad(first.square().sum(), [tokens, *transformer.parameters()])
    for ours, reference in zip(first_grads, full_grads):
        torch.testing.assert_close(ours, reference, rtol=1e-4, atol=1e-6)


def test_pair_chunk_size_follows_the_memory_budget():
    from tvr.modeling.heads import CPU_PAIR_BUDGET_BYTES, pair_chunk_size

    config = tiny_clip4clip_model("tightTransf").config.temporal_config  # width 32, MLP 64, 2 heads
    # 5 tokens: 5 * (6 * 32 + 2 * 64) + 2 * 25 = 1650 values a pair; 4 bytes in fp32, 2 in bf16
    assert (config.hidden_size, config.intermediate_size, config.num_attention_heads) == (32, 64, 2)
    assert pair_chunk_size(config, 5, "cpu") == CPU_PAIR_BUDGET_BYTES // (1650 * 4)
    assert pair_chunk_size(config, 5, "cpu", torch.bfloat16) == CPU_PAIR_BUDGET_BYTES // (1650 * 2)
    wide = type(config)(hidden_size=4096, intermediate_size=16384, num_attention_heads=32)
    assert pair_chunk_size(wide, 1000, "cpu") == 64  # never fewer than MIN_PAIR_CHUNK pairs


def test_tight_transf_default_chunks_score_like_single_pairs(monkeypatch):
    import tvr.modeling.heads as heads

    model = tiny_clip4clip_model("tightTransf")
    assert model.config.cross_chunk_size is None
    inputs = tiny_inputs()
    with torch.no_grad():
        text = model.encode_text(inputs["input_ids"], inputs["attention_mask"])
        video = model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"])
        chunk_sizes = []
        budget = heads.pair_chunk_size

        def recording_budget(*args, **kwargs):
            chunk_sizes.append(budget(*args, **kwargs))
            return chunk_sizes[-1]

        monkeypatch.setattr(heads, "pair_chunk_size", recording_budget)
        scores = model.similarity(text, video)
        model.config.cross_chunk_size = 1
        torch.testing.assert_close(scores, model.similarity(text, video))
    assert chunk_sizes and chunk_sizes[0] > 9  # all 3 x 3 pairs in one call


@pytest.mark.parametrize("sim_header", HEADS)
def test_video_without_valid_frames_gives_finite_scores_and_gradients(sim_header):
    model = tiny_clip4clip_model(sim_header).train()
    inputs = tiny_inputs()
    inputs["video_mask"][2] = 0
    output = model(**inputs, return_loss=True)
    output.loss.backward()
    assert torch.isfinite(output.logits_per_text).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    if sim_header != "tightTransf":  # the pooled embedding is the zero vector: cosine 0
        assert torch.count_nonzero(output.video_embeds[2]) == 0
        assert torch.count_nonzero(output.logits_per_text[:, 2]) == 0


def test_video_without_valid_frames_in_half_precision_attention():
    model = tiny_clip4clip_model("tightTransf").to(torch.bfloat16)
    inputs = tiny_inputs()
    inputs["video_mask"][:] = 0
    with torch.no_grad():
        logits = model(**{**inputs, "pixel_values_videos": inputs["pixel_values_videos"].bfloat16()}).logits_per_text
    assert torch.isfinite(logits).all()


# ------------------------------------------------------------------------------------------ model contract / outputs


@pytest.mark.parametrize("sim_header", HEADS)
def test_forward_is_built_on_encode_and_similarity(sim_header):
    model = tiny_clip4clip_model(sim_header, linear_patch="3d")
    inputs = tiny_inputs()
    with torch.no_grad():
        output = model(**inputs, return_loss=True)
        text = model.encode_text(inputs["input_ids"], inputs["attention_mask"])
        video = model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"])
        text_features = model.get_text_embeds(inputs["input_ids"], inputs["attention_mask"])
        video_features = model.get_video_embeds(inputs["pixel_values_videos"], inputs["video_mask"])
    torch.testing.assert_close(output.logits_per_text, model.similarity(text, video))
    torch.testing.assert_close(output.logits_per_video, output.logits_per_text.t())
    torch.testing.assert_close(output.loss, contrastive_loss(output.logits_per_text))
    torch.testing.assert_close(text_features, output.text_embeds)
    torch.testing.assert_close(video_features, output.video_embeds)
    torch.testing.assert_close(output.text_embeds.norm(dim=-1), torch.ones(3))
    torch.testing.assert_close(output.video_embeds.norm(dim=-1), torch.ones(3))
    assert output.text_embeds.shape == output.video_embeds.shape == (3, 32)
    if sim_header != "tightTransf":  # loose heads score by a scaled dot product of the pooled embeddings (FAISS)
        expected = model.clip.logit_scale.exp() * output.text_embeds @ output.video_embeds.t()
        torch.testing.assert_close(output.logits_per_text, expected)
    assert model.gather_for_loss == (sim_header != "tightTransf")
    for encoding in (text, video):  # every field has the batch first
        assert all(value.shape[0] == 3 for value in encoding.values())


def test_encodings_concatenate_field_by_field():
    model = tiny_clip4clip_model("seqTransf")
    inputs = tiny_inputs(batch_size=4)
    with torch.no_grad():
        text = model.encode_text(inputs["input_ids"], inputs["attention_mask"])
        video = model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"])
        pixels, masks = inputs["pixel_values_videos"], inputs["video_mask"]
        parts = [model.encode_video(pixels[i : i + 3], masks[i : i + 3]) for i in (0, 3)]
    merged = concat_encodings(parts)
    assert isinstance(merged, VideoEncoding) and merged.video_embeds.shape == (4, 32)
    torch.testing.assert_close(model.similarity(text, merged), model.similarity(text, video))
    assert isinstance(concat_encodings(split_encoding(text, 3)), TextEncoding)


def test_inputs_are_checked_where_they_enter():
    model = tiny_clip4clip_model("seqTransf")
    inputs = tiny_inputs()
    with pytest.raises(ValueError, match="pixel_values_videos must be"):
        model.encode_video(inputs["pixel_values_videos"][0])
    with pytest.raises(ValueError, match="video_mask must be"):
        model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"][:, :2])
    with pytest.raises(ValueError, match="the model expects"):
        model.encode_video(torch.zeros(1, 2, 3, 8, 8))
    with pytest.raises(ValueError, match="exceed the seqTransf head's 16 positions"):
        model.encode_video(torch.zeros(1, 17, 3, 16, 16))
    with pytest.raises(ValueError, match="input_ids must be"):
        model.encode_text(inputs["input_ids"][:, None])
    with pytest.raises(Exception, match="sim_header must be one of"):
        tiny_clip4clip_config("meanPooling")
    with pytest.raises(Exception, match="must equal projection_dim"):
        tiny_clip4clip_config("seqTransf", projection_dim=64)


def test_pooling_and_loss_by_hand():
    features = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]], [[5.0, 5.0], [6.0, 6.0], [7.0, 7.0]]])
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    torch.testing.assert_close(masked_mean(features, mask), torch.tensor([[2.0, 3.0], [0.0, 0.0]]))
    frames = torch.tensor([[[3.0, 0.0], [0.0, 2.0], [-9.0, 9.0]]])  # normalised: (1, 0), (0, 1); third is padding
    pooled = mean_pool_normalized(frames, torch.tensor([[1, 1, 0]]))
    torch.testing.assert_close(pooled, torch.tensor([[1.0, 1.0]]) / math.sqrt(2))

    logits = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    rows = -math.log(math.e**2 / (math.e**2 + 1)) + math.log(2)
    columns = -math.log(math.e**2 / (math.e**2 + math.e)) - math.log(math.e / (1 + math.e))
    torch.testing.assert_close(contrastive_loss(logits), torch.tensor((rows / 2 + columns / 2) / 2))
    with pytest.raises(ValueError, match="square"):
        contrastive_loss(torch.zeros(2, 3))


# ------------------------------------------------------------------------------------------ transformers conventions


@pytest.mark.parametrize(
    ("sim_header", "linear_patch"), [("seqLSTM", "2d"), ("seqTransf", "3d"), ("tightTransf", "2d")]
)
def test_save_and_auto_load_round_trip(sim_header, linear_patch, tmp_path):
    model = tiny_clip4clip_model(sim_header, linear_patch)
    inputs = tiny_inputs()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "clip4clip" and "auto_map" not in saved  # loads without remote code
    assert isinstance(AutoConfig.from_pretrained(tmp_path), CLIP4ClipConfig)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert type(loaded) is CLIP4ClipModel
    assert loaded.config.temporal_config.num_hidden_layers == 1 and loaded.config.sim_header == sim_header
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits_per_text, model(**inputs).logits_per_text)
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in loaded.state_dict().items())


def test_missing_weights_are_initialised_on_load(tmp_path):
    model = tiny_clip4clip_model("tightTransf")
    model.save_pretrained(tmp_path)
    weights = safetensors.torch.load_file(tmp_path / "model.safetensors")
    kept = {key: value for key, value in weights.items() if not key.startswith("cross.")}
    safetensors.torch.save_file(kept, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded = CLIP4ClipModel.from_pretrained(tmp_path)
    cross = loaded.cross
    assert torch.equal(cross.pooler_norm.weight, torch.ones(32))
    assert torch.equal(cross.pooler_dense.bias, torch.zeros(32))
    assert torch.equal(cross.transformer.layers[0].layer_norm1.weight, torch.ones(32))
    assert 0.01 < cross.position_embeddings.weight.std() < 0.03  # N(0, initializer_range = 0.02)
    torch.testing.assert_close(loaded.clip.logit_scale, model.clip.logit_scale)  # loaded, not re-initialised


def test_random_init_follows_the_original():
    model = tiny_clip4clip_model("seqTransf")
    layer = model.temporal.transformer.layers[0]
    assert torch.equal(layer.layer_norm2.weight, torch.ones(32))
    assert torch.equal(layer.self_attn.q_proj.bias, torch.zeros(32))
    assert 0.01 < model.temporal.frame_position_embeddings.weight.std() < 0.03
    assert model.clip.logit_scale.item() == pytest.approx(model.config.logit_scale_init_value)
    lstm = tiny_clip4clip_model("seqLSTM").temporal.lstm  # PyTorch's default: U(-1/sqrt(h), 1/sqrt(h))
    assert lstm.weight_hh_l0.abs().max() <= 32**-0.5 and lstm.bias_ih_l0.abs().max() > 0.5 * 32**-0.5


@pytest.mark.parametrize("sim_header", ["seqTransf", "tightTransf"])
def test_sdpa_and_eager_attention_agree(sim_header):
    model = tiny_clip4clip_model(sim_header)
    inputs = tiny_inputs()
    inputs["video_mask"][2] = 0
    assert model.config.temporal_config._attn_implementation == "sdpa"
    with torch.no_grad():
        sdpa = model(**inputs).logits_per_text
        model.set_attn_implementation("eager")
        assert model.config.temporal_config._attn_implementation == "eager"
        eager = model(**inputs).logits_per_text
    torch.testing.assert_close(sdpa, eager, atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    model = tiny_clip4clip_model("seqTransf").train()
    inputs = tiny_inputs()
    model(**inputs, return_loss=True).loss.backward()
    reference = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    reference_loss = model(**inputs, return_loss=True).loss.detach()
    model.zero_grad()
    model.activation_checkpointing_enable()
    layers = [module for module in model.modules() if isinstance(module, GradientCheckpointingLayer)]
    checkpointed = [layer for layer in layers if layer.gradient_checkpointing]
    assert len(checkpointed) == 5  # 2 text + 2 vision + 1 temporal layer
    loss = model(**inputs, return_loss=True).loss
    loss.backward()
    torch.testing.assert_close(loss.detach(), reference_loss)
    assert reference.keys() == {name for name, p in model.named_parameters() if p.grad is not None}
    for name, grad in reference.items():
        torch.testing.assert_close(model.get_parameter(name).grad, grad, atol=1e-6, rtol=1e-5, msg=name)


@pytest.mark.parametrize(("argument", "dtype"), [("dtype", torch.bfloat16), ("torch_dtype", torch.float16)])
def test_half_precision_loading(argument, dtype, tmp_path):
    model = tiny_clip4clip_model("seqTransf")
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path, **{argument: dtype}).eval()
    assert {p.dtype for p in loaded.parameters()} == {dtype}
    inputs = tiny_inputs()
    with torch.no_grad():
        half = loaded(**{**inputs, "pixel_values_videos": inputs["pixel_values_videos"].to(dtype)})
        full = model(**inputs)
    assert half.text_embeds.dtype == dtype
    torch.testing.assert_close(half.text_embeds.float(), full.text_embeds, atol=3e-2, rtol=0)
    torch.testing.assert_close(half.video_embeds.float(), full.video_embeds, atol=3e-2, rtol=0)
