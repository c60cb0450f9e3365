"""Original EMCL-Net checkpoints (`pytorch_model.bin.<epoch>` of github.com/jpthu17/EMCL) to `EMCLModel`.

The checkpoint is the `state_dict` of the original model: OpenAI CLIP keys under `clip.`, the temporal head
(`frame_position_embeddings.weight`, `transformerClip.resblocks.*` or `lstm_visual.*`) and nothing else. Two
things are not in it and come from the command line:

- the EM bases: the original never saves them; a checkpoint is evaluated with the bases its constructor draws right
  after `torch.manual_seed(seed)` (seed 0 by default). `--em-bases-seed` reproduces that draw, `--em-bases FILE`
  takes them explicitly (e.g. the running bases of a training run). A loaded model takes new ones with
  `model.set_em_bases(tensor)`.
- the hyper-parameters of pooling and EM (`--temp`, `--centerK`, ... in the original): paste the original run's flags
  with `--original-args "--temp 3 --centerK 32 --seed 0 ..."` (`FLAG_MAP`), or set fields with
  `--set em_num_bases=16`; defaults are the paper's (see `EMCLConfig`).

Usage: `tvr convert emcl pytorch_model.bin.best.4 emcl-msrvtt/ --original-args "--max_frames 12 --centerK 32"`.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
from safetensors.torch import load_file

from ...convert.arguments import OriginalFlags, add_config_arguments, config_keys, config_overrides
from ...convert.layouts import check_layout
from ...convert.openai_clip import finish_conversion, load_converted_weights, load_original_state_dict
from ...convert.output import converted_folder
from ...convert.processor import add_tokenizer_argument, save_tokenizer_or_processor
from ..clip4clip.convert import clip4clip_config_from_checkpoint, convert_clip4clip_state_dict
from .configuration import EMCLConfig
from .em import initial_em_bases
from .modeling import EMCLModel

# The original's --agg_module keys are CLIP4Clip's loose-head keys; CLIP4Clip calls the bare model "meanP".
SIM_HEADER_TO_TEMPORAL_HEAD = {"meanP": "none", "seqLSTM": "seqLSTM", "seqTransf": "seqTransf"}
# The original's flags (main_retrieval.py) -> EMCLConfig fields; --agg_module and the layer counts come from the keys,
# --seed is the seed of the EM bases draw.
FLAG_MAP = {
    "max_frames": "max_frames",
    "max_words": "max_words",
    "temp": "frame_pooling_temperature",
    "centerK": "em_num_bases",
    "stage_num": "em_num_stages",
    "lamd": "em_temperature",
    "beta": "em_beta",
    "momentum": "em_momentum",
    "seed": "em_bases_seed",
}
# Every flag of the original's video_retrieval/EMCL-Net/main_retrieval.py.
ORIGINAL_FLAGS = OriginalFlags(
    "EMCL-Net's main_retrieval.py",
    "do_train do_eval datatype anno_path video_path seed workers lr coef_lr warmup_proportion weight_decay epochs "
    "batch_size batch_size_val max_words max_frames video_framerate device world_size local_rank distributed "
    "n_display output_dir base_encoder agg_module num_hidden_layers temp centerK stage_num momentum lamd beta "
    "t2v_temp v2t_temp init_model",
)
SET_KEYS = config_keys(EMCLConfig)


def emcl_config_from_checkpoint(state_dict: dict[str, torch.Tensor], **config_overrides) -> EMCLConfig:
    """The `EMCLConfig` of an original EMCL checkpoint: CLIP dims, temporal head and its layers from the keys (as
    for CLIP4Clip, whose key layout EMCL shares), the rest from `config_overrides` (defaults: the paper's)."""
    layout = clip4clip_config_from_checkpoint(state_dict)
    if layout.sim_header not in SIM_HEADER_TO_TEMPORAL_HEAD:
        raise ValueError(f"not an EMCL checkpoint: it has {layout.sim_header} keys (cross.* / similarity_dense.*)")
    read = {
        "text_config": layout.text_config,
        "vision_config": layout.vision_config,
        "temporal_config": layout.temporal_config,
        "projection_dim": layout.projection_dim,
        "logit_scale_init_value": layout.logit_scale_init_value,
        "temporal_head": SIM_HEADER_TO_TEMPORAL_HEAD[layout.sim_header],
        "linear_patch": layout.linear_patch,
    }
    clash = (set(read) - {"temporal_config"}) & set(config_overrides)
    if clash:
        raise ValueError(f"{sorted(clash)} are read from the checkpoint and cannot be set")
    temporal_overrides = config_overrides.pop("temporal_config", None)
    if temporal_overrides:
        read["temporal_config"] = {**layout.temporal_config.to_dict(), **temporal_overrides}
    return EMCLConfig(**read, **config_overrides)


def load_em_bases(spec: str) -> torch.Tensor:
    """Read EM bases from `FILE.safetensors[:KEY]`, `FILE.pt` / `.bin` (a tensor) or a JSON list of numbers.

    A safetensors file with several tensors needs `:KEY`.
    """
    if spec.lstrip().startswith("["):
        return torch.tensor(json.loads(spec), dtype=torch.float32)
    path, _, key = spec.partition(":") if ".safetensors:" in spec else (spec, "", "")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--em-bases {spec!r}: no such file")
    try:
        bases = load_file(path) if path.endswith(".safetensors") else torch.load(path, map_location="cpu",
                                                                                  weights_only=True)
    except Exception as error:  # noqa: BLE001  (a damaged file: name it, whatever the reader raised)
        raise ValueError(f"--em-bases {spec!r}: the file could not be read ({type(error).__name__}); it is damaged or "
                         "not a safetensors file / torch.save'd tensor") from None
    if path.endswith(".safetensors"):
        tensors = bases
        if not key and len(tensors) != 1:
            raise ValueError(f"--em-bases {spec!r}: the file holds {sorted(tensors)}; name one as FILE:KEY")
        if key and key not in tensors:
            raise ValueError(f"--em-bases {spec!r}: no tensor {key!r}; the file holds {sorted(tensors)}")
        return tensors[key] if key else next(iter(tensors.values()))
    if not isinstance(bases, torch.Tensor):
        raise ValueError(f"--em-bases {spec!r}: expected a saved tensor, got {type(bases).__name__}")
    return bases


def convert_emcl(
    checkpoint: str | os.PathLike,
    output_dir: str | os.PathLike | None = None,
    em_bases_seed: int = 0,
    em_bases: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
    **config_overrides,
) -> EMCLModel:
    """Convert an original EMCL-Net checkpoint to an `EMCLModel` (saved to `output_dir` when given).

    Args:
        checkpoint: the original `pytorch_model.bin*` (`torch.save(model.state_dict())`); fp16 tensors of GPU runs
            are upcast.
        output_dir: where to `save_pretrained` (safetensors; the EM bases are saved with the weights).
        em_bases_seed: the original run's `--seed`; the EM bases are the ones its constructor drew
            (`initial_em_bases(em_num_bases, seed=em_bases_seed)`).
        em_bases: `(1, em_num_bases)` bases to use instead of the seeded ones.
        dtype: dtype of the saved weights (the EM bases stay float32).
        **config_overrides: `EMCLConfig` fields the checkpoint does not determine, e.g. `frame_pooling_temperature`,
            `em_num_bases`, `em_beta`, `eval_block_size`, `max_frames`.
    """
    state_dict = load_original_state_dict(checkpoint)
    check_layout(state_dict, "emcl", checkpoint)
    config = emcl_config_from_checkpoint(state_dict, em_bases_seed=em_bases_seed, **config_overrides)
    sim_header = {head: name for name, head in SIM_HEADER_TO_TEMPORAL_HEAD.items()}[config.temporal_head]
    weights = convert_clip4clip_state_dict(state_dict, sim_header)
    model = EMCLModel(config)
    missing, unexpected = load_converted_weights(model, weights)
    missing = sorted(missing - {"em.bases"})
    if missing or unexpected:
        raise ValueError(
            f"EMCL checkpoint {os.fspath(checkpoint)!r} does not fit the model: missing {missing}, "
            f"unexpected {unexpected}"
        )
    model.set_em_bases(initial_em_bases(config.em_num_bases, seed=em_bases_seed) if em_bases is None else em_bases)
    return finish_conversion(model, dtype, output_dir)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`tvr convert emcl CHECKPOINT OUTPUT_DIR [--em-bases-seed N | --em-bases FILE] [--set key=value ...]`."""
    parser = subparsers.add_parser(
        "emcl",
        help="original EMCL-Net checkpoint (pytorch_model.bin.*) -> EMCLModel folder",
        description=(
            "Convert an original EMCL-Net checkpoint to an EMCLModel folder. The checkpoint holds no EM bases: by "
            "default they are the ones the original draws after torch.manual_seed(--em-bases-seed)."
        ),
    )
    parser.add_argument("checkpoint", help="original pytorch_model.bin.<epoch> (torch.save of the model state_dict)")
    parser.add_argument("output_dir", help="folder to write the EMCLModel to")
    bases = parser.add_mutually_exclusive_group()
    bases.add_argument("--em-bases-seed", type=int, help="the original run's --seed (default 0)")
    bases.add_argument(
        "--em-bases", help="explicit EM bases: FILE.safetensors[:KEY], a saved tensor FILE, or a JSON list"
    )
    add_config_arguments(parser)
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")
    add_tokenizer_argument(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> None:
    em_bases = load_em_bases(args.em_bases) if args.em_bases else None
    overrides = config_overrides(args, FLAG_MAP, {"em_bases_seed": args.em_bases_seed}, original=ORIGINAL_FLAGS,
                                 known=SET_KEYS)
    with converted_folder(args) as staging:
        model = convert_emcl(
            args.checkpoint, staging, em_bases_seed=overrides.pop("em_bases_seed", 0), em_bases=em_bases,
            dtype=getattr(torch, args.dtype), **overrides,
        )
        save_tokenizer_or_processor(args.tokenizer, model, staging, args.output_dir)
    config = model.config
    print(
        f"wrote EMCLModel ({sum(p.numel() for p in model.parameters()):,} parameters, temporal head "
        f"{config.temporal_head}, K={config.em_num_bases}) to {args.output_dir}"
    )


__all__ = ["FLAG_MAP", "ORIGINAL_FLAGS", "convert_emcl", "emcl_config_from_checkpoint", "load_em_bases"]
