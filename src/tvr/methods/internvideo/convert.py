"""InternVideo (v1) retrieval checkpoints to `InternVideoModel` folders: fine-tuned ones, and the zero-shot model
(the pretrained InternVideo-MM checkpoint merged with OpenAI CLIP, "MergeClip").

Key layout (original `modules/clip_evl`): `clip.<OpenAI CLIP key>` with a 3-d `visual.conv1.weight` `[W, 3, 1, p, p]`,
`visual_proj` / `visual_ln_post.*` instead of CLIP's `visual.proj` / `visual.ln_post.*`, the branch under
`visual.transformer.{temporal_cls_token, balance, dpe.J, dec.J}`, and an unused `text_mask_embedding`. Fine-tuned
`pytorch_model.bin` files hold that dict (`CLIP4Clip.state_dict()`); pretrained `.ckpt` files wrap it in
`{"state_dict": ...}`. Widths, layers, patch size and the number of extractor layers are read from the keys; the
backbone layers the branch reads default to the last ones (the original's `return_list`: 20-23 of ViT-L/14), and
attention heads to width // 64 as in the original; anything else comes from `--set` / `--original-args`.
"""

from __future__ import annotations

import argparse
import logging
import os
import re

import torch

from ...convert.arguments import OriginalFlags, add_config_arguments, config_keys, config_overrides
from ...convert.layouts import check_layout
from ...convert.openai_clip import (
    CLIP_BUFFERS,
    clip_config_from_openai,
    convert_openai_clip_state_dict,
    finish_conversion,
    load_converted_weights,
    load_original_state_dict,
    raise_on_unknown_keys,
)
from ...convert.output import converted_folder
from ...merging import merge_weights
from ...processing import TVRProcessor, TVRVideoProcessor
from .configuration import InternVideoConfig
from .modeling import InternVideoModel

logger = logging.getLogger(__name__)

BRANCH_PREFIX = "visual.transformer."
# The original's names of its renamed vision top -> OpenAI CLIP's (which the CLIP mapping knows).
TOP_RENAMES = {
    "visual_proj": "visual.proj",
    "visual_ln_post.weight": "visual.ln_post.weight",
    "visual_ln_post.bias": "visual.ln_post.bias",
}
# Suffix inside `dec.J.` -> suffix inside `temporal.layers.J.` (the fused in_proj is split below).
EXTRACTOR_RENAMES = {
    "attn.out_proj.weight": "out_proj.weight",
    "attn.out_proj.bias": "out_proj.bias",
    "ln_1.weight": "query_norm.weight",
    "ln_1.bias": "query_norm.bias",
    "ln_3.weight": "context_norm.weight",
    "ln_3.bias": "context_norm.bias",
    "ln_2.weight": "mlp_norm.weight",
    "ln_2.bias": "mlp_norm.bias",
    "mlp.c_fc.weight": "fc1.weight",
    "mlp.c_fc.bias": "fc1.bias",
    "mlp.c_proj.weight": "fc2.weight",
    "mlp.c_proj.bias": "fc2.bias",
}
EXTRACTOR_IN_PROJ = {"attn.in_proj_weight": "weight", "attn.in_proj_bias": "bias"}
UNUSED_KEYS = ("text_mask_embedding",)  # created by the original, never used in retrieval
# Original flags that describe the model (the rest of the original's command line is ignored).
FLAG_MAP = {"max_frames": "max_frames", "max_words": "max_words"}
# Every flag of the original's Video-Text-Retrieval scripts (main_task_retrieval.py / inference.py share them).
ORIGINAL_FLAGS = OriginalFlags(
    "InternVideo's main_task_retrieval.py",
    "do_pretrain do_train do_eval train_csv val_csv data_path features_path num_thread_reader lr epochs batch_size "
    "batch_size_val lr_decay n_display video_dim seed max_words max_frames feature_framerate margin hard_negative_rate "
    "negative_weighting n_pair output_dir cross_model init_model resume_model do_lower_case warmup_proportion "
    "gradient_accumulation_steps n_gpu cache_dir fp16 fp16_opt_level task_type datatype world_size local_rank rank "
    "coef_lr use_mil sampled_use_mil text_num_hidden_layers visual_num_hidden_layers cross_num_hidden_layers "
    "loose_type expand_msrvtt_sentences train_frame_order eval_frame_order freeze_layer_num slice_framepos "
    "linear_patch sim_header zeroshot pretrained_clip_name clip_evl clip_kc use_dsl clip_kc2 clip_kc4 interaction "
    "wti_arch cdcr pretrained_path mergeclip mergeweight use_capdecoder finetuned_path",
)
# What --set may name: InternVideoConfig's fields and single tower fields (`vision_config.num_attention_heads`).
SET_KEYS = config_keys(InternVideoConfig, towers=("text_config", "vision_config"))


def strip_clip_prefix(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original's key names without the `clip.` prefix (`clip_evl.load` / `CLIP4Clip.clip`).

    Raises:
        ValueError: if the dict holds no `clip.*` key, or keys outside it.
    """
    if not any(key.startswith("clip.") for key in state_dict):
        raise ValueError("not an InternVideo retrieval checkpoint: no 'clip.*' keys")
    raise_on_unknown_keys({key: value for key, value in state_dict.items() if not key.startswith("clip.")},
                          "InternVideo checkpoint (outside 'clip.')")
    return {key[len("clip.") :]: value for key, value in state_dict.items()}


def _num_extractor_layers(state_dict: dict[str, torch.Tensor]) -> int:
    pattern = re.compile(re.escape(BRANCH_PREFIX) + r"dec\.(\d+)\.")
    return len({match.group(1) for key in state_dict if (match := pattern.match(key))})


def internvideo_config_from_checkpoint(state_dict: dict[str, torch.Tensor], **overrides) -> InternVideoConfig:
    """The `InternVideoConfig` of an original state dict (keys without `clip.`).

    Args:
        state_dict: the original's keys.
        **overrides: config fields; `vision_config.<field>` / `text_config.<field>` set a tower field (e.g.
            `vision_config.num_attention_heads=2` for a tower whose heads are not width // 64).
    """
    if "visual_proj" not in state_dict or f"{BRANCH_PREFIX}balance" not in state_dict:
        raise ValueError("not an InternVideo CLIP-EVL state dict: 'visual_proj' or the temporal branch is missing")
    openai_keys = {TOP_RENAMES.get(key, key): value for key, value in state_dict.items()}
    conv1 = openai_keys["visual.conv1.weight"]
    openai_keys["visual.conv1.weight"] = conv1[:, :, 0] if conv1.dim() == 5 else conv1
    clip_config = clip_config_from_openai(openai_keys)
    tower_overrides: dict[str, dict] = {"text_config": {}, "vision_config": {}}
    for key in [key for key in overrides if "." in key]:
        tower, _, field = key.partition(".")
        if tower not in tower_overrides:
            raise ValueError(f"unknown config field {key!r}: dotted keys set text_config.* or vision_config.*")
        tower_overrides[tower][field] = overrides.pop(key)
    text_config = {**clip_config.text_config.to_dict(), **tower_overrides["text_config"]}
    vision_config = {**clip_config.vision_config.to_dict(), **tower_overrides["vision_config"]}
    num_layers = vision_config["num_hidden_layers"]
    num_extractor = _num_extractor_layers(state_dict)
    fields = {
        "extractor_layers": list(range(num_layers - num_extractor, num_layers)),
        "temporal_branch_pretrained": True,
        **overrides,
    }
    if len(fields["extractor_layers"]) != num_extractor:
        raise ValueError(
            f"extractor_layers {fields['extractor_layers']} name {len(fields['extractor_layers'])} layers but the "
            f"checkpoint has {num_extractor} extractor layers"
        )
    return InternVideoConfig(
        text_config=text_config,
        vision_config=vision_config,
        projection_dim=clip_config.projection_dim,
        logit_scale_init_value=clip_config.logit_scale_init_value,
        **fields,
    )


def convert_internvideo_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an original state dict (keys without `clip.`) to `InternVideoModel` keys (dtypes unchanged).

    Raises:
        ValueError: listing the keys the converter does not know.
    """
    state_dict = dict(state_dict)
    for key in UNUSED_KEYS:
        if state_dict.pop(key, None) is not None:
            logger.info("dropping %s: the original creates it but retrieval never uses it", key)
    converted = {}
    query = state_dict.pop(f"{BRANCH_PREFIX}temporal_cls_token")
    converted["temporal.query"] = query.reshape(-1)
    converted["temporal.balance"] = state_dict.pop(f"{BRANCH_PREFIX}balance")
    pattern = re.compile(re.escape(BRANCH_PREFIX) + r"(dpe|dec)\.(\d+)\.(.+)")
    for key in [key for key in state_dict if pattern.fullmatch(key)]:
        module, index, suffix = pattern.fullmatch(key).groups()
        if module == "dpe" and suffix in ("weight", "bias"):
            converted[f"temporal.position_convs.{index}.{suffix}"] = state_dict.pop(key)
        elif suffix in EXTRACTOR_RENAMES:
            converted[f"temporal.layers.{index}.{EXTRACTOR_RENAMES[suffix]}"] = state_dict.pop(key)
        elif suffix in EXTRACTOR_IN_PROJ:
            for name, part in zip(("q_proj", "k_proj", "v_proj"), state_dict.pop(key).chunk(3, dim=0)):
                converted[f"temporal.layers.{index}.{name}.{EXTRACTOR_IN_PROJ[suffix]}"] = part.clone()
    for source, target in TOP_RENAMES.items():
        if source in state_dict:
            state_dict[target] = state_dict.pop(source)
    conv1 = state_dict.get("visual.conv1.weight")
    if conv1 is not None and conv1.dim() == 5:
        if conv1.shape[2] != 1:
            raise ValueError(f"visual.conv1.weight {tuple(conv1.shape)}: only a 1-frame patch kernel is supported")
        state_dict["visual.conv1.weight"] = conv1[:, :, 0]
    converted.update({f"clip.{key}": value for key, value in convert_openai_clip_state_dict(state_dict).items()})
    raise_on_unknown_keys(state_dict, "InternVideo checkpoint")
    return converted


def build_internvideo_model(
    state_dict: dict[str, torch.Tensor], source: str, dtype: torch.dtype, output_dir, **overrides
) -> InternVideoModel:
    """Config from the keys, weights converted and loaded strictly, saved to `output_dir` when given."""
    config = internvideo_config_from_checkpoint(state_dict, **overrides)
    model = InternVideoModel(config)
    missing, unexpected = load_converted_weights(model, convert_internvideo_state_dict(state_dict))
    if missing or unexpected:
        raise ValueError(
            f"InternVideo checkpoint {source!r} does not fit the model read from its keys: missing keys "
            f"{sorted(missing)}, unexpected keys {sorted(unexpected)}"
        )
    return finish_conversion(model, dtype, output_dir)


def convert_internvideo_checkpoint(
    checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    dtype: torch.dtype = torch.float32,
    **overrides,
) -> InternVideoModel:
    """Convert an original InternVideo retrieval checkpoint (fine-tuned `pytorch_model.bin`, or a pretrained `.ckpt`
    used as is) to an `InternVideoModel` (saved to `output_dir` when given).

    Args:
        checkpoint: the original file (`torch.load` gives the state dict, or `{"state_dict": ...}`).
        output_dir: where to `save_pretrained` (safetensors); `AutoModel.from_pretrained(output_dir)` loads it.
        dtype: dtype of the converted weights.
        **overrides: config fields, see `internvideo_config_from_checkpoint` (e.g. `max_frames=12`).
    """
    state_dict = load_original_state_dict(checkpoint)
    check_layout(state_dict, "internvideo", checkpoint)
    state_dict = strip_clip_prefix(state_dict)
    return build_internvideo_model(state_dict, os.fspath(checkpoint), dtype, output_dir, **overrides)


def merge_clip_state_dict(
    internvideo: dict[str, torch.Tensor], clip: dict[str, torch.Tensor], weight: float = 0.5
) -> dict[str, torch.Tensor]:
    """The original's MergeClip, in its key names: `weight * CLIP + (1 - weight) * InternVideo` for every InternVideo
    key CLIP also has.

    As run by the original (`clip_evl.model.build_model(mergeclip=True)`): CLIP's 2-d `visual.conv1.weight` is
    inflated to the 3-d kernel (the 2-d kernel in the middle time slot, zeros elsewhere) and fp16 values are upcast to
    float32 (it reads them back from its fp32 model). CLIP's `visual.proj` / `visual.ln_post.*` never meet
    InternVideo's `visual_proj` / `visual_ln_post.*`, so those, the temporal branch and `text_mask_embedding` keep the
    InternVideo values. A CLIP key InternVideo lacks would keep the CLIP value (the model holds it after loading CLIP).

    Args:
        internvideo: the pretrained state dict, keys without `clip.`.
        clip: an OpenAI CLIP state dict (ViT, same sizes).
        weight: CLIP's share (`--mergeweight`, 0.5 in the original).
    """
    clip = {key: value for key, value in clip.items() if key not in CLIP_BUFFERS and key not in TOP_RENAMES.values()}
    conv1, target = clip.get("visual.conv1.weight"), internvideo.get("visual.conv1.weight")
    if conv1 is not None and target is not None and conv1.dim() == 4 and target.dim() == 5:
        inflated = conv1.new_zeros(*conv1.shape[:2], target.shape[2], *conv1.shape[2:])
        inflated[:, :, target.shape[2] // 2] = conv1
        clip["visual.conv1.weight"] = inflated
    clip = {key: value.float() if value.is_floating_point() else value for key, value in clip.items()}
    only_clip = sorted(set(clip) - set(internvideo))
    if only_clip:
        logger.warning("keys missing from the InternVideo checkpoint keep their CLIP values: %s", only_clip)
    return merge_weights(clip, {**internvideo, **{key: clip[key] for key in only_clip}}, weight)


def convert_internvideo_zeroshot(
    pretrained: str | os.PathLike,
    clip: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    merge_weight: float = 0.5,
    dtype: torch.dtype = torch.float32,
    **overrides,
) -> InternVideoModel:
    """The original's zero-shot model: the pretrained InternVideo checkpoint merged with OpenAI CLIP
    (`merge_clip_state_dict`), converted to an `InternVideoModel` (saved to `output_dir` when given).

    Args:
        pretrained: the InternVideo-MM checkpoint (`{"state_dict": {"clip.*": ...}}`).
        clip: the OpenAI CLIP file of the same size (ViT-L/14 `.pt` archive, or a state dict).
        merge_weight: CLIP's share (the original's `--mergeweight`).
        **overrides: config fields, as for `convert_internvideo_checkpoint`.
    """
    internvideo = load_original_state_dict(pretrained)
    check_layout(internvideo, "internvideo-zeroshot", pretrained)
    clip_state_dict = load_original_state_dict(clip)
    check_layout(clip_state_dict, "clip", clip, what="--clip file")
    merged = merge_clip_state_dict(strip_clip_prefix(internvideo), clip_state_dict, merge_weight)
    return build_internvideo_model(merged, os.fspath(pretrained), dtype, output_dir, **overrides)


def internvideo_processor(tokenizer, config: InternVideoConfig) -> TVRProcessor:
    """The original's preprocessing for a model of `config`: every `round(video_fps)`-th frame, `linspace` down to
    `config.max_frames`, shorter side resized (bicubic) and centre-cropped to the image size, CLIP mean / std, and
    `config.max_words`-token captions (start, text, end, zero padding).

    Args:
        tokenizer: a CLIP tokenizer, or the folder / Hub id it loads from (`openai/clip-vit-large-patch14`).
        config: the converted model's config.
    """
    if isinstance(tokenizer, (str, os.PathLike)):
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(tokenizer)
    image_size = config.vision_config.image_size
    video_processor = TVRVideoProcessor(
        size=image_size, crop_size=image_size, max_frames=config.max_frames, frame_sampling="stride"
    )
    return TVRProcessor(video_processor=video_processor, tokenizer=tokenizer, max_words=config.max_words)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """`tvr convert internvideo CHECKPOINT OUTPUT_DIR` and `tvr convert internvideo-zeroshot PRETRAINED OUTPUT_DIR
    --clip CLIP_FILE [--merge-weight W]`."""
    finetuned = subparsers.add_parser(
        "internvideo",
        help="original InternVideo retrieval checkpoint (fine-tuned pytorch_model.bin) -> tvr InternVideoModel folder",
        description="Convert an original InternVideo (v1) retrieval checkpoint; widths, layers and patch size are read "
        "from its keys. The result loads with AutoModel.from_pretrained(OUTPUT_DIR) after `import tvr`.",
    )
    finetuned.add_argument("checkpoint", help="the fine-tuned pytorch_model.bin (or a pretrained .ckpt, unmerged)")
    zeroshot = subparsers.add_parser(
        "internvideo-zeroshot",
        help="InternVideo-MM pretrained checkpoint merged with OpenAI CLIP (MergeClip) -> zero-shot InternVideoModel",
        description="Build the original's zero-shot model: every weight InternVideo shares with CLIP becomes "
        "w * CLIP + (1 - w) * InternVideo (w = --merge-weight), then convert it.",
    )
    zeroshot.add_argument("checkpoint", help="the pretrained InternVideo-MM checkpoint (e.g. InternVideo-MM-L-14.ckpt)")
    zeroshot.add_argument("--clip", required=True, help="OpenAI CLIP file of the same size (ViT-L-14.pt)")
    zeroshot.add_argument(
        "--merge-weight", type=float, default=None,
        help="CLIP's share w (default: --original-args' mergeweight, else 0.5 as in the original)",
    )
    for parser, func in ((finetuned, run_finetuned), (zeroshot, run_zeroshot)):
        parser.add_argument("output_dir", help="folder to write the converted model to")
        add_config_arguments(parser)
        parser.add_argument(
            "--tokenizer",
            help="CLIP tokenizer folder or Hub id (openai/clip-vit-large-patch14): also save the original's processor "
            "(stride frame sampling, max_frames, 77-token captions), so `tvr eval OUTPUT_DIR` runs as is",
        )
        parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
        parser.set_defaults(func=func)


def run_finetuned(args: argparse.Namespace) -> None:
    overrides = config_overrides(args, FLAG_MAP, original=ORIGINAL_FLAGS, known=SET_KEYS)
    with converted_folder(args) as staging:
        model = convert_internvideo_checkpoint(args.checkpoint, staging, dtype=getattr(torch, args.dtype), **overrides)
        _save_processor(args, model, staging)
    _report(model, args.output_dir)


def run_zeroshot(args: argparse.Namespace) -> None:
    flags = {**FLAG_MAP, "mergeweight": lambda value: {"merge_weight": float(value)}}
    overrides = config_overrides(args, flags, original=ORIGINAL_FLAGS, known=SET_KEYS)
    merge_weight = overrides.pop("merge_weight", 0.5) if args.merge_weight is None else args.merge_weight
    overrides.pop("merge_weight", None)
    with converted_folder(args) as staging:
        model = convert_internvideo_zeroshot(
            args.checkpoint, args.clip, staging, merge_weight, dtype=getattr(torch, args.dtype), **overrides
        )
        _save_processor(args, model, staging)
    _report(model, args.output_dir, f", CLIP share {merge_weight}")


def _save_processor(args: argparse.Namespace, model: InternVideoModel, staging) -> None:
    from ...convert.processor import save_tokenizer_or_processor

    save_tokenizer_or_processor(args.tokenizer, model, staging, args.output_dir)


def _report(model: InternVideoModel, output_dir: str, extra: str = "") -> None:
    config = model.config
    print(
        f"wrote InternVideo (extractor on layers {config.extractor_layers}, {config.max_frames} frames{extra}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters) to {output_dir}"
    )


__all__ = [
    "FLAG_MAP",
    "ORIGINAL_FLAGS",
    "convert_internvideo_checkpoint",
    "convert_internvideo_state_dict",
    "convert_internvideo_zeroshot",
    "internvideo_config_from_checkpoint",
    "internvideo_processor",
    "merge_clip_state_dict",
]
