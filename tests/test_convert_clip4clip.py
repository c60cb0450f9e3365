"""Converters: OpenAI CLIP -> transformers CLIPModel, original CLIP4Clip checkpoints -> CLIP4ClipModel folders."""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn
from transformers import CLIPModel

from tvr import CLIP4ClipModel
from tvr.cli import main
from tvr.convert import convert_clip4clip_checkpoint, convert_resblocks, load_original_state_dict
from tvr.convert.openai_clip import clip_config_from_openai
from tvr.methods.clip4clip.convert import clip4clip_config_from_checkpoint, infer_sim_header

FIXTURES = Path(__file__).parent / "fixtures" / "clip4clip"
OPENAI_CLIP = FIXTURES / "clip_openai_state_dict.bin"


def checkpoint(case: str) -> dict[str, torch.Tensor]:
    return load_original_state_dict(FIXTURES / case / "pytorch_model.bin")


@pytest.fixture(scope="module")
def openai_state_dict() -> dict[str, torch.Tensor]:
    return load_original_state_dict(OPENAI_CLIP)


class OpenAIResidualBlock(nn.Module):
    """OpenAI CLIP's residual block, written out here as the reference for the key mapping."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.attn = nn.MultiheadAttention(width, heads)
        self.ln_1 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict([("c_fc", nn.Linear(width, 4 * width)), ("c_proj", nn.Linear(4 * width, width))])
        )
        self.ln_2 = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (seq, batch, width), no mask
        y = self.ln_1(x)
        x = x + self.attn(y, y, y, need_weights=False)[0]
        hidden = self.mlp.c_fc(self.ln_2(x))
        return x + self.mlp.c_proj(hidden * torch.sigmoid(1.702 * hidden))


def test_convert_clip_cli_writes_a_transformers_clip(tmp_path, openai_state_dict):
    assert main(["convert", "clip", str(OPENAI_CLIP), str(tmp_path)]) == 0
    clip = CLIPModel.from_pretrained(tmp_path)
    text, vision = clip.config.text_config, clip.config.vision_config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads) == (128, 2, 2)
    assert (text.vocab_size, text.max_position_embeddings, text.eos_token_id, text.bos_token_id) == (320, 32, 319, 318)
    assert (vision.hidden_size, vision.num_hidden_layers, vision.num_attention_heads) == (64, 2, 1)
    assert (vision.patch_size, vision.image_size, clip.config.projection_dim) == (16, 32, 128)
    assert text.hidden_act == vision.hidden_act == "quick_gelu"
    assert clip.logit_scale.item() == pytest.approx(openai_state_dict["logit_scale"].item())

    in_proj = openai_state_dict["visual.transformer.resblocks.1.attn.in_proj_weight"].float()
    attention = clip.vision_model.encoder.layers[1].self_attn
    for index, projection in enumerate((attention.q_proj, attention.k_proj, attention.v_proj)):
        torch.testing.assert_close(projection.weight, in_proj[64 * index : 64 * (index + 1)], atol=0, rtol=0)
    assert torch.equal(clip.text_projection.weight, openai_state_dict["text_projection"].float().t())
    assert torch.equal(clip.vision_model.pre_layrnorm.bias, openai_state_dict["visual.ln_pre.bias"])


def test_resblock_mapping_computes_the_same_block(openai_state_dict):
    clip = CLIPModel(clip_config_from_openai(openai_state_dict))
    layers = convert_resblocks(dict(openai_state_dict), "transformer.resblocks.", "")
    clip.text_model.encoder.layers.load_state_dict({key: value.float() for key, value in layers.items()})
    reference = OpenAIResidualBlock(128, 2)
    prefix = "transformer.resblocks.1."
    block = {key[len(prefix) :]: value.float() for key, value in openai_state_dict.items() if key.startswith(prefix)}
    reference.load_state_dict(block)
    x = torch.randn(2, 5, 128)
    with torch.no_grad():
        expected = reference(x.transpose(0, 1)).transpose(0, 1)
        actual = clip.text_model.encoder.layers[1](x, None)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_convert_resblocks_removes_what_it_converts_and_refuses_incomplete_blocks(openai_state_dict):
    state_dict = {key: value for key, value in openai_state_dict.items() if key.startswith("transformer.resblocks.0.")}
    state_dict["transformer.resblocks.0.attn.rotary"] = torch.zeros(1)
    converted = convert_resblocks(state_dict, "transformer.resblocks.", "layers.")
    assert len(converted) == 16 and "layers.0.self_attn.v_proj.bias" in converted
    assert list(state_dict) == ["transformer.resblocks.0.attn.rotary"]  # left for the caller to refuse
    incomplete = {key: value for key, value in openai_state_dict.items() if key.startswith("transformer.resblocks.1.")}
    del incomplete["transformer.resblocks.1.ln_2.bias"]
    with pytest.raises(ValueError, match=r"transformer.resblocks.1 misses \['ln_2.bias'\]"):
        convert_resblocks(incomplete, "transformer.resblocks.", "layers.")


def test_openai_jit_archive_is_read(tmp_path, openai_state_dict):
    # OpenAI ships CLIP as a TorchScript archive, which torch.load(weights_only=True) refuses.
    root = nn.Module()
    for key, value in openai_state_dict.items():
        *path, leaf = key.split(".")
        module = root
        for name in path:
            if not hasattr(module, name):
                module.add_module(name, nn.Module())
            module = getattr(module, name)
        if value.is_floating_point():
            module.register_parameter(leaf, nn.Parameter(value, requires_grad=False))
        else:
            module.register_buffer(leaf, value)
    torch.jit.save(torch.jit.script(root), tmp_path / "ViT-tiny.pt")
    loaded = load_original_state_dict(tmp_path / "ViT-tiny.pt")
    assert loaded.keys() == openai_state_dict.keys()
    for key, value in openai_state_dict.items():
        assert torch.equal(loaded[key], value) and loaded[key].dtype == value.dtype, key
    assert main(["convert", "clip", str(tmp_path / "ViT-tiny.pt"), str(tmp_path / "clip")]) == 0
    assert (tmp_path / "clip" / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("case", "sim_header", "linear_patch", "layers"),
    [("meanP_2d", "meanP", "2d", None), ("seqLSTM_2d", "seqLSTM", "2d", None), ("seqTransf_2d", "seqTransf", "2d", 1),
     ("tightTransf_2d", "tightTransf", "2d", 1), ("seqTransf_3d", "seqTransf", "3d", 1)],
)
def test_config_is_read_from_the_checkpoint_keys(case, sim_header, linear_patch, layers):
    state_dict = checkpoint(case)
    assert infer_sim_header(state_dict) == sim_header
    config = clip4clip_config_from_checkpoint(state_dict, max_frames=4)
    assert (config.sim_header, config.linear_patch, config.max_frames) == (sim_header, linear_patch, 4)
    temporal = config.temporal_config
    assert (config.projection_dim, temporal.hidden_size, temporal.num_attention_heads) == (128, 128, 2)
    assert config.temporal_config.max_position_embeddings == 32
    if layers is not None:
        assert config.temporal_config.num_hidden_layers == layers


def test_unknown_and_missing_keys_are_refused(tmp_path):
    state_dict = checkpoint("seqTransf_2d")
    torch.save({**state_dict, "text_head.weight": torch.zeros(2)}, tmp_path / "unknown.bin")
    with pytest.raises(ValueError, match=r"unknown keys \['text_head.weight'\]"):
        main(["convert", "clip4clip", str(tmp_path / "unknown.bin"), str(tmp_path / "out")])
    torch.save({**state_dict, "clip.visual.conv3.weight": torch.zeros(2)}, tmp_path / "unknown_clip.bin")
    with pytest.raises(ValueError, match=r"unknown keys \['clip.visual.conv3.weight'\]"):
        convert_clip4clip_checkpoint(tmp_path / "unknown_clip.bin")
    del state_dict["frame_position_embeddings.weight"]
    torch.save(state_dict, tmp_path / "missing.bin")
    with pytest.raises(ValueError, match=r"missing keys \['temporal.frame_position_embeddings.weight'\]"):
        convert_clip4clip_checkpoint(tmp_path / "missing.bin")
    no_proj = {key: value for key, value in checkpoint("meanP_2d").items() if key != "clip.visual.proj"}
    torch.save(no_proj, tmp_path / "resnet_like.bin")
    with pytest.raises(ValueError, match="only ViT CLIP"):
        convert_clip4clip_checkpoint(tmp_path / "resnet_like.bin")
    assert not (tmp_path / "out").exists()


def test_seqlstm_unused_frame_positions_are_dropped():
    model = convert_clip4clip_checkpoint(FIXTURES / "seqLSTM_2d" / "pytorch_model.bin")
    assert not any("position" in key for key in model.state_dict() if not key.startswith("clip."))
    original = checkpoint("seqLSTM_2d")
    torch.testing.assert_close(model.temporal.lstm.weight_hh_l0, original["lstm_visual.weight_hh_l0"], atol=0, rtol=0)


def test_clip_option_fills_the_clip_keys_the_checkpoint_lacks(tmp_path):
    full = convert_clip4clip_checkpoint(FIXTURES / "seqTransf_3d" / "pytorch_model.bin")
    original = checkpoint("seqTransf_3d")
    head_only = {key: value for key, value in original.items() if not key.startswith("clip.") or "conv2" in key}
    torch.save(head_only, tmp_path / "head_only.bin")
    with pytest.raises(ValueError, match="holds no CLIP weights"):
        convert_clip4clip_checkpoint(tmp_path / "head_only.bin")
    filled = convert_clip4clip_checkpoint(tmp_path / "head_only.bin", clip=OPENAI_CLIP)
    for key, value in full.state_dict().items():
        assert torch.equal(filled.state_dict()[key], value), key


def test_clip_option_derives_missing_heads_like_the_original_loader(tmp_path):
    # A checkpoint with CLIP weights only (e.g. CLIP itself): the original derives the seqTransf head and the 3d
    # kernel from CLIP; so does the converter, giving what from_clip gives.
    clip_only = {f"clip.{key}": value for key, value in load_original_state_dict(OPENAI_CLIP).items()}
    torch.save(clip_only, tmp_path / "clip_only.bin")
    options = ["--clip", str(OPENAI_CLIP), "--sim-header", "seqTransf", "--temporal-layers", "1"]
    assert main(["convert", "clip4clip", str(tmp_path / "clip_only.bin"), str(tmp_path / "out"), *options]) == 0
    model = CLIP4ClipModel.from_pretrained(tmp_path / "out")
    assert model.config.temporal_config.num_hidden_layers == 1
    derived = safetensors.torch.load_file(FIXTURES / "seqTransf_2d" / "init_from_clip.safetensors")
    positions = derived["frame_position_embeddings.weight"]
    torch.testing.assert_close(model.temporal.frame_position_embeddings.weight, positions)
    text_layer = model.clip.text_model.encoder.layers[0].state_dict()
    for key, value in model.temporal.transformer.layers[0].state_dict().items():
        assert torch.equal(value, text_layer[key]), key
    with pytest.raises(ValueError, match=r"missing keys \['cross.pooler_dense.bias'"):  # trained weights: not derivable
        convert_clip4clip_checkpoint(
            tmp_path / "clip_only.bin", clip=OPENAI_CLIP, sim_header="tightTransf", temporal_layers=1
        )


@pytest.mark.parametrize("case", ["seqLSTM_2d", "seqTransf_3d", "tightTransf_2d"])
def test_half_precision_conversion_matches_the_original_fp16_run(case):
    # The original runs CLIP with fp16 weights; a float16 conversion lands within the fixture's loose tolerance.
    model = convert_clip4clip_checkpoint(FIXTURES / case / "pytorch_model.bin", dtype=torch.float16)
    assert {p.dtype for p in model.parameters()} == {torch.float16}
    inputs = safetensors.torch.load_file(FIXTURES / "inputs.safetensors")
    expected = safetensors.torch.load_file(FIXTURES / case / "expected.safetensors")
    with torch.no_grad():
        logits = model(
            input_ids=inputs["input_ids"][:, 0],
            attention_mask=inputs["attention_mask"][:, 0],
            pixel_values_videos=inputs["video"][:, 0, :, 0].half(),
            video_mask=inputs["video_mask"][:, 0],
        ).logits_per_text
    torch.testing.assert_close(logits.float(), expected["sim_matrix_mixed_fp16"], atol=2e-2, rtol=1e-2)
