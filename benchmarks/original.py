"""The original CLIP4Clip code beside tvr, for side-by-side speed benchmarks (`bench_train.py`, `bench_eval.py`).

The original (github ArrowLuo/CLIP4Clip @ 508ffa3) is never committed: clone it into the ignored folder
`.original/CLIP4Clip` (or pass `--original DIR`). Its modules are imported in-process, as
`../shared/specs/gpu_baseline.md` describes: `modules/modeling.py` (CLIP4Clip), `module_clip.py` and
`optimization.py` (BertAdam); `main_task_retrieval.py` is not imported (it starts an NCCL process group at import),
its loop is mirrored instead. `boto3` / `botocore` (imported by `modules/file_utils.py`, used only for S3 downloads)
are stubbed while that module is imported when they are not installed, then removed from `sys.modules` again.

Both models get the same random OpenAI-format ViT-B/32 weights: the original's `CLIP` module initialises them
(`torch.manual_seed(seed)`), they are saved to a temporary file, passed as `pretrained_clip_name` to the original's
`CLIP4Clip.from_pretrained("cross-base", ...)` exactly as `init_model` does, and the built original's state dict is
converted to tvr with tvr's own checkpoint converter. `check_parity` compares the two models' similarity matrices.
EMCL-Net (`build_emcl_models`), EERCF (`build_eercf_models`) and DAVRL (`build_davrl_models`) are built the same
way from their own code. One
process benchmarks one method: CLIP4Clip's and EERCF's code are both a top-level package called `modules`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
import time
import types
from pathlib import Path
from types import SimpleNamespace

import torch

ORIGINALS = Path(__file__).resolve().parent.parent / ".original"
DEFAULT_ORIGINAL = ORIGINALS / "CLIP4Clip"
FETCH_HINT = ("clone github ArrowLuo/CLIP4Clip (commit 508ffa3) into .original/CLIP4Clip (ignored by git), or pass "
              "--original DIR")
# EMCL-Net lives in a sub-folder of github jpthu17/EMCL (commit 3af1794); its package is called `tvr` too, so it is
# imported under another name
EMCL_PACKAGE = Path("video_retrieval") / "EMCL-Net" / "tvr"
DAVRL_HINT = "clone github bzy-source/DAVRL (commit a5ed5c2) into .original/DAVRL, or pass --original DIR"
# DAVRL's params.py defaults with its README's MSR-VTT script (scripts/train_msrvtt.sh)
DAVRL_ARGS = dict(base_encoder="ViT-B/32", max_frames=12, max_words=32, lora_dim=8, shared_latent_space="transformer",
                  global_visual_prompt_length=8, visual_output_type="global_token0", sel_layer="6",
                  frame_per_seg="2-4-12", seg_num="6-3-1", seg_layer="8-9-10", r=10, select="Dual-Attention",
                  alpha=0.4, world_size=1, rank=0, local_rank=0, clip_lr=6e-4, weight_decay=0.2, warmup_proportion=0.1)
EERCF_HINT = "clone github adxcreative/EERCF (commit 90f1d07) into .original/EERCF, or pass --original DIR"
# main_eercf.py's loss weights (its argparse defaults; the README's MSR-VTT script sets none of them)
EERCF_LOSS_WEIGHTS = dict(video_weight=0.5, weakframe_weight=0.5, strongframe_weight=1.0, weakpatch_weight=0.05,
                          strongpatch_weight=0.0, cdcl_video_weight=1.0, cdcl_frame_weight=1.0, cdcl_patch_weight=0.0,
                          weak_loss_weight=0.8, strong_loss_weight=0.2, cdcl_loss_weight=0.001)
EMCL_HINT = ("export github jpthu17/EMCL (commit 3af1794) video_retrieval/EMCL-Net into .original/EMCL (keeping that "
             "path), or pass --original DIR")
# EMCL's main_retrieval.py defaults (its README's MSR-VTT recipe)
EMCL_ARGS = dict(base_encoder="ViT-B/32", agg_module="seqTransf", num_hidden_layers=4, temp=3.0, centerK=32,
                 stage_num=9, momentum=0.9, lamd=1.0, beta=3, t2v_temp=0.01, v2t_temp=0.01, world_size=1,
                 local_rank=0, max_words=32, max_frames=12)

# ViT-B/32 as OpenAI ships it (gpu_baseline.md's workload)
VIT_B_32 = dict(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768, vision_patch_size=32,
                context_length=77, vocab_size=49408, transformer_width=512, transformer_heads=8, transformer_layers=12)
SOT, EOT = 49406, 49407


def import_original(original_dir: str | os.PathLike = DEFAULT_ORIGINAL, model_module: str = "modeling",
                    hint: str = FETCH_HINT) -> types.ModuleType:
    """Import the original's `modules` package from `original_dir` (its README runs from the repo root), with its
    model module `modules.<model_module>` (CLIP4Clip's `modeling`; EERCF, built on CLIP4Clip's code, has
    `modeling_fineclip_patches_cdcl`)."""
    original_dir = Path(original_dir).resolve()
    if not (original_dir / "modules" / f"{model_module}.py").is_file():
        raise SystemExit(f"the original code is not at {original_dir}: {hint}")
    sys.path.insert(0, os.fspath(original_dir))
    stubbed = []
    for name in ("boto3", "botocore", "botocore.exceptions"):
        try:
            __import__(name)
        except ImportError:
            stub = types.ModuleType(name)
            stub.ClientError = Exception
            sys.modules[name] = stub
            stubbed.append(name)
    try:
        import importlib

        import modules.file_utils  # noqa: F401  (the only importer of boto3)
        importlib.import_module(f"modules.{model_module}")
        import modules.optimization  # noqa: F401
    finally:
        for name in stubbed:  # a stub left in place breaks accelerate's find_spec checks
            sys.modules.pop(name, None)
    return sys.modules["modules"]


def original_args(sim_header: str, clip_file: str, max_words: int = 32, max_frames: int = 12) -> SimpleNamespace:
    """The `task_config` the original's `init_model` passes (README flags; one process)."""
    return SimpleNamespace(
        local_rank=0, rank=0, world_size=1, pretrained_clip_name=clip_file, linear_patch="2d", sim_header=sim_header,
        loose_type=sim_header != "tightTransf", cross_num_hidden_layers=4, max_words=max_words,
        max_frames=max_frames)


def build_models(original_dir, sim_header: str, seed: int = 42, device: str = "cpu", original_fp16: bool = False,
                 max_frames: int = 12):
    """`(original, tvr_model)` with the same random ViT-B/32 weights.

    The original keeps CLIP's weights in fp16 (its `convert_weights`), a GPU choice: on the CPU, where fp16 matmuls
    are emulated, `original_fp16=False` (the default there) runs it in fp32 like tvr.
    """
    modules = import_original(original_dir)
    original = _from_random_clip(modules.modeling.CLIP4Clip, sim_header, seed, max_frames)
    if not original_fp16:
        original.float()
    original.to(device)
    tvr_model = tvr_from_original(original, sim_header, max_frames).to(device)
    return original, tvr_model


def _from_random_clip(model_class, sim_header: str, seed: int, max_frames: int, **extra_args) -> torch.nn.Module:
    """`model_class.from_pretrained("cross-base", task_config=args)` as the CLIP4Clip-based `init_model`s call it, on
    random ViT-B/32 weights made by the original's own `CLIP` init and saved to the file it reads as
    `pretrained_clip_name`."""
    from modules.module_clip import CLIP

    torch.manual_seed(seed)
    clip_state = CLIP(**VIT_B_32).state_dict()
    with tempfile.TemporaryDirectory() as folder:
        clip_file = os.path.join(folder, "ViT-B-32-random.pt")
        torch.save(clip_state, clip_file)
        torch.manual_seed(seed)
        args = original_args(sim_header, clip_file, max_frames=max_frames)
        args.__dict__.update(extra_args)
        with _quiet_original_logs():
            original = model_class.from_pretrained("cross-base", state_dict=None, cache_dir=None, task_config=args)
    original.task_config = args
    return original


def import_renamed_tvr(package: Path, alias: str, hint: str) -> types.ModuleType:
    """Import an original whose package is also called `tvr` (EMCL-Net, DAVRL) as `alias`, with its `models.modeling`
    and optimisers (timm, used only for drop paths of rate 0 on these paths, stubbed when missing)."""
    import importlib
    import importlib.util

    if not (package / "models" / "modeling.py").is_file():
        raise SystemExit(f"the original code is not at {package}: {hint}")
    try:
        import timm.models.layers  # noqa: F401
    except ImportError:
        for name in ("timm", "timm.models", "timm.models.layers"):
            sys.modules[name] = types.ModuleType(name)
        sys.modules["timm.models.layers"].drop_path = lambda x, drop_prob=0.0, training=False: x
    spec = importlib.util.spec_from_file_location(alias, package / "__init__.py",
                                                  submodule_search_locations=[os.fspath(package)])
    sys.modules[alias] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sys.modules[alias])
    for module in ("modeling", "optimization", "optimization_adamw"):
        if (package / "models" / f"{module}.py").is_file():
            importlib.import_module(f"{alias}.models.{module}")
    if not torch.cuda.is_available():  # EMCL's EM module moves its bases with `.cuda(embds.device)`, even on a CPU
        torch.Tensor.cuda = lambda tensor, device=None, *args, **kwargs: tensor.to(device)
    return sys.modules[alias].models


def build_emcl_models(original_dir, seed: int = 42, device: str = "cpu", original_fp16: bool = False,
                      max_frames: int = 12):
    """`(original, tvr_model)` EMCL-Net with the same random ViT-B/32 weights: the original reads its CLIP from
    `models/ViT-B-32.pt` beside its code, so the random weights are written there (an ignored folder); tvr's
    converter (`--original-args` flag map) then reads the original's state dict and EM bases."""
    from tvr import EMCLModel
    from tvr.convert.openai_clip import load_converted_weights
    from tvr.methods.clip4clip.convert import convert_clip4clip_state_dict
    from tvr.methods.emcl.convert import FLAG_MAP, SIM_HEADER_TO_TEMPORAL_HEAD, emcl_config_from_checkpoint

    models = import_renamed_tvr(Path(original_dir).resolve() / EMCL_PACKAGE, "emcl_original", EMCL_HINT)
    torch.manual_seed(seed)
    clip_state = models.module_clip.CLIP(**VIT_B_32).state_dict()
    clip_file = Path(models.modeling.__file__).parent / models.module_clip._PT_NAME["ViT-B/32"]
    torch.save(clip_state, clip_file)
    args = SimpleNamespace(**{**EMCL_ARGS, "max_frames": max_frames})
    torch.manual_seed(seed)
    try:
        original = models.modeling.EMCL(args)
    finally:
        clip_file.unlink()  # 600 MB read once; .original/ travels to GPU machines
    if original_fp16 is False:
        original.float()
    state_dict = {key: value.detach().float().cpu() for key, value in original.state_dict().items()}
    flags = {name: getattr(args, name) for name in FLAG_MAP if hasattr(args, name)}
    config = emcl_config_from_checkpoint(state_dict, **{FLAG_MAP[name]: value for name, value in flags.items()})
    tvr_model = EMCLModel(config)
    converted = convert_clip4clip_state_dict(state_dict, {v: k for k, v in SIM_HEADER_TO_TEMPORAL_HEAD.items()}[
        config.temporal_head])
    missing, unexpected = load_converted_weights(tvr_model, converted)
    if sorted(missing - {"em.bases"}) or unexpected:
        raise RuntimeError(f"conversion left missing {sorted(missing)} / unexpected {sorted(unexpected)} keys")
    tvr_model.set_em_bases(original.emcl.mu.clone())
    return original.to(device), tvr_model.to(device)


def build_davrl_models(original_dir, seed: int = 42, device: str = "cpu", original_fp16: bool = False,
                       max_frames: int = 12):
    """`(original, tvr_model)` DAVRL with the same random ViT-B/32 weights: its `VTRModel(args)` reads CLIP from
    `pretrained_path/ViT-B-32.pt` (a temporary folder here); tvr's DAVRL converter turns the built model's state dict
    into the base model with its peft LoRA adapter (trainable, as `tvr train` trains it)."""
    from tvr.convert.arguments import config_overrides
    from tvr.methods.dual_attention.convert import FLAG_MAP, convert_dual_attention_checkpoint

    models = import_renamed_tvr(Path(original_dir).resolve() / "tvr", "davrl_original", DAVRL_HINT)
    args = SimpleNamespace(**{**DAVRL_ARGS, "max_frames": max_frames})
    # its own CLIP leaves attention weights uninitialised (its real use loads OpenAI's): the random OpenAI-format
    # weights come from CLIP4Clip's copy of OpenAI's CLIP, as in the CLIP4Clip benchmark
    import_original(DEFAULT_ORIGINAL)
    from modules.module_clip import CLIP

    torch.manual_seed(seed)
    clip_state = CLIP(**VIT_B_32).state_dict()
    with tempfile.TemporaryDirectory() as folder:
        torch.save(clip_state, os.path.join(folder, models.module_clip._PT_NAME["ViT-B/32"]))
        args.pretrained_path = folder
        torch.manual_seed(seed)
        original = models.modeling.VTRModel(args)
        checkpoint = os.path.join(folder, "pytorch_model.bin")
        torch.save({key: value.detach().float() for key, value in original.state_dict().items()}, checkpoint)
        flags = " ".join(f"--{name} {getattr(args, name)}" for name in FLAG_MAP if hasattr(args, name))
        overrides = config_overrides(SimpleNamespace(original_args=flags), FLAG_MAP)  # as `--original-args`
        tvr_model = convert_dual_attention_checkpoint(checkpoint, **overrides)
    if not original_fp16:
        original.float()
    for name, parameter in original.named_parameters():  # what its prep_optimizer trains
        parameter.requires_grad_("TVPt" in name or "frame_weight_proj" in name)
    return original.to(device), tvr_model.to(device)


def build_eercf_models(original_dir, seed: int = 42, device: str = "cpu", original_fp16: bool = False,
                       max_frames: int = 12):
    """`(original, tvr_model)` EERCF with the same random ViT-B/32 weights: its `XCLIP.from_pretrained("cross-base",
    ...)` as `init_model` does with the README's MSR-VTT flags, converted with tvr's EERCF converter."""
    from tvr import EERCFModel
    from tvr.convert.openai_clip import load_converted_weights
    from tvr.methods.eercf.convert import convert_eercf_state_dict, eercf_config_from_checkpoint

    modules = import_original(original_dir, "modeling_fineclip_patches_cdcl", EERCF_HINT)
    original = _from_random_clip(modules.modeling_fineclip_patches_cdcl.XCLIP, "seqTransf", seed, max_frames,
                                 rerantopk=50, multi_augmentation=True, **EERCF_LOSS_WEIGHTS)
    args = original.task_config
    if not original_fp16:
        original.float()
    state_dict = {key: value.detach().float().cpu() for key, value in original.state_dict().items()}
    config = eercf_config_from_checkpoint(state_dict, rerank_top_k=args.rerantopk, max_words=args.max_words)
    tvr_model = EERCFModel(config)
    missing, unexpected = load_converted_weights(tvr_model, convert_eercf_state_dict(state_dict))
    if missing or unexpected:
        raise RuntimeError(f"conversion left missing {sorted(missing)} / unexpected {sorted(unexpected)} keys")
    return original.to(device), tvr_model.to(device)


def eercf_original_loss(model, inputs: dict) -> torch.Tensor:
    """`train_epoch`'s loss of main_eercf.py: its model's five logits and three CDCL terms, weighted."""
    from modules.until_module import CrossEn

    weights, loss_fct = model.task_config, CrossEn()
    logits, cdcl = model(inputs["input_ids"][:, 0], inputs["segment_ids"][:, 0], inputs["input_mask"][:, 0],
                         inputs["video"], inputs["video_mask"], multi_augmentation=False)
    video, weak_frame, strong_frame, weak_patch, strong_patch = logits
    weak = video * weights.video_weight + weak_frame * weights.weakframe_weight + weak_patch * weights.weakpatch_weight
    strong = strong_frame * weights.strongframe_weight + strong_patch * weights.strongpatch_weight
    weak_loss = (loss_fct(weak) + loss_fct(weak.T)) / 2
    strong_loss = (loss_fct(strong) + loss_fct(strong.T)) / 2
    intra = (cdcl[0] * weights.cdcl_video_weight + cdcl[1] * weights.cdcl_frame_weight
             + cdcl[2] * weights.cdcl_patch_weight)
    inter = weak_loss * weights.weak_loss_weight + strong_loss * weights.strong_loss_weight
    return inter + intra * weights.cdcl_loss_weight


def tvr_from_original(original: torch.nn.Module, sim_header: str, max_frames: int = 12):
    """The original model's weights in a `CLIP4ClipModel`, through tvr's checkpoint converter."""
    from tvr import CLIP4ClipModel
    from tvr.convert.openai_clip import load_converted_weights
    from tvr.methods.clip4clip.convert import clip4clip_config_from_checkpoint, convert_clip4clip_state_dict

    state_dict = {key: value.detach().float().cpu() for key, value in original.state_dict().items()}
    config = clip4clip_config_from_checkpoint(state_dict, sim_header=sim_header, max_frames=max_frames, max_words=32)
    model = CLIP4ClipModel(config)
    missing, unexpected = load_converted_weights(model, convert_clip4clip_state_dict(state_dict, sim_header))
    if missing or unexpected:
        raise RuntimeError(f"conversion left missing {sorted(missing)} / unexpected {sorted(unexpected)} keys")
    return model


def random_batch(batch_size: int, num_frames: int = 12, max_words: int = 32, seed: int = 0, image_size: int = 224):
    """One training batch in both layouts.

    Captions: SOT, random ids, EOT (the largest id, which the original's text pooling finds by argmax), lengths
    8..max_words, 0 padding. Frames: random uint8 pixels; every frame valid.

    Returns:
        `(original_inputs, tvr_inputs)`: the original's loader layout (`input_ids`, `segment_ids`, `input_mask`
        `(B, 1, words)`, `video` float64 `(B, 1, frames, 1, 3, H, W)` normalised, `video_mask` `(B, 1, frames)`)
        and tvr's (`input_ids`, `attention_mask`, uint8 `pixel_values_videos` `(B, frames, 3, H, W)`,
        `video_mask`), holding the same values.
    """
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.zeros(batch_size, max_words, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for row in range(batch_size):
        length = int(torch.randint(8, max_words + 1, (1,), generator=generator))
        input_ids[row, 0] = SOT
        input_ids[row, 1:length - 1] = torch.randint(1, SOT, (length - 2,), generator=generator)
        input_ids[row, length - 1] = EOT
        attention_mask[row, :length] = 1
    frames = torch.randint(0, 256, (batch_size, num_frames, 3, image_size, image_size), dtype=torch.uint8,
                           generator=generator)
    video_mask = torch.ones(batch_size, num_frames, dtype=torch.long)
    normalised = normalise(frames, torch.float64)
    original = dict(input_ids=input_ids[:, None], segment_ids=torch.zeros_like(input_ids)[:, None],
                    input_mask=attention_mask[:, None], video=normalised[:, None, :, None],
                    video_mask=video_mask[:, None])
    ours = dict(input_ids=input_ids, attention_mask=attention_mask, pixel_values_videos=frames, video_mask=video_mask)
    return original, ours


CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def normalise(frames: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 `(..., 3, H, W)` frames -> CLIP-normalised `dtype` values (ToTensor + Normalize)."""
    mean = torch.tensor(CLIP_MEAN, dtype=dtype).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, dtype=dtype).view(3, 1, 1)
    return (frames.to(dtype) / 255 - mean.to(frames.device)) / std.to(frames.device)


@torch.no_grad()
def check_parity(original, tvr_model, original_inputs: dict, tvr_inputs: dict) -> float:
    """Max |difference| of the two models' (text x video) similarity matrices on one batch, in eval mode."""
    original.eval(), tvr_model.eval()
    device = next(tvr_model.parameters()).device
    sequence, visual = original.get_sequence_visual_output(
        *(original_inputs[name].to(device) for name in ("input_ids", "segment_ids", "input_mask", "video",
                                                       "video_mask")))
    mask, video_mask = original_inputs["input_mask"].view(-1, 32).to(device), original_inputs["video_mask"]
    video_mask = video_mask.view(video_mask.shape[0], -1).to(device)
    reference, *_ = original.get_similarity_logits(sequence, visual, mask, video_mask, loose_type=original.loose_type)
    text = tvr_model.encode_text(tvr_inputs["input_ids"].to(device), tvr_inputs["attention_mask"].to(device))
    video = tvr_model.encode_video(normalise(tvr_inputs["pixel_values_videos"]).to(device),
                                   tvr_inputs["video_mask"].to(device))
    ours = tvr_model.similarity(text, video)
    return float((ours.float() - reference.float()).abs().max())


@torch.no_grad()
def similarity_difference(original_similarity, tvr_model, tvr_inputs: dict, cosine: bool = False) -> float:
    """Max |difference| of an original's eval similarity, `original_similarity(ids, mask, video, video_mask)`, and
    tvr's on one batch (`cosine`: the original returns the cosine, tvr `exp(logit_scale)` times it)."""
    tvr_model.eval()
    device = next(tvr_model.parameters()).device
    ids, mask = tvr_inputs["input_ids"].to(device), tvr_inputs["attention_mask"].to(device)
    video, video_mask = normalise(tvr_inputs["pixel_values_videos"]).to(device), tvr_inputs["video_mask"].to(device)
    reference = original_similarity(ids, mask, video, video_mask)
    ours = tvr_model.similarity(tvr_model.encode_text(ids, mask), tvr_model.encode_video(video, video_mask))
    if cosine:
        ours = ours / tvr_model.logit_scale.exp()
    return float((ours.float() - reference.float()).abs().max())


def emcl_similarity(original):
    """EMCL-Net's eval cosine of one block (its EM runs over the block's rows, as in its eval)."""
    def similarity(ids, mask, video, video_mask):
        text_feat, video_feat, cls = original.eval().get_text_video_feat(ids, mask, video, video_mask)
        return original.get_similarity_logits(text_feat, cls, video_feat, mask, video_mask)[0]
    return similarity


def davrl_similarity(original):
    """DAVRL's eval similarity: `stage1_eval` then `stage2_eval`."""
    def similarity(ids, mask, video, video_mask):
        text, frames = original.eval().stage1_eval(ids, mask, video, video_mask)
        return original.stage2_eval(text, mask, frames, video_mask)
    return similarity


def parity(method: str, original, tvr_model, original_inputs: dict, tvr_inputs: dict) -> float:
    """The benchmark's parity check of `method`'s two models on one batch (run inside `gloo_group`: EERCF's is its
    training loss, whose forward gathers)."""
    with torch.no_grad():
        if method == "emcl":
            return similarity_difference(emcl_similarity(original), tvr_model, tvr_inputs, cosine=True)
        if method == "davrl":
            return similarity_difference(davrl_similarity(original), tvr_model, tvr_inputs)
        if method == "eercf":
            return check_eercf_loss(original, tvr_model, original_inputs, tvr_inputs)
        return check_parity(original, tvr_model, original_inputs, tvr_inputs)


def check_eercf_loss(original, tvr_model, original_inputs: dict, tvr_inputs: dict) -> float:
    """|difference| of EERCF's training loss (train mode, its AllGather over the running group) and tvr's on one
    batch: the whole training objective, weak / strong matrices and Pearson terms included."""
    from tvr import TVRVideoProcessor
    from tvr.training.trainer import ContrastiveStep

    original.train(), tvr_model.train()
    device = next(tvr_model.parameters()).device
    with torch.no_grad():
        reference = eercf_original_loss(original, {name: value.to(device) for name, value in original_inputs.items()})
        ours = ContrastiveStep(tvr_model, TVRVideoProcessor())(**{name: value.to(device)
                                                                  for name, value in tvr_inputs.items()})
    return float((ours.float() - reference.float()).abs())


@contextlib.contextmanager
def _quiet_original_logs():
    import logging

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


@contextlib.contextmanager
def gloo_group():
    """A one-process gloo group, so the original's training forward runs its real AllGather and barrier."""
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    with tempfile.TemporaryDirectory() as folder:  # the file store deletes its file itself
        dist.init_process_group("gloo", init_method=f"file://{folder}/rendezvous", rank=0, world_size=1)
        try:
            yield
        finally:
            dist.destroy_process_group()


class PeakMemory:
    """Peak memory over a block: CUDA's allocator peak on a GPU, else the process's resident set sampled every
    5 ms (minus its size at the start: what the block added)."""

    def __init__(self, device: str):
        self.device = device
        self.peak_bytes = 0

    def __enter__(self) -> "PeakMemory":
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            return self
        import psutil

        process = psutil.Process()
        self._start = process.memory_info().rss
        self._peak = self._start
        self._running = True

        def sample():
            while self._running:
                self._peak = max(self._peak, process.memory_info().rss)
                time.sleep(0.005)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.peak_bytes = torch.cuda.max_memory_allocated()
            return
        self._running = False
        self._thread.join()
        self.peak_bytes = self._peak - self._start


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def summarise(times: list[float]) -> tuple[float, float]:
    """(min, median) of a list of seconds."""
    ordered = sorted(times)
    return ordered[0], ordered[len(ordered) // 2]


def machine_line(device: str) -> str:
    """One line naming the machine the numbers come from."""
    import platform

    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name()} | torch {torch.__version__}"
    return (f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
            f"{os.cpu_count()} cpus | torch {torch.__version__}")
