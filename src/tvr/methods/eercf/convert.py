"""Original EERCF checkpoints (`pytorch_model.bin.<epoch>` of github.com/adxcreative/EERCF) to `EERCFModel`.

The checkpoint is the original model's `state_dict`: OpenAI CLIP keys under `clip.` (mixed fp16/fp32), CLIP4Clip's
seqTransf head (`frame_position_embeddings.weight`, `transformerClip.resblocks.*`) and EERCF's two logit matrices
(`global_mat_weight` -> `video_logit_weight`, `frame_logit_weight`). Dims, layer counts and `max_frames` (the size of
`frame_logit_weight`) are read from the tensors; the re-rank depth and caption length come from options.

Usage: `tvr convert eercf pytorch_model.bin.0 eercf-msrvtt/ --rerank-top-k 50`.
"""

from __future__ import annotations

import argparse
import os

import torch

from ...convert.arguments import OriginalFlags, add_config_arguments, config_keys, config_overrides
from ...convert.openai_clip import finish_conversion, load_checkpoint_with_clip, load_converted_weights
from ...convert.output import converted_folder
from ...convert.processor import add_tokenizer_argument, save_tokenizer_or_processor
from ..clip4clip.convert import clip4clip_config_from_checkpoint, convert_clip4clip_state_dict
from .configuration import EERCFConfig
from .modeling import EERCFModel

# EERCF's own keys (original -> tvr); everything else is CLIP4Clip seqTransf.
EERCF_RENAMES = {"global_mat_weight": "video_logit_weight", "frame_logit_weight": "frame_logit_weight"}
HEAD_PREFIXES = ("temporal.frame_position_embeddings.", "temporal.transformer.")
# The original's flags -> options of `convert_eercf_checkpoint` (dims, layers and max_frames come from the tensors).
FLAG_MAP = {
    "rerantopk": "rerank_top_k",
    "max_words": "max_words",
    "max_frames": "max_frames",
    "cross_num_hidden_layers": "temporal_layers",
}
# Every flag of the original's main_eercf.py (its argparse namespace, as the fixture's run recorded it).
ORIGINAL_FLAGS = OriginalFlags(
    "EERCF's main_eercf.py",
    "batch_size batch_size_val cache_dir cdcl_frame_weight cdcl_loss_weight cdcl_patch_weight cdcl_video_weight "
    "coef_lr cross_model cross_num_hidden_layers data_path datatype do_eval do_lower_case do_pretrain do_train epochs "
    "eval_frame_order expand_msrvtt_sentences feature_framerate features_path fp16 fp16_opt_level freeze_layer_num "
    "gradient_accumulation_steps hard_negative_rate init_model linear_patch local_rank loose_type lr lr_decay margin "
    "max_frames max_words multi_augmentation multi_data_path n_display n_gpu n_pair negative_weighting "
    "num_thread_reader output_dir pretrained_clip_name rank rerantopk resume_model sampled_use_mil seed sim_header "
    "slice_framepos strong_loss_weight strongframe_weight strongpatch_weight task_type test_csv text_num_hidden_layers "
    "train_csv train_frame_order use_mil val_csv video_dim video_weight visual_num_hidden_layers warmup_proportion "
    "weak_loss_weight weakframe_weight weakpatch_weight world_size",
)
SET_KEYS = config_keys(EERCFConfig, "temporal_layers")


def eercf_config_from_checkpoint(
    state_dict: dict[str, torch.Tensor], temporal_layers: int | None = None, **config_overrides
) -> EERCFConfig:
    """The `EERCFConfig` of an original checkpoint: CLIP dims, temporal layers and positions, 2d/3d patch and
    `max_frames` from the tensors.

    Args:
        state_dict: the original's keys.
        temporal_layers: layers of the temporal transformer when the checkpoint has none (else counted).
        **config_overrides: other `EERCFConfig` fields (`rerank_top_k`, `max_words`, `max_frames` when the checkpoint
            has no `frame_logit_weight`, ...).
    """
    clip4clip = clip4clip_config_from_checkpoint(
        {key: value for key, value in state_dict.items() if key not in EERCF_RENAMES}, sim_header="seqTransf",
        temporal_layers=temporal_layers,
    )
    if "frame_logit_weight" in state_dict:
        config_overrides.setdefault("max_frames", state_dict["frame_logit_weight"].shape[0])
    return EERCFConfig(
        text_config=clip4clip.text_config,
        vision_config=clip4clip.vision_config,
        temporal_config=clip4clip.temporal_config,
        projection_dim=clip4clip.projection_dim,
        logit_scale_init_value=clip4clip.logit_scale_init_value,
        linear_patch=clip4clip.linear_patch,
        **config_overrides,
    )


def convert_eercf_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map an original EERCF state dict to `EERCFModel` keys (dtypes unchanged; the input is not modified).

    Raises:
        ValueError: listing the keys the converter does not know.
    """
    state_dict = dict(state_dict)
    converted = {target: state_dict.pop(source) for source, target in EERCF_RENAMES.items() if source in state_dict}
    converted.update(convert_clip4clip_state_dict(state_dict, "seqTransf"))
    return converted


def convert_eercf_checkpoint(
    checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    clip: str | os.PathLike | None = None,
    dtype: torch.dtype = torch.float32,
    **config_overrides,
) -> EERCFModel:
    """Convert an original EERCF checkpoint to an `EERCFModel` (saved to `output_dir` when given).

    Args:
        checkpoint: the original's `pytorch_model.bin.N` (a `torch.save`d state dict).
        output_dir: where to `save_pretrained` (safetensors); `AutoModel.from_pretrained(output_dir)` loads it.
        clip: an OpenAI CLIP file. Like the original's loader, it fills the `clip.*` keys the checkpoint lacks, and
            when the checkpoint has no temporal head, the head is derived from it (positions and first text layers);
            missing logit matrices start as identities.
        dtype: dtype of the converted weights; the original's fp16 CLIP weights are upcast by default.
        **config_overrides: see `eercf_config_from_checkpoint`, e.g. `rerank_top_k=50`, `max_words=32`.
    """
    # a CLIP4Clip seqTransf checkpoint initialises EERCF when --clip is given, as with the original's --init_model
    state_dict = load_checkpoint_with_clip(checkpoint, clip, "eercf", accept=("clip4clip",) if clip else ())
    config = eercf_config_from_checkpoint(state_dict, **config_overrides)
    model = EERCFModel(config)
    missing, unexpected = load_converted_weights(model, convert_eercf_state_dict(state_dict))
    if clip is not None:
        head_keys = {key for key in model.state_dict() if key.startswith(HEAD_PREFIXES)}
        if head_keys <= missing:
            model.temporal.init_from_text_tower(model.clip.text_model)
            missing -= head_keys
        missing -= set(EERCF_RENAMES.values())  # the model initialises them as identities, as the original
    if missing or unexpected:
        raise ValueError(
            f"EERCF checkpoint {os.fspath(checkpoint)!r} does not fit the model read from its keys: missing keys "
            f"{sorted(missing)}, unexpected keys {sorted(unexpected)}"
        )
    return finish_conversion(model, dtype, output_dir)

def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`tvr convert eercf CHECKPOINT OUTPUT_DIR [--rerank-top-k K] [--clip CLIP_FILE] [--original-args "FLAGS"]
    [--set KEY=VALUE] ...`: dedicated options win over `--set`, which wins over `--original-args`."""
    parser = subparsers.add_parser(
        "eercf",
        help="original EERCF checkpoint (pytorch_model.bin.N) -> tvr EERCFModel folder",
        description="Convert an original EERCF checkpoint; dims, layers and max_frames are read from its keys. "
        "The result loads with AutoModel.from_pretrained(OUTPUT_DIR) after `import tvr`.",
    )
    parser.add_argument("checkpoint", help="original checkpoint, e.g. pytorch_model.bin.0")
    parser.add_argument("output_dir", help="folder to write the converted model to")
    parser.add_argument(
        "--rerank-top-k", type=int, help="candidates per query the fine stage re-scores (original: 50, the default)"
    )
    parser.add_argument("--max-words", type=int, help="tokens per caption the model was trained with (default 32)")
    parser.add_argument(
        "--patch-dtype",
        choices=("float16", "bfloat16", "float32"),
        default="float16",
        help="storage dtype of cached patch embeddings at evaluation (float32 for bit-level parity)",
    )
    parser.add_argument("--clip", help="OpenAI CLIP file filling the CLIP keys the checkpoint lacks")
    parser.add_argument(
        "--temporal-layers", type=int, help="temporal layers when the checkpoint has none (derived from --clip)"
    )
    add_config_arguments(parser)
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    add_tokenizer_argument(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> None:
    explicit = {"temporal_layers": args.temporal_layers, "rerank_top_k": args.rerank_top_k,
                "max_words": args.max_words, "patch_embeds_dtype": args.patch_dtype}
    overrides = config_overrides(args, FLAG_MAP, explicit, original=ORIGINAL_FLAGS, known=SET_KEYS)
    with converted_folder(args) as staging:
        model = convert_eercf_checkpoint(
            args.checkpoint, staging, clip=args.clip, dtype=getattr(torch, args.dtype), **overrides
        )
        save_tokenizer_or_processor(args.tokenizer, model, staging, args.output_dir)
    config = model.config
    print(
        f"wrote EERCF ({config.max_frames} frames, re-rank top {config.rerank_top_k}, "
        f"{sum(p.numel() for p in model.parameters()):,} parameters) to {args.output_dir}"
    )


__all__ = ["EERCF_RENAMES", "FLAG_MAP", "ORIGINAL_FLAGS", "convert_eercf_checkpoint", "convert_eercf_state_dict", "eercf_config_from_checkpoint"]
