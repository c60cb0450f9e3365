"""EMCL-Net: the EM module, text-conditioned pooling, similarity and the model contract."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import CLIPModel

from model_testers import RetrievalModelTester, tiny_inputs, tiny_text_config, tiny_vision_config
from tvr.convert.openai_clip import clip_config_from_openai, convert_openai_clip_state_dict
from tvr.methods.emcl.configuration import EMCLConfig
from tvr.methods.emcl.convert import convert_emcl
from tvr.methods.emcl.em import EMReconstruction, initial_em_bases
from tvr.methods.emcl.modeling import EMCLModel, EMCLVideoEncoding, text_conditioned_pooling
from tvr.modeling.outputs import TextEncoding, VideoEncoding

FIXTURE_ROOT = pathlib.Path(__file__).parent / "fixtures" / "emcl"
CASES = ["tiny_w64_default_em", "tiny_w128_2heads_custom_em"]


def load_case(name: str) -> tuple[dict, dict, dict]:
    folder = FIXTURE_ROOT / name
    meta = json.loads((folder / "meta.json").read_text())
    return meta, load_file(folder / "inputs.safetensors"), load_file(folder / "expected.safetensors")


def reference_em(features: torch.Tensor, bases: torch.Tensor, num_stages: int, temperature: float, beta: float):
    """The original's EM written out loop by loop (channels as data points), for comparison."""
    num_samples, dim = features.shape
    mu = bases.repeat(num_samples, 1)
    for _ in range(num_stages):
        z = torch.zeros(dim, mu.shape[1])
        for channel in range(dim):
            z[channel] = torch.softmax(features[:, channel] @ mu / temperature, dim=0)
        z = z / (1e-6 + z.sum(dim=0, keepdim=True))
        mu = torch.stack([features @ z[:, k] for k in range(mu.shape[1])], dim=1)
        mu = mu / (1e-6 + mu.norm(dim=0, keepdim=True))
    return features + beta * mu @ z.t(), mu


# ---------------------------------------------------------------------------------------------- EM module
@pytest.mark.parametrize("case", CASES)
def test_initial_bases_follow_the_original_seed_rule(case):
    meta, inputs, _ = load_case(case)
    bases = initial_em_bases(meta["args"]["centerK"], seed=meta["args"]["seed"])
    torch.testing.assert_close(bases, inputs["emcl_mu_init"], rtol=0, atol=0)
    module = EMReconstruction(num_bases=meta["args"]["centerK"], seed=meta["args"]["seed"])
    torch.testing.assert_close(module.bases, inputs["emcl_mu_init"], rtol=0, atol=0)


def test_em_matches_a_loop_by_loop_reference_and_updates_bases_only_in_training():
    generator = torch.Generator().manual_seed(3)
    features = torch.randn(7, 10, generator=generator)
    em = EMReconstruction(num_bases=4, num_stages=3, temperature=0.5, beta=2.0, momentum=0.75, seed=5)
    start = em.bases.clone()
    expected, converged = reference_em(features, start, num_stages=3, temperature=0.5, beta=2.0)

    em.eval()
    torch.testing.assert_close(em(features), expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(em.bases, start, rtol=0, atol=0)

    em.train()
    torch.testing.assert_close(em(features), expected, rtol=1e-5, atol=1e-6)
    expected_bases = 0.75 * start + 0.25 * converged.mean(dim=0, keepdim=True)
    torch.testing.assert_close(em.bases, expected_bases, rtol=1e-5, atol=1e-6)


def test_em_gradient_is_the_identity_and_beta_zero_is_the_identity():
    features = torch.randn(5, 6, generator=torch.Generator().manual_seed(0), requires_grad=True)
    upstream = torch.randn(5, 6, generator=torch.Generator().manual_seed(1))
    (EMReconstruction(num_bases=3, num_stages=2)(features) * upstream).sum().backward()
    torch.testing.assert_close(features.grad, upstream, rtol=0, atol=0)

    off = EMReconstruction(num_bases=3, beta=0.0).train()
    bases = off.bases.clone()
    assert off(features) is features
    torch.testing.assert_close(off.bases, bases, rtol=0, atol=0)


def test_em_is_invariant_to_the_order_of_bases_and_depends_on_the_block():
    features = torch.randn(6, 8, generator=torch.Generator().manual_seed(2))
    em = EMReconstruction(num_bases=5, num_stages=4).eval()
    out = em(features)
    em.set_bases(em.bases[:, torch.tensor([4, 2, 0, 3, 1])])
    torch.testing.assert_close(em(features), out, rtol=1e-5, atol=1e-6)
    # the EM of a row depends on the other rows of its block
    assert not torch.allclose(em(features[:3]), out[:3], atol=1e-4)


def test_em_bases_stay_float32_in_half_precision_models():
    features = torch.randn(6, 8, generator=torch.Generator().manual_seed(4))
    em = EMReconstruction(num_bases=4, momentum=0.99).train()
    start = em.bases.clone()
    em.to(torch.bfloat16)
    assert em.bases.dtype == torch.float32
    out = em(features.bfloat16())
    assert out.dtype == torch.bfloat16
    # the 1% momentum step is not lost to bfloat16 rounding
    assert em.bases.dtype == torch.float32 and not torch.equal(em.bases, start)


def test_em_bases_are_saved_and_set_with_shape_checks():
    em = EMReconstruction(num_bases=4)
    assert list(em.state_dict()) == ["bases"]
    em.set_bases(torch.tensor([1.0, -1.0, 0.5, 2.0]))
    torch.testing.assert_close(em.bases, torch.tensor([[1.0, -1.0, 0.5, 2.0]]))
    with pytest.raises(ValueError, match=r"shape \(1, 4\)"):
        em.set_bases(torch.ones(1, 5))


# ---------------------------------------------------------------------------------------------- the model


TESTER = RetrievalModelTester(model_class=EMCLModel, em_num_bases=4, em_num_stages=3)


def tiny_emcl_config(**overrides) -> EMCLConfig:
    return TESTER.get_config(**overrides)


def tiny_emcl_model(seed: int = 0, **overrides) -> EMCLModel:
    return TESTER.model(seed, **overrides)


def random_encodings(num_texts: int, num_videos: int, num_frames: int = 3, dim: int = 32, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    video_mask = torch.ones(num_videos, num_frames, dtype=torch.long)
    video_mask[1::2, -1] = 0
    text = TextEncoding(text_features=torch.randn(num_texts, dim, generator=generator))
    video = EMCLVideoEncoding(
        temporal_features=torch.randn(num_videos, num_frames, dim, generator=generator), video_mask=video_mask
    )
    return text, video


def test_text_conditioned_pooling_keeps_the_softmax_mass_of_padded_frames():
    text = torch.tensor([[1.0, 0.0]])
    frames = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]]])  # the third frame is padding
    mask = torch.tensor([[1, 1, 0]])
    logits = torch.tensor([1.0, 0.0, 2.0]) / 0.5
    weights = logits.exp() / logits.exp().sum()  # over all three frames
    expected = weights[0] * frames[0, 0] + weights[1] * frames[0, 1]  # then the padded one is dropped, no renormalising
    pooled = text_conditioned_pooling(text, frames, mask, temperature=0.5)
    assert pooled.shape == (1, 1, 2)
    torch.testing.assert_close(pooled[0, 0], expected)
    assert weights[:2].sum() < 0.2  # most of the mass went to the padded frame


def test_similarity_blocks_in_evaluation_only():
    model = tiny_emcl_model(eval_block_size=2)
    text, video = random_encodings(num_texts=5, num_videos=3)
    scale = model.logit_scale.exp()
    with torch.no_grad():
        video_blocks = list(zip(video.temporal_features.split(2), video.video_mask.split(2)))
        blocks = [
            torch.cat([model.block_cosine(t, v, m) for v, m in video_blocks], dim=1)
            for t in text.text_features.split(2)
        ]
        torch.testing.assert_close(model.similarity(text, video), scale * torch.cat(blocks))
        one_block = scale * model.block_cosine(text.text_features, video.temporal_features, video.video_mask)
        torch.testing.assert_close(model.similarity(text, video, block_size=5), one_block)
        assert not torch.allclose(model.similarity(text, video), one_block, atol=1e-3)
        unblocked = tiny_emcl_model(eval_block_size=None)
        torch.testing.assert_close(unblocked.similarity(text, video), one_block)

    start = model.em.bases.clone()
    model.train()  # the loss sees the whole batch as one block, and the bases move
    torch.testing.assert_close(model.similarity(text, video), one_block)
    assert not torch.allclose(model.em.bases, start)


def test_forward_is_one_block_with_the_contrastive_loss():
    model = tiny_emcl_model(eval_block_size=1)
    inputs = tiny_inputs(batch_size=3, num_frames=4, max_words=8)
    with torch.no_grad():
        output = model(**inputs, return_loss=True)
        text = model.encode_text(inputs["input_ids"], inputs["attention_mask"])
        video = model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"])
        expected = model.similarity(text, video, block_size=3)
    torch.testing.assert_close(output.logits_per_text, expected)
    torch.testing.assert_close(output.logits_per_video, expected.t())
    log_probs_t2v, log_probs_v2t = expected.log_softmax(dim=1), expected.t().log_softmax(dim=1)
    torch.testing.assert_close(output.loss, -(log_probs_t2v.diag().mean() + log_probs_v2t.diag().mean()) / 2)
    torch.testing.assert_close(output.text_embeds, torch.nn.functional.normalize(text.text_features, dim=-1))


def test_encodings_and_pooled_features():
    model = tiny_emcl_model()
    inputs = tiny_inputs(batch_size=3, num_frames=4, max_words=8)
    with torch.no_grad():
        video = model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"])
        features = model.get_video_embeds(inputs["pixel_values_videos"], inputs["video_mask"])
        text_features = model.get_text_embeds(inputs["input_ids"], inputs["attention_mask"])
        head = model.temporal(video.frame_features, inputs["video_mask"])
    assert video.temporal_features.shape == (3, 4, 32)
    torch.testing.assert_close(video.temporal_features, head)
    mask = inputs["video_mask"].unsqueeze(-1).float()
    mean = (video.temporal_features * mask).sum(1) / mask.sum(1)
    torch.testing.assert_close(features, mean / mean.norm(dim=-1, keepdim=True))
    torch.testing.assert_close(text_features.norm(dim=-1), torch.ones(3))
    assert model.gather_for_loss is True and model.logit_scale is model.clip.logit_scale


def test_input_errors_name_the_input():
    model = tiny_emcl_model()
    inputs = tiny_inputs(batch_size=2, num_frames=4, max_words=8)
    with pytest.raises(ValueError, match="pixel_values_videos must be"):
        model.encode_video(inputs["pixel_values_videos"][0])
    with pytest.raises(ValueError, match="video_mask must be"):
        model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"][:, :3])
    text, _ = random_encodings(2, 2)
    with pytest.raises(ValueError, match="EMCLVideoEncoding"):
        model.similarity(text, VideoEncoding(frame_features=torch.zeros(2, 3, 32), video_mask=torch.ones(2, 3)))


def test_bases_are_seeded_saved_and_restored(tmp_path):
    model = tiny_emcl_model(seed=7, em_bases_seed=3)
    torch.testing.assert_close(model.em.bases, initial_em_bases(4, seed=3), rtol=0, atol=0)  # not the global RNG
    text, video = random_encodings(3, 3)
    model.train()
    model.similarity(text, video)
    updated = model.em.bases.clone()
    model.eval()
    model.save_pretrained(tmp_path / "saved")
    loaded = EMCLModel.from_pretrained(tmp_path / "saved").eval()
    torch.testing.assert_close(loaded.em.bases, updated, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(loaded.similarity(text, video), model.similarity(text, video))

    # a folder without bases (e.g. written by hand from an original checkpoint) gets the seeded ones
    weights = load_file(tmp_path / "saved" / "model.safetensors")
    del weights["em.bases"]
    save_file(weights, tmp_path / "saved" / "model.safetensors", metadata={"format": "pt"})
    reloaded = EMCLModel.from_pretrained(tmp_path / "saved")
    torch.testing.assert_close(reloaded.em.bases, initial_em_bases(4, seed=3), rtol=0, atol=0)


def test_from_clip_follows_the_original_initialisation():
    """Fixture case 1 stores an original model exactly as built from its CLIP: `from_clip` on that CLIP must give
    every tensor of the converted checkpoint (frame positions, temporal layers from text layers 0..1, bases)."""
    folder = FIXTURE_ROOT / "tiny_w64_default_em"
    state_dict = torch.load(folder / "pytorch_model.bin", weights_only=True)
    clip_state = {key[len("clip."):]: value for key, value in state_dict.items() if key.startswith("clip.")}
    clip = CLIPModel(clip_config_from_openai(clip_state))
    clip.load_state_dict(convert_openai_clip_state_dict(dict(clip_state)))
    model = EMCLModel.from_clip(clip, temporal_config={"num_hidden_layers": 2})
    converted = convert_emcl(folder / "pytorch_model.bin")
    assert model.config.temporal_config.num_hidden_layers == 2
    expected = converted.state_dict()
    assert set(model.state_dict()) == set(expected)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)


def test_model_card_names_the_method_and_its_options():
    from tvr.hub_cards import build_model_card

    card = str(build_model_card(tiny_emcl_config(em_beta=2.5), "me/emcl-tiny"))
    assert "[EMCL-Net](https://arxiv.org/abs/2211.11427)" in card
    for row in ("| `em_num_bases` | `4` |", "| `em_beta` | `2.5` |", "| `eval_block_size` | `32` |",
                "| `frame_pooling_temperature` | `3.0` |", "| `temporal_head` | `seqTransf` |"):
        assert row in card, row


def test_training_loop_and_evaluation_harness_run_emcl_unchanged(tmp_path):
    """A short run of tvr's training loop on synthetic videos: the loss falls, the per-epoch evaluation (the
    harness, blocks from `eval_block_size`) runs, the trained EM bases are saved, and the card names the method."""
    from accelerate.state import AcceleratorState

    from tvr.data import make_synthetic_dataset
    from tvr.processing import TVRProcessor, TVRVideoProcessor, train_clip_tokenizer
    from tvr.training import TrainingConfig, read_metrics, train

    synthetic = dict(seed=0, size=32, fps=4, duration=4.0, num_events=(1, 2), progress=False)
    train_set = make_synthetic_dataset(tmp_path / "data", 8, split="train", **synthetic)
    test_set = make_synthetic_dataset(tmp_path / "data", 4, split="test", **synthetic)
    tokenizer = train_clip_tokenizer(list(train_set["caption"]) + list(test_set["caption"]), tmp_path / "tokenizer",
                                     vocab_size=600, model_max_length=8)
    processor = TVRProcessor(video_processor=TVRVideoProcessor(size=32, crop_size=32, max_frames=3),
                             tokenizer=tokenizer, max_words=8)
    text_config = tiny_text_config(vocab_size=len(tokenizer), max_position_embeddings=8,
                                   bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = tiny_emcl_model(text_config=text_config, vision_config=tiny_vision_config(image_size=32, patch_size=16),
                            eval_block_size=2)
    start_bases = model.em.bases.clone()

    AcceleratorState._reset_state(reset_partial_state=True)
    try:
        config = TrainingConfig(output_dir=str(tmp_path / "run"), batch_size=4, epochs=4, lr=1e-3, coef_lr=0.1,
                                warmup_proportion=0.1, freeze_layer_num=-1, cache_videos=True, seed=0)
        output_dir = train(config, model=model, processor=processor, train_dataset=train_set, eval_dataset=test_set)
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)

    records = read_metrics(output_dir)
    losses = [record["loss"] for record in records if "loss" in record]
    assert len(losses) == 8  # 4 epochs x 2 batches
    assert sum(losses[-2:]) < sum(losses[:2]) - 0.1, losses
    evaluations = [record for record in records if "t2v_R@1" in record]
    assert len(evaluations) == 4 and all(0 <= record["t2v_R@1"] <= 100 for record in evaluations)

    final = EMCLModel.from_pretrained(output_dir / "final")
    torch.testing.assert_close(final.em.bases, model.em.bases, rtol=0, atol=0)
    assert not torch.allclose(final.em.bases, start_bases)  # the training forwards moved them
    assert "EMCL-Net" in (output_dir / "final" / "README.md").read_text()
