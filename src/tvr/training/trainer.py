"""The training loop every tvr method shares, as named stages :func:`train` runs top to bottom:

    set_up        accelerator, run folder, model, processor, data, optimiser, schedule, ``accelerator.prepare``,
                  resume
    train_epoch   per epoch: each batch under ``accelerator.accumulate``; optimizer_step (with its finite check),
                  record_step (counters, metrics line, divergence), a checkpoint every ``save_steps``
    end_epoch     evaluation keeping ``best/`` (evaluate_and_keep_best), a checkpoint
    save_final    ``final/``, the model cards, ``push_to_hub``

Checkpoints are tvr's own (:mod:`.checkpointing`: safetensors and JSON, nothing pickled), not Accelerate's
``save_state``.

It relies only on the model contract: ``encode_text``, ``encode_video``, ``compute_loss`` (by default
:func:`tvr.modeling.losses.contrastive_loss` of the batch similarity), ``gather_for_loss`` and ``logit_scale``.
Processes, devices and mixed precision belong to Accelerate: the same code runs on one CPU and under
``accelerate launch`` on many GPUs.

Output folder (``config.output_dir``)::

    training_config.yaml   the config of the run
    metrics.jsonl          one JSON line per logged step (step, epoch, loss, lr/<group>, grad_norm,
                           samples_per_second; nonfinite_steps, skipped_videos once there are any) and per
                           evaluation (t2v_R@1, ...)
    checkpoints/checkpoint-<step>/   model, optimiser, scheduler, RNG, progress (see :mod:`.checkpointing`), after
                           every epoch and every ``save_steps``; the newest ``save_total_limit`` are kept
    best/                  save_pretrained model + processor + README.md card, best t2v R@1 so far
    final/                 the same for the model at the end of training
    skipped_videos.json    training videos that could not be decoded (left out of their batches) or have no file
                           (left out of the training set), with their errors
    base/                  methods trained through a peft adapter (DAVRL): the frozen base model, written once;
                           checkpoints, best/ and final/ then hold the adapter only, pointing to it

Every file and folder here is written to a temporary name and renamed into place (:mod:`tvr.utils.atomic`), so a
run killed at any instant leaves complete checkpoints, ``best/`` and ``final/`` (old or new) and resumes with
``resume_from="latest"`` (``metrics.jsonl`` is appended to; a torn last line is dropped on resume). Steps whose
loss or gradient norm is not finite are skipped and counted; after ``max_nonfinite_steps`` in a row the run stops
with :class:`TrainingDiverged`, and non-finite weights are never saved.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.utils import broadcast_object_list, set_seed
from datasets import Dataset
from torch import nn
from tqdm.auto import tqdm

from ..loading import naming_damaged_weights
from ..peft import (
    adapter_base_model,
    is_peft_model,
    load_adapter_for_training,
    prepare_adapter_training,
    resolve_adapter_base,
    save_adapter,
)
from ..processing.normalization import normalize_videos
from ..utils.output_dir import claim_output_dir, write_marker
from ..utils.process import exit_with_parent, launched_worker
from .checkpointing import (  # noqa: F401  (list_checkpoints, resolve_checkpoint: part of this module's API)
    CHECKPOINT_PREFIX,
    list_checkpoints,
    load_checkpoint,
    resolve_checkpoint,
    save_checkpoint,
)
from .config import TrainingConfig, rerunnable_config
from .data import CachedVideoProcessor, CaptionVideoSamples, TrainingCollator
from .gather import gather_encoding
from .optimization import build_optimizer, build_scheduler, freeze_pretrained_layers

SKIPPED_VIDEOS_FILE = "skipped_videos.json"
RUN_KIND, MODEL_KIND = "training run", "model"  # the kinds of tvr.utils.output_dir's markers
# what a run folder of tvr 0.1 (before markers) holds, training_config.yaml always
RUN_LEGACY = ("training_config.yaml", "metrics.jsonl", "checkpoints", "best", "final", "base", "skipped_videos.json")
# what a saved model folder of tvr 0.1 holds, its card always: save_pretrained's weights, configs, tokenizer files
MODEL_LEGACY = ("README.md", "*.json", "*.safetensors", "*.txt", "training_curves.png")
ADAPTER_BASE_DIR = "base"  # under output_dir: the frozen base every saved adapter of the run points to
BEST_METRIC = "t2v_R@1"
CONSOLE_METRICS = ("t2v_R@1", "t2v_R@5", "t2v_R@10", "t2v_MedR", "v2t_R@1", "v2t_R@5", "v2t_R@10")
MAX_LOGIT_SCALE = math.log(100)


class ContrastiveStep(nn.Module):
    """The training forward: the loss of a batch of (caption, video) pairs.

    Turns the batch's uint8 frames into the model's float inputs on the device (the video processor's rescale and
    normalisation, :func:`~tvr.processing.normalize_videos`: the host never holds float frames); encodes the local
    batch; for embedding heads (``model.gather_for_loss``) gathers the encodings of every process with gradients, so
    the similarity matrix and the loss (``model.compute_loss``: the symmetric contrastive loss, or a method's own
    such as EERCF's) cover the global batch (see :mod:`tvr.training.gather` for why the gradient equals one process
    on the whole batch); pair-scoring heads (tightTransf) use the local batch, as the original. A module rather than
    a function so that DDP (gradient sync) and Accelerate's autocast wrap this forward.

    Args:
        model: a tvr model.
        video_processor: the processor that made the frames; its rescale / normalisation settings apply to uint8
            ``pixel_values_videos`` (float ones are taken as already normalised).
    """

    def __init__(self, model: nn.Module, video_processor: Any):
        super().__init__()
        self.model = model
        self.video_processor = video_processor

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values_videos: torch.Tensor,
                video_mask: torch.Tensor) -> torch.Tensor:
        if pixel_values_videos.dtype == torch.uint8:
            pixel_values_videos = normalize_videos(pixel_values_videos, video_mask, self.video_processor)
        text = self.model.encode_text(input_ids, attention_mask)
        video = self.model.encode_video(pixel_values_videos, video_mask)
        if self.model.gather_for_loss:
            text, video = gather_encoding(text), gather_encoding(video)
        return self.model.compute_loss(text, video).loss


class TrainingDiverged(FloatingPointError, ValueError):
    """The loss or gradient norm stayed non-finite for ``max_nonfinite_steps`` optimiser steps in a row (a
    ``ValueError`` too: caused by the run's settings or data, so ``tvr train`` reports it in one line)."""


@dataclasses.dataclass
class TrainingProgress:
    """Where the run is; saved as JSON in every checkpoint (``trainer_state.json``)."""

    global_step: int = 0  # optimiser steps done
    epoch: int = 0  # current epoch
    batches_in_epoch: int = 0  # batches of the current epoch already trained
    best_metrics: dict[str, float] | None = None  # evaluation of the best model so far (by t2v R@1)
    accelerator_step: int = 0  # Accelerate's forward-pass counter (decides gradient-accumulation syncs)
    nonfinite_steps: int = 0  # optimiser steps skipped because the loss or gradient norm was NaN / inf
    consecutive_nonfinite_steps: int = 0  # ... of them in a row, up to the last step
    skipped_videos: dict[str, str] = dataclasses.field(default_factory=dict)  # {path: error}, left out of batches

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)


# ------------------------------------------------------------------------------------------------- building


def build_model(config: TrainingConfig) -> nn.Module:
    """The model of a config: ``init_from`` a saved tvr model (or a saved adapter, loaded trainable on its base),
    ``from_image_text_model`` an image-text model's weights, or random from ``model_type`` + ``model_kwargs``; every
    registered method works through the Auto classes."""
    from transformers import CONFIG_MAPPING, MODEL_MAPPING, AutoConfig, AutoModel

    from .. import methods  # noqa: F401  (registers the tvr model types with the Auto classes)
    from ..utils.values import check_known_keys, did_you_mean

    if config.init_from:
        base = adapter_base_model(config.init_from)  # a saved adapter trains further on its base
        config_class = type(AutoConfig.from_pretrained(resolve_adapter_base(config.init_from) if base
                                                       else config.init_from))
    elif config.model_type not in CONFIG_MAPPING:
        raise ValueError(f"model_type {config.model_type!r} is not a registered model type"
                         f"{did_you_mean(config.model_type, CONFIG_MAPPING.keys())}")
    else:
        config_class = CONFIG_MAPPING[config.model_type]
    # a misspelt key must not train the default model: the keys are the config's fields (and a loading option)
    check_known_keys(config.model_kwargs, _config_fields(config_class) | {"attn_implementation"},
                     f"model_kwargs / --set (fields of {config_class.__name__})")
    with _option_error("model_kwargs / --set"):
        if config.init_from:
            with naming_damaged_weights(config.init_from, "init_from"):
                if base:
                    return load_adapter_for_training(config.init_from, **config.model_kwargs)
                return AutoModel.from_pretrained(config.init_from, **config.model_kwargs)
        if config.from_image_text_model:
            return MODEL_MAPPING[config_class].from_image_text_model(config.from_image_text_model,
                                                                     **config.model_kwargs)
        return AutoModel.from_config(config_class(**config.model_kwargs))


def _config_fields(config_class: type) -> set[str]:
    """The fields a transformers config class takes (its dataclass fields, or its ``__init__`` arguments)."""
    import inspect

    if dataclasses.is_dataclass(config_class):
        return {field.name for field in dataclasses.fields(config_class)}
    return set(inspect.signature(config_class.__init__).parameters) - {"self", "kwargs"}


@contextlib.contextmanager
def _option_error(option: str):
    """A value of the wrong type for a config / processor field (transformers' strict dataclasses raise
    huggingface_hub's own error, not a ``ValueError``) becomes a ``ValueError`` naming the option it came from."""
    from huggingface_hub.errors import StrictDataclassError

    try:
        yield
    except StrictDataclassError as error:
        raise ValueError(f"{option}: {' '.join(str(error).split())}") from None


def processor_kwarg_names() -> set[str]:
    """What ``processor_kwargs`` may set: :class:`~tvr.TVRVideoProcessor` settings and the processor's own."""
    import inspect
    import typing

    from ..processing import TVRProcessor, TVRVideoProcessor

    processor_own = set(inspect.signature(TVRProcessor.__init__).parameters) - {"self", "kwargs", "video_processor",
                                                                                "tokenizer"}
    return set(typing.get_type_hints(TVRVideoProcessor.valid_kwargs)) | processor_own


def build_processor(config: TrainingConfig, model: nn.Module | None = None):
    """The processor of a config, with ``config.processor_kwargs`` overriding its settings (they are saved with
    the trained model): ``AutoProcessor`` from ``config.processor`` or ``init_from``; for ``from_image_text_model``,
    the image-text model's tokenizer with its conventions (:func:`~tvr.processing.processor_for_image_text_model`)."""
    from transformers import AutoProcessor

    from .. import methods  # noqa: F401  (registers the tvr processor with AutoProcessor)
    from ..processing import processor_for_image_text_model
    from ..processing.tokenizer import check_tokenizer_fits
    from ..utils.values import check_known_keys

    check_known_keys(config.processor_kwargs, processor_kwarg_names(), "processor_kwargs")
    source = config.processor or config.init_from
    if source is None and config.from_image_text_model is None:
        raise ValueError("TrainingConfig: set `processor` (a processor folder) when the model is built from scratch")
    with _option_error("processor_kwargs"):
        if source is not None:
            processor = AutoProcessor.from_pretrained(source, **config.processor_kwargs)
        else:
            processor = processor_for_image_text_model(config.from_image_text_model, **config.processor_kwargs)
    if model is not None:  # a tokenizer that does not fit trains at chance, silently
        check_tokenizer_fits(processor, model.config.text_config.vocab_size, source or config.from_image_text_model)
    return processor


def load_split(data: dict[str, Any]) -> Dataset:
    """``tvr.data.load_annotations(**data)``."""
    from ..data import load_annotations

    return load_annotations(**data)


def without_missing_videos(dataset: Dataset, on_bad_video: str) -> tuple[Dataset, dict[str, str]]:
    """The training rows whose video has a file, and ``{video_id: error}`` of the others (the readers keep rows
    whose video is missing, with an empty ``video_path``): they are left out and listed as undecodable videos are
    (:func:`tvr.data.videos.missing_videos`; ``on_bad_video="error"`` raises)."""
    from ..data.videos import missing_videos

    if "video_path" not in dataset.column_names:
        return dataset, {}  # CaptionVideoSamples names the missing column
    paths = dataset["video_path"]
    ids = dataset["video_id"] if "video_id" in dataset.column_names else [f"row {row}" for row in range(len(paths))]
    missing = missing_videos(ids, paths, on_bad_video, "training data")
    if missing:
        dataset = dataset.select([row for row, path in enumerate(paths) if path])
    return dataset, missing


def evaluate(model: nn.Module, processor, dataset: Dataset, config: TrainingConfig) -> dict[str, float]:
    """Retrieval metrics of ``model`` on ``dataset`` (``{"t2v_R@1": ..., ...}``) with the evaluation harness."""
    from ..evaluation.harness import evaluate_retrieval

    return evaluate_retrieval(model, processor, dataset, batch_size=config.eval_batch_size,
                              num_workers=config.num_workers).metrics


def save_model(model: nn.Module, processor, directory: Path, config: TrainingConfig,
               metrics: dict[str, float] | None = None, with_curves: bool = False) -> None:
    """``save_pretrained`` model and processor, and its model card (see :func:`write_card`), into a temporary
    folder renamed to ``directory`` when complete (a crash leaves the previous version). Refuses non-finite weights.
    A ``peft`` model saves its adapter only, pointing to the base in ``output_dir/base``
    (see :func:`tvr.peft.prepare_adapter_training`)."""
    from ..utils.atomic import atomic_directory

    check_finite_weights(model, f"saving {os.fspath(directory)!r}")
    with atomic_directory(directory, kind=MODEL_KIND, legacy=MODEL_LEGACY) as staging:
        if is_peft_model(model):
            base_dir = Path(config.output_dir) / ADAPTER_BASE_DIR
            save_adapter(model, staging, os.path.abspath(base_dir) if (base_dir / "config.json").is_file() else None)
        else:
            model.save_pretrained(staging)
        processor.save_pretrained(staging)
        write_card(staging, config, metrics, with_curves, model_dir=directory)


def check_finite_weights(model: nn.Module, doing: str) -> None:
    """Raise :class:`TrainingDiverged` naming the first parameter with a NaN or inf value."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if not torch.isfinite(parameter).all():
                raise TrainingDiverged(f"{doing}: parameter {name!r} has non-finite values (NaN/inf); refusing to "
                                       "save weights of a diverged model")


def write_card(directory: Path, config: TrainingConfig, metrics: dict[str, float] | None = None,
               with_curves: bool = False, model_dir: str | os.PathLike | None = None) -> None:
    """README.md of a saved model: its evaluation results, the training config and, ``with_curves``, the run's
    training curves plotted from ``metrics.jsonl`` (plotting takes seconds, so only at the end of training)."""
    from ..hub_cards import write_model_card
    from ..hub_cards.card import dataset_label

    eval_data = config.eval_data or {}
    dataset = dataset_label(eval_data.get("name", "custom"), eval_data.get("annotation_dir"))
    results = [{"dataset": dataset, "split": eval_data.get("split", "test"), **metrics}] if metrics else []
    log = Path(config.output_dir) / "metrics.jsonl"
    # named after the Hub repo or the run (`model_dir`: where `directory`, a temporary folder, is renamed to)
    card_options = dict(eval_results=results, train_log=log if with_curves and log.exists() else None,
                        training_config=rerunnable_config(config.to_dict()), base_model=config.from_image_text_model or config.init_from,
                        model_id=config.hub_model_id or os.path.abspath(model_dir or directory))
    if (Path(directory) / "adapter_config.json").is_file():
        from ..hub_cards.card import write_adapter_card

        write_adapter_card(directory, **card_options)
    else:
        write_model_card(directory, **card_options)


def build_train_dataloader(samples: CaptionVideoSamples, processor, config: TrainingConfig
                           ) -> torch.utils.data.DataLoader:
    """Shuffled batches of ``config.batch_size`` samples (the global batch; Accelerate splits it over processes),
    the last incomplete batch dropped as in the original. Batches hold uint8 frames, in pinned memory on CUDA
    machines (copied to the device without blocking); workers persist across epochs and each prepares
    ``config.prefetch_factor`` batches ahead."""
    if len(samples) < config.batch_size:
        raise ValueError(f"training set has {len(samples)} rows, fewer than batch_size={config.batch_size}")
    workers = dict(prefetch_factor=config.prefetch_factor, persistent_workers=True) if config.num_workers else {}
    return torch.utils.data.DataLoader(
        samples, batch_size=config.batch_size, shuffle=True, drop_last=True, num_workers=config.num_workers,
        collate_fn=TrainingCollator(processor, config.train_frame_order, config.on_bad_video),
        pin_memory=torch.cuda.is_available(), **workers,
        # a private generator: creating a loader iterator must not draw from the global RNG, or a resumed run's
        # dropout stream would differ from the uninterrupted run's
        generator=torch.Generator().manual_seed(config.seed))


# ------------------------------------------------------------------------------------------------- logging


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line, written by the main process only; always valid JSON (a
    non-finite value is written as ``null``).

    On resume, lines after the checkpoint's step are dropped, so the file reads as one run; a torn last line (the
    run was killed while appending it) is dropped too.
    """

    def __init__(self, path: Path, enabled: bool, resume_step: int | None = None):
        from ..utils.atomic import atomic_write_text

        self.path, self.enabled = path, enabled
        if not enabled:
            return
        kept = []
        if resume_step is not None and path.exists():
            kept = [json.dumps(record) for record in _read_jsonl(path) if record["step"] <= resume_step]
        atomic_write_text(path, "".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            record = {name: _finite_or_none(value) for name, value in record.items()}
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, allow_nan=False) + "\n")


def _finite_or_none(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines file; a torn last line is dropped with a warning, a bad line elsewhere raises
    ``ValueError`` naming the file and line."""
    lines = path.read_text(encoding="utf-8").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError as error:
            if number == len(lines):
                warnings.warn(f"{os.fspath(path)}: dropping the torn last line {number} ({error})", stacklevel=3)
                break
            raise ValueError(f"{os.fspath(path)} line {number}: not a JSON object ({error})") from None
    return records


def read_metrics(output_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl`` (a torn last line, from a killed run, is dropped)."""
    return _read_jsonl(Path(output_dir) / "metrics.jsonl")


# ------------------------------------------------------------------------------------------------- output folder


def claim_run_dir(config: TrainingConfig) -> Path:
    """``config.output_dir``, checked to be a new or empty folder or this kind of run folder (a run resumes in its
    own folder); a folder holding anything else, or one inside a model or video folder the run reads, is refused
    with one line (:func:`tvr.utils.output_dir.claim_output_dir`)."""
    inputs = [config.init_from, config.processor, config.from_image_text_model,
              *((data or {}).get("video_dir") for data in (config.train_data, config.eval_data))]
    claim_output_dir(config.output_dir, RUN_KIND, inputs=[path for path in inputs if path and os.path.isdir(path)],
                     legacy=RUN_LEGACY, what="training output_dir")
    return Path(config.output_dir)


# ------------------------------------------------------------------------------------------------- processes


def build_accelerator(config: TrainingConfig) -> Accelerator:
    """The run's ``Accelerator``, for every launcher: ``tvr train`` (one process), ``torchrun`` and ``accelerate
    launch`` (several, on one machine or many).

    A launcher that starts several processes on a machine without a GPU gets a multi-CPU job (gloo): Accelerate only
    takes that path with ``cpu=True``; without it every rank thinks it is alone (each "main", each writing the same
    files). Prints the world size once, and says so when a launch asked for more processes than it got.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    accelerator = Accelerator(
        cpu=world_size > 1 and not _has_distributed_device(),
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        # split_batches: config.batch_size is the global batch, so every process count sees the same batches
        # non_blocking: pinned uint8 batches are copied to the device while it computes
        dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True,
                                                  data_seed=config.seed, non_blocking=True),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.ddp_find_unused_parameters)],
    )
    processes = accelerator.num_processes
    backend = f", {accelerator.state.backend}" if processes > 1 else ""
    accelerator.print(f"training on {processes} process{'es' if processes > 1 else ''} "
                      f"({accelerator.device.type}{backend})")
    if processes == 1 and world_size > 1:  # each process alone would train and write the same files
        raise ValueError(f"the launcher started {world_size} processes (WORLD_SIZE) but Accelerate made each a "
                         f"one-process job on {accelerator.device.type}, which has no collective backend; set "
                         "ACCELERATE_USE_CPU=true to run them as one gloo job on the CPU")
    if processes == 1 and _accelerate_cpu_launch_of_several():
        print("tvr: warning: the launch asked for several processes but this run has 1 (the same results, on one "
              "process). `accelerate launch --cpu` always starts one process: for N CPU processes use `torchrun "
              "--standalone --nproc-per-node N -m tvr.training ...` or `accelerate launch --multi_gpu "
              "--num_processes N -m tvr.training ...` (on a machine without GPUs tvr runs them on the CPU, gloo)",
              file=sys.stderr, flush=True)
    return accelerator


def _has_distributed_device() -> bool:
    """Whether this machine has an accelerator that Accelerate runs a process group on (CUDA, XPU, NPU, ...; not
    Apple's MPS, which has no collective backend)."""
    return torch.accelerator.is_available() and torch.accelerator.current_accelerator().type != "mps"


def _accelerate_cpu_launch_of_several() -> bool:
    """``accelerate launch --cpu --num_processes N`` (N > 1): Accelerate's single-process launcher ran, and set the
    rendezvous address only because more processes (or machines) were asked for."""
    return "ACCELERATE_USE_CPU" in os.environ and "MASTER_ADDR" in os.environ and "WORLD_SIZE" not in os.environ


# ------------------------------------------------------------------------------------------------- the run


@dataclasses.dataclass
class TrainingRun:
    """What :func:`set_up` builds and every later stage reads; where the run is lives in ``progress``."""

    config: TrainingConfig
    accelerator: Accelerator
    output_dir: Path
    model: nn.Module  # unwrapped (a peft model for adapter methods): evaluated, checkpointed and saved
    processor: Any  # saved with the model
    data_processor: Any  # the processor, or its video cache: makes the training batches and the evaluation inputs
    samples: CaptionVideoSamples  # the training set (caption choice per epoch)
    train_loader: torch.utils.data.DataLoader  # prepared: Accelerate shards it over the processes
    step_module: nn.Module  # ContrastiveStep around the model, prepared (DDP, autocast)
    optimizer: torch.optim.Optimizer  # prepared
    scheduler: Any  # prepared; its ``.scheduler`` is the LambdaLR schedule
    total_steps: int  # optimiser steps of the whole run
    num_epochs: int  # epochs needed for them
    progress: TrainingProgress
    metrics_log: MetricsLog
    skipped_videos: SkippedVideos
    bar: tqdm  # optimiser steps, on the local main process
    eval_dataset: Dataset | None = None
    evaluate_fn: Callable[[nn.Module, Any, Dataset, TrainingConfig], dict[str, float]] | None = None


@dataclasses.dataclass
class StepState:
    """The optimiser step being accumulated, then what it did: read by its metrics line and the divergence check.

    One object serves the whole run: ``losses`` is emptied after each optimiser step (Accelerate ends a window at
    an epoch's last batch; one left open because those batches had no decodable video carries on into the next
    epoch, as its gradients do); the rest is overwritten by the next step.
    """

    losses: list[torch.Tensor] = dataclasses.field(default_factory=list)  # this process's batch losses, detached
    started: float = 0.0  # perf_counter at the window's start, for samples_per_second
    lrs: list[float] = dataclasses.field(default_factory=list)  # each group's rate for this step (before the schedule)
    grad_norm: torch.Tensor | None = None  # before clipping
    finite: bool = True  # every process's losses and the gradient norm were finite: the optimiser stepped
    loss: float | None = None  # the window's mean loss over the processes, when the step was logged


def train(
    config: TrainingConfig,
    *,
    model: nn.Module | None = None,
    processor=None,
    train_dataset: Dataset | None = None,
    eval_dataset: Dataset | None = None,
    evaluate_fn: Callable[[nn.Module, Any, Dataset, TrainingConfig], dict[str, float]] = evaluate,
) -> Path:
    """Train a tvr retrieval model with its training loss (``model.compute_loss``: by default the symmetric
    contrastive loss over the global batch).

    The stages, in order: :func:`set_up` (accelerator, run folder, model, processor, data, optimiser, schedule,
    ``accelerator.prepare``, resume); per epoch :func:`train_epoch` (each batch under ``accelerator.accumulate``,
    :func:`optimizer_step` with its finite check, :func:`record_step`: counters, metrics line, divergence, and a
    checkpoint every ``save_steps``) then :func:`end_epoch` (evaluation keeping ``best/``, a checkpoint); at the end
    :func:`save_final` (``final/``, the cards, ``push_to_hub``).

    Args:
        config: the run (see :class:`TrainingConfig`).
        model, processor, train_dataset, eval_dataset: objects to use instead of building them from ``config``
            (``config.train_data`` / ``config.eval_data`` are read with ``tvr.data.load_annotations``).
        evaluate_fn: ``(model, processor, eval_dataset, config) -> metrics`` run after every epoch when there is an
            evaluation set (``processor`` is the run's processor, or its video cache with ``cache_videos`` /
            ``frame_cache_dir``); the model with the best ``t2v_R@1`` is saved in ``best/``.

    Returns:
        ``config.output_dir`` as a ``Path``.

    Example::

        config = TrainingConfig(from_image_text_model="clip-dir", train_data={"name": "msrvtt", ...},
                                output_dir="runs/a")
        train(config)   # then AutoModel.from_pretrained("runs/a/best")
    """
    if launched_worker():  # a `kill -9` of torchrun / accelerate launch must not leave this worker running
        exit_with_parent()
    run = set_up(config, model, processor, train_dataset, eval_dataset, evaluate_fn)
    step = StepState()
    for epoch in range(run.progress.epoch, run.num_epochs):
        train_epoch(run, epoch, step)
        end_epoch(run, epoch)
        if run.progress.global_step >= run.total_steps:
            break
    run.bar.close()
    save_final(run)
    return run.output_dir


# ------------------------------------------------------------------------------------------------- set-up


def set_up(config: TrainingConfig, model: nn.Module | None, processor, train_dataset: Dataset | None,
           eval_dataset: Dataset | None, evaluate_fn: Callable) -> TrainingRun:
    """Everything before the first batch: the accelerator and run folder (:func:`start_run`), the model and
    processor, the data, the optimiser and schedule, ``accelerator.prepare``, and the progress of a resumed run."""
    output_dir, accelerator = start_run(config)
    model, processor = build_model_and_processor(config, model, processor, output_dir, accelerator)
    train_dataset, eval_dataset = load_datasets(config, train_dataset, eval_dataset)
    freeze_pretrained_layers(model, config.freeze_layer_num)
    if config.gradient_checkpointing:
        model.activation_checkpointing_enable()  # transformers 5's name; non-reentrant, so DDP-safe
    samples, missing, data_processor = build_training_samples(config, processor, train_dataset, eval_dataset,
                                                              accelerator)
    train_loader = build_train_dataloader(samples, data_processor, config)
    optimizer, scheduler, total_steps, num_epochs = build_optimization(config, model, len(train_loader))

    step_module = ContrastiveStep(model, processor.video_processor)
    if config.torch_compile:
        step_module.compile()  # in place: the module, its parameters and its state dict keys stay as they are
    step_module, optimizer, train_loader, scheduler = accelerator.prepare(
        step_module, optimizer, train_loader, scheduler)
    model = accelerator.unwrap_model(step_module).model
    progress, resumed = resume(config, output_dir, accelerator, model, optimizer, scheduler)

    metrics_log = MetricsLog(output_dir / "metrics.jsonl", accelerator.is_main_process,
                             resume_step=progress.global_step if resumed else None)
    progress.skipped_videos.update(missing)  # listed with the undecodable ones
    skipped_videos = SkippedVideos(output_dir / SKIPPED_VIDEOS_FILE, accelerator, progress.skipped_videos,
                                   num_videos=len(set(samples.video_paths)) + len(missing))
    bar = tqdm(total=total_steps, initial=progress.global_step, desc="training",
               disable=not accelerator.is_local_main_process)
    return TrainingRun(config, accelerator, output_dir, model, processor, data_processor, samples, train_loader,
                       step_module, optimizer, scheduler, total_steps, num_epochs, progress, metrics_log,
                       skipped_videos, bar, eval_dataset, evaluate_fn)


def start_run(config: TrainingConfig) -> tuple[Path, Accelerator]:
    """The run folder (claimed before anything is built or written, on every process) and the accelerator; seeds
    every RNG; the main process marks the folder and writes ``training_config.yaml``."""
    output_dir = claim_run_dir(config)
    accelerator = build_accelerator(config)
    if config.batch_size % accelerator.num_processes:
        raise ValueError(f"batch_size={config.batch_size} must be a multiple of the {accelerator.num_processes} "
                         f"processes")
    set_seed(config.seed)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_marker(output_dir, RUN_KIND)
        config.save(output_dir / "training_config.yaml")
    return output_dir, accelerator


def build_model_and_processor(config: TrainingConfig, model: nn.Module | None, processor, output_dir: Path,
                              accelerator: Accelerator) -> tuple[nn.Module, Any]:
    """The model to train and its processor (the given ones, or built from ``config``). Methods that train a peft
    adapter (DAVRL): the frozen base goes to ``output_dir/base`` once, with the processor (a complete model folder),
    and the model returned is the wrapped one, so checkpoints, ``best/`` and ``final/`` hold the adapter only."""
    model = model if model is not None else build_model(config)
    model = prepare_adapter_training(model, output_dir / ADAPTER_BASE_DIR, accelerator.is_main_process)
    processor = processor if processor is not None else build_processor(config, model)
    if is_peft_model(model) and accelerator.is_main_process:  # base/ is a complete model folder (AutoProcessor too)
        processor.save_pretrained(output_dir / ADAPTER_BASE_DIR)
    return model, processor


def load_datasets(config: TrainingConfig, train_dataset: Dataset | None, eval_dataset: Dataset | None
                  ) -> tuple[Dataset, Dataset | None]:
    """The training set and the evaluation set (if any): the given ones, or read from ``config.train_data`` /
    ``config.eval_data``."""
    if train_dataset is None:
        if config.train_data is None:
            raise ValueError("TrainingConfig: train_data is required when no train_dataset is given")
        train_dataset = load_split(config.train_data)
    if eval_dataset is None and config.eval_data is not None:
        eval_dataset = load_split(config.eval_data)
    return train_dataset, eval_dataset


def build_training_samples(config: TrainingConfig, processor, train_dataset: Dataset, eval_dataset: Dataset | None,
                           accelerator: Accelerator) -> tuple[CaptionVideoSamples, dict[str, str], Any]:
    """The training samples (rows whose video has a file), ``{video_id: error}`` of the rows left out, and the
    processor that decodes their videos: ``processor`` itself, or a :class:`CachedVideoProcessor` around it with
    ``frame_cache_dir`` (filled as the loader's workers decode) or ``cache_videos`` (filled here, evaluation videos
    too)."""
    train_dataset, missing = without_missing_videos(train_dataset, config.on_bad_video)
    samples = CaptionVideoSamples(train_dataset, seed=config.seed)
    data_processor = processor
    if config.frame_cache_dir:  # filled by the DataLoader workers as they decode, reused by later epochs and runs
        data_processor = CachedVideoProcessor(processor, config.frame_cache_dir)
    elif config.cache_videos:
        data_processor = CachedVideoProcessor(processor)
        keys = samples.video_keys()
        if eval_dataset is not None:
            keys += CaptionVideoSamples(eval_dataset).video_keys()
        data_processor.fill(keys, config.eval_batch_size, accelerator.is_local_main_process)
        if data_processor.failed and config.on_bad_video == "error":
            raise ValueError(f"on_bad_video='error': {next(iter(data_processor.failed.values()))}")
    return samples, missing, data_processor


def build_optimization(config: TrainingConfig, model: nn.Module, batches_per_epoch: int
                       ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR, int, int]:
    """The optimiser (the seeds' parameter groups and rates), its warmup schedule over the run, the run's optimiser
    steps (``max_steps``, or ``epochs`` of them) and the epochs they take."""
    optimizer = build_optimizer(model, config.optimizer, config.lr, config.coef_lr, config.weight_decay,
                                (config.adam_beta1, config.adam_beta2), config.adam_epsilon,
                                config.max_grad_norm or 0.0)
    steps_per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    num_epochs = math.ceil(total_steps / steps_per_epoch)
    return optimizer, build_scheduler(optimizer, total_steps, config.warmup_proportion), total_steps, num_epochs


def resume(config: TrainingConfig, output_dir: Path, accelerator: Accelerator, model: nn.Module, optimizer,
           scheduler) -> tuple[TrainingProgress, bool]:
    """The run's progress, and whether it resumed: ``config.resume_from`` loads the model, optimiser, schedule, RNG
    and progress of a checkpoint (``"latest"`` with none saved yet starts fresh, saying so), then gives the
    schedule this config's learning rates when they differ (:func:`apply_learning_rates`)."""
    progress = TrainingProgress()
    resume_from = config.resume_from
    if resume_from == "latest" and not list_checkpoints(output_dir):
        # one command serves start and restart: nothing saved yet means a fresh start
        accelerator.print(f"resume_from='latest': no checkpoint under {output_dir / 'checkpoints'} yet; starting fresh")
        resume_from = None
    if resume_from:
        resumed = resolve_checkpoint(resume_from, output_dir)
        configured_lrs = list(scheduler.scheduler.base_lrs)  # this config's; the checkpoint's replace them
        load_checkpoint(resumed, accelerator, model, optimizer, scheduler, progress)
        accelerator.step = progress.accelerator_step
        accelerator.print(f"resuming from {resumed.name} (step {progress.global_step})")
        apply_learning_rates(scheduler.scheduler, configured_lrs, accelerator)
    return progress, bool(resume_from)


# ------------------------------------------------------------------------------------------------- the epoch loop


def train_epoch(run: TrainingRun, epoch: int, step: StepState) -> None:
    """One pass over the training batches (when resuming mid-epoch, the same order minus what was trained): each
    batch without its undecodable videos goes forward and backward; after each optimiser step, its record, and a
    checkpoint every ``save_steps`` (an epoch's end is saved by :func:`end_epoch`). Stops at ``total_steps``."""
    progress = run.progress
    run.step_module.train()
    step.started = time.perf_counter()
    run.train_loader.set_epoch(epoch)  # the sampler's order
    run.samples.set_epoch(epoch)  # caption choice and augmentation (accelerate's set_epoch skips the dataset
    # when the sampler is sharded over processes)
    batches = run.train_loader
    if progress.batches_in_epoch:  # resuming mid-epoch: the same order, minus what was trained
        batches = run.accelerator.skip_first_batches(run.train_loader, progress.batches_in_epoch)
    for batch in batches:
        batch = run.skipped_videos.take(batch)  # None: no video of this batch could be decoded, nothing to train on
        stepped = batch is not None and optimizer_step(run, step, batch)
        progress.batches_in_epoch += 1
        if not stepped:
            continue
        record_step(run, step, epoch)
        if progress.global_step >= run.total_steps:
            return
        if run.config.save_steps and progress.global_step % run.config.save_steps == 0 \
                and progress.batches_in_epoch < len(run.train_loader):  # an epoch's end is saved by end_epoch
            checkpoint(run)
            step.started = time.perf_counter()


def optimizer_step(run: TrainingRun, step: StepState, batch: dict[str, torch.Tensor]) -> bool:
    """Forward and backward one batch under ``accelerator.accumulate``; at the window's last batch
    (``sync_gradients``) the optimiser step: the groups' rates, the gradient norm (clipped to ``max_grad_norm``
    when set), the finite check over every process (:func:`step_is_finite`), ``optimizer.step()`` only when finite,
    and the schedule either way (it follows ``global_step``, skipped or not, so a resumed run sees the same rates).
    Returns whether the window ended in an optimiser step."""
    accelerator, optimizer = run.accelerator, run.optimizer
    with accelerator.accumulate(run.step_module):
        loss = run.step_module(**batch)
        accelerator.backward(loss)
        step.losses.append(loss.detach())
        if accelerator.sync_gradients:
            step.lrs = [group["lr"] for group in optimizer.param_groups]  # this step's, before the schedule
            if run.config.max_grad_norm:
                step.grad_norm = accelerator.clip_grad_norm_(run.step_module.parameters(), run.config.max_grad_norm)
            else:
                step.grad_norm = gradient_norm(run.step_module)
            step.finite = step_is_finite(accelerator, step.losses, step.grad_norm)
            if step.finite:
                optimizer.step()
            run.scheduler.step()
        optimizer.zero_grad()
    return accelerator.sync_gradients


def record_step(run: TrainingRun, step: StepState, epoch: int) -> None:
    """After an optimiser step: the logit scale clamped, the step and non-finite counters, the progress bar, a
    metrics line every ``logging_steps`` (and at the last step, and at every non-finite one); raises
    :class:`TrainingDiverged` after ``max_nonfinite_steps`` non-finite steps in a row (nothing saved after them)."""
    progress, config = run.progress, run.config
    clamp_logit_scale(run.model)
    progress.global_step += 1
    if step.finite:
        progress.consecutive_nonfinite_steps = 0
    else:
        progress.nonfinite_steps += 1
        progress.consecutive_nonfinite_steps += 1
    run.bar.update(1)
    if progress.global_step % config.logging_steps == 0 or progress.global_step == run.total_steps \
            or not step.finite:
        log_step(run, step, epoch)
    step.losses.clear()
    if progress.consecutive_nonfinite_steps >= config.max_nonfinite_steps:
        run.bar.close()
        run.skipped_videos.save()
        raise TrainingDiverged(
            f"training diverged: the loss or gradient norm was NaN/inf for {config.max_nonfinite_steps} "
            f"steps in a row (steps {progress.global_step - config.max_nonfinite_steps + 1}-"
            f"{progress.global_step}; last loss {step.loss}, "
            f"learning rates {step.lrs}). Those steps were skipped and nothing was saved after them; the "
            f"last checkpoint under {run.output_dir / 'checkpoints'} holds finite weights. Lower lr (now "
            f"{config.lr}), check the inputs for NaN/inf values, or raise max_nonfinite_steps.")
    step.started = time.perf_counter()


def log_step(run: TrainingRun, step: StepState, epoch: int) -> None:
    """The step's line in ``metrics.jsonl`` (loss averaged over the window and the processes, each group's rate,
    throughput, gradient norm, the non-finite and skipped-video counts once there are any) and the bar's loss."""
    progress, accelerator = run.progress, run.accelerator
    step.loss = accelerator.reduce(torch.stack(step.losses).mean(), "mean").item()
    group_names = [group["name"] for group in run.optimizer.param_groups]
    samples_per_step = run.config.batch_size * run.config.gradient_accumulation_steps
    record = {
        "step": progress.global_step,
        "epoch": epoch + progress.batches_in_epoch / len(run.train_loader),
        "loss": step.loss,
        **{f"lr/{name}": lr for name, lr in zip(group_names, step.lrs)},
        "samples_per_second": samples_per_step / (time.perf_counter() - step.started),
    }
    if step.grad_norm is not None:
        record["grad_norm"] = float(step.grad_norm)
    if progress.nonfinite_steps:
        record["nonfinite_steps"] = progress.nonfinite_steps
    if run.skipped_videos.count:
        record["skipped_videos"] = run.skipped_videos.count
    run.metrics_log.write(record)
    run.bar.set_postfix(loss=f"{step.loss:.4f}")


# ------------------------------------------------------------------------------------------------- evaluation, saving


def end_epoch(run: TrainingRun, epoch: int) -> None:
    """After an epoch's batches (or the run's last step): the progress moves to the next epoch when this one is
    done, the evaluation keeps the best model (:func:`evaluate_and_keep_best`), and a checkpoint is saved."""
    progress = run.progress
    if progress.batches_in_epoch >= len(run.train_loader):
        progress.epoch, progress.batches_in_epoch = epoch + 1, 0
    if run.eval_dataset is not None:
        evaluate_and_keep_best(run)
    checkpoint(run)


def evaluate_and_keep_best(run: TrainingRun) -> None:
    """Evaluate on the main process (as the original) with the run's ``data_processor`` (the processor, or its
    video cache) and write the metrics line; save ``best/`` with the processor when ``t2v_R@1`` improves (ties: the
    later epoch, as the original)."""
    accelerator, progress, model = run.accelerator, run.progress, run.model
    metrics = [None]
    if accelerator.is_main_process:
        model.eval()
        with torch.no_grad(), accelerator.autocast():
            metrics[0] = run.evaluate_fn(model, run.data_processor, run.eval_dataset, run.config)
        model.train()
        run.metrics_log.write({"step": progress.global_step, "epoch": progress.epoch, **metrics[0]})
        shown = "  ".join(f"{key} {metrics[0][key]:.2f}" for key in CONSOLE_METRICS if key in metrics[0])
        accelerator.print(f"evaluation after epoch {progress.epoch} (step {progress.global_step}): {shown}")
    metrics = broadcast_object_list(metrics)[0]
    if progress.best_metrics is None or metrics[BEST_METRIC] >= progress.best_metrics[BEST_METRIC]:
        progress.best_metrics = metrics
        if accelerator.is_main_process:
            save_model(model, run.processor, run.output_dir / "best", run.config, metrics)
    accelerator.wait_for_everyone()


def checkpoint(run: TrainingRun) -> None:
    """A crash-safe checkpoint under ``checkpoints/`` (model, optimiser, schedule, RNG, progress: see
    :mod:`.checkpointing`; tvr's own format, not Accelerate's pickling ``save_state``), refused for non-finite
    weights; ``skipped_videos.json`` is written with it."""
    progress = run.progress
    check_finite_weights(run.model, f"checkpoint at step {progress.global_step}")
    progress.accelerator_step = run.accelerator.step
    run.skipped_videos.save()
    save_checkpoint(run.accelerator, run.model, run.optimizer, run.scheduler, progress, run.output_dir,
                    progress.global_step, run.config.save_total_limit)


def save_final(run: TrainingRun) -> None:
    """The end of training: ``skipped_videos.json`` (with a warning naming them), ``final/`` with its card and
    training curves, ``best/``'s card redrawn with the whole run's curves, ``best/`` (or ``final/`` without an
    evaluation) pushed with ``push_to_hub``; then every process waits and Accelerate's trackers end."""
    accelerator, config, output_dir = run.accelerator, run.config, run.output_dir
    run.skipped_videos.save(warn=True)
    if accelerator.is_main_process:
        save_model(run.model, run.processor, output_dir / "final", config, with_curves=True)
        if run.progress.best_metrics is not None:
            rewrite_card(output_dir / "best", config, run.progress.best_metrics, with_curves=True)
        if config.push_to_hub:
            from ..hub_cards import push_to_hub

            published = output_dir / ("best" if run.progress.best_metrics is not None else "final")
            push_to_hub(published, config.hub_model_id)
    accelerator.wait_for_everyone()
    accelerator.end_training()


# ------------------------------------------------------------------------------------------------- the stages' helpers

def apply_learning_rates(scheduler: torch.optim.lr_scheduler.LambdaLR, base_lrs: list[float],
                         accelerator: Accelerator) -> None:
    """Give a resumed run the learning rates of its config when they differ from the checkpoint's (``--lr`` after
    a divergence): the schedule is rebuilt on the new base rates at the step reached (warmup / cosine continue
    where they were), and a line says so."""
    saved = list(scheduler.base_lrs)
    if saved == base_lrs:
        return
    rates = [base * rate_at(scheduler.last_epoch) for rate_at, base in zip(scheduler.lr_lambdas, base_lrs)]
    for group, base, rate in zip(scheduler.optimizer.param_groups, base_lrs, rates):
        group["initial_lr"], group["lr"] = base, rate
    scheduler.base_lrs, scheduler._last_lr = list(base_lrs), rates
    accelerator.print(f"learning rates changed since the checkpoint: base rates {_rates(saved)} -> "
                      f"{_rates(base_lrs)} (lr, lr * coef_lr); the schedule continues from step "
                      f"{scheduler.last_epoch} at the new rates")


def _rates(values: list[float]) -> str:
    return "/".join(f"{value:g}" for value in sorted(set(values), reverse=True))


def gradient_norm(module: nn.Module) -> torch.Tensor:
    """The global L2 norm of ``module``'s gradients (what ``clip_grad_norm_`` returns, without clipping)."""
    grads = [parameter.grad for parameter in module.parameters() if parameter.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(grad.float()) for grad in grads]))


def step_is_finite(accelerator: Accelerator, losses: list[torch.Tensor], grad_norm: torch.Tensor | None) -> bool:
    """Whether every process's losses of this optimiser step, and the gradient norm, are finite.

    Under fp16 the gradient scaler already skips steps with inf gradients (and lowers its scale), which is routine,
    so only the loss is checked there.
    """
    bad = sum(float(not torch.isfinite(loss).all()) for loss in losses)
    if grad_norm is not None and accelerator.scaler is None:
        bad += float(not torch.isfinite(torch.as_tensor(grad_norm)).all())
    bad = accelerator.reduce(torch.tensor(bad, device=accelerator.device), "sum")  # the losses are per process
    return bool(bad.item() == 0)


class SkippedVideos:
    """The training videos left out of their batches because they could not be decoded: ``failed`` (``{path:
    error}``, the progress's own dict, so checkpoints carry it), gathered from every process into
    ``skipped_videos.json``."""

    def __init__(self, path: Path, accelerator: Accelerator, failed: dict[str, str], num_videos: int):
        self.path, self.accelerator, self.num_videos = path, accelerator, num_videos
        self.failed = failed

    @property
    def count(self) -> int:
        return len(self.failed)

    def take(self, batch: dict[str, Any]) -> dict[str, Any] | None:
        """The batch without its ``skipped_videos`` entry (recorded here); ``None`` when nothing is left to train."""
        self.failed.update(batch.pop("skipped_videos", None) or {})
        if self.accelerator.num_processes > 1:
            # the processes' batches are gathered for the loss, which needs equal sizes: all keep the smallest
            size = len(batch["input_ids"]) if "input_ids" in batch else 0
            smallest = int(self.accelerator.gather(torch.tensor([size], device=self.accelerator.device)).min())
            batch = {name: value[:smallest] for name, value in batch.items()} if smallest else {}
        if "input_ids" not in batch:
            return None
        return batch

    def save(self, warn: bool = False) -> None:
        from accelerate.utils import gather_object

        from ..processing.bad_videos import warn_bad_videos
        from ..utils.atomic import atomic_write_json

        for failed in gather_object([self.failed]):
            self.failed.update(failed)
        if self.failed and self.accelerator.is_main_process:
            atomic_write_json(self.path, dict(sorted(self.failed.items())))
            if warn:
                warn_bad_videos(self.failed, self.num_videos, f"left out of training (listed in {self.path})")


def rewrite_card(directory: Path, config: TrainingConfig, metrics: dict[str, float] | None = None,
                 with_curves: bool = False) -> None:
    """Rewrite the model card of a saved model folder crash-safely: a hard-linked copy of the folder gets the new
    card, then replaces it."""
    import shutil

    from ..utils.atomic import atomic_directory

    def link_or_copy(source: str, target: str) -> None:
        try:
            os.link(source, target)  # no copy of the weights; the card files are replaced, never written through
        except OSError:
            shutil.copy2(source, target)

    with atomic_directory(directory, kind=MODEL_KIND, legacy=MODEL_LEGACY) as staging:
        shutil.copytree(directory, staging, copy_function=link_or_copy, dirs_exist_ok=True)
        for card_file in ("README.md", "training_curves.png"):  # new files, not writes through the shared links
            (staging / card_file).unlink(missing_ok=True)
        write_card(staging, config, metrics, with_curves, model_dir=directory)


def clamp_logit_scale(model: nn.Module) -> None:
    """Keep every trained ``logit_scale`` parameter (CLIP's, at ``clip.logit_scale``, or a method's own) at most
    ln 100 after each step, as CLIP and the seeds do, so the temperature never drops below 1/100 (a frozen one, as in
    DAVRL, is left exactly as loaded)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.requires_grad and (name == "logit_scale" or name.endswith(".logit_scale")):
                parameter.clamp_(max=MAX_LOGIT_SCALE)
