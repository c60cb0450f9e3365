"""The fast paths on a CUDA device: skipped without one (CI has none); `benchmarks/gpu.sh` runs them on a GPU.

Each test compares the GPU path with the CPU reference on a tiny model, so a wrong kernel choice or a lost
normalisation shows as a number, not as a crash.
"""

import pytest
import torch

from model_testers import tiny_clip4clip_model, tiny_inputs

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def test_uint8_frames_normalised_on_the_gpu_equal_the_cpu():
    from tvr import TVRVideoProcessor
    from tvr.processing import normalize_videos

    processor = TVRVideoProcessor()
    frames = torch.randint(0, 256, (2, 3, 3, 8, 8), dtype=torch.uint8)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    on_gpu = normalize_videos(frames.cuda(), mask.cuda(), processor)
    torch.testing.assert_close(on_gpu.cpu(), normalize_videos(frames, mask, processor), rtol=0, atol=1e-6)


def test_fused_adamw_on_the_gpu_matches_the_cpu_update():
    from tvr.training import build_optimizer

    cpu_model = tiny_clip4clip_model("seqTransf")
    gpu_model = tiny_clip4clip_model("seqTransf").cuda()
    optimizers = [build_optimizer(model, "adamw", lr=1e-3, coef_lr=0.1, weight_decay=0.2)
                  for model in (cpu_model, gpu_model)]
    assert all(group["fused"] for group in optimizers[1].param_groups)
    for parameter, twin in zip(cpu_model.parameters(), gpu_model.parameters()):
        parameter.grad = torch.randn_like(parameter)
        twin.grad = parameter.grad.cuda()
    for optimizer in optimizers:
        optimizer.step()
    for parameter, twin in zip(cpu_model.parameters(), gpu_model.parameters()):
        torch.testing.assert_close(twin.detach().cpu(), parameter.detach(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sim_header", ["meanP", "seqTransf", "tightTransf"])
def test_bf16_scores_stay_close_to_fp32(sim_header):
    model = tiny_clip4clip_model(sim_header).cuda()
    inputs = {name: value.cuda() for name, value in tiny_inputs().items()}
    with torch.no_grad():
        reference = model(**inputs).logits_per_text.float()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = model(**inputs).logits_per_text.float()
    torch.testing.assert_close(bf16, reference, rtol=0.05, atol=0.05)


def test_tight_chunks_follow_the_free_gpu_memory():
    from tvr.modeling.heads import GPU_FREE_MEMORY_SHARE, pair_chunk_size

    config = tiny_clip4clip_model("tightTransf").config.temporal_config
    free = torch.cuda.mem_get_info()[0]
    pair_bytes = (5 * (6 * config.hidden_size + 2 * config.intermediate_size) + config.num_attention_heads * 25) * 4
    expected = int(free * GPU_FREE_MEMORY_SHARE // pair_bytes)
    assert abs(pair_chunk_size(config, 5, "cuda") - expected) <= expected // 100  # free memory moves a little


def test_compiled_training_step_on_the_gpu_gives_the_eager_loss():
    from tvr import TVRVideoProcessor
    from tvr.training.trainer import ContrastiveStep

    model = tiny_clip4clip_model("seqTransf").cuda()  # eval mode: no dropout, so both passes are deterministic
    inputs = {name: value.cuda() for name, value in tiny_inputs().items()}
    step = ContrastiveStep(model, TVRVideoProcessor())
    with torch.autocast("cuda", dtype=torch.bfloat16):
        eager = step(**inputs)
        step.compile()
        compiled = step(**inputs)
    torch.testing.assert_close(compiled.float(), eager.float(), rtol=1e-2, atol=1e-2)
