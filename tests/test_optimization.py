"""Optimisation as the seeds: BertAdam, warmup_cosine, coef_lr groups, freeze_layer_num."""

import math

import pytest
import torch

from model_testers import RetrievalModelTester
from tvr.training.optimization import (
    BertAdam,
    build_optimizer,
    build_scheduler,
    freeze_pretrained_layers,
    parameter_groups,
    warmup_cosine,
)


def test_bertadam_two_steps_match_hand_computation():
    # p = [1, -2], lr 0.1, b1 0.9, b2 0.98, eps 1e-6, weight decay 0.2, per-parameter clip at norm 1.
    # Step 1: g = [3, 4] has norm 5 -> clipped to g * 1 / (5 + 1e-6) ~= [0.6, 0.8] (torch's clip coefficient).
    #   m = 0.1 g = [0.06, 0.08]; v = 0.02 g^2 = [0.0072, 0.0128]   (no bias correction)
    #   update = m / (sqrt(v) + eps) + 0.2 p ~= [0.70711 + 0.2, 0.70711 - 0.4]
    #   p = p - 0.1 update ~= [0.909290, -2.030710]
    # Step 2: g = [0.5, 0] (norm < 1, not clipped)
    #   m = 0.9 m + 0.1 g = [0.104, 0.072]; v = 0.98 v + 0.02 g^2 = [0.012056, 0.012544]
    #   p = p - 0.1 (m / (sqrt(v) + eps) + 0.2 p) ~= [0.796387, -2.054381]
    parameter = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = BertAdam([parameter], lr=0.1, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2, max_grad_norm=1.0)

    parameter.grad = torch.tensor([3.0, 4.0], dtype=torch.float64)
    optimizer.step()
    torch.testing.assert_close(parameter.detach(), torch.tensor([0.9092901552050244, -2.030710053124054],
                                                                dtype=torch.float64), rtol=0, atol=1e-12)
    state = optimizer.state[parameter]
    assert state["step"] == 1
    torch.testing.assert_close(state["exp_avg_sq"], torch.tensor([0.0072, 0.0128], dtype=torch.float64),
                               rtol=1e-5, atol=0)

    parameter.grad = torch.tensor([0.5, 0.0], dtype=torch.float64)
    optimizer.step()
    torch.testing.assert_close(parameter.detach(), torch.tensor([0.7963873878656547, -2.0543809923727054],
                                                                dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(state["exp_avg"], torch.tensor([0.104, 0.072], dtype=torch.float64),
                               rtol=1e-6, atol=0)


def test_bertadam_differs_from_adamw_by_bias_correction():
    # With bias correction the first Adam step is lr * sign(g); BertAdam's is lr * (1 - b1) / sqrt(1 - b2) * sign(g).
    parameter = torch.nn.Parameter(torch.tensor([0.5]))
    optimizer = BertAdam([parameter], lr=0.01, weight_decay=0.0, max_grad_norm=0.0)
    parameter.grad = torch.tensor([0.3])
    optimizer.step()
    assert parameter.item() == pytest.approx(0.5 - 0.01 * 0.1 / math.sqrt(0.02), abs=1e-6)


def loop_bertadam_step(parameters, states, lr, betas, eps, weight_decay, max_grad_norm):
    """BertAdam as the seeds write it: one parameter at a time (the reference for the multi-tensor version)."""
    with torch.no_grad():
        for parameter, state in zip(parameters, states):
            if parameter.grad is None:
                continue
            torch.nn.utils.clip_grad_norm_(parameter, max_grad_norm)
            state.setdefault("exp_avg", torch.zeros_like(parameter))
            state.setdefault("exp_avg_sq", torch.zeros_like(parameter))
            state["exp_avg"].mul_(betas[0]).add_(parameter.grad, alpha=1 - betas[0])
            state["exp_avg_sq"].mul_(betas[1]).addcmul_(parameter.grad, parameter.grad, value=1 - betas[1])
            update = state["exp_avg"] / (state["exp_avg_sq"].sqrt() + eps) + weight_decay * parameter
            parameter.add_(update, alpha=-lr)


def test_multi_tensor_bertadam_equals_the_per_parameter_loop():
    # mixed shapes and dtypes, gradients above and below the clip norm, a parameter without a gradient
    generator = torch.Generator().manual_seed(0)
    shapes = [(7, 5), (5,), (3, 4, 2), (1,), (6,)]
    dtypes = [torch.float32, torch.float32, torch.float64, torch.float32, torch.float64]
    ours = [torch.nn.Parameter(torch.randn(shape, generator=generator, dtype=dtype))
            for shape, dtype in zip(shapes, dtypes)]
    reference = [torch.nn.Parameter(parameter.detach().clone()) for parameter in ours]
    optimizer = BertAdam(ours, lr=0.05, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2, max_grad_norm=1.0)
    states = [{} for _ in reference]
    for step in range(3):
        for index, (mine, theirs) in enumerate(zip(ours, reference)):
            if index == 3 and step < 2:  # no gradient: left alone, no state
                mine.grad = theirs.grad = None
                continue
            grad = torch.randn(mine.shape, generator=generator, dtype=mine.dtype) * (3.0 if index % 2 else 0.1)
            mine.grad, theirs.grad = grad.clone(), grad.clone()
        optimizer.step()
        loop_bertadam_step(reference, states, 0.05, (0.9, 0.98), 1e-6, 0.2, 1.0)
        for mine, theirs in zip(ours, reference):
            # equal up to float rounding (the multi-tensor norm and fused add round in their own order)
            torch.testing.assert_close(mine.detach(), theirs.detach(), rtol=1e-6, atol=1e-8)
    assert optimizer.state[ours[3]]["step"] == 1 and optimizer.state[ours[0]]["step"] == 3


def test_adamw_uses_the_fused_kernel_and_matches_the_unfused_update():
    model = TwoGroupModel()
    optimizer = build_optimizer(model, "adamw", lr=1e-2, coef_lr=0.5, weight_decay=0.2)
    assert all(group["fused"] for group in optimizer.param_groups)
    reference_model = TwoGroupModel()
    reference_model.load_state_dict(model.state_dict())
    reference = torch.optim.AdamW(parameter_groups(reference_model, 1e-2, 0.5, 0.2), lr=1e-2, betas=(0.9, 0.98),
                                  eps=1e-6, weight_decay=0.2, foreach=False)
    generator = torch.Generator().manual_seed(1)
    for _ in range(3):
        for mine, theirs in zip(model.parameters(), reference_model.parameters()):
            mine.grad = torch.randn(mine.shape, generator=generator)
            theirs.grad = mine.grad.clone()
        optimizer.step()
        reference.step()
    for mine, theirs in zip(model.parameters(), reference_model.parameters()):
        torch.testing.assert_close(mine, theirs, rtol=1e-6, atol=1e-7)


def test_fused_kernels_are_not_asked_for_integer_parameters():
    from tvr.training.optimization import fused_kernels_fit

    assert fused_kernels_fit([[torch.zeros(2)], [torch.zeros(1, dtype=torch.float64)]])
    assert not fused_kernels_fit([[torch.zeros(2)], [torch.zeros(2, dtype=torch.long)]])


@pytest.mark.parametrize("progress, warmup, expected", [
    (0.0, 0.1, 0.0),
    (0.05, 0.1, 0.5),  # half of the warmup
    (0.1, 0.1, 0.5 * (1 + math.cos(math.pi * 0.1))),  # warmup ends: cosine of the whole progress (0.97553)
    (0.5, 0.1, 0.5),
    (1.0, 0.1, 0.0),
    (0.3, 0.0, 0.5 * (1 + math.cos(math.pi * 0.3))),
])
def test_warmup_cosine_values(progress, warmup, expected):
    assert warmup_cosine(progress, warmup) == pytest.approx(expected, abs=1e-12)


class TwoGroupModel(torch.nn.Module):
    """Declares its parameters like a tvr model: pretrained parts under `clip.`, a head outside."""

    def __init__(self):
        super().__init__()
        self.clip = torch.nn.Module()
        self.clip.text_projection = torch.nn.Linear(2, 2, bias=False)
        self.clip.final_layer_norm = torch.nn.LayerNorm(2)
        self.clip.logit_scale = torch.nn.Parameter(torch.tensor(1.0))
        self.head = torch.nn.Linear(2, 2)
        self.frame_position_embeddings = torch.nn.Embedding(4, 2)

    def parameter_roles(self):
        return {name: "pretrained" if name.startswith("clip.") else "new" for name, _ in self.named_parameters()}


def test_parameter_groups_coef_lr_and_decay():
    model = TwoGroupModel()
    groups = {group["name"]: group for group in parameter_groups(model, lr=1e-4, coef_lr=1e-3, weight_decay=0.2)}
    names = {id(p): n for n, p in model.named_parameters()}
    as_names = {key: sorted(names[id(p)] for p in group["params"]) for key, group in groups.items()}
    # LayerNorm weights, embeddings and logit_scale ARE decayed (names lack "bias"), as in the seeds
    assert as_names == {
        "pretrained_decay": ["clip.final_layer_norm.weight", "clip.logit_scale", "clip.text_projection.weight"],
        "pretrained_no_decay": ["clip.final_layer_norm.bias"],
        "decay": ["frame_position_embeddings.weight", "head.weight"],
        "no_decay": ["head.bias"],
    }
    assert groups["pretrained_decay"]["lr"] == pytest.approx(1e-7)
    assert groups["pretrained_no_decay"]["lr"] == pytest.approx(1e-7)
    assert groups["decay"]["lr"] == pytest.approx(1e-4) and groups["no_decay"]["lr"] == pytest.approx(1e-4)
    assert groups["pretrained_decay"]["weight_decay"] == 0.2 and groups["decay"]["weight_decay"] == 0.2
    assert groups["pretrained_no_decay"]["weight_decay"] == 0.0 and groups["no_decay"]["weight_decay"] == 0.0


def test_a_model_without_a_declaration_trains_everything_at_lr():
    # no name guessing: `clip.` means nothing to the optimiser unless the model declares it pretrained
    plain = torch.nn.Module()
    plain.clip = torch.nn.Linear(2, 2)
    groups = parameter_groups(plain, lr=1e-4, coef_lr=1e-3, weight_decay=0.2)
    assert [group["name"] for group in groups] == ["decay", "no_decay"]
    assert all(group["lr"] == pytest.approx(1e-4) for group in groups)


def test_frozen_parameters_leave_the_groups():
    model = TwoGroupModel()
    model.head.weight.requires_grad_(False)
    groups = parameter_groups(model, lr=1.0, coef_lr=1.0, weight_decay=0.0)
    assert all(p is not model.head.weight for group in groups for p in group["params"])


def test_scheduler_scales_every_group_with_warmup_cosine():
    model = TwoGroupModel()
    optimizer = build_optimizer(model, "bertadam", lr=1e-4, coef_lr=1e-3, weight_decay=0.2)
    scheduler = build_scheduler(optimizer, total_steps=20, warmup_proportion=0.1)
    expected = {0: 0.0, 1: 0.5, 2: 0.5 * (1 + math.cos(math.pi * 0.1)), 10: 0.5,
                19: 0.5 * (1 + math.cos(math.pi * 0.95))}
    for step in range(20):
        if step in expected:
            lrs = {group["name"]: group["lr"] for group in optimizer.param_groups}
            assert lrs["decay"] == pytest.approx(1e-4 * expected[step], abs=1e-15)
            assert lrs["pretrained_decay"] == pytest.approx(1e-7 * expected[step], abs=1e-18)
        optimizer.step()
        scheduler.step()


def test_build_optimizer_rejects_unknown_name():
    with pytest.raises(ValueError, match="'sgd'"):
        build_optimizer(TwoGroupModel(), "sgd", lr=1.0, coef_lr=1.0, weight_decay=0.0)


def tiny_clip4clip(**kwargs):
    return RetrievalModelTester(**kwargs).model().train()


def _has(names, suffix):
    return any(name.endswith(suffix) for name in names)


def test_freeze_layer_num_rule_on_clip4clip_names():
    model = tiny_clip4clip(sim_header="seqTransf", temporal_config={"num_hidden_layers": 1})
    frozen = {name.removeprefix("clip.") for name in freeze_pretrained_layers(model, freeze_layer_num=1)}
    clip_names = {name for name, _ in model.clip.named_parameters()}
    expected_frozen = {
        name for name in clip_names
        if ".embeddings." in name or "pre_layrnorm." in name or "encoder.layers.0." in name
    }
    assert frozen == expected_frozen
    assert _has(frozen, "text_model.embeddings.token_embedding.weight")
    assert _has(frozen, "vision_model.embeddings.patch_embedding.weight")
    assert _has(frozen, "vision_model.encoder.layers.0.self_attn.q_proj.weight")
    trainable = {name for name, p in model.clip.named_parameters() if p.requires_grad}
    assert trainable == clip_names - expected_frozen
    for suffix in ("text_model.encoder.layers.1.mlp.fc1.weight", "vision_model.encoder.layers.1.mlp.fc2.bias",
                   "final_layer_norm.weight", "post_layernorm.bias", "text_projection.weight",
                   "visual_projection.weight", "logit_scale"):
        assert _has(trainable, suffix), suffix
    # everything outside clip trains
    assert all(p.requires_grad for name, p in model.named_parameters() if not name.startswith("clip."))


def test_freeze_layer_num_zero_still_freezes_embeddings_and_minus_one_nothing():
    model = tiny_clip4clip()
    frozen = freeze_pretrained_layers(model, freeze_layer_num=0)
    assert frozen and all(".embeddings." in name or "pre_layrnorm." in name for name in frozen)
    assert _has(frozen, "position_embedding.weight") and _has(frozen, "class_embedding")
    model = tiny_clip4clip()
    assert freeze_pretrained_layers(model, freeze_layer_num=-1) == []
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_keeps_the_3d_patch_embedding_trainable():
    model = tiny_clip4clip(linear_patch="3d")
    frozen = freeze_pretrained_layers(model, freeze_layer_num=2)
    assert model.clip.patch_embedding_3d.weight.requires_grad
    assert _has(frozen, "token_embedding.weight")  # the original's 3d bug froze nothing at all
