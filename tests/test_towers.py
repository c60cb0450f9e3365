"""The tower layer: every method on CLIP, MetaCLIP 2 and SigLIP towers built with transformers, their conventions,
per-layer features, declared parameter groups, gallery scoring and the one-entry method registry."""

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, CLIPImageProcessor, CLIPTextConfig, CLIPTextModel, SiglipImageProcessor

from model_testers import TOWER_TYPES, tiny_image_text_model, tiny_inputs, tiny_text_config
from tvr import METHODS, CLIP4ClipModel, EERCFModel, EMCLModel, sigmoid_loss
from tvr.modeling.losses import contrastive_loss
from tvr.processing import processor_for_image_text_model
from tvr.training import build_optimizer, parameter_groups

FP32 = dict(rtol=1e-5, atol=1e-5)
METHOD_CASES = {
    "meanP": (CLIP4ClipModel, {"sim_header": "meanP"}),
    "seqLSTM": (CLIP4ClipModel, {"sim_header": "seqLSTM"}),
    "seqTransf": (CLIP4ClipModel, {"sim_header": "seqTransf"}),
    "tightTransf": (CLIP4ClipModel, {"sim_header": "tightTransf"}),
    "seqTransf_3d": (CLIP4ClipModel, {"sim_header": "seqTransf", "linear_patch": "3d"}),
    "emcl": (EMCLModel, {"em_num_bases": 4, "em_num_stages": 2}),
    "eercf": (EERCFModel, {}),
}
TINY = {"temporal_config": {"num_hidden_layers": 1}, "max_frames": 4, "max_words": 8}


@pytest.fixture(scope="module")
def tower_dirs(tmp_path_factory):
    """Each tiny image-text model saved as a folder (weights + config), as a user's checkpoint would be."""
    folders = {}
    for tower_type in TOWER_TYPES:
        folder = tmp_path_factory.mktemp(tower_type)
        tiny_image_text_model(tower_type).save_pretrained(folder)
        folders[tower_type] = folder
    return folders


def build(tower_dir, case: str, seed: int = 0):
    model_class, options = METHOD_CASES[case]
    torch.manual_seed(seed)
    return model_class.from_image_text_model(tower_dir, **TINY, **options)


@pytest.mark.parametrize("tower_type", TOWER_TYPES)
def test_meanp_scores_a_still_video_as_the_image_text_model_scores_the_image(tower_dirs, tower_type):
    image_text = AutoModel.from_pretrained(tower_dirs[tower_type]).eval()
    model = CLIP4ClipModel.from_image_text_model(tower_dirs[tower_type], **TINY).eval()
    assert model.config.tower_type == tower_type
    inputs = tiny_inputs(batch_size=3)
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        # SigLIP is used (and was trained) without a text attention mask; CLIP's causal mask makes it irrelevant
        mask = None if tower_type == "siglip" else inputs["attention_mask"]
        expected = image_text(input_ids=inputs["input_ids"], attention_mask=mask, pixel_values=images).logits_per_text
        videos = images[:, None].expand(2, 4, 3, 16, 16)  # each image repeated as a 4-frame video
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                       pixel_values_videos=videos).logits_per_text
    torch.testing.assert_close(logits, expected, **FP32)
    assert expected.std() > 1e-3  # the texts and images really differ


@pytest.mark.parametrize("case", sorted(METHOD_CASES))
@pytest.mark.parametrize("tower_type", TOWER_TYPES)
def test_every_head_and_method_trains_on_every_tower(tower_dirs, tower_type, case):
    model = build(tower_dirs[tower_type], case).train()
    inputs = tiny_inputs(batch_size=3)
    output = model(**inputs, return_loss=True)
    assert torch.isfinite(output.loss)
    if case in ("meanP", "seqLSTM", "seqTransf", "seqTransf_3d", "tightTransf"):
        # the tower's pair loss on the batch logits: SigLIP's sigmoid loss, CLIP's softmax contrastive loss
        expected_loss = (sigmoid_loss if tower_type == "siglip" else contrastive_loss)(output.logits_per_text)
        torch.testing.assert_close(output.loss, expected_loss)
    output.loss.backward()
    last_vision_layer = model.clip.vision_layers[-1]
    assert last_vision_layer.mlp.fc2.weight.grad.abs().sum() > 0
    head_parameters = [p for name, p in model.named_parameters() if not name.startswith("clip.") and p.requires_grad]
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head_parameters) or case == "meanP"


@pytest.mark.parametrize("tower_type", TOWER_TYPES)
def test_initialisation_rules_follow_the_text_tower(tower_dirs, tower_type):
    image_text = AutoModel.from_pretrained(tower_dirs[tower_type])
    model = build(tower_dirs[tower_type], "seqTransf")
    text_model = image_text.text_model
    torch.testing.assert_close(model.temporal.frame_position_embeddings.weight,
                               text_model.embeddings.position_embedding.weight)
    torch.testing.assert_close(model.temporal.transformer.layers[0].mlp.fc1.weight,
                               text_model.encoder.layers[0].mlp.fc1.weight)
    # temporal layers take the tower's activation; the LayerNorm eps stays CLIP4Clip's (BERT's 1e-12)
    assert model.config.temporal_config.hidden_act == image_text.config.text_config.hidden_act
    assert model.config.temporal_config.layer_norm_eps == 1e-12
    # every tower weight is the image-text model's
    for name, value in image_text.state_dict().items():
        torch.testing.assert_close(model.clip.state_dict()[name], value, msg=name)
    # the 3d patch starts equal to the 2d one: identical frames give identical features either way
    model_3d = build(tower_dirs[tower_type], "seqTransf_3d").eval()
    still = torch.randn(1, 3, 16, 16).expand(2, 4, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(model_3d.clip.encode_frames(still).pooler_output[:, 1:3],
                                   model.eval().clip.encode_frames(still).pooler_output[:, 1:3], **FP32)


def test_initialisation_rules_raise_where_they_are_undefined(tower_dirs):
    with pytest.raises(ValueError, match="cannot initialise 3 temporal layers from a text tower with 2"):
        CLIP4ClipModel.from_image_text_model(tower_dirs["siglip"], sim_header="seqTransf",
                                             temporal_config={"num_hidden_layers": 3})
    with pytest.raises(ValueError, match=r"parameter shapes differ \(mlp.fc1.bias: \(48,\) vs \(64,\)"):
        CLIP4ClipModel.from_image_text_model(tower_dirs["clip"], sim_header="seqTransf",
                                             temporal_config={"intermediate_size": 48, "num_hidden_layers": 1})
    # meanP adds nothing to initialise: any temporal config is fine
    CLIP4ClipModel.from_image_text_model(tower_dirs["clip"], temporal_config={"intermediate_size": 48})
    text_tower = CLIPTextModel(CLIPTextConfig(**tiny_text_config()))
    with pytest.raises(ValueError, match="CLIPTextModel \\(model_type 'clip_text_model'\\) is not a supported"):
        CLIP4ClipModel.from_image_text_model(text_tower)


@pytest.mark.parametrize("tower_type", TOWER_TYPES)
def test_frames_give_pooled_features_tokens_and_per_layer_states_like_the_vision_tower(tower_dirs, tower_type):
    image_text = AutoModel.from_pretrained(tower_dirs[tower_type]).eval()
    model = build(tower_dirs[tower_type], "meanP").eval()
    video = torch.randn(2, 3, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        frames = model.clip.encode_frames(video, output_all_tokens=True, output_hidden_states=True)
        reference = image_text.vision_model(pixel_values=video.flatten(0, 1), output_hidden_states=True)
        image_embeds = image_text.get_image_features(pixel_values=video.flatten(0, 1)).pooler_output
    torch.testing.assert_close(frames.pooler_output.flatten(0, 1), image_embeds, **FP32)
    assert len(frames.hidden_states) == len(reference.hidden_states) == 3  # embeddings + 2 layers
    for ours, theirs in zip(frames.hidden_states[1:], reference.hidden_states[1:]):
        torch.testing.assert_close(ours, theirs, **FP32)
    prefix = 0 if tower_type == "siglip" else 1
    assert frames.patch_tokens.shape == (2, 3, 4, 32)  # 2x2 patches of 8 px, class token left out
    expected_tokens = reference.last_hidden_state[:, prefix:]
    if tower_type != "siglip":  # CLIP's last_hidden_state precedes its post-LayerNorm (SigLIP's follows it)
        expected_tokens = image_text.visual_projection(image_text.vision_model.post_layernorm(expected_tokens))
    torch.testing.assert_close(frames.patch_tokens.flatten(0, 1), expected_tokens, **FP32)
    # a method's own loop over the stock layers gives the same as encode_frames
    hidden = model.clip.embed_frames(video)
    for layer in model.clip.vision_layers:
        hidden = layer(hidden, None)
    torch.testing.assert_close(model.clip.pool_frames(hidden).view(2, 3, -1), frames.pooler_output)


@pytest.mark.parametrize("tower_type", TOWER_TYPES)
def test_tower_outputs_are_recorded_by_the_towers_own_transformers_hooks(tower_dirs, tower_type):
    # no side channel on the tower: output_hidden_states / output_attentions come from transformers' recording
    # (`capture_outputs` + the towers' `_can_record_outputs`), the temporal head's CLIP layers never recorded
    model = build(tower_dirs[tower_type], "seqTransf").eval()
    model.set_attn_implementation("eager")
    assert not hasattr(model.clip, "capture") and not hasattr(model.clip, "_capture")
    inputs = tiny_inputs(batch_size=2)
    video = inputs["pixel_values_videos"]
    batch_size, num_frames = video.shape[:2]
    with torch.no_grad():
        frames = model.clip.encode_frames(video, output_hidden_states=True)
        # whatever a method runs inside is recorded: here its own loop over the stock layers
        def own_loop():
            hidden = model.clip.embed_frames(video)
            for layer in model.clip.vision_layers:
                hidden = layer(hidden, None)
            return hidden

        hidden, vision = model.clip.record_frames(own_loop, num_frames, output_hidden_states=True,
                                                  output_attentions=True)
        _, last_only = model.clip.record_frames(own_loop, num_frames)
        _, selected = model.clip.record_frames(own_loop, num_frames, output_hidden_states=[-1])
        _, none_run = model.clip.record_frames(lambda: None, num_frames, output_hidden_states=True)
        text = model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                       output_hidden_states=True, output_attentions=True)
        mask = None if tower_type == "siglip" else inputs["attention_mask"]
        reference = model.clip.text_model(input_ids=inputs["input_ids"], attention_mask=mask,
                                          output_hidden_states=True, output_attentions=True)
    assert getattr(model.clip.vision_model, "_output_capturing_hooks_installed", False)
    per_video = [state.view(batch_size, num_frames, *state.shape[1:]) for state in frames.hidden_states]
    assert len(vision.hidden_states) == len(model.clip.vision_layers) + 1 == len(vision.attentions) + 1
    for ours, theirs in zip(vision.hidden_states, per_video):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    torch.testing.assert_close(vision.last_hidden_state, per_video[-1], rtol=0, atol=0)
    torch.testing.assert_close(vision.pooler_output, model.clip.pool_frames(hidden).view(batch_size, num_frames, -1))
    assert vision.attentions[0].shape[:2] == (batch_size, num_frames)
    assert last_only.hidden_states is None and last_only.attentions is None
    torch.testing.assert_close(last_only.last_hidden_state, per_video[-1], rtol=0, atol=0)
    assert selected.hidden_states[:-1] == (None,) * len(model.clip.vision_layers)
    assert none_run is None  # nothing ran through the stock layers (DAVRL's own layout): no per-frame output
    assert len(text.hidden_states) == len(reference.hidden_states)
    assert len(text.attentions) == len(reference.attentions) == len(model.clip.text_model.encoder.layers)
    for ours, theirs in zip(text.hidden_states + text.attentions, reference.hidden_states + reference.attentions):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


@pytest.mark.parametrize("tower_type", TOWER_TYPES)
def test_saved_models_reload_with_their_tower(tower_dirs, tower_type, tmp_path):
    model = build(tower_dirs[tower_type], "seqTransf").eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["tower_type"] == tower_type
    assert config["text_config"]["model_type"] == f"{tower_type}_text_model"
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    inputs = tiny_inputs()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits_per_text, model(**inputs).logits_per_text)
    assert type(reloaded.config.text_config).__name__ == type(model.config.text_config).__name__


def test_a_tvr_0_1_folder_without_tower_type_loads_as_clip(tower_dirs, tmp_path):
    model = build(tower_dirs["clip"], "seqTransf").eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    for key in ("tower_type", "loss_type", "logit_bias_init_value"):
        config.pop(key, None)
    (tmp_path / "config.json").write_text(json.dumps(config))
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert (reloaded.config.tower_type, reloaded.config.loss_type) == ("clip", "softmax")
    inputs = tiny_inputs()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits_per_text, model(**inputs).logits_per_text)


def test_sub_configs_must_match_the_tower_type():
    from tvr import CLIP4ClipConfig

    with pytest.raises(ValueError, match="tower_type 'siglip' needs 'siglip_text_model'"):
        CLIP4ClipConfig(tower_type="siglip", text_config={"model_type": "clip_text_model"})
    with pytest.raises(ValueError, match="tower_type 'blip' is not a supported image-text model"):
        CLIP4ClipConfig(tower_type="blip")
    with pytest.raises(Exception, match="loss_type must be one of"):  # strict dataclass validation error
        CLIP4ClipConfig(loss_type="hinge")
    assert CLIP4ClipConfig(tower_type="siglip").loss_type == "sigmoid"
    assert CLIP4ClipConfig(tower_type="siglip", loss_type="softmax").loss_type == "softmax"


# ------------------------------------------------------------------------------------------- parameter groups


def roles_by_kind(model):
    roles = model.parameter_roles()
    return {role: {name for name, value in roles.items() if value == role} for role in ("pretrained", "new", "frozen")}


NEW_PARTS = {
    "meanP": set(),
    "seqLSTM": {"temporal.lstm."},
    "seqTransf": {"temporal.frame_position_embeddings.", "temporal.transformer."},
    "tightTransf": {"cross."},
    "seqTransf_3d": {"temporal.", "clip.patch_embedding_3d."},
    "emcl": {"temporal."},
    "eercf": {"temporal.", "video_logit_weight", "frame_logit_weight"},
}


@pytest.mark.parametrize("case", sorted(METHOD_CASES))
@pytest.mark.parametrize("tower_type", TOWER_TYPES)
def test_each_method_declares_pretrained_new_and_frozen_parameters(tower_dirs, tower_type, case):
    model = build(tower_dirs[tower_type], case)
    tower_names = {f"clip.{name}" for name, _ in model.clip.named_parameters()}
    groups = roles_by_kind(model)
    # what a configuration does not use never trains: tightTransf's scores have no temperature, the 3d patch
    # replaces the 2d kernel
    unused = {
        "tightTransf": {"clip.logit_scale"} | ({"clip.logit_bias"} if tower_type == "siglip" else set()),
        "seqTransf_3d": {"clip.vision_model.embeddings.patch_embedding.weight"},
    }.get(case, set())
    assert groups["frozen"] == unused
    assert groups["pretrained"] == tower_names - unused
    assert groups["new"] == {name for name, _ in model.named_parameters()} - tower_names
    assert all(any(name.startswith(part) for part in NEW_PARTS[case]) for name in groups["new"])
    frozen = set(model.freeze_pretrained_layers(1))
    groups = roles_by_kind(model)
    assert groups["frozen"] == frozen | unused
    assert any(".embeddings." in name for name in frozen)
    assert any("encoder.layers.0." in name for name in frozen)
    assert not any("encoder.layers.1." in name for name in frozen)
    # the top of each tower (norms, heads, projections, logit scale / bias) and new parts keep training
    for kept in ("clip.vision_model.post_layernorm.weight", "clip.text_model.final_layer_norm.weight"):
        assert kept in groups["pretrained"], kept
    assert ("clip.logit_scale" in groups["pretrained"]) == (case != "tightTransf")
    if tower_type == "siglip":
        assert {"clip.vision_model.head.probe", "clip.text_model.head.weight"} <= groups["pretrained"]
    if case == "seqTransf_3d":
        assert "clip.patch_embedding_3d.weight" not in frozen


@pytest.mark.parametrize("tower_type", TOWER_TYPES)
def test_lora_adapters_in_the_tower_are_new_parameters_at_full_lr(tower_dirs, tower_type):
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(build(tower_dirs[tower_type], "seqTransf"),
                           LoraConfig(r=2, lora_alpha=2, target_modules=["q_proj", "v_proj"]))
    roles = model.get_base_model().parameter_roles()
    lora = {name for name in roles if "lora_" in name}
    assert lora and all(name.startswith("clip.") or name.startswith("temporal.") for name in lora)
    assert {roles[name] for name in lora} == {"new"}
    assert {role for name, role in roles.items() if name not in lora} == {"frozen"}  # peft froze the rest
    groups = {group["name"]: group for group in parameter_groups(model, lr=6e-4, coef_lr=1e-3, weight_decay=0.2)}
    assert set(groups) == {"decay"}  # LoRA matrices: no bias, trained at lr, not lr * coef_lr
    assert groups["decay"]["lr"] == pytest.approx(6e-4)
    assert {id(p) for p in groups["decay"]["params"]} == {id(p) for p in model.parameters() if p.requires_grad}
    optimizer = build_optimizer(model, "adamw", lr=6e-4, coef_lr=1e-3, weight_decay=0.2)
    assert [group["lr"] for group in optimizer.param_groups] == [pytest.approx(6e-4)]


# -------------------------------------------------------------------------------------------- gallery scoring


def test_default_gallery_scoring_is_blocks_of_similarity(tower_dirs, monkeypatch):
    model = build(tower_dirs["clip"], "seqTransf").eval()
    inputs = tiny_inputs(batch_size=5)
    with torch.no_grad():
        text = model.encode_text(inputs["input_ids"], inputs["attention_mask"])
        video = model.encode_video(inputs["pixel_values_videos"], inputs["video_mask"])
        expected = model.similarity(text, video)
        calls = []
        similarity = model.similarity

        def recorded(texts, videos, **kwargs):
            calls.append((len(texts.text_features), len(videos.video_mask)))
            return similarity(texts, videos)

        monkeypatch.setattr(model, "similarity", recorded)
        torch.testing.assert_close(model.score_gallery(text, video, block_size=2), expected)
    assert calls == [(2, 2), (2, 2), (2, 1), (2, 2), (2, 2), (2, 1), (1, 2), (1, 2), (1, 1)]


def test_eercf_scores_a_gallery_in_two_stages_and_emcl_in_its_blocks(tower_dirs):
    inputs = tiny_inputs(batch_size=5)
    eercf = build(tower_dirs["siglip"], "eercf").eval()
    eercf.config.rerank_top_k = 2
    emcl = build(tower_dirs["clip"], "emcl").eval()
    emcl.config.eval_block_size = 2
    with torch.no_grad():
        text = eercf.encode_text(inputs["input_ids"], inputs["attention_mask"])
        video = eercf.encode_video(inputs["pixel_values_videos"], inputs["video_mask"])
        two_stage = eercf.similarity(text, video, rerank_top_k=2)
        torch.testing.assert_close(eercf.score_gallery(text, video, block_size=2), two_stage)
        torch.testing.assert_close(eercf.score_gallery(text, video, rerank_top_k=0), eercf.similarity(text, video))
        assert (eercf.score_gallery(text, video) > eercf.config.rerank_offset / 2).sum(dim=1).tolist() == [2] * 5
        text = emcl.encode_text(inputs["input_ids"], inputs["attention_mask"])
        video = emcl.encode_video(inputs["pixel_values_videos"], inputs["video_mask"])
        blocks = emcl.similarity(text, video, block_size=2)
        torch.testing.assert_close(emcl.score_gallery(text, video), blocks)
        assert not torch.allclose(emcl.score_gallery(text, video, block_size=5), blocks)  # the EM couples a block


# ------------------------------------------------------------------------------------ processor conventions


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from model_testers import VOCAB_SIZE
    from stand_ins import word_tokenizer

    folder = tmp_path_factory.mktemp("tokenizer")
    word_tokenizer(folder, VOCAB_SIZE)  # fits the tiny towers' text embeddings (a larger one is refused)
    return folder


def test_the_processor_takes_the_towers_conventions(tower_dirs, tokenizer_dir, tmp_path):
    import shutil

    folders = {}
    for tower_type, image_processor in (("clip", CLIPImageProcessor()),
                                        ("siglip", SiglipImageProcessor(size={"height": 16, "width": 16}))):
        folder = tmp_path / tower_type
        shutil.copytree(tower_dirs[tower_type], folder)
        shutil.copytree(tokenizer_dir, folder, dirs_exist_ok=True)
        image_processor.save_pretrained(folder)
        folders[tower_type] = folder

    clip = processor_for_image_text_model(folders["clip"], max_frames=4)
    assert (clip.text_padding, clip.max_words) == ("clip4clip", 32)  # the seeds' caption layout and length
    assert clip.video_processor.size.shortest_edge == 16 and clip.video_processor.do_center_crop
    ids = clip(text=["a dog runs"], return_tensors="pt")["input_ids"][0].tolist()
    end = ids.index(clip.tokenizer.eos_token_id) + 1
    assert ids[0] == clip.tokenizer.bos_token_id and end == 5 and ids[end:] == [0] * 27  # then id-0 padding

    siglip = processor_for_image_text_model(folders["siglip"], max_frames=4)
    assert (siglip.text_padding, siglip.max_words) == ("max_length", 16)  # the text tower's positions
    video = siglip.video_processor
    assert (video.size.height, video.size.width, video.do_center_crop) == (16, 16, False)
    assert list(video.image_mean) == [0.5] * 3 and list(video.image_std) == [0.5] * 3
    text = siglip(text=["a dog runs"], return_tensors="pt")
    pad_id = siglip.tokenizer.pad_token_id
    assert text["input_ids"].shape == (1, 16) and text["input_ids"][0, -1].item() == pad_id
    frames = torch.full((2, 20, 24, 3), 255, dtype=torch.uint8).numpy()
    batch = siglip(videos=[frames], return_tensors="pt")
    assert batch["pixel_values_videos"].shape == (1, 4, 3, 16, 16)
    torch.testing.assert_close(batch["pixel_values_videos"][0, :2], torch.ones(2, 3, 16, 16))  # (1 - .5) / .5


# --------------------------------------------------------------------------------------------------- registry


def test_one_entry_per_method_builds_auto_classes_converters_and_card_names():
    from transformers import CONFIG_MAPPING, MODEL_MAPPING
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    from tvr.cli import build_parser
    from tvr.convert.cli import converter_modules
    from tvr.hub_cards import build_model_card

    assert sorted(METHODS) == ["clip4clip", "dual_attention", "eercf", "emcl", "internvideo"]
    for model_type, method in METHODS.items():
        assert CONFIG_MAPPING[model_type] is method.config_class
        assert MODEL_MAPPING[method.config_class] is method.model_class
        assert PROCESSOR_MAPPING[method.config_class].__name__ == "TVRProcessor"
        assert method.converter in converter_modules()
        card = build_model_card({"model_type": model_type}, "you/model")
        assert f"A **{method.name}**" in str(card)
    formats = build_parser()._subparsers._group_actions[0].choices["convert"]._subparsers._group_actions[0].choices
    assert set(METHODS) | {"clip"} <= set(formats)


def test_embeddings_and_similarity_use_the_siglip_bias(tower_dirs):
    model = build(tower_dirs["siglip"], "meanP").eval()
    inputs = tiny_inputs()
    with torch.no_grad():
        output = model(**inputs)
        cosine = F.normalize(output.text_embeds, dim=-1) @ output.video_embeds.t()
    expected = cosine * model.clip.logit_scale.exp() + model.clip.logit_bias
    torch.testing.assert_close(output.logits_per_text, expected)
