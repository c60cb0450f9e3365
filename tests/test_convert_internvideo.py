"""InternVideo converters against the golden fixtures (original code run on CPU, fp32): `tvr convert internvideo`
(fine-tuned checkpoint) and `tvr convert internvideo-zeroshot` (MergeClip), loaded back with AutoModel."""

import json
from pathlib import Path

import pytest
import safetensors.torch
import torch
from transformers import AutoModel

import tvr
from tvr import InternVideoModel
from tvr.cli import main
from tvr.convert.openai_clip import load_original_state_dict
from tvr.evaluation.postprocessing import dual_softmax
from tvr.methods.internvideo.convert import (
    convert_internvideo_checkpoint,
    convert_internvideo_state_dict,
    internvideo_config_from_checkpoint,
    merge_clip_state_dict,
    strip_clip_prefix,
)

FIXTURES = Path(__file__).parent / "fixtures" / "internvideo"
# case -> (vision heads: not width // 64 in the tiny fixtures, so they come from --set)
CASES = {"tiny_w32_f4_ret23": 2, "tiny_w36_f6_ret123": 3}
ATOL, RTOL = 1e-4, 1e-5  # the fixtures' tolerance


def meta(case: str) -> dict:
    return json.loads((FIXTURES / case / "meta.json").read_text())


def load(case: str, name: str) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(FIXTURES / case / f"{name}.safetensors")


def set_options(case: str) -> list[str]:
    config = meta(case)["config"]
    return [
        "--set", f"vision_config.num_attention_heads={CASES[case]}",
        "--original-args", f"--max_frames {config['max_frames']} --max_words {config['context_length']} --lr 1e-3",
    ]


def run_original_eval(model: InternVideoModel, inputs: dict[str, torch.Tensor]):
    """The fixture inputs in tvr's layout: `(batch, 1, ...)` pairs and `(batch, 1, T, 1, 3, H, W)` videos."""
    with torch.no_grad():
        return model(
            input_ids=inputs["input_ids"][:, 0],
            attention_mask=inputs["input_mask"][:, 0],
            pixel_values_videos=inputs["video"][:, 0, :, 0],
            video_mask=inputs["video_mask"][:, 0],
        )


def assert_outputs_match(out, expected):
    torch.testing.assert_close(out.logits_per_text, expected["sim_matrix"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(out.text_encoding.text_features, expected["text_feat"][:, 0], atol=1e-5, rtol=RTOL)
    torch.testing.assert_close(out.video_encoding.video_features, expected["video_feat"][:, 0], atol=1e-5, rtol=RTOL)
    # DSL as the original's eval_epoch computes both matrices (t2v and v2t)
    sim = out.logits_per_text
    torch.testing.assert_close(dual_softmax(sim).float(), expected["sim_matrix_dsl"], atol=ATOL, rtol=RTOL)
    torch.testing.assert_close(dual_softmax(sim.T).float(), expected["sim_matrix_dsl_T"], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("case", CASES)
def test_finetuned_checkpoint_through_the_cli(case, tmp_path):
    out_dir = tmp_path / "converted"
    assert main(["convert", "internvideo", str(FIXTURES / case / "pytorch_model.bin"), str(out_dir),
                 *set_options(case)]) == 0
    model = AutoModel.from_pretrained(out_dir)
    assert isinstance(model, InternVideoModel)
    config, original = model.config, meta(case)["config"]
    assert config.extractor_layers == original["return_list"]  # the last layers, as the original's return_list
    assert (config.max_frames, config.max_words) == (original["max_frames"], original["context_length"])
    assert config.extractor_heads == original["extractor_heads"] and config.temporal_branch_pretrained
    assert (config.vision_config.hidden_size, config.vision_config.patch_size) == (original["vision_width"], 8)
    assert config.text_config.num_attention_heads == meta(case)["text_heads"]  # width // 64, read from the keys
    inputs, expected = load(case, "inputs"), load(case, "expected")
    assert_outputs_match(run_original_eval(model, inputs), expected)

    # train-mode loss: the original's forward in training mode (symmetric InfoNCE over the batch)
    model.train()
    loss = model(
        input_ids=inputs["input_ids"][:, 0],
        attention_mask=inputs["input_mask"][:, 0],
        pixel_values_videos=inputs["video"][:, 0, :, 0],
        video_mask=inputs["video_mask"][:, 0],
        return_loss=True,
    ).loss
    torch.testing.assert_close(loss.detach(), expected["loss"], atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("case", CASES)
def test_zeroshot_merge_through_the_cli(case, tmp_path):
    weight = meta(case)["config"]["mergeweight"]
    out_dir = tmp_path / "zeroshot"
    assert main(["convert", "internvideo-zeroshot", str(FIXTURES / case / "internvideo_pretrained.ckpt"),
                 str(out_dir), "--clip", str(FIXTURES / case / "clip_openai_state_dict.bin"),
                 "--merge-weight", str(weight), *set_options(case)]) == 0
    model = AutoModel.from_pretrained(out_dir)
    assert_outputs_match(run_original_eval(model, load(case, "inputs")), load(case, "expected_zeroshot"))
    # the saved weights are exactly the original's merged state dict, converted
    reference = convert_internvideo_state_dict(load(case, "merged_state_dict"))
    saved = model.state_dict()
    assert reference.keys() == saved.keys()
    for key, value in reference.items():
        assert torch.equal(saved[key], value), key


@pytest.mark.parametrize("case", CASES)
def test_merge_rule_gives_the_original_merged_weights_exactly(case):
    info = meta(case)
    internvideo = strip_clip_prefix(load_original_state_dict(FIXTURES / case / "internvideo_pretrained.ckpt"))
    clip = load_original_state_dict(FIXTURES / case / "clip_openai_state_dict.bin")
    assert clip["visual.conv1.weight"].dtype == torch.float16 and clip["visual.conv1.weight"].dim() == 4
    merged = merge_clip_state_dict(internvideo, clip, info["config"]["mergeweight"])
    reference = load(case, "merged_state_dict")
    assert merged.keys() == reference.keys()
    for key, value in reference.items():
        assert merged[key].dtype == value.dtype and torch.equal(merged[key], value), key
    changed = {key for key in merged if not torch.equal(merged[key], internvideo[key])}
    assert changed == set(info["merged_keys"])
    assert set(merged) - changed == set(info["not_merged_keys"])


def test_merge_weight_comes_from_the_original_flags(tmp_path):
    case = "tiny_w36_f6_ret123"  # its merge weight is 0.25, not the default 0.5
    options = ["--set", "vision_config.num_attention_heads=3", "--original-args", "--mergeclip True --mergeweight 0.25"]
    assert main(["convert", "internvideo-zeroshot", str(FIXTURES / case / "internvideo_pretrained.ckpt"),
                 str(tmp_path), "--clip", str(FIXTURES / case / "clip_openai_state_dict.bin"), *options]) == 0
    model = AutoModel.from_pretrained(tmp_path)
    reference = load(case, "merged_state_dict")
    torch.testing.assert_close(model.clip.logit_scale, reference["logit_scale"], atol=0, rtol=0)


def test_config_is_read_from_the_keys_and_set_overrides_it():
    state_dict = strip_clip_prefix(load_original_state_dict(FIXTURES / "tiny_w36_f6_ret123" / "pytorch_model.bin"))
    config = internvideo_config_from_checkpoint(state_dict)
    vision, text = config.vision_config, config.text_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.image_size, vision.patch_size) == (36, 4, 24, 8)
    assert (text.hidden_size, text.num_hidden_layers, text.max_position_embeddings, text.vocab_size) == (128, 1, 12, 80)
    assert (text.eos_token_id, config.projection_dim, config.extractor_layers) == (79, 32, [1, 2, 3])
    assert config.logit_scale_init_value == pytest.approx(state_dict["logit_scale"].item())
    config = internvideo_config_from_checkpoint(
        dict(state_dict), extractor_layers=[0, 2, 3], max_frames=12, **{"vision_config.num_attention_heads": 3}
    )
    assert (config.extractor_layers, config.extractor_heads, config.max_frames) == ([0, 2, 3], 3, 12)
    with pytest.raises(ValueError, match="checkpoint has 3 extractor layers"):
        internvideo_config_from_checkpoint(dict(state_dict), extractor_layers=[2, 3])
    with pytest.raises(ValueError, match="dotted keys set text_config"):
        internvideo_config_from_checkpoint(dict(state_dict), **{"temporal_config.num_hidden_layers": 1})


def test_unknown_and_malformed_checkpoints_are_refused(tmp_path):
    original = load_original_state_dict(FIXTURES / "tiny_w32_f4_ret23" / "pytorch_model.bin")
    torch.save({**original, "clip.visual.transformer.dec.0.rpb_t": torch.zeros(2)}, tmp_path / "unknown.bin")
    with pytest.raises(ValueError, match=r"unknown keys \['visual.transformer.dec.0.rpb_t'\]"):
        main(["convert", "internvideo", str(tmp_path / "unknown.bin"), str(tmp_path / "out")])
    torch.save({**original, "cross.pooler.dense.weight": torch.zeros(2)}, tmp_path / "outside.bin")
    with pytest.raises(ValueError, match=r"outside 'clip.'.*cross.pooler.dense.weight"):
        convert_internvideo_checkpoint(tmp_path / "outside.bin")
    conv3d = dict(original)
    conv3d["clip.visual.conv1.weight"] = original["clip.visual.conv1.weight"].repeat(1, 1, 3, 1, 1)
    torch.save(conv3d, tmp_path / "conv3d.bin")
    with pytest.raises(ValueError, match="only a 1-frame patch kernel"):
        convert_internvideo_checkpoint(tmp_path / "conv3d.bin")
    no_branch = {key: value for key, value in original.items() if "balance" not in key}
    torch.save(no_branch, tmp_path / "no_branch.bin")
    with pytest.raises(ValueError, match="temporal branch is missing"):
        convert_internvideo_checkpoint(tmp_path / "no_branch.bin")
    assert not (tmp_path / "out").exists()


def test_pretrained_checkpoint_converts_unmerged():
    # the pretrained .ckpt wraps the same keys in {"state_dict": ...}: the fine-tuned converter reads it as it is
    model = convert_internvideo_checkpoint(
        FIXTURES / "tiny_w32_f4_ret23" / "internvideo_pretrained.ckpt", **{"vision_config.num_attention_heads": 2}
    )
    original = load_original_state_dict(FIXTURES / "tiny_w32_f4_ret23" / "internvideo_pretrained.ckpt")
    assert torch.equal(model.temporal.balance, original["clip.visual.transformer.balance"])
    assert torch.equal(model.clip.visual_projection.weight, original["clip.visual_proj"].t())


# ------------------------------------------------------------------------------------------------ merge_weights


def test_merge_weights_rule():
    a = {"w": torch.tensor([1.0, 2.0], dtype=torch.float16), "ids": torch.arange(3), "only_a": torch.ones(1)}
    b = {"w": torch.tensor([3.0, 6.0]), "ids": torch.arange(3), "only_b": torch.full((2,), 7.0)}
    merged = tvr.merge_weights(a, b, weight=0.25)
    assert list(merged) == ["w", "ids", "only_b"]  # b's keys, in b's order; a-only keys ignored
    assert merged["w"].dtype == torch.float32  # fp16 upcast before mixing
    torch.testing.assert_close(merged["w"], torch.tensor([0.25 * 1 + 0.75 * 3, 0.25 * 2 + 0.75 * 6]))
    assert torch.equal(merged["ids"], b["ids"]) and merged["only_b"] is b["only_b"]
    assert torch.equal(tvr.merge_weights(a, b, 0.0)["w"], b["w"])
    with pytest.raises(ValueError, match="must be in \\[0, 1\\]"):
        tvr.merge_weights(a, b, 1.5)
    with pytest.raises(ValueError, match="'w' has shape \\(3,\\) in a, \\(2,\\) in b"):
        tvr.merge_weights({"w": torch.zeros(3)}, b)
    with pytest.raises(ValueError, match="non-floating 'ids' differs"):
        tvr.merge_weights({"ids": torch.arange(1, 4)}, b)


def test_merge_weights_on_two_tvr_models():
    # weight-space ensembling of two models of one architecture, e.g. zero-shot and fine-tuned
    finetuned = convert_internvideo_checkpoint(
        FIXTURES / "tiny_w32_f4_ret23" / "pytorch_model.bin", **{"vision_config.num_attention_heads": 2}
    )
    pretrained = convert_internvideo_checkpoint(
        FIXTURES / "tiny_w32_f4_ret23" / "internvideo_pretrained.ckpt", **{"vision_config.num_attention_heads": 2}
    )
    merged = tvr.merge_weights(finetuned, pretrained, weight=0.5)
    ensemble = InternVideoModel(pretrained.config)
    ensemble.load_state_dict(merged)
    expected = (finetuned.temporal.balance + pretrained.temporal.balance) / 2
    torch.testing.assert_close(ensemble.temporal.balance, expected, atol=1e-7, rtol=0)


def test_vit_l14_checkpoint_layout_gives_the_default_config():
    # the released checkpoints' shapes (spec §1.6), as zero-stride views: only the config is read
    def tensor(*shape):
        return torch.zeros(1).expand(*shape)

    state_dict = {
        "visual.conv1.weight": tensor(1024, 3, 1, 14, 14), "visual.positional_embedding": tensor(257, 1024),
        "visual_proj": tensor(1024, 768), "token_embedding.weight": tensor(49408, 768),
        "positional_embedding": tensor(77, 768), "ln_final.weight": tensor(768), "text_projection": tensor(768, 768),
        "logit_scale": torch.tensor(4.6052), "visual.transformer.balance": tensor(1024),
    }
    for prefix, count in (("visual.transformer.resblocks", 24), ("transformer.resblocks", 12),
                          ("visual.transformer.dec", 4)):
        state_dict.update({f"{prefix}.{index}.attn.in_proj_weight": tensor(1) for index in range(count)})
    config = internvideo_config_from_checkpoint(state_dict)
    default = tvr.InternVideoConfig()
    assert config.extractor_layers == default.extractor_layers == [20, 21, 22, 23]
    assert config.extractor_heads == default.extractor_heads == 16
    for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size", "image_size"):
        assert getattr(config.vision_config, name) == getattr(default.vision_config, name), name
    for name in ("hidden_size", "num_hidden_layers", "num_attention_heads", "max_position_embeddings"):
        assert getattr(config.text_config, name) == getattr(default.text_config, name), name
    assert config.projection_dim == default.projection_dim == 768 and config.max_words == 77


def test_tokenizer_option_saves_the_original_processor(tmp_path):
    from transformers import AutoProcessor

    from stand_ins import word_tokenizer

    word_tokenizer(tmp_path / "tokenizer", 100)  # the fixture's text tower has 100 tokens
    case = "tiny_w32_f4_ret23"
    assert main(["convert", "internvideo", str(FIXTURES / case / "pytorch_model.bin"), str(tmp_path / "out"),
                 *set_options(case), "--tokenizer", str(tmp_path / "tokenizer")]) == 0
    processor = AutoProcessor.from_pretrained(tmp_path / "out")
    video_processor = processor.video_processor
    assert (processor.max_words, processor.text_padding) == (16, "clip4clip")
    assert (video_processor.frame_sampling, video_processor.max_frames) == ("stride", 4)
    assert video_processor.crop_size["height"] == 32 and video_processor.slice_framepos == "uniform"
    ids = processor(text=["a dog runs"], return_tensors="pt")["input_ids"][0].tolist()
    length = len(ids) - ids.count(0)  # start, text, end, then id-0 padding to max_words, as the original
    assert len(ids) == 16 and ids[length:] == [0] * (16 - length)
    assert (ids[0], ids[length - 1]) == (processor.tokenizer.bos_token_id, processor.tokenizer.eos_token_id)
