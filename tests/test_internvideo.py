"""InternVideoModel on tiny random towers: the contract, padded frames (original vs masked), initialisation, parameter
roles and freezing, gradient checkpointing, save / load, config checks, and the tower's per-layer outputs."""

import pytest
import torch
from transformers import AutoModel
from transformers.modeling_layers import GradientCheckpointingLayer

from model_testers import RetrievalModelTester, tiny_image_text_model, tiny_inputs
from tvr import InternVideoConfig, InternVideoModel
from tvr.training.optimization import parameter_groups

TESTER = RetrievalModelTester(model_class=InternVideoModel, vision_config={"num_hidden_layers": 3},
                              extractor_layers=[1, 2])


def tiny_config(**overrides) -> InternVideoConfig:
    """3 vision layers (the branch reads the last 2), 2 extractor heads, 16 px frames with a 2x2 patch grid."""
    return TESTER.get_config(**overrides)


def tiny_model(seed: int = 0, randomize_branch: bool = True, **overrides) -> InternVideoModel:
    """A seeded tiny model; `randomize_branch` replaces the branch's zero inits (which make it a no-op) by noise."""
    torch.manual_seed(seed)
    model = InternVideoModel(tiny_config(**overrides)).eval()
    if randomize_branch:
        with torch.no_grad():
            for parameter in model.temporal.parameters():
                parameter.add_(0.3 * torch.randn_like(parameter))
    return model


def test_defaults_are_the_original_vit_l14():
    config = InternVideoConfig()
    vision, text = config.vision_config, config.text_config
    assert (vision.hidden_size, vision.num_hidden_layers, vision.patch_size, vision.image_size) == (1024, 24, 14, 224)
    assert (text.hidden_size, text.max_position_embeddings, config.projection_dim) == (768, 77, 768)
    assert (config.extractor_layers, config.extractor_heads, config.extractor_mlp_ratio) == ([20, 21, 22, 23], 16, 4.0)
    assert (config.max_words, config.mask_padded_frames) == (77, False)


def test_config_checks_name_the_field():
    with pytest.raises(Exception, match="extractor_layers must be increasing"):
        tiny_config(extractor_layers=[2, 1])
    with pytest.raises(Exception, match=r"extractor_layers must be increasing backbone layer numbers in \[0, 3\)"):
        tiny_config(extractor_layers=[1, 3])
    with pytest.raises(Exception, match="extractor_heads \\(5\\) must divide the vision width"):
        tiny_config(extractor_heads=5)
    with pytest.raises(Exception, match="siglip.*no class token"):
        InternVideoConfig(tower_type="siglip")


def test_outputs_shapes_and_save_load(tmp_path):
    model = tiny_model()
    inputs = tiny_inputs()
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits_per_text.shape == (3, 3)
    assert out.video_encoding.video_features.shape == (3, 32)
    assert out.video_encoding.frame_features.shape == (3, 4, 32)
    torch.testing.assert_close(out.video_embeds.norm(dim=-1), torch.ones(3))
    cosine = out.text_embeds @ out.video_embeds.t()
    torch.testing.assert_close(out.logits_per_text, model.logit_scale.exp() * cosine)
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, InternVideoModel) and loaded.config.extractor_layers == [1, 2]
    with torch.no_grad():
        torch.testing.assert_close(loaded(**inputs).logits_per_text, out.logits_per_text, atol=0, rtol=0)
    # gallery scoring in blocks gives the batch similarity
    with torch.no_grad():
        gallery = model.score_gallery(out.text_encoding, out.video_encoding, block_size=2)
    torch.testing.assert_close(gallery, out.logits_per_text)


def padded_and_trimmed(model, valid: int = 2, num_frames: int = 4):
    """Embeddings of one video given as `valid` frames alone and zero-padded to `num_frames` frames."""
    frames = torch.randn(1, valid, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    padded = torch.cat([frames, torch.zeros(1, num_frames - valid, 3, 16, 16)], dim=1)
    mask = torch.tensor([[1] * valid + [0] * (num_frames - valid)])
    with torch.no_grad():
        alone = model.encode_video(frames).video_features
        with_padding = model.encode_video(padded, mask).video_features
    return alone, with_padding


def test_padded_frames_enter_the_branch_as_in_the_original():
    alone, with_padding = padded_and_trimmed(tiny_model())
    assert (alone - with_padding).abs().max() > 1e-2  # the zero frames change the video (as the fixtures check)


def test_masking_padded_frames_gives_the_unpadded_embedding():
    alone, with_padding = padded_and_trimmed(tiny_model(mask_padded_frames=True))
    torch.testing.assert_close(with_padding, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("mask_padded_frames", [False, True])
def test_video_without_frames_scores_zero(mask_padded_frames):
    model = tiny_model(mask_padded_frames=mask_padded_frames)
    inputs = tiny_inputs()
    inputs["video_mask"][1] = 0
    inputs["pixel_values_videos"][1] = 0
    with torch.no_grad():
        out = model(**inputs)
    assert torch.isfinite(out.logits_per_text).all()
    assert torch.equal(out.logits_per_text[:, 1], torch.zeros(3))


def test_new_branch_starts_as_the_mean_class_token():
    # zero query, zero output projections, balance 0: the video is proj(LN(0.5 * mean of the frames' class tokens))
    clip = tiny_image_text_model("clip")
    model = InternVideoModel.from_image_text_model(clip, extractor_layers=[0, 1]).eval()
    assert not model.config.temporal_branch_pretrained
    for layer in model.temporal.layers:
        assert not layer.out_proj.weight.any() and not layer.fc2.weight.any() and layer.q_proj.weight.any()
    assert not model.temporal.query.any() and not model.temporal.balance.any()
    inputs = tiny_inputs()
    pixel_values = inputs["pixel_values_videos"]
    with torch.no_grad():
        video = model.encode_video(pixel_values).video_features
        hidden = clip.vision_model(pixel_values.flatten(0, 1)).last_hidden_state[:, 0].view(3, 4, -1)
        expected = clip.visual_projection(clip.vision_model.post_layernorm(0.5 * hidden.mean(dim=1)))
    torch.testing.assert_close(video, expected, atol=1e-5, rtol=1e-5)


def test_parameter_roles_and_the_original_freezing():
    model = tiny_model()
    roles = model.parameter_roles()
    assert roles["temporal.layers.0.q_proj.weight"] == "new" and roles["clip.logit_scale"] == "pretrained"
    pretrained = tiny_model(temporal_branch_pretrained=True)  # converted checkpoints: the original's lr * coef_lr
    assert set(pretrained.parameter_roles().values()) == {"pretrained"}
    groups = {group["name"]: group for group in parameter_groups(pretrained, lr=1e-3, coef_lr=2e-3, weight_decay=0.2)}
    assert set(groups) == {"pretrained_decay", "pretrained_no_decay"}
    assert groups["pretrained_decay"]["lr"] == pytest.approx(2e-6)

    frozen = set(pretrained.freeze_pretrained_layers(0))
    # the original's --freeze_layer_num 0: embeddings, and by its name checks also the renamed vision top, the query
    # and the balance
    assert {"temporal.query", "temporal.balance", "clip.visual_projection.weight",
            "clip.vision_model.post_layernorm.weight", "clip.vision_model.pre_layrnorm.weight",
            "clip.text_model.embeddings.token_embedding.weight"} <= frozen
    assert not any(name.startswith(("temporal.layers.", "temporal.position_convs.")) for name in frozen)
    assert not any(".encoder.layers." in name for name in frozen)
    assert "clip.text_projection.weight" not in frozen and "clip.logit_scale" not in frozen
    assert tiny_model().freeze_pretrained_layers(-1) == []


def test_gradient_checkpointing_recomputes_the_backbone_with_the_same_gradients():
    model = tiny_model().train()
    inputs = tiny_inputs()
    model(**inputs, return_loss=True).loss.backward()
    reference = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    model.activation_checkpointing_enable()
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    checkpointed = [layer for layer in layers if layer.gradient_checkpointing]
    assert len(checkpointed) == 5  # 2 text + 3 vision layers
    calls = []
    mlp = model.clip.vision_layers[1].mlp
    forward = mlp.forward
    mlp.forward = lambda *args, **kwargs: calls.append(1) or forward(*args, **kwargs)
    model(**inputs, return_loss=True).loss.backward()
    assert len(calls) == 2  # forward, then recomputed in backward
    assert reference.keys() == {name for name, p in model.named_parameters() if p.grad is not None}
    for name, grad in reference.items():
        torch.testing.assert_close(model.get_parameter(name).grad, grad, atol=1e-6, rtol=1e-5, msg=name)


def test_tower_returns_the_chosen_layers():
    model = tiny_model()
    pixel_values = tiny_inputs()["pixel_values_videos"]
    with torch.no_grad():
        everything = model.clip.encode_frames(pixel_values, output_hidden_states=True)
        chosen = model.clip.encode_frames(pixel_values, output_layers=[0, 2])
    assert everything.layer_outputs is None and chosen.hidden_states is None
    assert torch.equal(chosen.layer_outputs[0], everything.hidden_states[1])
    assert torch.equal(chosen.layer_outputs[1], everything.hidden_states[3])
    assert torch.equal(chosen.last_hidden_state, everything.hidden_states[-1])
    with pytest.raises(ValueError, match=r"output_layers \[3\] must be layer numbers in \[0, 3\)"):
        model.clip.encode_frames(pixel_values, output_layers=[3])


def test_metaclip_2_tower_and_no_siglip():
    model = InternVideoModel.from_image_text_model(tiny_image_text_model("metaclip_2"), extractor_layers=[1]).eval()
    assert model.config.tower_type == "metaclip_2"
    with torch.no_grad():
        out = model(**tiny_inputs())
    assert out.logits_per_text.shape == (3, 3) and torch.isfinite(out.logits_per_text).all()
    with pytest.raises(Exception, match="no class token"):
        InternVideoModel.from_image_text_model(tiny_image_text_model("siglip"))
