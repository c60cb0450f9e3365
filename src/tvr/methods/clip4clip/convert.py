"""Original CLIP4Clip checkpoints (`pytorch_model.bin.N`, mixed fp16/fp32) to a `save_pretrained` folder.

Key layout of the original (github.com/ArrowLuo/CLIP4Clip): `clip.<OpenAI CLIP key>`, `clip.visual.conv2.weight`
(3d patch), and per head `frame_position_embeddings.weight`, `transformerClip.resblocks.{i}.*` (seqTransf),
`lstm_visual.*` (seqLSTM), `cross.*` + `similarity_dense.*` (tightTransf). The head, patch type, layer counts and dims
are read from the keys; what the keys cannot tell (attention heads of tightTransf, frames/words the model was trained
with) comes from options.
"""

from __future__ import annotations

import argparse
import logging
import os
import re

import torch

from ...convert.arguments import OriginalFlags, add_config_arguments, config_keys, config_overrides
from ...convert.openai_clip import (
    clip_config_from_openai,
    convert_openai_clip_state_dict,
    convert_resblocks,
    finish_conversion,
    load_checkpoint_with_clip,
    load_converted_weights,
    raise_on_unknown_keys,
)
from ...convert.output import converted_folder
from ...convert.processor import add_tokenizer_argument, save_tokenizer_or_processor
from .configuration import CLIP4ClipConfig
from .modeling import CLIP4ClipModel

logger = logging.getLogger(__name__)

# Original key -> tvr key, per head (residual blocks are converted by `convert_resblocks`).
HEAD_RENAMES = {
    "meanP": {},
    "seqLSTM": {
        f"lstm_visual.{name}": f"temporal.lstm.{name}"
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
    },
    "seqTransf": {"frame_position_embeddings.weight": "temporal.frame_position_embeddings.weight"},
    "tightTransf": {
        "cross.embeddings.position_embeddings.weight": "cross.position_embeddings.weight",
        "cross.pooler.ln_pool.weight": "cross.pooler_norm.weight",
        "cross.pooler.ln_pool.bias": "cross.pooler_norm.bias",
        "cross.pooler.dense.weight": "cross.pooler_dense.weight",
        "cross.pooler.dense.bias": "cross.pooler_dense.bias",
        "similarity_dense.weight": "cross.similarity_dense.weight",
        "similarity_dense.bias": "cross.similarity_dense.bias",
    },
}
HEAD_RESBLOCKS = {
    "seqTransf": ("transformerClip.resblocks.", "temporal.transformer.layers."),
    "tightTransf": ("cross.transformer.resblocks.", "cross.transformer.layers."),
}
HEAD_POSITIONS = {
    "seqTransf": "frame_position_embeddings.weight",
    "tightTransf": "cross.embeddings.position_embeddings.weight",
}
# Keys the original creates but never uses.
UNUSED_KEYS = {"seqLSTM": ("frame_position_embeddings.weight",)}
# The original's flags (main_task_retrieval.py) -> options of `convert_clip4clip_checkpoint`; the patch type, layer
# counts and dims come from the checkpoint's keys.
FLAG_MAP = {
    "max_frames": "max_frames",
    "max_words": "max_words",
    "sim_header": "sim_header",
    "cross_num_hidden_layers": "temporal_layers",
}
# Every flag of the original's main_task_retrieval.py (github.com/ArrowLuo/CLIP4Clip).
ORIGINAL_FLAGS = OriginalFlags(
    "CLIP4Clip's main_task_retrieval.py",
    "do_pretrain do_train do_eval train_csv val_csv data_path features_path num_thread_reader lr epochs batch_size "
    "batch_size_val lr_decay n_display video_dim seed max_words max_frames feature_framerate margin hard_negative_rate "
    "negative_weighting n_pair output_dir cross_model init_model do_lower_case warmup_proportion "
    "gradient_accumulation_steps n_gpu cache_dir fp16 fp16_opt_level task_type datatype world_size local_rank rank "
    "coef_lr use_mil sampled_use_mil text_num_hidden_layers visual_num_hidden_layers cross_num_hidden_layers "
    "loose_type expand_msrvtt_sentences train_frame_order eval_frame_order freeze_layer_num slice_framepos "
    "linear_patch sim_header pretrained_clip_name",
)
# What --set may name: CLIP4ClipConfig's fields and the options of `clip4clip_config_from_checkpoint`.
SET_KEYS = config_keys(CLIP4ClipConfig, "temporal_heads", "temporal_layers")


def infer_sim_header(state_dict: dict[str, torch.Tensor]) -> str:
    """The similarity head of an original checkpoint, from its keys ("meanP" when no head key is present)."""
    if any(key.startswith(("cross.", "similarity_dense.")) for key in state_dict):
        return "tightTransf"
    if any(key.startswith("transformerClip.") for key in state_dict):
        return "seqTransf"
    if any(key.startswith("lstm_visual.") for key in state_dict):
        return "seqLSTM"
    return "meanP"


def clip4clip_config_from_checkpoint(
    state_dict: dict[str, torch.Tensor],
    sim_header: str | None = None,
    temporal_heads: int | None = None,
    temporal_layers: int | None = None,
    **config_overrides,
) -> CLIP4ClipConfig:
    """The `CLIP4ClipConfig` of an original checkpoint.

    Args:
        state_dict: the original's keys (`clip.*`, head keys).
        sim_header: override the head read from the keys (needed when the checkpoint has no head keys).
        temporal_heads: attention heads of the temporal / cross transformer; default width // 64 (the original's
            seqTransf rule; tightTransf takes them from its cross config, 8 for cross-base = 512 // 64).
        temporal_layers: layers of that transformer when the checkpoint does not have them (else counted).
        **config_overrides: other `CLIP4ClipConfig` fields (`max_frames`, `max_words`, ...).
    """
    if "clip.token_embedding.weight" not in state_dict and "clip.visual.conv1.weight" not in state_dict:
        raise ValueError("the checkpoint holds no CLIP weights ('clip.*' keys): pass the CLIP file with --clip")
    clip_keys = {key[len("clip.") :]: value for key, value in state_dict.items() if key.startswith("clip.")}
    clip_config = clip_config_from_openai(clip_keys)
    sim_header = sim_header or infer_sim_header(state_dict)
    temporal_config = {}
    if sim_header in HEAD_RESBLOCKS:
        prefix = HEAD_RESBLOCKS[sim_header][0]
        pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
        counted = len({match.group(1) for key in state_dict if (match := pattern.match(key))})
        if counted:
            temporal_config["num_hidden_layers"] = counted
        elif temporal_layers:
            temporal_config["num_hidden_layers"] = temporal_layers
        if HEAD_POSITIONS[sim_header] in state_dict:
            temporal_config["max_position_embeddings"] = state_dict[HEAD_POSITIONS[sim_header]].shape[0]
    if temporal_heads:
        temporal_config["num_attention_heads"] = temporal_heads
    return CLIP4ClipConfig(
        text_config=clip_config.text_config,
        vision_config=clip_config.vision_config,
        temporal_config=temporal_config,
        projection_dim=clip_config.projection_dim,
        logit_scale_init_value=clip_config.logit_scale_init_value,
        sim_header=sim_header,
        linear_patch="3d" if "clip.visual.conv2.weight" in state_dict else "2d",
        **config_overrides,
    )


def convert_clip4clip_state_dict(state_dict: dict[str, torch.Tensor], sim_header: str) -> dict[str, torch.Tensor]:
    """Map an original CLIP4Clip state dict to `CLIP4ClipModel` keys (dtypes unchanged).

    Raises:
        ValueError: listing the keys this head does not know.
    """
    state_dict = dict(state_dict)
    clip_state_dict = {key[len("clip.") :]: state_dict.pop(key) for key in list(state_dict) if key.startswith("clip.")}
    converted = {}
    if "visual.conv2.weight" in clip_state_dict:
        converted["clip.patch_embedding_3d.weight"] = clip_state_dict.pop("visual.conv2.weight")
    converted.update({f"clip.{key}": value for key, value in convert_openai_clip_state_dict(clip_state_dict).items()})
    raise_on_unknown_keys({f"clip.{key}": value for key, value in clip_state_dict.items()}, "CLIP4Clip checkpoint")

    for source, target in HEAD_RENAMES[sim_header].items():
        if source in state_dict:
            converted[target] = state_dict.pop(source)
    if sim_header in HEAD_RESBLOCKS:
        converted.update(convert_resblocks(state_dict, *HEAD_RESBLOCKS[sim_header]))
    for key in UNUSED_KEYS.get(sim_header, ()):
        if state_dict.pop(key, None) is not None:
            logger.info("dropping %s: the original %s model creates it but never uses it", key, sim_header)
    raise_on_unknown_keys(state_dict, f"CLIP4Clip checkpoint with sim_header {sim_header!r}")
    return converted


def _derive_missing_from_clip(model: CLIP4ClipModel, missing: set[str]) -> set[str]:
    """Initialise from CLIP what the original's loader derives from CLIP when a checkpoint lacks it.

    Returns the keys still missing.
    """
    if "clip.patch_embedding_3d.weight" in missing:
        model.clip.inflate_patch_embedding()
        missing = missing - {"clip.patch_embedding_3d.weight"}
    head_name = "cross" if model.config.sim_header == "tightTransf" else "temporal"
    parts = ("transformer.", "position_embeddings.", "frame_position")
    derived_prefixes = tuple(f"{head_name}.{part}" for part in parts)
    derived = {key for key in model.state_dict() if key.startswith(derived_prefixes)}
    if derived and derived <= missing:
        getattr(model, head_name).init_from_text_tower(model.clip.text_model)
        missing = missing - derived
    return missing


def convert_clip4clip_checkpoint(
    checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    clip: str | os.PathLike | None = None,
    dtype: torch.dtype = torch.float32,
    **config_options,
) -> CLIP4ClipModel:
    """Convert an original CLIP4Clip checkpoint to a `CLIP4ClipModel` (saved to `output_dir` when given).

    Args:
        checkpoint: the original's `pytorch_model.bin.N` (a `torch.save`d state dict).
        output_dir: where to `save_pretrained` (safetensors); `AutoModel.from_pretrained(output_dir)` loads it.
        clip: an OpenAI CLIP file that fills the `clip.*` keys the checkpoint lacks, and from which, like the
            original loader, a missing 3d patch kernel or seqTransf/tightTransf position embeddings and layers are
            derived.
        dtype: dtype of the converted weights; the original's fp16 CLIP weights are upcast by default.
        **config_options: see `clip4clip_config_from_checkpoint`.
    """
    state_dict = load_checkpoint_with_clip(checkpoint, clip, "clip4clip")
    config = clip4clip_config_from_checkpoint(state_dict, **config_options)
    converted = convert_clip4clip_state_dict(state_dict, config.sim_header)
    model = CLIP4ClipModel(config)
    missing, unexpected = load_converted_weights(model, converted)
    if clip is not None:
        missing = _derive_missing_from_clip(model, missing)
    if missing or unexpected:
        raise ValueError(
            f"CLIP4Clip checkpoint {os.fspath(checkpoint)!r} does not fit a {config.sim_header}/{config.linear_patch} "
            f"model: missing keys {sorted(missing)}, unexpected keys {sorted(unexpected)}"
        )
    return finish_conversion(model, dtype, output_dir)

def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`tvr convert clip4clip CHECKPOINT OUTPUT_DIR [--clip CLIP_STATE_DICT] [--max-frames N] [--original-args "FLAGS"]
    [--set KEY=VALUE] ...`: dedicated options win over `--set`, which wins over `--original-args`."""
    parser = subparsers.add_parser(
        "clip4clip",
        help="original CLIP4Clip checkpoint (pytorch_model.bin.N) -> tvr CLIP4ClipModel folder",
        description="Convert an original CLIP4Clip checkpoint; the head, patch type, layers and dims are read from "
        "its keys. The result loads with AutoModel.from_pretrained(OUTPUT_DIR) after `import tvr`.",
    )
    parser.add_argument("checkpoint", help="original checkpoint, e.g. pytorch_model.bin.4")
    parser.add_argument("output_dir", help="folder to write the converted model to")
    parser.add_argument("--clip", help="OpenAI CLIP file filling the CLIP keys the checkpoint lacks")
    parser.add_argument("--max-frames", type=int, help="frames per video the model was trained with (default 12)")
    parser.add_argument("--max-words", type=int, help="tokens per caption the model was trained with (default 32)")
    parser.add_argument("--sim-header", choices=tuple(HEAD_RENAMES), help="override the head read from the keys")
    parser.add_argument(
        "--temporal-heads", type=int, help="attention heads of seqTransf/tightTransf (default width // 64)"
    )
    parser.add_argument("--temporal-layers", type=int, help="layers when the checkpoint has none (derived from --clip)")
    add_config_arguments(parser)
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    add_tokenizer_argument(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> None:
    explicit = {"max_frames": args.max_frames, "max_words": args.max_words, "sim_header": args.sim_header,
                "temporal_heads": args.temporal_heads, "temporal_layers": args.temporal_layers}
    overrides = config_overrides(args, FLAG_MAP, explicit, original=ORIGINAL_FLAGS, known=SET_KEYS)
    with converted_folder(args) as staging:
        model = convert_clip4clip_checkpoint(
            args.checkpoint, staging, clip=args.clip, dtype=getattr(torch, args.dtype), **overrides
        )
        save_tokenizer_or_processor(args.tokenizer, model, staging, args.output_dir)
    config = model.config
    print(f"wrote CLIP4Clip {config.sim_header}/{config.linear_patch} to {args.output_dir}")


__all__ = [
    "FLAG_MAP",
    "ORIGINAL_FLAGS",
    "HEAD_RENAMES",
    "HEAD_RESBLOCKS",
    "clip4clip_config_from_checkpoint",
    "convert_clip4clip_checkpoint",
    "convert_clip4clip_state_dict",
    "infer_sim_header",
]
