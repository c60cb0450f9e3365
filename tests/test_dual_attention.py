"""DAVRL (`DualAttentionModel` + `peft` LoRA): parity with the original code through `tvr convert dual_attention`,
the LoRA budget, adapter-only save / load (AutoModel, PeftModel, merge), head-averaged selection, config checks."""

import json

import pytest
import torch
import torch.nn.functional as F
from huggingface_hub.errors import StrictDataclassClassValidationError
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModel

from conftest import FIXTURES
from model_testers import (
    TOWER_TYPES,
    RetrievalModelTester,
    tiny_image_text_model,
    tiny_inputs,
    tiny_text_config,
    tiny_vision_config,
)
from tvr import DualAttentionConfig, DualAttentionModel
from tvr.cli import main as tvr_main
from tvr.methods.dual_attention import get_dual_attention_peft_model
from tvr.methods.dual_attention.convert import dual_attention_config_from_checkpoint
from tvr.peft import BASE_RECORD_NAME, adapter_base_model, save_adapter
from tvr.utils.fingerprint import weights_fingerprint

CASE = "tiny_dual_attention"
# The fixture run's flags, as passed to the original main.py (meta.json "arguments").
ORIGINAL_ARGS = ("--max_frames 4 --lora_dim 8 --global_visual_prompt_length 8 --visual_output_type global_token0 "
                 "--sel_layer 2 --frame_per_seg 2-4 --seg_num 2-1 --seg_layer 3-4 --r 2 --select Dual-Attention "
                 "--alpha 0.4 --shared_latent_space transformer --base_encoder ViT-B/32")


@pytest.fixture(scope="module")
def case_dir():
    return FIXTURES / "davrl" / CASE


@pytest.fixture(scope="module")
def converted(case_dir, tmp_path_factory):
    """The fixture checkpoint through the converter's command line."""
    output = tmp_path_factory.mktemp("davrl") / "converted"
    tvr_main(["convert", "dual_attention", str(case_dir / "pytorch_model.bin"), str(output),
              "--original-args", ORIGINAL_ARGS])
    return output


def fixture_inputs(case_dir):
    inputs = load_file(case_dir / "inputs.safetensors")
    return {"input_ids": inputs["text_ids"], "attention_mask": inputs["text_mask"],
            "pixel_values_videos": inputs["video"], "video_mask": inputs["video_mask"]}


def scores(model, inputs):
    with torch.no_grad():
        return model(**inputs, return_loss=True)


# ------------------------------------------------------------------------------------------------ parity


def test_converted_folders(converted, case_dir):
    meta = json.loads((case_dir / "meta.json").read_text())
    config = json.loads((converted / "base" / "config.json").read_text())
    assert config["model_type"] == "dual_attention"
    assert (config["sel_layers"], config["r_drop"], config["alpha"]) == ([2], 2, 0.4)
    assert (config["seg_layers"], config["seg_num"], config["frame_per_seg"]) == ([3, 4], [2, 1], [2, 4])
    assert (config["max_frames"], config["lora_rank"], config["num_global_tokens"]) == (4, 8, 8)
    adapter_config = json.loads((converted / "adapter_config.json").read_text())
    assert (adapter_config["r"], adapter_config["lora_alpha"], adapter_config["lora_dropout"]) == (8, 8, 0.0)
    assert adapter_config["target_modules"] == ["qkv_proj"] and adapter_config["modules_to_save"] == ["global_tokens"]
    # the base is recorded relative to the adapter folder (a moved folder still loads), with its weights' fingerprint
    assert adapter_base_model(converted) == "base"
    assert json.loads((converted / BASE_RECORD_NAME).read_text()) == {
        "base_weights_fingerprint": weights_fingerprint(converted / "base")}
    with safe_open(converted / "adapter_model.safetensors", "pt") as adapter:
        keys = list(adapter.keys())
        lora_numel = sum(adapter.get_slice(key).get_shape()[0] * adapter.get_slice(key).get_shape()[1]
                         for key in keys if ".lora_" in key)
    assert lora_numel == meta["trainable_params_in_this_tiny_model"] == 16384
    assert "base_model.model.global_tokens.embeddings" in keys  # the tokens travel with the adapter
    assert not (converted / "model.safetensors").exists()


def test_auto_model_loads_base_and_adapter_and_matches_the_original(converted, case_dir):
    expected = load_file(case_dir / "expected.safetensors")
    model = AutoModel.from_pretrained(converted).eval()
    assert isinstance(model, DualAttentionModel) and any(isinstance(m, LoraLayer) for m in model.modules())
    output = scores(model, fixture_inputs(case_dir))
    torch.testing.assert_close(output.logits_per_text, expected["sim_matrix"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(output.text_encoding.text_features, expected["text_feat"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(output.video_encoding.video_features, expected["video_feat"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(output.loss, expected["loss"][0], rtol=1e-4, atol=1e-4)
    pixel_values_videos = fixture_inputs(case_dir)["pixel_values_videos"]
    features = model.get_video_features(pixel_values_videos).pooler_output
    torch.testing.assert_close(features, expected["video_feat"], rtol=1e-4, atol=1e-4)
    embeds = model.get_video_embeds(pixel_values_videos)
    torch.testing.assert_close(embeds, F.normalize(expected["video_feat"], dim=-1), rtol=1e-4, atol=1e-5)


def test_peft_model_and_merged_model_match_the_original(converted, case_dir):
    expected = load_file(case_dir / "expected.safetensors")
    inputs = fixture_inputs(case_dir)
    base = AutoModel.from_pretrained(converted / "base").eval()
    without_adapter = scores(base, inputs).logits_per_text
    assert (without_adapter - expected["sim_matrix"]).abs().max() > 0.1  # the adapter matters on this case
    peft_model = PeftModel.from_pretrained(base, converted).eval()
    torch.testing.assert_close(scores(peft_model, inputs).logits_per_text, expected["sim_matrix"], rtol=1e-4,
                               atol=1e-4)
    merged = peft_model.merge_and_unload()
    assert type(merged) is DualAttentionModel and not any(isinstance(m, LoraLayer) for m in merged.modules())
    torch.testing.assert_close(scores(merged, inputs).logits_per_text, expected["sim_matrix"], rtol=1e-4, atol=1e-4)


def test_converter_reads_dims_from_keys_and_refuses_to_override_them(case_dir):
    state_dict = torch.load(case_dir / "pytorch_model.bin", map_location="cpu", weights_only=True)
    with pytest.raises(ValueError, match="lora_rank"):
        dual_attention_config_from_checkpoint(state_dict, lora_rank=4, max_frames=4)
    # layer 0 and layers past the tower's depth are ignored by the original, with their segment entries
    config = dual_attention_config_from_checkpoint(
        state_dict, max_frames=4, r_drop=2, sel_layers=[0, 2], seg_layers=[3, 4, 12], seg_num=[2, 1, 1],
        frame_per_seg=[2, 4, 4])
    assert (config.sel_layers, config.seg_layers, config.seg_num, config.frame_per_seg) == ([2], [3, 4], [2, 1],
                                                                                            [2, 4])


# ------------------------------------------------------------------------------------------------ LoRA budget


def test_vit_b32_lora_budget_is_the_originals():
    with torch.device("meta"):
        model = DualAttentionModel(DualAttentionConfig())  # ViT-B/32-sized towers, no weights
    peft_model = get_dual_attention_peft_model(model)
    trainable, _ = peft_model.get_nb_trainable_parameters()
    assert trainable == 491_520  # 12 x (8*768 + 2304*8) + 12 x (8*512 + 1536*8)
    clip_parameters = sum(p.numel() for name, p in model.clip.named_parameters() if "lora_" not in name)
    assert clip_parameters == 151_277_313  # OpenAI ViT-B/32
    assert round(100 * trainable / clip_parameters, 3) == 0.325
    names = [name for name, p in peft_model.named_parameters() if p.requires_grad]
    assert names and all(".qkv_proj.lora_A." in name or ".qkv_proj.lora_B." in name for name in names)


def test_trainable_global_tokens_go_through_modules_to_save():
    config = DualAttentionConfig(text_config=tiny_text_config(), vision_config=tiny_vision_config(), projection_dim=32,
                                 max_frames=4, sel_layers=[], seg_layers=[1], seg_num=[1], frame_per_seg=[4],
                                 num_global_tokens=3, lora_rank=2, global_tokens_trainable=True)
    peft_model = get_dual_attention_peft_model(DualAttentionModel(config))
    names = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert "base_model.model.global_tokens.modules_to_save.default.embeddings" in names
    lora = 2 * 2 * (2 * 32 + 96 * 2)  # two layers per tower, two towers
    assert peft_model.get_nb_trainable_parameters()[0] == lora + 3 * 32
    roles = peft_model.get_base_model().parameter_roles()
    assert {roles[name] for name in roles if "lora_" in name or "modules_to_save" in name} == {"new"}
    assert {roles[name] for name in roles if "lora_" not in name and "modules_to_save" not in name} == {"frozen"}


# ------------------------------------------------------------------------------------------------ save / load


TESTER = RetrievalModelTester(
    model_class=DualAttentionModel, vision_config={"num_hidden_layers": 4, "patch_size": 4}, num_global_tokens=3,
    lora_rank=4, sel_layers=[1], r_drop=5, alpha=0.4, seg_layers=[2, 3], seg_num=[2, 1], frame_per_seg=[2, 4],
)


def tiny_config(**overrides) -> DualAttentionConfig:
    """4 frames of 16 px with 4 px patches (16 patches + CLS), a 4-layer 2-head vision tower: selection before layer 1,
    strided segments before layers 2 and 3."""
    return TESTER.get_config(**overrides)


def test_adapter_round_trips_through_auto_model_peft_and_merge(tmp_path):
    torch.manual_seed(0)
    model = DualAttentionModel(tiny_config()).eval()
    base_dir, adapter_dir = tmp_path / "base", tmp_path / "adapter"
    model.save_pretrained(base_dir)
    peft_model = get_dual_attention_peft_model(model)
    with torch.no_grad():  # a "trained" adapter: B is zero at init
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.3)
    peft_model.eval()
    inputs = tiny_inputs(batch_size=3, num_frames=4)
    reference = scores(peft_model, inputs).logits_per_text
    save_adapter(peft_model, adapter_dir, base_model_name_or_path=str(base_dir))
    assert {path.name for path in adapter_dir.iterdir()} >= {"adapter_config.json", "adapter_model.safetensors"}
    assert not (adapter_dir / "model.safetensors").exists()
    assert (adapter_dir / "adapter_model.safetensors").stat().st_size < 0.2 * (base_dir / "model.safetensors").stat(
    ).st_size

    loaded = AutoModel.from_pretrained(adapter_dir).eval()
    torch.testing.assert_close(scores(loaded, inputs).logits_per_text, reference)
    peft_loaded = PeftModel.from_pretrained(AutoModel.from_pretrained(base_dir), adapter_dir).eval()
    torch.testing.assert_close(scores(peft_loaded, inputs).logits_per_text, reference)
    merged = peft_loaded.merge_and_unload()
    assert (scores(merged, inputs).logits_per_text - reference).abs().max() < 1e-4
    assert (scores(AutoModel.from_pretrained(base_dir).eval(), inputs).logits_per_text - reference).abs().max() > 1e-2


@pytest.mark.parametrize("tower_type", [t for t in TOWER_TYPES if t != "siglip"])
def test_from_image_text_model_fuses_the_towers_qkv(tower_type):
    image_text_model = tiny_image_text_model(tower_type)
    model = DualAttentionModel.from_image_text_model(
        image_text_model, max_frames=4, sel_layers=[], seg_layers=[1], seg_num=[1], frame_per_seg=[4]).eval()
    attention = model.clip.text_model.encoder.layers[0].self_attn
    source = image_text_model.text_model.encoder.layers[0].self_attn
    torch.testing.assert_close(attention.qkv_proj.weight,
                               torch.cat([source.q_proj.weight, source.k_proj.weight, source.v_proj.weight]))
    inputs = tiny_inputs()
    with torch.no_grad():  # no adapter: the text tower is the image-text model's
        expected = image_text_model.get_text_features(inputs["input_ids"], inputs["attention_mask"])
        expected = getattr(expected, "pooler_output", expected)
        torch.testing.assert_close(model.encode_text(inputs["input_ids"], inputs["attention_mask"]).text_features,
                                   expected, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------------------------------------ the vision forward


def reference_video_features(model: DualAttentionModel, pixel_values_videos: torch.Tensor, per_head_maps: list):
    """The original's vision forward, written in its own layout: LND sequences, frames token-major (token n of frame
    t at n * T + t), attention computed head by head and the maps averaged explicitly (`per_head_maps` collects the
    per-head CLS rows of the selection layer's input maps)."""
    config, clip = model.config, model.clip
    batch, num_frames = pixel_values_videos.shape[:2]
    frames = clip.embed_frames(pixel_values_videos).view(batch, num_frames, -1, config.vision_config.hidden_size)
    width, num_global = frames.shape[-1], config.num_global_tokens
    x = torch.cat([model.global_tokens.embeddings.expand(batch, -1, -1).transpose(0, 1),
                   frames.permute(2, 1, 0, 3).reshape(-1, batch, width)])  # (G + L*T, B, D)
    units, local_map, global_map = num_frames, None, None

    def attend(layer, queries_in, keys_in):  # (Lq, N, D), (Lk, N, D) -> output, head-averaged probs, per-head probs
        attention = layer.self_attn
        heads, head_dim = attention.num_heads, attention.head_dim
        q_weight, k_weight, v_weight = attention.qkv_proj.weight.chunk(3)
        q_bias, k_bias, v_bias = attention.qkv_proj.bias.chunk(3)
        outputs, probs = [], []
        for head in range(heads):
            rows = slice(head * head_dim, (head + 1) * head_dim)
            q = F.linear(queries_in, q_weight[rows], q_bias[rows]).transpose(0, 1)
            k = F.linear(keys_in, k_weight[rows], k_bias[rows]).transpose(0, 1)
            v = F.linear(keys_in, v_weight[rows], v_bias[rows]).transpose(0, 1)
            p = torch.softmax(q @ k.transpose(1, 2) * head_dim**-0.5, dim=-1)
            probs.append(p)
            outputs.append(p @ v)
        output = attention.out_proj(torch.cat(outputs, dim=-1)).transpose(0, 1)
        return output, sum(probs) / heads, probs

    for index, layer in enumerate(clip.vision_layers):
        if index in config.sel_layers:
            frame_tokens = (x.shape[0] - num_global) // num_frames
            local_score = local_map[:, 0, 1:].reshape(num_frames, batch, -1).transpose(0, 1)  # (B, T, P)
            global_score = global_map[:, 0, num_global:].reshape(batch, frame_tokens, num_frames)[:, 1:]
            importance = config.alpha * global_score.transpose(1, 2) + (1 - config.alpha) * local_score
            keep = torch.argsort(importance, dim=-1, descending=True)[..., : -config.r_drop]  # (B, T, kept)
            tokens = x[num_global:].view(frame_tokens, num_frames, batch, width)
            patches = torch.stack([torch.stack([tokens[1:, t, b][keep[b, t]] for t in range(num_frames)], dim=1)
                                   for b in range(batch)], dim=2)  # (kept, T, B, D)
            x = torch.cat([x[:num_global], tokens[:1].reshape(-1, batch, width), patches.reshape(-1, batch, width)])
        if index in config.seg_layers:
            segments = config.seg_num[config.seg_layers.index(index)]
            cls_per_unit = num_frames // units
            cls = x[num_global: num_global + cls_per_unit * units].reshape(-1, segments, batch, width)
            patches = x[num_global + cls_per_unit * units:].reshape(-1, segments, batch, width)
            x = torch.cat([x[:num_global], cls.reshape(-1, batch, width), patches.reshape(-1, batch, width)])
            units = segments
        hidden = layer.layer_norm1(x)
        local = hidden[num_global:].reshape(-1, units * batch, width)
        local_out, local_map, local_heads = attend(layer, local, local)
        global_out, global_map, _ = attend(layer, hidden[:num_global], hidden)
        if index + 1 in config.sel_layers:
            per_head_maps.extend(head[:, 0, 1:] for head in local_heads)
        x = x + torch.cat([global_out, local_out.reshape(-1, batch, width)])
        x = x + layer.mlp(layer.layer_norm2(x))
    # every visual_output_type from the final layout: the global tokens, and each final unit's first token
    global_tokens, first_tokens = clip.project_tokens(x[:num_global]), clip.project_tokens(x[num_global:][:units])
    return {
        "global_token0": global_tokens[0],
        "average_global_token": global_tokens.mean(dim=0),
        "average_frame_cls_token": first_tokens.mean(dim=0),
        "average_global_token_and_frame_cls_token": torch.cat([global_tokens, first_tokens]).mean(dim=0),
    }


def test_two_head_vision_forward_matches_the_originals_layout_and_head_averaged_selection():
    torch.manual_seed(1)
    model = DualAttentionModel(tiny_config(seg_layers=[2], seg_num=[2], frame_per_seg=[2])).eval()
    assert model.config.vision_config.num_attention_heads == 2
    with torch.no_grad():
        for layer in model.clip.vision_layers:  # larger weights: heads that disagree, peaked maps
            layer.self_attn.qkv_proj.weight.mul_(8)
        video = tiny_inputs(batch_size=2, num_frames=4)["pixel_values_videos"]
        per_head = []
        expected = reference_video_features(model, video, per_head)
        for output_type, features in expected.items():  # the last layer runs on 2 segments of 2 frames
            model.config.visual_output_type = output_type
            torch.testing.assert_close(model.encode_video(video).video_features, features, rtol=1e-4, atol=1e-4)
    # the test has power: the two heads' CLS rows would select different patches than their average
    ranks = [torch.argsort(row, dim=-1, descending=True)[:, :-5].sort(dim=-1).values for row in per_head]
    assert not torch.equal(ranks[0], ranks[1])


def test_regrouping_is_strided():
    # 4 units of [1 CLS, 2 patches], tokens numbered unit * 10 + position
    units = (torch.arange(4)[:, None] * 10 + torch.arange(3)).float().view(1, 4, 3, 1)
    segments = DualAttentionModel._regroup(units, cls_per_unit=1, num_segments=2)
    assert segments[0, :, :, 0].tolist() == [[0, 20, 1, 21, 2, 22], [10, 30, 11, 31, 12, 32]]  # frames {0,2}, {1,3}
    whole = DualAttentionModel._regroup(segments, cls_per_unit=2, num_segments=1)
    assert whole[0, 0, :4, 0].tolist() == [0, 10, 20, 30]  # every CLS first, frame by frame


# ------------------------------------------------------------------------------------------------ config


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"frame_per_seg": [3, 4]}, r"frame_per_seg \* seg_num != max_frames: 3 \* 2 != 4"),
        ({"seg_num": [2], "seg_layers": [2], "frame_per_seg": [2, 4]}, "one entry per regrouping"),
        ({"sel_layers": [2]}, "sel_layers .* must come before the first of seg_layers"),
        ({"sel_layers": [0]}, r"sel_layers must be increasing layer indices in \[1, 3\]"),
        ({"r_drop": 16}, "r_drop must be >= 1"),
        ({"alpha": 1.5}, r"alpha must be in \[0, 1\]"),
        ({"visual_output_type": "mean"}, "visual_output_type must be one of"),
        ({"select": "STA"}, "select must be one of"),
        ({"tower_type": "siglip", "text_config": None, "vision_config": None}, "tower_type must be one of"),
    ],
)
def test_config_errors_name_the_field(overrides, message):
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        tiny_config(**overrides)


def test_defaults_are_the_originals_and_frames_must_be_max_frames():
    config = DualAttentionConfig()
    assert (config.num_global_tokens, config.sel_layers, config.r_drop, config.alpha) == (8, [6], 10, 0.4)
    assert (config.seg_layers, config.seg_num, config.frame_per_seg) == ([8, 9, 10], [6, 3, 1], [2, 4, 12])
    assert (config.max_frames, config.lora_rank, config.visual_output_type) == (12, 8, "global_token0")
    assert config.global_tokens_trainable is False
    model = DualAttentionModel(tiny_config())
    with pytest.raises(ValueError, match="exactly max_frames = 4 frames"):
        model.encode_video(torch.zeros(1, 3, 3, 16, 16))


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    peft_model = get_dual_attention_peft_model(DualAttentionModel(tiny_config()))
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 0.3)
    inputs = tiny_inputs(batch_size=3, num_frames=4)

    def lora_gradients():
        peft_model.train().zero_grad()
        peft_model(**inputs, return_loss=True).loss.backward()
        return {name: p.grad.clone() for name, p in peft_model.named_parameters() if p.grad is not None}

    plain = lora_gradients()
    peft_model.activation_checkpointing_enable()
    assert all(layer.gradient_checkpointing for layer in peft_model.get_base_model().clip.vision_layers)
    checkpointed = lora_gradients()
    assert plain.keys() == checkpointed.keys() and len(plain) == 2 * (2 + 4)  # A and B of 2 text + 4 vision layers
    for name, gradient in plain.items():
        torch.testing.assert_close(checkpointed[name], gradient, rtol=1e-5, atol=1e-6)


def test_converted_folder_loads_moved_checks_its_base_and_merges(converted, case_dir, tmp_path, monkeypatch):
    """The converted folder through tvr's loader: from any working directory and after a move (its base is recorded
    as `base`), refused on a rewritten base naming both fingerprints (issue 23 item 3), loaded as before without the
    record (adapters saved by older tvr), merged by `tvr merge` into a plain folder with the same scores."""
    import shutil

    from safetensors.torch import save_file

    from tvr.loading import load_model, merge_adapter
    from tvr.utils.fingerprint import FingerprintMismatch

    expected = load_file(case_dir / "expected.safetensors")["sim_matrix"]
    moved = tmp_path / "moved" / "davrl"
    shutil.copytree(converted, moved)
    monkeypatch.chdir(tmp_path)
    model = load_model(moved)
    assert isinstance(model, PeftModel)
    torch.testing.assert_close(scores(model, fixture_inputs(case_dir)).logits_per_text, expected, rtol=1e-4, atol=1e-4)

    with pytest.warns(UserWarning, match="has no processor.*merging the model without a processor"):
        merge_adapter(moved, tmp_path / "merged")  # converted without --tokenizer
    merged = AutoModel.from_pretrained(tmp_path / "merged").eval()
    assert type(merged) is DualAttentionModel and not (tmp_path / "merged" / "adapter_config.json").exists()
    # logits of 10-50 (the similarity times the logit scale): float32 rounding of the merged weights, ~2e-6 relative
    torch.testing.assert_close(scores(merged, fixture_inputs(case_dir)).logits_per_text,
                               scores(model, fixture_inputs(case_dir)).logits_per_text, atol=1e-5, rtol=5e-6)

    recorded = weights_fingerprint(moved / "base")
    weights = load_file(moved / "base" / "model.safetensors")
    save_file({key: value * 1.01 if value.is_floating_point() else value for key, value in weights.items()},
              moved / "base" / "model.safetensors", metadata={"format": "pt"})
    now = weights_fingerprint(moved / "base")
    with pytest.raises(FingerprintMismatch, match=f"built from {recorded}, now {now}.*allow_base_change=True"):
        load_model(moved)
    with pytest.raises(FingerprintMismatch):
        merge_adapter(moved, tmp_path / "merged-again")
    load_model(moved, allow_base_change=True)
    (moved / BASE_RECORD_NAME).unlink()  # an adapter from before the record: loads as it did
    load_model(moved)
