"""OpenAI CLIP state dicts (the `ViT-B-32.pt` JIT archive or a plain state dict) to transformers `CLIPModel`.

The key mapping is the one transformers' own OpenAI conversion uses: fused `attn.in_proj_*` split into q/k/v,
`ln_1`/`ln_2` -> `layer_norm1`/`layer_norm2`, `mlp.c_fc`/`c_proj` -> `mlp.fc1`/`fc2`, projections transposed into
`nn.Linear` weights. The residual-block mapping (`convert_resblocks`) also serves the temporal / cross transformers of
CLIP4Clip, EMCL and EERCF, which use the same block layout.

Every `convert_*` function here REMOVES the keys it converts from the dict it is given, so a converter can run the
mappings it knows and then refuse whatever is left (`raise_on_unknown_keys`).
"""

from __future__ import annotations

import argparse
import math
import os
import re

import torch
from transformers import CLIPConfig, CLIPModel

from .layouts import check_layout
from .output import claim_model_dir, converted_folder
from .processor import add_tokenizer_argument, save_tokenizer_or_processor
from .torchscript import is_torchscript_archive, read_torchscript_state_dict

# Suffix of a key inside an OpenAI residual block -> suffix inside a transformers CLIPEncoderLayer.
RESBLOCK_RENAMES = {
    "attn.out_proj.weight": "self_attn.out_proj.weight",
    "attn.out_proj.bias": "self_attn.out_proj.bias",
    "ln_1.weight": "layer_norm1.weight",
    "ln_1.bias": "layer_norm1.bias",
    "mlp.c_fc.weight": "mlp.fc1.weight",
    "mlp.c_fc.bias": "mlp.fc1.bias",
    "mlp.c_proj.weight": "mlp.fc2.weight",
    "mlp.c_proj.bias": "mlp.fc2.bias",
    "ln_2.weight": "layer_norm2.weight",
    "ln_2.bias": "layer_norm2.bias",
}
# The fused input projection of nn.MultiheadAttention stacks q, k, v along dim 0.
IN_PROJ_SPLITS = {
    "attn.in_proj_weight": ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"),
    "attn.in_proj_bias": ("self_attn.q_proj.bias", "self_attn.k_proj.bias", "self_attn.v_proj.bias"),
}
RESBLOCK_KEYS = frozenset(RESBLOCK_RENAMES) | frozenset(IN_PROJ_SPLITS)

# OpenAI key -> transformers CLIPModel key, copied as is.
CLIP_RENAMES = {
    "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
    "positional_embedding": "text_model.embeddings.position_embedding.weight",
    "ln_final.weight": "text_model.final_layer_norm.weight",
    "ln_final.bias": "text_model.final_layer_norm.bias",
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
    "logit_scale": "logit_scale",
}
# OpenAI `x @ proj` matrices (in, out) -> nn.Linear weights (out, in).
CLIP_TRANSPOSED = {"text_projection": "text_projection.weight", "visual.proj": "visual_projection.weight"}
CLIP_RESBLOCKS = {
    "transformer.resblocks.": "text_model.encoder.layers.",
    "visual.transformer.resblocks.": "vision_model.encoder.layers.",
}
# Integer buffers of OpenAI's JIT archives; the config carries them.
CLIP_BUFFERS = ("input_resolution", "context_length", "vocab_size")


def load_original_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an original checkpoint on the CPU: a TorchScript archive (OpenAI's `.pt`) or a `torch.save`d state dict.

    Plain files are read with `torch.load(weights_only=True)`; TorchScript archives, which that refuses, as data by
    `read_torchscript_state_dict` (never `torch.jit.load`, which runs the archive's code). A dict wrapping the weights
    under "state_dict" or "model" is unwrapped.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"checkpoint {path!r} does not exist")
    if is_torchscript_archive(path):
        return read_torchscript_state_dict(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001  (torch's message suggests weights_only=False: never do that here)
        raise ValueError(f"checkpoint {path!r} could not be read: expected a state dict saved with torch.save or a "
                         "TorchScript archive; it is damaged, not a checkpoint, or holds objects other than tensors "
                         f"(which tvr never unpickles) ({type(error).__name__})") from None
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict) or not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise ValueError(f"checkpoint {path!r} is not a state dict (a dict of tensors)")
    return dict(loaded)


def load_checkpoint_with_clip(
    checkpoint: str | os.PathLike,
    clip: str | os.PathLike | None = None,
    converter: str | None = None,
    accept: tuple[str, ...] = (),
) -> dict[str, torch.Tensor]:
    """Read an original method checkpoint; with `clip` (an OpenAI CLIP file), fill the `clip.*` keys it lacks, as the
    originals' loaders do.

    With `converter` (`"clip4clip"`, ...), a checkpoint of another method's layout, or a `clip` file that is not an
    OpenAI CLIP, is refused naming the converter that reads it (`tvr.convert.layouts.check_layout`; `accept`: further
    layouts read)."""
    state_dict = load_original_state_dict(checkpoint)
    if converter is not None:
        check_layout(state_dict, converter, checkpoint, accept)
    if clip is not None:
        clip_state_dict = load_original_state_dict(clip)
        check_layout(clip_state_dict, "clip", clip, what="--clip file")
        for key, value in clip_state_dict.items():
            state_dict.setdefault(f"clip.{key}", value)
    return state_dict


def load_converted_weights(model: torch.nn.Module, converted: dict[str, torch.Tensor]) -> tuple[set[str], list[str]]:
    """Load converted weights (upcast to float32) into `model` non-strictly; returns `(missing, unexpected)` keys so
    that the converter can derive or refuse them."""
    result = model.load_state_dict({key: value.float() for key, value in converted.items()}, strict=False)
    return set(result.missing_keys), list(result.unexpected_keys)


def finish_conversion(
    model: torch.nn.Module, dtype: torch.dtype, output_dir: str | os.PathLike | None
) -> torch.nn.Module:
    """Cast a converted model to `dtype`, put it in eval mode and `save_pretrained` it to `output_dir` when given
    (a new folder or one tvr wrote as a model: anything else is refused, see `tvr.convert.output`)."""
    model = model.to(dtype).eval()
    if output_dir is not None:
        claim_model_dir(output_dir)
        model.save_pretrained(output_dir)
    return model


def raise_on_unknown_keys(state_dict: dict[str, torch.Tensor], what: str) -> None:
    """Raise if a converter left keys it does not understand."""
    if state_dict:
        raise ValueError(f"{what}: unknown keys {sorted(state_dict)}")


def convert_resblocks(
    state_dict: dict[str, torch.Tensor], source_prefix: str, target_prefix: str
) -> dict[str, torch.Tensor]:
    """Convert every OpenAI residual block under `source_prefix` to transformers `CLIPEncoderLayer` keys.

    Example: `convert_resblocks(sd, "transformer.resblocks.", "text_model.encoder.layers.")` maps
    `transformer.resblocks.3.attn.in_proj_weight` to `text_model.encoder.layers.3.self_attn.{q,k,v}_proj.weight`.
    The converted keys are removed from `state_dict`.

    Raises:
        ValueError: if a block has a key outside the residual-block layout or misses one.
    """
    pattern = re.compile(re.escape(source_prefix) + r"(\d+)\.(.+)")
    blocks: dict[int, dict[str, torch.Tensor]] = {}
    for key in [key for key in state_dict if key.startswith(source_prefix)]:
        match = pattern.fullmatch(key)
        if match is None or match.group(2) not in RESBLOCK_KEYS:
            continue  # left in state_dict: reported as unknown by the caller
        blocks.setdefault(int(match.group(1)), {})[match.group(2)] = state_dict.pop(key)
    converted = {}
    for index, block in sorted(blocks.items()):
        missing = RESBLOCK_KEYS - set(block)
        if missing:
            raise ValueError(f"residual block {source_prefix}{index} misses {sorted(missing)}")
        for suffix, tensor in block.items():
            if suffix in IN_PROJ_SPLITS:
                for name, part in zip(IN_PROJ_SPLITS[suffix], tensor.chunk(3, dim=0)):
                    converted[f"{target_prefix}{index}.{name}"] = part.clone()
            else:
                converted[f"{target_prefix}{index}.{RESBLOCK_RENAMES[suffix]}"] = tensor
    return converted


def convert_openai_clip_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Convert the CLIP keys of an OpenAI-format state dict to transformers `CLIPModel` keys.

    The converted keys (and OpenAI's integer buffers) are removed from `state_dict`; anything left is not CLIP.

    Raises:
        ValueError: if a CLIP key is missing.
    """
    missing = [key for key in (*CLIP_RENAMES, *CLIP_TRANSPOSED) if key not in state_dict]
    if missing:
        raise ValueError(f"not an OpenAI ViT CLIP state dict: missing keys {missing}")
    converted = {target: state_dict.pop(source) for source, target in CLIP_RENAMES.items()}
    converted.update({target: state_dict.pop(source).t().contiguous() for source, target in CLIP_TRANSPOSED.items()})
    for source_prefix, target_prefix in CLIP_RESBLOCKS.items():
        converted.update(convert_resblocks(state_dict, source_prefix, target_prefix))
    for buffer in CLIP_BUFFERS:
        state_dict.pop(buffer, None)
    return converted


def _count_blocks(state_dict: dict[str, torch.Tensor], prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    return len({match.group(1) for key in state_dict if (match := pattern.match(key))})


def clip_config_from_openai(state_dict: dict[str, torch.Tensor]) -> CLIPConfig:
    """The transformers `CLIPConfig` of an OpenAI ViT CLIP state dict, with dims read from the tensors as OpenAI's
    `build_model` does (heads = width // 64, MLP 4x width, QuickGELU, LayerNorm eps 1e-5).

    The end-of-text id is taken to be the last vocabulary entry (49407 for OpenAI's BPE), start-of-text the one before.
    """
    if "visual.proj" not in state_dict:
        raise ValueError("only ViT CLIP models are supported: the state dict has no 'visual.proj' (ResNet CLIP?)")
    vision_width, _, _, patch_size = state_dict["visual.conv1.weight"].shape
    grid_size = round(math.sqrt(state_dict["visual.positional_embedding"].shape[0] - 1))
    text_width = state_dict["ln_final.weight"].shape[0]
    vocab_size = state_dict["token_embedding.weight"].shape[0]
    text_config = {
        "vocab_size": vocab_size,
        "hidden_size": text_width,
        "intermediate_size": 4 * text_width,
        "num_hidden_layers": _count_blocks(state_dict, "transformer.resblocks."),
        "num_attention_heads": max(1, text_width // 64),
        "max_position_embeddings": state_dict["positional_embedding"].shape[0],
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
        "projection_dim": state_dict["text_projection"].shape[1],
    }
    vision_config = {
        "hidden_size": vision_width,
        "intermediate_size": 4 * vision_width,
        "num_hidden_layers": _count_blocks(state_dict, "visual.transformer.resblocks."),
        "num_attention_heads": max(1, vision_width // 64),
        "image_size": patch_size * grid_size,
        "patch_size": patch_size,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "projection_dim": state_dict["text_projection"].shape[1],
    }
    return CLIPConfig(
        text_config=text_config,
        vision_config=vision_config,
        projection_dim=state_dict["text_projection"].shape[1],
        logit_scale_init_value=float(state_dict["logit_scale"]),
    )


def convert_openai_clip(
    path: str | os.PathLike, output_dir: str | os.PathLike | None = None, dtype: torch.dtype = torch.float32
) -> CLIPModel:
    """Convert an OpenAI CLIP file to a transformers `CLIPModel` (saved to `output_dir` when given).

    Args:
        path: OpenAI's `.pt` archive, or a `torch.save`d OpenAI-format state dict.
        output_dir: where to `save_pretrained` (safetensors).
        dtype: dtype of the saved weights; OpenAI's fp16 linear weights are upcast by default.
    """
    state_dict = load_original_state_dict(path)
    check_layout(state_dict, "clip", path)
    config = clip_config_from_openai(state_dict)
    converted = convert_openai_clip_state_dict(state_dict)
    raise_on_unknown_keys(state_dict, f"OpenAI CLIP file {os.fspath(path)!r}")
    model = CLIPModel(config)
    model.load_state_dict({key: value.to(torch.float32) for key, value in converted.items()}, strict=True)
    return finish_conversion(model, dtype, output_dir)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`tvr convert clip OPENAI_FILE OUTPUT_DIR`."""
    parser = subparsers.add_parser(
        "clip",
        help="OpenAI CLIP state dict (.pt JIT archive or .bin) -> transformers CLIPModel folder",
        description="Convert an OpenAI CLIP checkpoint (ViT only) to a transformers CLIPModel folder.",
    )
    parser.add_argument("openai_file", help="OpenAI CLIP file: ViT-B-32.pt (JIT archive) or a torch.save'd state dict")
    parser.add_argument("output_dir", help="folder to write the transformers CLIPModel to")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    add_tokenizer_argument(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> None:
    with converted_folder(args) as staging:
        model = convert_openai_clip(args.openai_file, staging, dtype=getattr(torch, args.dtype))
        save_tokenizer_or_processor(args.tokenizer, model, staging, args.output_dir)
    num_parameters = sum(parameter.numel() for parameter in model.parameters())
    print(f"wrote {type(model).__name__} ({num_parameters:,} parameters) to {args.output_dir}")


__all__ = [
    "CLIP_RESBLOCKS",
    "RESBLOCK_KEYS",
    "clip_config_from_openai",
    "convert_openai_clip",
    "convert_openai_clip_state_dict",
    "convert_resblocks",
    "finish_conversion",
    "load_checkpoint_with_clip",
    "load_converted_weights",
    "load_original_state_dict",
    "raise_on_unknown_keys",
]
