"""EMCL-Net: the EM module, text-conditioned pooling, similarity and the model contract."""

from __future__ import annotations

import json
import pathlib

import pytest
import torch
from safetensors.torch import load_file

from tvr.modeling.em import EMReconstruction, initial_em_bases

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
    torch.testing.assert_close(em.bases, 0.75 * start + 0.25 * converged.mean(dim=0, keepdim=True), rtol=1e-5, atol=1e-6)


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


def test_em_bases_are_saved_and_set_with_shape_checks():
    em = EMReconstruction(num_bases=4)
    assert list(em.state_dict()) == ["bases"]
    em.set_bases(torch.tensor([1.0, -1.0, 0.5, 2.0]))
    torch.testing.assert_close(em.bases, torch.tensor([[1.0, -1.0, 0.5, 2.0]]))
    with pytest.raises(ValueError, match=r"shape \(1, 4\)"):
        em.set_bases(torch.ones(1, 5))
