"""Original DAVRL checkpoints (`pytorch_model.bin` of github.com/bzy-source/DAVRL) to a base model + `peft` adapter.

The checkpoint is the original `VTRModel.state_dict()`: OpenAI CLIP keys under `clip.` with, in every attention of
both towers, the LoRA tensors `attn.TVPt_LoRA_a` `(r, width)` and `attn.TVPt_LoRA_b` `(3 * width, r)`, plus the global
video tokens `clip.visual.prompt_embeddings` `(1, G, width)` and the unused `clip.visual.frame_positional_embedding`.

Output (`tvr convert dual_attention CHECKPOINT OUTPUT_DIR`):

    OUTPUT_DIR/base/           the base DualAttentionModel: frozen CLIP with fused qkv_proj + global tokens
    OUTPUT_DIR/adapter_config.json, adapter_model.safetensors
                               the LoRA adapter (+ the global tokens), base_model_name_or_path = OUTPUT_DIR/base

so `AutoModel.from_pretrained(OUTPUT_DIR)` (after `import tvr`) loads the base and the adapter (transformers' PEFT
integration), and `PeftModel.from_pretrained(AutoModel.from_pretrained(OUTPUT_DIR / "base"), OUTPUT_DIR)` does the
same through peft. The adapter records the base folder's absolute path: move both together, or load with `PeftModel`.

Widths, layer counts, LoRA rank and the number of global tokens are read from the keys; the rest from
`--original-args`, the original run's flags as passed to its `main.py` (`--sel_layer 6 --r 10 --alpha 0.4
--seg_layer 8-9-10 --seg_num 6-3-1 --frame_per_seg 2-4-12 --max_frames 12 ...`), then `--set key=value`. Flags not
given take `DualAttentionConfig`'s defaults, which are the original's training scripts' values (NOT its `params.py`
defaults: a run without `--alpha` had alpha 0, one without `--sel_layer` no selection on a 12-layer ViT).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shutil
from pathlib import Path

import torch

from ...convert.arguments import OriginalFlags, add_config_arguments, config_keys, config_overrides, parse_original_args
from ...convert.openai_clip import (
    clip_config_from_openai,
    convert_openai_clip_state_dict,
    load_checkpoint_with_clip,
    raise_on_unknown_keys,
)
from ...convert.output import KIND, claim_model_dir
from ...convert.processor import add_tokenizer_argument, save_tokenizer_or_processor
from ...utils.output_dir import write_marker
from .configuration import DualAttentionConfig
from .modeling import DualAttentionModel

logger = logging.getLogger(__name__)

GLOBAL_TOKENS_KEY = "clip.visual.prompt_embeddings"
UNUSED_KEYS = ("clip.visual.frame_positional_embedding.weight",)  # created by the original, never used
LORA_KEY = re.compile(r"clip\.(visual\.)?transformer\.resblocks\.(\d+)\.attn\.TVPt_LoRA_([ab])")
SELECT_NAMES = {"Dual-Attention": "dual_attention"}


def _layers(value) -> list[int]:
    """An original '-'-separated layer list (`8-9-10`, or a bare int) -> `[8, 9, 10]`."""
    return [int(part) for part in str(value).split("-") if part != ""]


# The original's flags (params.py) -> DualAttentionConfig fields. Dims, layers, lora_dim and the global-token count
# come from the checkpoint's tensors.
FLAG_MAP = {
    "max_frames": "max_frames",
    "max_words": "max_words",
    "sel_layer": lambda value: {"sel_layers": _layers(value)},
    "r": "r_drop",
    "alpha": "alpha",
    "seg_layer": lambda value: {"seg_layers": _layers(value)},
    "seg_num": lambda value: {"seg_num": _layers(value)},
    "frame_per_seg": lambda value: {"frame_per_seg": _layers(value)},
    "visual_output_type": "visual_output_type",
    "select": lambda value: {"select": SELECT_NAMES.get(value, value)},
}
# Every flag of the original's params.py (github.com/bzy-source/DAVRL).
ORIGINAL_FLAGS = OriginalFlags(
    "DAVRL's params.py",
    "do_train do_eval train_csv val_csv data_path features_path expand_msrvtt_sentences train_frame_order "
    "eval_frame_order slice_framepos datatype pretrained_path seed num_thread_reader clip_lr warmup_proportion "
    "weight_decay epochs start_val_epoch batch_size batch_size_val max_words max_frames feature_framerate device "
    "world_size local-rank distributed n_display output_dir base_encoder init_model lora_dim shared_latent_space "
    "text_prompt_length local_each_frame_prompt_length global_visual_prompt_length visual_output_type sel_layer "
    "frame_per_seg seg_num seg_layer r select alpha DSL",
)
SET_KEYS = config_keys(DualAttentionConfig)


def _drop_inactive_layers(overrides: dict, num_layers: int) -> dict:
    """The original ignores a layer 0 in --sel_layer / --seg_layer and never reaches layers >= the tower's depth;
    drop those entries (with their --seg_num / --frame_per_seg entries)."""
    if "sel_layers" in overrides:
        overrides["sel_layers"] = [layer for layer in overrides["sel_layers"] if 0 < layer < num_layers]
    if "seg_layers" in overrides:
        layers = overrides["seg_layers"]
        keep = [index for index, layer in enumerate(layers) if 0 < layer < num_layers]
        for name in ("seg_num", "frame_per_seg", "seg_layers"):
            if name in overrides and len(overrides[name]) == len(layers):
                overrides[name] = [overrides[name][index] for index in keep]
    return overrides


def dual_attention_config_from_checkpoint(
    state_dict: dict[str, torch.Tensor], **config_overrides
) -> DualAttentionConfig:
    """The `DualAttentionConfig` of an original checkpoint: CLIP dims, LoRA rank and global tokens from the tensors,
    the rest from `config_overrides` (see `FLAG_MAP` for the original's flags)."""
    clip_keys = {key[len("clip.") :]: value for key, value in state_dict.items() if key.startswith("clip.")}
    if "visual.conv1.weight" not in clip_keys:
        raise ValueError("the checkpoint holds no CLIP weights ('clip.*' keys): pass the CLIP file with --clip")
    clip_config = clip_config_from_openai(clip_keys)
    read = {
        "text_config": clip_config.text_config,
        "vision_config": clip_config.vision_config,
        "projection_dim": clip_config.projection_dim,
        "logit_scale_init_value": clip_config.logit_scale_init_value,
    }
    lora = [value for key, value in state_dict.items() if key.endswith("TVPt_LoRA_a")]
    if lora:
        read["lora_rank"] = lora[0].shape[0]
    if GLOBAL_TOKENS_KEY in state_dict:
        read["num_global_tokens"] = state_dict[GLOBAL_TOKENS_KEY].shape[1]
    clash = set(read) & set(config_overrides)
    if clash:
        raise ValueError(f"{sorted(clash)} are read from the checkpoint and cannot be set")
    config_overrides = _drop_inactive_layers(dict(config_overrides), clip_config.vision_config.num_hidden_layers)
    return DualAttentionConfig(**read, **config_overrides)


def split_dual_attention_state_dict(
    state_dict: dict[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]]]:
    """Split an original DAVRL state dict into base `DualAttentionModel` keys and LoRA tensors.

    Returns:
        `(base, lora)`: `base` maps model keys to tensors (q/k/v stay split as transformers CLIP keys; the model's
        attention fuses them on load); `lora` maps `("text" | "vision", layer)` to `(A, B)`.

    Raises:
        ValueError: listing the keys the converter does not know.
    """
    state_dict = dict(state_dict)
    lora: dict[tuple[str, int], dict[str, torch.Tensor]] = {}
    for key in list(state_dict):
        match = LORA_KEY.fullmatch(key)
        if match:
            tower = "vision" if match.group(1) else "text"
            lora.setdefault((tower, int(match.group(2))), {})[match.group(3)] = state_dict.pop(key)
    for key in UNUSED_KEYS:
        if state_dict.pop(key, None) is not None:
            logger.info("dropping %s: the original creates it but never uses it", key)
    base = {}
    if GLOBAL_TOKENS_KEY in state_dict:
        base["global_tokens.embeddings"] = state_dict.pop(GLOBAL_TOKENS_KEY)
    clip_state_dict = {key[len("clip.") :]: state_dict.pop(key) for key in list(state_dict) if key.startswith("clip.")}
    base.update({f"clip.{key}": value for key, value in convert_openai_clip_state_dict(clip_state_dict).items()})
    raise_on_unknown_keys({f"clip.{key}": value for key, value in clip_state_dict.items()}, "DAVRL checkpoint")
    raise_on_unknown_keys(state_dict, "DAVRL checkpoint")
    incomplete = sorted(f"{tower} layer {layer}" for (tower, layer), pair in lora.items() if set(pair) != {"a", "b"})
    if incomplete:
        raise ValueError(f"DAVRL checkpoint: TVPt_LoRA_a / TVPt_LoRA_b not both present in {incomplete}")
    return base, {where: (pair["a"], pair["b"]) for where, pair in lora.items()}


@torch.no_grad()
def convert_dual_attention_checkpoint(
    checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    clip: str | os.PathLike | None = None,
    dtype: torch.dtype = torch.float32,
    **config_overrides,
):
    """Convert an original DAVRL checkpoint to a `DualAttentionModel` wrapped with its LoRA adapter (a
    `peft.PeftModel`); with `output_dir`, write the base to `output_dir/base` and the adapter to `output_dir`.

    Args:
        checkpoint: the original's `pytorch_model.bin` (a `torch.save`d state dict).
        output_dir: where to write (see the module docstring); `AutoModel.from_pretrained(output_dir)` loads it.
        clip: an OpenAI CLIP file filling the `clip.*` keys the checkpoint lacks.
        dtype: dtype of the written weights (the original trains in fp32).
        **config_overrides: `DualAttentionConfig` fields the checkpoint does not determine (`sel_layers`, ...).
    """
    from ...peft import save_adapter
    from .adapter import get_dual_attention_peft_model

    state_dict = load_checkpoint_with_clip(checkpoint, clip, "dual_attention")
    config = dual_attention_config_from_checkpoint(state_dict, **config_overrides)
    base_weights, lora = split_dual_attention_state_dict(state_dict)
    model = DualAttentionModel(config)
    result = model.load_state_dict({key: value.float() for key, value in base_weights.items()}, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"DAVRL checkpoint {os.fspath(checkpoint)!r} does not fit the model read from its keys: "
                         f"missing keys {sorted(result.missing_keys)}, unexpected keys {result.unexpected_keys}")
    model = model.to(dtype).eval()
    if output_dir is not None:  # before peft injects its layers into the model
        base_dir = Path(output_dir) / "base"
        model.save_pretrained(base_dir)
    peft_model = get_dual_attention_peft_model(model)
    towers = {"text": model.clip.text_model, "vision": model.clip.vision_model}
    expected = {(name, index) for name, tower in towers.items() for index in range(len(tower.encoder.layers))}
    if lora and set(lora) != expected:
        raise ValueError(f"DAVRL checkpoint: LoRA tensors for {sorted(lora)}, expected every layer {sorted(expected)}")
    for (name, index), (lora_a, lora_b) in lora.items():
        qkv_proj = towers[name].encoder.layers[index].self_attn.qkv_proj
        qkv_proj.lora_A["default"].weight.copy_(lora_a)
        qkv_proj.lora_B["default"].weight.copy_(lora_b)
    peft_model.eval()
    if output_dir is not None:
        save_adapter(peft_model, output_dir, base_model_name_or_path=os.path.abspath(base_dir))
    return peft_model


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`tvr convert dual_attention CHECKPOINT OUTPUT_DIR [--original-args "FLAGS"] [--set KEY=VALUE] ...`."""
    parser = subparsers.add_parser(
        "dual_attention",
        help="original DAVRL checkpoint (pytorch_model.bin) -> tvr DualAttentionModel base + peft LoRA adapter",
        description="Convert an original DAVRL checkpoint: OUTPUT_DIR/base is the base model, OUTPUT_DIR the LoRA "
        "adapter on it; AutoModel.from_pretrained(OUTPUT_DIR) loads both after `import tvr`. Dims, layers, LoRA rank "
        "and global tokens are read from the keys; paste the original run's flags in --original-args.",
    )
    parser.add_argument("checkpoint", help="original checkpoint, e.g. pytorch_model.bin")
    parser.add_argument("output_dir", help="folder to write the adapter to (the base goes to OUTPUT_DIR/base)")
    add_config_arguments(parser)
    parser.add_argument("--clip", help="OpenAI CLIP file filling the CLIP keys the checkpoint lacks")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    add_tokenizer_argument(parser)
    parser.set_defaults(func=run)
    return parser


# Flags whose params.py default differs from the training scripts' value (DualAttentionConfig's default).
SCRIPT_FLAGS = ("max_frames", "sel_layer", "r", "alpha", "seg_layer", "seg_num", "frame_per_seg")


def run(args: argparse.Namespace) -> None:
    given = set(ORIGINAL_FLAGS.resolve(parse_original_args(args.original_args or "")).values())
    missing = [flag for flag in SCRIPT_FLAGS if flag not in given]
    if args.original_args and missing:
        logger.warning("--original-args lacks %s: using the training scripts' values (DualAttentionConfig defaults), "
                       "not the original params.py defaults", ", ".join(f"--{flag}" for flag in missing))
    overrides = config_overrides(args, FLAG_MAP, original=ORIGINAL_FLAGS, known=SET_KEYS)
    # written in place (the adapter records its base folder's final path) after the claim: a new folder (removed if
    # the conversion fails) or one tvr wrote
    created = not claim_model_dir(args.output_dir, args).exists()
    try:
        model = convert_dual_attention_checkpoint(
            args.checkpoint, args.output_dir, clip=args.clip, dtype=getattr(torch, args.dtype), **overrides
        )
        # the processor goes with the adapter (what AutoProcessor.from_pretrained(OUTPUT_DIR) reads) and the base
        for folder in (args.output_dir, Path(args.output_dir) / "base"):
            if not save_tokenizer_or_processor(args.tokenizer, model.get_base_model(), folder):
                break  # nothing to save: the warning says what to pass
    except BaseException:
        if created:
            shutil.rmtree(args.output_dir, ignore_errors=True)
        raise
    write_marker(args.output_dir, KIND, files=os.listdir(args.output_dir))
    trainable, total = model.get_nb_trainable_parameters()
    config = model.config
    print(f"wrote DAVRL base ({args.output_dir}/base) and LoRA r={config.lora_rank} adapter ({trainable:,} of "
          f"{total:,} parameters) to {args.output_dir}")


__all__ = [
    "FLAG_MAP",
    "convert_dual_attention_checkpoint",
    "dual_attention_config_from_checkpoint",
    "split_dual_attention_state_dict",
]
