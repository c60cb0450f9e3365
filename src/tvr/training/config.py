"""The training configuration: one dataclass, loadable from YAML / JSON, overridable from the command line.

``tvr train --config cfg.yaml --lr 1e-4 --model_kwargs sim_header=seqTransf`` and
``accelerate launch -m tvr.training --config cfg.yaml ...`` build the same :class:`TrainingConfig`: defaults,
then the file, then the flags. ``FLAGS.md`` next to this file maps the original code's flags (CLIP4Clip's
``main_task_retrieval.py``) to these fields.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from ..utils.values import parse_key_values

MIXED_PRECISIONS = ("no", "fp16", "bf16")
OPTIMIZERS = ("adamw", "bertadam")
FRAME_ORDERS = ("normal", "reverse", "shuffle")


def option(default: Any, help: str, factory: bool = False) -> Any:
    """A config field with its ``--help`` text (``factory=True``: ``default`` is a factory, e.g. ``dict``)."""
    if factory:
        return field(default_factory=default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class TrainingConfig:
    """Everything one training run needs. Defaults are the original code's recipe (CLIP4Clip README) except the
    optimiser (``adamw``; ``bertadam`` reproduces the original)."""

    # --- model: init_from (a saved tvr model), from_image_text_model (CLIP / MetaCLIP 2 / SigLIP weights), or
    # neither (random init)
    model_type: str = option("clip4clip", "registered tvr model type used with from_image_text_model or random init")
    model_kwargs: dict[str, Any] = option(
        dict, "method config fields, e.g. sim_header=seqTransf linear_patch=2d", factory=True)
    from_image_text_model: str | None = option(
        None, "transformers image-text model folder or Hub id (CLIP, MetaCLIP 2, SigLIP): "
              "Model.from_image_text_model(path, **model_kwargs)")
    from_clip: str | None = option(None, "alias of from_image_text_model")
    init_from: str | None = option(None, "saved tvr model folder (AutoModel.from_pretrained)")
    processor: str | None = option(None, "processor folder; defaults to init_from or from_image_text_model")
    processor_kwargs: dict[str, Any] = option(
        dict, "processor settings to override (AutoProcessor.from_pretrained kwargs), e.g. max_frames=12 "
              "slice_framepos=uniform fps=1", factory=True)

    # --- data
    train_data: dict[str, Any] | None = option(None, "keyword arguments of tvr.data.load_annotations (training)")
    eval_data: dict[str, Any] | None = option(
        None, "keyword arguments of tvr.data.load_annotations for the split evaluated after every epoch")
    train_frame_order: str = option("normal", "frame order augmentation: normal, reverse or shuffle")
    cache_videos: bool = option(
        False, "decode every training and evaluation video once before training and keep its uint8 frames in memory")
    frame_cache_dir: str | None = option(
        None, "folder of an on-disk cache of decoded uint8 frames (memory-mapped), filled as videos are first "
              "decoded and reused by later epochs and runs; several runs may share it")
    num_workers: int = option(0, "DataLoader worker processes")
    prefetch_factor: int = option(2, "batches each DataLoader worker prepares ahead (with num_workers > 0)")
    on_bad_video: str = option(
        "skip", "a video that cannot be decoded: skip (left out of its batch, listed in skipped_videos.json) or error")

    # --- optimisation
    epochs: int = option(5, "passes over the training set")
    batch_size: int = option(128, "global batch per forward pass, split over processes (the negatives pool)")
    gradient_accumulation_steps: int = option(1, "forward passes per optimiser step (negatives pool unchanged)")
    max_steps: int | None = option(None, "stop after (and schedule over) this many optimiser steps")
    optimizer: str = option("adamw", "adamw, or bertadam (the original code's BertAdam)")
    lr: float = option(1e-4, "learning rate of the parameters outside clip")
    coef_lr: float = option(1e-3, "CLIP parameters train at lr * coef_lr")
    weight_decay: float = option(0.2, "decoupled weight decay (not applied to biases)")
    adam_beta1: float = option(0.9, "first-moment decay")
    adam_beta2: float = option(0.98, "second-moment decay")
    adam_epsilon: float = option(1e-6, "denominator epsilon")
    max_grad_norm: float | None = option(
        1.0, "global gradient-norm clip (0 or none: no clipping); BertAdam also clips each parameter")
    max_nonfinite_steps: int = option(
        3, "steps with a NaN/inf loss or gradient norm are skipped; stop with an error after this many in a row")
    warmup_proportion: float = option(0.1, "fraction of the steps with linear warmup (then cosine)")
    freeze_layer_num: int = option(0, "freeze CLIP embeddings and layers below this index; -1 freezes nothing")
    mixed_precision: str = option("no", "no (fp32), fp16 or bf16 autocast")
    gradient_checkpointing: bool = option(False, "recompute activations in backward to save memory")
    torch_compile: bool = option(
        False, "compile the training step with torch.compile (inductor): faster steps after a compilation of "
               "about a minute; worth it for long runs on GPU")
    seed: int = option(42, "seed of initialisation, data order and augmentation")
    ddp_find_unused_parameters: bool = option(
        True, "DDP looks for parameters without gradient (tightTransf never uses logit_scale); false is faster "
              "when every trainable parameter gets one")

    # --- evaluation, logging, checkpoints
    eval_batch_size: int = option(16, "batch size of the evaluation after every epoch")
    logging_steps: int = option(1, "write a metrics line every this many optimiser steps")
    save_steps: int | None = option(None, "save a checkpoint every this many optimiser steps (and after every epoch)")
    save_total_limit: int | None = option(2, "keep at most this many checkpoints (none: keep all)")
    output_dir: str = option("tvr_output", "metrics.jsonl, checkpoints/, best/ and final/ go here")
    resume_from: str | None = option(None, "checkpoint folder to resume from, or 'latest' (under output_dir)")
    push_to_hub: bool = option(False, "upload best/ (final/ without evaluation) with its card when training ends")
    hub_model_id: str | None = option(None, "Hub repo for push_to_hub, e.g. you/clip4clip-msrvtt")

    def __post_init__(self):
        _convert_field_types(self)
        if self.from_clip is not None:
            if self.from_image_text_model not in (None, self.from_clip):
                raise ValueError("TrainingConfig: from_clip is an alias of from_image_text_model; give one of them")
            self.from_image_text_model, self.from_clip = self.from_clip, None
        checks = [
            (self.mixed_precision in MIXED_PRECISIONS, f"mixed_precision must be one of {MIXED_PRECISIONS}"),
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}"),
            (self.train_frame_order in FRAME_ORDERS, f"train_frame_order must be one of {FRAME_ORDERS}"),
            (self.init_from is None or self.from_image_text_model is None,
             "give at most one of init_from and from_image_text_model"),
            (self.epochs > 0 or (self.max_steps or 0) > 0, "epochs or max_steps must be positive"),
            (self.on_bad_video in ("skip", "error"), "on_bad_video must be 'skip' or 'error'"),
            (not (self.cache_videos and self.frame_cache_dir), "give at most one of cache_videos (frames in memory) "
                                                               "and frame_cache_dir (frames on disk)"),
            (self.prefetch_factor > 0, "prefetch_factor must be positive"),
            (self.max_nonfinite_steps > 0, "max_nonfinite_steps must be positive"),
            (not self.push_to_hub or bool(self.hub_model_id), "push_to_hub needs hub_model_id"),
        ] + [
            (data is None or "split" in data, f"{name} needs a 'split' (train, val or test); without one "
                                              "tvr.data.load_annotations would read the test split")
            for name, data in (("train_data", self.train_data), ("eval_data", self.eval_data))
        ]
        _check_ranges(self)
        for ok, message in checks:
            if not ok:
                raise ValueError(f"TrainingConfig: {message}")

    @classmethod
    def from_file(cls, path: str | os.PathLike, **overrides: Any) -> "TrainingConfig":
        """Read a ``.yaml`` / ``.yml`` / ``.json`` file (keys = field names); ``overrides`` win over the file."""
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle) if os.fspath(path).endswith(".json") else yaml.safe_load(handle)
        if not isinstance(values, dict):
            raise ValueError(f"training config {os.fspath(path)!r}: expected a mapping of field names to values")
        return cls.from_dict({**values, **overrides}, where=os.fspath(path))

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "config") -> "TrainingConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{where}: unknown training config keys {unknown}; valid keys: {sorted(known)}")
        try:
            return cls(**values)
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: str | os.PathLike) -> None:
        """Write the config as YAML (or JSON for a ``.json`` path), crash-safely."""
        from ..utils.atomic import atomic_write_text

        if os.fspath(path).endswith(".json"):
            atomic_write_text(path, json.dumps(self.to_dict(), indent=2))
        else:
            atomic_write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))


# field -> (low, high, low inclusive, high inclusive, what None means); every number enters through this table, so
# a value that would silently do harm (save_total_limit -1 deleted every checkpoint, max_grad_norm -1 flipped the
# gradient) is an error naming the field and its range
INF = float("inf")
RANGES: dict[str, tuple[float, float, bool, bool, str | None]] = {
    "epochs": (0, INF, True, False, None),
    "batch_size": (1, INF, True, False, None),
    "gradient_accumulation_steps": (1, INF, True, False, None),
    "max_steps": (1, INF, True, False, "train for `epochs`"),
    "lr": (0, INF, False, False, None),
    "coef_lr": (0, INF, True, False, None),
    "weight_decay": (0, INF, True, False, None),
    "adam_beta1": (0, 1, True, False, None),
    "adam_beta2": (0, 1, True, False, None),
    "adam_epsilon": (0, INF, False, False, None),
    "max_grad_norm": (0, INF, True, False, "no clipping, as 0"),
    "max_nonfinite_steps": (1, INF, True, False, None),
    "warmup_proportion": (0, 1, True, False, None),
    "freeze_layer_num": (-1, INF, True, False, None),
    "seed": (0, 2**32 - 1, True, True, None),
    "num_workers": (0, INF, True, False, None),
    "prefetch_factor": (1, INF, True, False, None),
    "eval_batch_size": (1, INF, True, False, None),
    "logging_steps": (1, INF, True, False, None),
    "save_steps": (1, INF, True, False, "save after every epoch only"),
    "save_total_limit": (1, INF, True, False, "keep every checkpoint"),
}


def _check_ranges(config: "TrainingConfig") -> None:
    """Raise ``ValueError`` naming the first numeric field outside its range (see ``RANGES``), and the range."""
    for name, (low, high, low_inclusive, high_inclusive, none_means) in RANGES.items():
        value = getattr(config, name)
        if value is None:
            continue
        above = value >= low if low_inclusive else value > low
        below = value <= high if high_inclusive else value < high
        if not (math.isfinite(value) and above and below):
            if high == INF:
                bounds = f"{'>=' if low_inclusive else '>'} {low}"
            else:
                bounds = f"in {'[' if low_inclusive else '('}{low}, {high}{']' if high_inclusive else ')'}"
            null = f" (or null: {none_means})" if none_means else ""
            raise ValueError(f"TrainingConfig: {name} must be {bounds}{null}, got {value!r}")


def _convert_field_types(config: "TrainingConfig") -> None:
    """Convert every field to its annotated type, or raise naming the field.

    YAML 1.1 reads ``1e-4`` (an exponent without a dot) as a string and JSON has no integers distinct from floats
    in some writers, so a number given as text (``"1e-4"``) or an integral float (``5.0`` for an int) is converted;
    anything else of the wrong type (``lr: fast``, ``epochs: 2.5``, ``cache_videos: 3``) is an error.
    """
    hints = typing.get_type_hints(type(config))
    for config_field in dataclasses.fields(config):
        hint = hints[config_field.name]
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), hint) if optional else hint
        origin = typing.get_origin(base) or base
        value = getattr(config, config_field.name)
        if optional and (value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null"))):
            setattr(config, config_field.name, None)
            continue
        try:
            converted = _convert_value(value, origin)
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            expected = {int: "an integer", float: "a number", bool: "true or false", str: "a string",
                        dict: "a mapping of key: value"}.get(origin, origin.__name__)
            raise ValueError(f"TrainingConfig: field {config_field.name!r} expects {expected}"
                             f"{' or null' if optional else ''}, got {value!r}") from None
        setattr(config, config_field.name, converted)


def _convert_value(value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return _parse_bool(value)
        raise TypeError
    if isinstance(value, bool):  # True is an int in Python, never a number here
        raise TypeError
    if kind is float:
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return float(value.strip())
        raise TypeError
    if kind is int:
        if isinstance(value, str):
            value = float(value.strip()) if any(c in value.lower() for c in ".e") else int(value.strip())
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        raise TypeError
    if kind is str:
        if isinstance(value, (str, os.PathLike)):
            return os.fspath(value)
        raise TypeError
    if kind is dict:
        if isinstance(value, dict):
            return value
        raise TypeError
    return value


# ---------------------------------------------------------------------------------------------------- CLI


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")


def _parse_optional(parse):
    def parse_or_none(text: str):
        return None if text.lower() in ("none", "null") else parse(text)
    return parse_or_none


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` plus one kebab-case ``--<field>`` per :class:`TrainingConfig` field (dict fields take
    ``key=value`` pairs, ``none`` clears an optional field), ``--set KEY=VALUE`` (a model config field, repeatable, as
    in ``tvr convert``) and ``--push-to-hub REPO``. Each field's snake_case flag (``--batch_size``) is a hidden alias,
    so existing commands keep working. Flags left out keep the file's / default value."""
    parser.add_argument("--config", help="YAML or JSON training config; flags override its values")
    parser.add_argument("--set", action="append", default=argparse.SUPPRESS, metavar="KEY=VALUE", dest="model_set",
                        help="set a model config field (value read as YAML: 12, 1e-4, [20,21], true), e.g. --set "
                             "sim_header=seqTransf; repeatable; merged into model_kwargs")
    parser.add_argument("--push-to-hub", default=argparse.SUPPRESS, metavar="REPO", dest="push_to_hub_repo",
                        help="upload best/ (final/ without evaluation) with its card to this Hub repo when training "
                             "ends (as `tvr card --push-to-hub REPO`)")
    hints = typing.get_type_hints(TrainingConfig)
    defaults = TrainingConfig()
    for config_field in dataclasses.fields(TrainingConfig):
        hint = hints[config_field.name]
        args = typing.get_args(hint)
        optional = type(None) in args
        base = next((a for a in args if a is not type(None)), hint) if optional else hint
        origin = typing.get_origin(base) or base
        help_text = config_field.metadata.get("help") or ""
        default = getattr(defaults, config_field.name)
        if default not in (None, {}) and config_field.name != "from_clip":
            help_text += f" (default: {str(default).lower() if isinstance(default, bool) else default})"
        kwargs: dict[str, Any] = dict(default=argparse.SUPPRESS, dest=config_field.name)
        if origin is dict:
            kwargs.update(nargs="+", metavar="KEY=VALUE")
        elif origin is bool:
            kwargs.update(type=_parse_bool, metavar="BOOL")
        else:
            kwargs.update(type=_parse_optional(origin) if optional else origin)
        kebab = "--" + config_field.name.replace("_", "-")
        if config_field.name == "push_to_hub":  # --push-to-hub REPO (above); the bool stays --push_to_hub BOOL
            parser.add_argument("--push_to_hub", help=argparse.SUPPRESS, **kwargs)
            continue
        parser.add_argument(kebab, help=help_text, **kwargs)
        if "_" in config_field.name:
            parser.add_argument(f"--{config_field.name}", help=argparse.SUPPRESS, **kwargs)


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    """The :class:`TrainingConfig` of parsed :func:`add_config_arguments` flags: defaults < ``--config`` < flags."""
    overrides = {}
    for config_field in dataclasses.fields(TrainingConfig):
        if hasattr(args, config_field.name):
            value = getattr(args, config_field.name)
            if isinstance(value, list):  # a dict field given as key=value pairs
                value = None if value == ["none"] else parse_key_values(value)
            overrides[config_field.name] = value
    if hasattr(args, "push_to_hub_repo"):
        overrides.update(push_to_hub=True, hub_model_id=args.push_to_hub_repo)
    model_set = parse_key_values(getattr(args, "model_set", None) or [], "--set")
    if getattr(args, "config", None):
        config = TrainingConfig.from_file(args.config, **overrides)
    else:
        config = TrainingConfig.from_dict(overrides, where="command line")
    if model_set:
        config.model_kwargs = {**config.model_kwargs, **model_set}
    return config


def rerunnable_config(training_config: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a ``TrainingConfig`` dict that differ from the defaults (``resume_from`` left out: a re-run
    starts fresh), so ``TrainingConfig.from_dict`` reads it back; other mappings are returned as they are. What a
    model card shows as the run's re-runnable config."""
    defaults = TrainingConfig().to_dict()
    if set(training_config) != set(defaults):  # not a whole TrainingConfig: shown as given
        return dict(training_config)
    return {key: value for key, value in training_config.items()
            if key != "resume_from" and value != defaults[key]}
