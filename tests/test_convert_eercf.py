"""EERCF parity with the original (github adxcreative/EERCF) through `tvr convert eercf`: coarse matrix, every
granularity, the final two-stage matrix for k = 1, 2, 4 (row order exact) and the training loss.
Fixture: tests/fixtures/eercf (see its README)."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel

from tvr.cli import main
from tvr.convert.openai_clip import load_original_state_dict
from tvr.methods.eercf.configuration import EERCFConfig
from tvr.methods.eercf.convert import convert_eercf_checkpoint
from tvr.methods.eercf.modeling import EERCFModel

# tvr.modeling registers EERCF with the Auto classes; make sure it is registered even before that line lands.
AutoConfig.register("eercf", EERCFConfig, exist_ok=True)
AutoModel.register(EERCFConfig, EERCFModel, exist_ok=True)

TOLERANCE = dict(atol=1e-4, rtol=1e-4)  # the fixture's fp32 tolerance
FINAL_MATRICES = {1: "final_sim_topk1", 2: "final_sim", 4: "final_sim_topk4"}


@pytest.fixture(scope="module")
def case(request):
    root = request.config.rootpath / "tests" / "fixtures" / "eercf"
    directory = root / "tiny_b4_f4_topk2"
    inputs = load_file(directory / "inputs.safetensors")
    return {
        "root": root,
        "checkpoint": directory / "pytorch_model.bin",
        "expected": load_file(directory / "expected.safetensors"),
        "init_from_clip": load_file(directory / "init_from_clip.safetensors"),
        # reference layout (batch, pair, ...) -> tvr layout
        "text": (inputs["input_ids"][:, 0], inputs["attention_mask"][:, 0]),
        "video": (inputs["video"][:, 0, :, 0], inputs["video_mask"][:, 0]),
    }


@pytest.fixture(scope="module")
def converted(case, tmp_path_factory):
    """The fixture checkpoint converted through the CLI, loaded back with AutoModel, and its encodings."""
    output_dir = tmp_path_factory.mktemp("eercf")
    code = main(["convert", "eercf", str(case["checkpoint"]), str(output_dir), "--rerank-top-k", "2",
                 "--max-words", "16", "--patch-dtype", "float32"])
    assert code == 0
    model = AutoModel.from_pretrained(output_dir).eval()
    with torch.no_grad():
        text = model.encode_text(*case["text"])
        video = model.encode_video(*case["video"])
    return model, text, video


def test_converted_config(converted):
    config = converted[0].config
    assert isinstance(converted[0], EERCFModel)
    assert (config.max_frames, config.rerank_top_k, config.max_words) == (4, 2, 16)
    assert config.patch_embeds_dtype == "float32"
    assert config.temporal_config.num_hidden_layers == 2 and config.temporal_config.layer_norm_eps == 1e-12
    assert (config.projection_dim, config.vision_config.patch_size, config.linear_patch) == (64, 8, "2d")


def test_features_match_the_original(converted, case):
    _, text, video = converted
    expected = case["expected"]
    torch.testing.assert_close(text.text_features, expected["sentence_feat"], **TOLERANCE)
    torch.testing.assert_close(video.frame_features, expected["frame_feat"], **TOLERANCE)
    patches = torch.nn.functional.normalize(expected["patch_feat"].flatten(1, 2), dim=-1)
    torch.testing.assert_close(video.patch_embeds, patches, **TOLERANCE)


def test_every_granularity_matches_the_original(converted, case):
    model, text, video = converted
    expected = case["expected"]
    with torch.no_grad():
        logits = model.granularity_logits(text, video)
        coarse = model.similarity(text, video)
    torch.testing.assert_close(coarse, expected["coarse_sim"], **TOLERANCE)
    torch.testing.assert_close(logits.video_logits, expected["eval_video_logits"], **TOLERANCE)
    torch.testing.assert_close(logits.weak_frame_logits, expected["eval_weakframe_logits"], **TOLERANCE)
    torch.testing.assert_close(logits.weak_patch_logits, expected["eval_weakpatch_logits"], **TOLERANCE)
    torch.testing.assert_close(logits.strong_frame_logits, expected["eval_strongframe_logits"], **TOLERANCE)


@pytest.mark.parametrize("top_k", sorted(FINAL_MATRICES))
def test_two_stage_matrix_and_ranking_match_the_original(converted, case, top_k):
    model, text, video = converted
    expected = case["expected"][FINAL_MATRICES[top_k]]
    with torch.no_grad():
        final = model.similarity(text, video, rerank_top_k=top_k)
    torch.testing.assert_close(final, expected, **TOLERANCE)
    assert torch.equal(final.argsort(dim=1, descending=True), expected.argsort(dim=1, descending=True))
    if top_k == 2:  # the fixture was chosen so that re-ranking changes the top-1 of two rows
        coarse_top1 = case["expected"]["coarse_sim"].argmax(dim=1)
        assert (final.argmax(dim=1) != coarse_top1).sum().item() == 2


def test_training_loss_matches_the_original(converted, case):
    model, text, video = converted
    expected = case["expected"]
    with torch.no_grad():
        output = model.compute_loss(text, video)
    torch.testing.assert_close(output.loss, expected["train_loss"][0], **TOLERANCE)
    for name, key in [("video_logits", "video"), ("weak_frame_logits", "weakframe"), ("weak_patch_logits", "weakpatch"),
                      ("strong_frame_logits", "strongframe"), ("strong_patch_logits", "strongpatch")]:
        torch.testing.assert_close(output.logits[name], expected[f"train_{key}_logits"], **TOLERANCE)
    for name in ("video", "frame", "patch"):
        torch.testing.assert_close(output[f"pearson_{name}"], expected[f"train_cdcl_{name}"][0], **TOLERANCE)


def test_compact_patch_storage_keeps_the_ranking(converted, case):
    model, text, _ = converted
    model.config.patch_embeds_dtype = "float16"
    try:
        with torch.no_grad():
            video = model.encode_video(*case["video"])
            assert video.patch_embeds.dtype == torch.float16
            for top_k, key in FINAL_MATRICES.items():
                expected = case["expected"][key]
                final = model.similarity(text, video, rerank_top_k=top_k)
                torch.testing.assert_close(final, expected, atol=1e-3, rtol=0)  # measured 1.5e-4
                assert torch.equal(final.argsort(dim=1, descending=True), expected.argsort(dim=1, descending=True))
    finally:
        model.config.patch_embeds_dtype = "float32"


def test_missing_parts_are_derived_from_clip_like_the_original(case, tmp_path):
    state_dict = load_original_state_dict(case["checkpoint"])
    kept = {key: value for key, value in state_dict.items()
            if key.startswith("clip.") and key != "clip.ln_final.weight"}
    torch.save(kept, tmp_path / "clip_only.bin")
    model = convert_eercf_checkpoint(tmp_path / "clip_only.bin", clip=case["root"] / "clip_openai_state_dict.bin",
                                     max_frames=4, temporal_layers=2)
    init = case["init_from_clip"]
    positions = model.temporal.frame_position_embeddings.weight
    torch.testing.assert_close(positions, init["frame_position_embeddings.weight"])
    torch.testing.assert_close(model.video_logit_weight, init["global_mat_weight"])
    torch.testing.assert_close(model.frame_logit_weight, init["frame_logit_weight"])
    for layer, text_layer in zip(model.temporal.transformer.layers, model.clip.text_model.encoder.layers):
        torch.testing.assert_close(layer.self_attn.k_proj.weight, text_layer.self_attn.k_proj.weight)
    clip = load_original_state_dict(case["root"] / "clip_openai_state_dict.bin")
    torch.testing.assert_close(model.clip.text_model.final_layer_norm.weight, clip["ln_final.weight"].float())


def test_unknown_and_missing_keys_are_refused(case, tmp_path):
    state_dict = load_original_state_dict(case["checkpoint"])
    torch.save({**state_dict, "cross.pooler.dense.weight": torch.zeros(2, 2)}, tmp_path / "extra.bin")
    with pytest.raises(ValueError, match="cross.pooler.dense.weight"):
        convert_eercf_checkpoint(tmp_path / "extra.bin")
    del state_dict["frame_logit_weight"]
    torch.save(state_dict, tmp_path / "missing.bin")
    with pytest.raises(ValueError, match="frame_logit_weight"):
        convert_eercf_checkpoint(tmp_path / "missing.bin", max_frames=4)
