"""EERCF: score functions against hand computations, two-stage re-ranking against all-pairs scoring, model contract."""

import math

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, CLIPConfig, CLIPModel

from model_testers import RetrievalModelTester
from tvr.methods.eercf.configuration import EERCFConfig
from tvr.methods.eercf.modeling import (
    EERCFModel,
    EERCFVideoEncoding,
    attention_pooled_logits,
    pearson_penalty,
    text_gated_pool,
    weak_frame_logits,
)
from tvr.methods.eercf.rerank import top_k_pairs, two_stage_logits
from tvr.modeling.outputs import TextEncoding, concat_encodings

# tvr.modeling registers EERCF with the Auto classes; make sure it is registered even before that line lands.
AutoConfig.register("eercf", EERCFConfig, exist_ok=True)
AutoModel.register(EERCFConfig, EERCFModel, exist_ok=True)

MAX_FRAMES, IMAGE_SIZE, PATCH = 4, 16, 8  # 4 patches per frame


TESTER = RetrievalModelTester(
    model_class=EERCFModel,
    text_config=dict(vocab_size=64, intermediate_size=128, num_attention_heads=1, bos_token_id=62, eos_token_id=63),
    vision_config=dict(image_size=IMAGE_SIZE, patch_size=PATCH),
    max_frames=MAX_FRAMES, temporal_config={"num_hidden_layers": 2}, rerank_top_k=2,
)


def tiny_config(**overrides) -> EERCFConfig:
    return TESTER.get_config(**overrides)


def tiny_model(seed: int = 0, **overrides) -> EERCFModel:
    model = TESTER.model(seed, **overrides)
    with torch.no_grad():  # away from the identity init, so a wrong matrix shape or transpose shows
        model.video_logit_weight.add_(0.1 * torch.randn_like(model.video_logit_weight))
        model.frame_logit_weight.add_(0.2 * torch.randn_like(model.frame_logit_weight))
    return model


def text_inputs(num_texts: int, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(1, 60, (num_texts, 8), generator=generator)
    input_ids[:, 0] = 62
    lengths = torch.randint(3, 8, (num_texts,), generator=generator)
    attention_mask = (torch.arange(8)[None] <= lengths[:, None]).long()
    input_ids[torch.arange(num_texts), lengths] = 63
    return input_ids * attention_mask, attention_mask


def video_inputs(num_videos: int, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(num_videos, MAX_FRAMES, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    video_mask = torch.ones(num_videos, MAX_FRAMES, dtype=torch.long)
    video_mask[0, 2:] = 0  # a short video, padded with zero frames as the original loader does
    pixels[0, 2:] = 0
    return pixels, video_mask


@pytest.fixture(scope="module")
def encoded():
    model = tiny_model()
    with torch.no_grad():
        text = model.encode_text(*text_inputs(5))
        video = model.encode_video(*video_inputs(6))
    return model, text, video


# ------------------------------------------------------------------------------------------ score functions


def test_weak_frame_logits_by_hand():
    sims = torch.tensor([0.2, 0.5, -0.1])
    swap = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # frame-logit matrix swapping 0 and 1
    exps = [math.exp(s / 0.1) for s in (0.2, 0.5, -0.1)]
    a = [e / sum(exps) for e in exps]
    expected = 0.2 * a[1] + 0.5 * a[0] - 0.1 * a[2]  # (a @ W)_f = a_{swap(f)}
    assert weak_frame_logits(sims, swap, 0.1).item() == pytest.approx(expected, abs=1e-6)
    # leading dims broadcast: a (2, 3, frames) batch gives (2, 3)
    batch = torch.stack([sims, -sims]).unsqueeze(1).expand(2, 3, 3)
    out = weak_frame_logits(batch, torch.eye(3), 0.1)
    assert out.shape == (2, 3)
    assert out[0, 0].item() == pytest.approx(sum(s * w for s, w in zip((0.2, 0.5, -0.1), a)), abs=1e-6)


def test_attention_pooled_logits_by_hand():
    sims = torch.tensor([0.3, 0.1, 0.0, -0.2])
    exps = [math.exp(s / 0.05) for s in sims.tolist()]
    expected = sum(s * e for s, e in zip(sims.tolist(), exps)) / sum(exps)
    assert attention_pooled_logits(sims, 0.05).item() == pytest.approx(expected, abs=1e-6)
    # a cold softmax picks the best token
    assert attention_pooled_logits(sims, 1e-4).item() == pytest.approx(0.3, abs=1e-6)


def test_text_gated_pool_by_hand_and_broadcast():
    tokens = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    gate = torch.softmax(torch.tensor([0.4, 0.2]) / 0.1, dim=0)
    expected = F.normalize(gate[0] * tokens[0] + gate[1] * tokens[1], dim=0)
    torch.testing.assert_close(text_gated_pool(torch.tensor([0.4, 0.2]), tokens, 0.1), expected)
    # all pairs (texts, videos, tokens) with tokens (videos, tokens, dim) == the aligned-pairs form
    sims, video_tokens = torch.randn(3, 4, 5), torch.randn(4, 5, 6)
    dense = text_gated_pool(sims, video_tokens, 0.1)
    pairs = text_gated_pool(sims.reshape(12, 5), video_tokens.repeat(3, 1, 1), 0.1)
    torch.testing.assert_close(dense.reshape(12, 6), pairs)


def test_pearson_penalty_is_computed_in_fp32_under_bf16_autocast():
    # the standardised cross-correlation of a batch loses its digits in bf16 (a matmul autocast would run in bf16)
    generator = torch.Generator().manual_seed(0)
    text, video = torch.randn(8, 64, generator=generator), torch.randn(8, 64, generator=generator)
    video = text + 0.05 * video  # strongly correlated pairs: C_dd near 1, where bf16 rounding shows most
    reference = pearson_penalty(text, video, 0.14, 0.01)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = pearson_penalty(text, video, 0.14, 0.01)
    assert autocast.dtype == torch.float32
    torch.testing.assert_close(autocast, reference, rtol=1e-6, atol=0)
    # bf16 features of a batch of 2 that round to one value in a column: that column standardises to 0, not NaN
    rounded = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.5, 3.5]], dtype=torch.bfloat16)
    finite = pearson_penalty(rounded, rounded.flip(0), 1.0, 0.0)
    # columns 1 and 2 anti-correlate: C_dd = -(B - 1) / B = -1/2, (C_dd - 1)^2 = 2.25 each; column 0: (0 - 1)^2 = 1
    assert finite.item() == pytest.approx(2 * 2.25 + 1.0, rel=1e-6)


def test_pearson_penalty_by_hand():
    batch_size, dim = 5, 3
    features = torch.randn(batch_size, dim)
    # identical features: C_dd = (B - 1) / B with the unbiased std, so the penalty is alpha * dim / B^2
    assert pearson_penalty(features, features, 0.14, 0.0).item() == pytest.approx(0.14 * dim / batch_size**2, rel=1e-5)
    # anti-correlated: C_dd = -(B - 1) / B
    expected = 0.14 * dim * (1 + (batch_size - 1) / batch_size) ** 2
    assert pearson_penalty(features, -features, 0.14, 0.0).item() == pytest.approx(expected, rel=1e-5)
    # off-diagonal term: two identical columns give C_01 = C_10 = (B - 1) / B
    paired = features[:, :1].repeat(1, 2)
    off = 2 * ((batch_size - 1) / batch_size) ** 2
    assert pearson_penalty(paired, paired, 0.0, 1.0).item() == pytest.approx(off, rel=1e-5)


# ----------------------------------------------------------------------------------------------- re-ranking


def test_two_stage_logits_equals_selecting_from_all_pairs():
    generator = torch.Generator().manual_seed(0)
    coarse, fine = torch.randn(7, 9, generator=generator), torch.randn(7, 9, generator=generator)
    scored, videos = [], []

    def score_pairs(text_index, video_index):
        scored.append(len(text_index))
        videos.extend(video_index.tolist())
        return fine[text_index, video_index]

    final = two_stage_logits(coarse, 3, score_pairs, offset=100.0, pairs_per_chunk=5)
    expected = coarse.clone()
    for row in range(7):
        top = coarse[row].argsort(descending=True)[:3]
        expected[row, top] = 100.0 + fine[row, top]
    torch.testing.assert_close(final, expected)
    assert scored == [5, 5, 5, 5, 1]  # 21 = 7 texts x 3 candidates, in chunks of 5
    assert videos == sorted(videos)  # grouped by video, so a scorer loads each candidate video once
    # k beyond the gallery re-scores everything; k < 1 is refused
    torch.testing.assert_close(two_stage_logits(coarse, 50, lambda t, v: fine[t, v]), fine + 100.0)
    with pytest.raises(ValueError, match="top_k"):
        top_k_pairs(coarse, 0)


def test_similarity_two_stage_equals_all_pairs_and_scores_only_top_k(encoded, monkeypatch):
    model, text, video = encoded
    with torch.no_grad():
        dense = model.granularity_logits(text, video)
        coarse = model.similarity(text, video)
        torch.testing.assert_close(coarse, dense.video_logits)
        config = model.config
        fused = (0.5 * dense.video_logits + 0.8 * dense.weak_frame_logits + 0.2 * dense.strong_frame_logits
                 + 0.2 * dense.weak_patch_logits)
        torch.testing.assert_close(dense.fine_logits, fused)

        pairs_scored = []
        fine_logits = model._fine_logits

        def counting(text_embeds, *parts):
            pairs_scored.append(text_embeds.shape[0])
            return fine_logits(text_embeds, *parts)

        monkeypatch.setattr(model, "_fine_logits", counting)
        for k in (1, 2, 6):
            pairs_scored.clear()
            final = model.similarity(text, video, rerank_top_k=k)
            expected = coarse.clone()
            top = coarse.topk(k, dim=1).indices
            expected.scatter_(1, top, config.rerank_offset + dense.fine_logits.gather(1, top))
            torch.testing.assert_close(final, expected, atol=1e-5, rtol=1e-5)
            assert sum(pairs_scored) == 5 * k
            assert torch.equal(final.argsort(dim=1, descending=True), expected.argsort(dim=1, descending=True))


def test_fine_stage_works_on_concatenated_batches(encoded):
    model, text, video = encoded
    halves = [EERCFVideoEncoding(**{name: value[rows] for name, value in video.items()})
              for rows in (slice(0, 3), slice(3, 6))]
    merged = concat_encodings(halves)
    assert isinstance(merged, EERCFVideoEncoding)
    with torch.no_grad():
        torch.testing.assert_close(model.similarity(text, merged, rerank_top_k=2),
                                   model.similarity(text, video, rerank_top_k=2))


# -------------------------------------------------------------------------------------------------- model


def test_patch_embeds_are_compact_when_cached_and_full_when_training():
    model = tiny_model()
    pixels, video_mask = video_inputs(2)
    with torch.no_grad():
        cached = model.encode_video(pixels, video_mask)
    assert cached.patch_embeds.dtype == torch.float16
    assert cached.patch_embeds.shape == (2, MAX_FRAMES * (IMAGE_SIZE // PATCH) ** 2, 32)
    model.train()
    training = model.encode_video(pixels, video_mask)
    assert training.patch_embeds.dtype == torch.float32 and training.patch_embeds.requires_grad
    torch.testing.assert_close(cached.patch_embeds.float(), training.patch_embeds.detach(), atol=1e-3, rtol=0)
    torch.testing.assert_close(training.patch_embeds.norm(dim=-1), torch.ones(2, 16))


def test_padded_frames_take_part_in_frame_and_patch_scores_like_the_original():
    model = tiny_model(patch_embeds_dtype="float32")
    pixels, video_mask = video_inputs(2)
    changed = pixels.clone()
    changed[0, 3] = 1.0  # content of a padded frame (video_mask 0)
    with torch.no_grad():
        text = model.encode_text(*text_inputs(3))
        before = model.granularity_logits(text, model.encode_video(pixels, video_mask))
        after = model.granularity_logits(text, model.encode_video(changed, video_mask))
    torch.testing.assert_close(before.video_logits, after.video_logits)  # the video vector masks padding
    assert (before.weak_frame_logits[:, 0] - after.weak_frame_logits[:, 0]).abs().max() > 1e-3
    assert (before.weak_patch_logits[:, 0] - after.weak_patch_logits[:, 0]).abs().max() > 1e-3
    torch.testing.assert_close(before.weak_frame_logits[:, 1], after.weak_frame_logits[:, 1])


def test_encode_video_rejects_a_frame_count_other_than_max_frames():
    model = tiny_model()
    with pytest.raises(ValueError, match="max_frames=4"):
        model.encode_video(torch.zeros(1, 3, 3, IMAGE_SIZE, IMAGE_SIZE))
    with pytest.raises(ValueError, match="video_mask"):
        model.encode_video(torch.zeros(1, 4, 3, IMAGE_SIZE, IMAGE_SIZE), torch.ones(1, 3, dtype=torch.long))


def test_compute_loss_parts_and_detached_gate(encoded):
    model = encoded[0]
    model.train()
    try:
        output = model(*text_inputs(4), *video_inputs(4), return_loss=True)
    finally:
        model.eval()
    parts = output.loss_output
    config = model.config
    inter = 0.8 * _symmetric_ce(parts.weak_logits) + 0.2 * _symmetric_ce(parts.strong_logits)
    torch.testing.assert_close(parts.inter_loss, inter)
    torch.testing.assert_close(parts.intra_loss, parts.pearson_video + parts.pearson_frame)  # patch weight 0
    torch.testing.assert_close(output.loss, inter + config.pearson_loss_weight * parts.intra_loss)
    torch.testing.assert_close(output.logits_per_video, output.logits_per_text.t())
    torch.testing.assert_close(output.logits_per_text, parts.logits.video_logits)
    output.loss.backward()
    assert model.frame_logit_weight.grad.abs().sum() > 0 and model.video_logit_weight.grad.abs().sum() > 0
    model.zero_grad()

    # The strong score's gate is detached: no gradient reaches the raw frame features through it.
    video = output.video_encoding
    frames = video.frame_features.detach().requires_grad_()
    context = video.context_frame_embeds.detach().requires_grad_()
    leaf = EERCFVideoEncoding(frame_features=frames, video_mask=video.video_mask,
                              video_embeds=video.video_embeds.detach(), context_frame_embeds=context,
                              patch_embeds=video.patch_embeds.detach())
    text = TextEncoding(text_features=output.text_encoding.text_features.detach())
    model.compute_loss(text, leaf).logits.strong_frame_logits.sum().backward()
    assert frames.grad is None and context.grad.abs().sum() > 0


def _symmetric_ce(logits):
    targets = torch.arange(logits.shape[0])
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.t(), targets)) / 2


def test_compute_loss_needs_a_square_batch_and_leaves_pearson_out_for_one_pair(encoded):
    model, text, video = encoded
    with pytest.raises(ValueError, match="one video per text, got 5 texts and 6 videos"):
        model.compute_loss(text, video)
    one_text = type(text)(**{k: v[:1] for k, v in text.items()})
    one_video = type(video)(**{k: v[:1] for k, v in video.items()})
    with torch.no_grad():
        loss = model.compute_loss(one_text, one_video)
    # one pair: both contrastive terms are CE over a single candidate (0), the Pearson terms are undefined (0)
    assert loss.loss.item() == 0.0 and loss.intra_loss.item() == 0.0


def test_from_clip_initialises_head_and_identity_matrices():
    config = tiny_config()
    torch.manual_seed(0)
    clip = CLIPModel(CLIPConfig(text_config=config.text_config.to_dict(), vision_config=config.vision_config.to_dict(),
                                projection_dim=32))
    model = EERCFModel.from_clip(clip, max_frames=MAX_FRAMES, temporal_config={"num_hidden_layers": 2})
    torch.testing.assert_close(model.temporal.frame_position_embeddings.weight,
                               clip.text_model.embeddings.position_embedding.weight)
    for layer, text_layer in zip(model.temporal.transformer.layers, clip.text_model.encoder.layers):
        torch.testing.assert_close(layer.mlp.fc1.weight, text_layer.mlp.fc1.weight)
        torch.testing.assert_close(layer.self_attn.q_proj.bias, text_layer.self_attn.q_proj.bias)
    torch.testing.assert_close(model.video_logit_weight, torch.eye(32))
    torch.testing.assert_close(model.frame_logit_weight, torch.eye(MAX_FRAMES))
    torch.testing.assert_close(model.clip.visual_projection.weight, clip.visual_projection.weight)
    assert model.temporal.transformer.layers[0].layer_norm1.eps == 1e-12


def test_save_and_load_with_auto_classes(encoded, tmp_path):
    model, text, video = encoded
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, EERCFModel)
    assert loaded.config.model_type == "eercf" and loaded.config.rerank_top_k == 2
    assert AutoConfig.from_pretrained(tmp_path).max_frames == MAX_FRAMES
    with torch.no_grad():
        torch.testing.assert_close(loaded.similarity(text, video, rerank_top_k=2),
                                   model.similarity(text, video, rerank_top_k=2))
    torch.testing.assert_close(loaded.frame_logit_weight, model.frame_logit_weight)


def test_features_give_the_coarse_logits(encoded):
    model, text, video = encoded
    input_ids, attention_mask = text_inputs(5)
    with torch.no_grad():
        text_features = model.get_text_embeds(input_ids, attention_mask)
        video_features = model.get_video_embeds(*video_inputs(6))
        coarse = model.similarity(text, video)
    torch.testing.assert_close(model.clip.logit_scale.exp() * text_features @ video_features.t(), coarse)
