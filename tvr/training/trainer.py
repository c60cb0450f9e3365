"""The training loop every tvr method shares: build -> ``accelerator.prepare`` -> loop with
``accelerator.accumulate`` -> log -> ``save_state``.

It relies only on the model contract: ``encode_text``, ``encode_video``, ``compute_loss`` (by default
:func:`tvr.modeling.losses.contrastive_loss` of the batch similarity), ``gather_for_loss`` and ``logit_scale``.
Processes, devices and mixed precision belong to Accelerate: the same code runs on one CPU and under
``accelerate launch`` on many GPUs.

Output folder (``config.output_dir``)::

    training_config.yaml   the config of the run
    metrics.jsonl          one JSON line per logged step (loss, lr/<group>, grad_norm, samples_per_second) and
                           per evaluation (t2v_R@1, ...)
    checkpoints/checkpoint-<step>/   accelerate save_state: model, optimiser, scheduler, RNG, progress
    best/                  save_pretrained model + processor + README.md card, best t2v R@1 so far
    final/                 the same for the model at the end of training
    base/                  methods trained through a peft adapter (DAVRL): the frozen base model, written once;
                           checkpoints, best/ and final/ then hold the adapter only, pointing to it
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch
from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
from accelerate.utils import broadcast_object_list, set_seed
from datasets import Dataset
from torch import nn
from tqdm.auto import tqdm

from ..peft import (
    adapter_base_model,
    is_peft_model,
    load_adapter_for_training,
    prepare_adapter_training,
    register_adapter_checkpointing,
    save_adapter,
)
from .config import TrainingConfig
from .data import CachedVideoProcessor, CaptionVideoSamples, TrainingCollator
from .gather import gather_encoding
from .optimization import build_optimizer, build_scheduler, freeze_pretrained_layers

CHECKPOINT_PREFIX = "checkpoint-"
ADAPTER_BASE_DIR = "base"  # under output_dir: the frozen base every saved adapter of the run points to
BEST_METRIC = "t2v_R@1"
MAX_LOGIT_SCALE = math.log(100)


class ContrastiveStep(nn.Module):
    """The training forward: the loss of a batch of (caption, video) pairs.

    Encodes the local batch; for embedding heads (``model.gather_for_loss``) gathers the encodings of every
    process with gradients, so the similarity matrix and the loss (``model.compute_loss``: the symmetric
    contrastive loss, or a method's own such as EERCF's) cover the global batch (see :mod:`tvr.training.gather` for
    why the gradient equals one process on the whole batch); pair-scoring heads (tightTransf) use the local batch,
    as the original. A module rather than a function so that DDP (gradient sync) and Accelerate's autocast wrap this
    forward.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, pixel_values_videos: torch.Tensor,
                video_mask: torch.Tensor) -> torch.Tensor:
        text = self.model.encode_text(input_ids, attention_mask)
        video = self.model.encode_video(pixel_values_videos, video_mask)
        if self.model.gather_for_loss:
            text, video = gather_encoding(text), gather_encoding(video)
        return self.model.compute_loss(text, video).loss


@dataclasses.dataclass
class TrainingProgress:
    """Where the run is; saved in every checkpoint (``register_for_checkpointing``)."""

    global_step: int = 0  # optimiser steps done
    epoch: int = 0  # current epoch
    batches_in_epoch: int = 0  # batches of the current epoch already trained
    best_metrics: dict[str, float] | None = None  # evaluation of the best model so far (by t2v R@1)

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
    import tvr  # noqa: F401  (registers the tvr model types with the Auto classes)
    from transformers import CONFIG_MAPPING, MODEL_MAPPING, AutoModel

    if config.init_from and adapter_base_model(config.init_from):  # a saved adapter: train it further
        return load_adapter_for_training(config.init_from, **config.model_kwargs)
    if config.init_from:
        return AutoModel.from_pretrained(config.init_from, **config.model_kwargs)
    if config.model_type not in CONFIG_MAPPING:
        raise ValueError(f"model_type {config.model_type!r} is not a registered model type")
    config_class = CONFIG_MAPPING[config.model_type]
    if config.from_image_text_model:
        return MODEL_MAPPING[config_class].from_image_text_model(config.from_image_text_model, **config.model_kwargs)
    return AutoModel.from_config(config_class(**config.model_kwargs))


def build_processor(config: TrainingConfig, model: nn.Module | None = None):
    """The processor of a config, with ``config.processor_kwargs`` overriding its settings (they are saved with
    the trained model): ``AutoProcessor`` from ``config.processor`` or ``init_from``; for ``from_image_text_model``,
    the image-text model's tokenizer with its conventions (:func:`~tvr.processing.processor_for_image_text_model`)."""
    import tvr  # noqa: F401
    from transformers import AutoProcessor

    from ..processing import processor_for_image_text_model

    source = config.processor or config.init_from
    if source is not None:
        return AutoProcessor.from_pretrained(source, **config.processor_kwargs)
    if config.from_image_text_model is None:
        raise ValueError("TrainingConfig: set `processor` (a processor folder) when the model is built from scratch")
    return processor_for_image_text_model(config.from_image_text_model, **config.processor_kwargs)


def load_split(data: dict[str, Any]) -> Dataset:
    """``tvr.data.load_annotations(**data)``."""
    from ..data import load_annotations

    return load_annotations(**data)


def evaluate(model: nn.Module, processor, dataset: Dataset, config: TrainingConfig) -> dict[str, float]:
    """Retrieval metrics of ``model`` on ``dataset`` (``{"t2v_R@1": ..., ...}``) with the evaluation harness."""
    from ..evaluation.harness import evaluate_retrieval

    return evaluate_retrieval(model, processor, dataset, batch_size=config.eval_batch_size,
                              num_workers=config.num_workers).metrics


def save_model(model: nn.Module, processor, directory: Path, config: TrainingConfig,
               metrics: dict[str, float] | None = None, with_curves: bool = False) -> None:
    """``save_pretrained`` model and processor, and its model card (see :func:`write_card`). A ``peft`` model saves
    its adapter only, pointing to the base in ``output_dir/base`` (see :func:`tvr.peft.prepare_adapter_training`)."""
    if is_peft_model(model):
        base_dir = Path(config.output_dir) / ADAPTER_BASE_DIR
        save_adapter(model, directory, os.path.abspath(base_dir) if (base_dir / "config.json").is_file() else None)
    else:
        model.save_pretrained(directory)
    processor.save_pretrained(directory)
    write_card(directory, config, metrics, with_curves)


def write_card(directory: Path, config: TrainingConfig, metrics: dict[str, float] | None = None,
               with_curves: bool = False) -> None:
    """README.md of a saved model: its evaluation results, the training config and, ``with_curves``, the run's
    training curves plotted from ``metrics.jsonl`` (plotting takes seconds, so only at the end of training)."""
    from ..hub_cards import write_model_card

    eval_data = config.eval_data or {}
    results = [{"dataset": eval_data.get("name", "custom"), "split": eval_data.get("split", "test"), **metrics}
               ] if metrics else []
    log = Path(config.output_dir) / "metrics.jsonl"
    card_options = dict(eval_results=results, train_log=log if with_curves and log.exists() else None,
                        training_config=config.to_dict(), base_model=config.from_image_text_model or config.init_from)
    if (Path(directory) / "adapter_config.json").is_file():
        from ..hub_cards.card import write_adapter_card

        write_adapter_card(directory, **card_options)
    else:
        write_model_card(directory, **card_options)


def build_train_dataloader(samples: CaptionVideoSamples, processor, config: TrainingConfig
                           ) -> torch.utils.data.DataLoader:
    """Shuffled batches of ``config.batch_size`` samples (the global batch; Accelerate splits it over processes),
    the last incomplete batch dropped as in the original."""
    if len(samples) < config.batch_size:
        raise ValueError(f"training set has {len(samples)} rows, fewer than batch_size={config.batch_size}")
    return torch.utils.data.DataLoader(
        samples, batch_size=config.batch_size, shuffle=True, drop_last=True, num_workers=config.num_workers,
        collate_fn=TrainingCollator(processor, config.train_frame_order),
        # a private generator: creating a loader iterator must not draw from the global RNG, or a resumed run's
        # dropout stream would differ from the uninterrupted run's
        generator=torch.Generator().manual_seed(config.seed))


# ------------------------------------------------------------------------------------------------- logging


class MetricsLog:
    """``metrics.jsonl``: one JSON object per line, written by the main process only.

    On resume, lines after the checkpoint's step are dropped, so the file reads as one run.
    """

    def __init__(self, path: Path, enabled: bool, resume_step: int | None = None):
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        kept = []
        if resume_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= resume_step]
        path.write_text("".join(line + "\n" for line in kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")


def read_metrics(output_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a run's ``metrics.jsonl``."""
    with open(Path(output_dir) / "metrics.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


# ------------------------------------------------------------------------------------------------- checkpoints


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Checkpoint folders under ``output_dir/checkpoints``, oldest step first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), path) for path in root.iterdir()
             if (m := re.fullmatch(re.escape(CHECKPOINT_PREFIX) + r"(\d+)", path.name))]
    return [path for _, path in sorted(found)]


def resolve_checkpoint(resume_from: str, output_dir: str | os.PathLike) -> Path:
    """``"latest"`` -> the newest checkpoint of ``output_dir``; otherwise the folder given."""
    if resume_from == "latest":
        checkpoints = list_checkpoints(output_dir)
        if not checkpoints:
            raise FileNotFoundError(f"resume_from='latest': no checkpoint under {Path(output_dir) / 'checkpoints'}")
        return checkpoints[-1]
    if not Path(resume_from).is_dir():
        raise FileNotFoundError(f"resume_from {resume_from!r} is not a checkpoint folder")
    return Path(resume_from)


def save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int, total_limit: int | None) -> None:
    """``accelerator.save_state`` to ``checkpoints/checkpoint-<step>``, keeping the newest ``total_limit``."""
    accelerator.save_state(output_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{step}")
    if accelerator.is_main_process and total_limit:
        for old in list_checkpoints(output_dir)[:-total_limit]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()


# ------------------------------------------------------------------------------------------------- the loop


def train(
    config: TrainingConfig,
    *,
    model: nn.Module | None = None,
    processor=None,
    train_dataset: Dataset | None = None,
    eval_dataset: Dataset | None = None,
    evaluate_fn: Callable[[nn.Module, Any, Dataset, TrainingConfig], dict[str, float]] = evaluate,
) -> Path:
    """Train a tvr retrieval model with the contrastive loss over the global batch.

    Args:
        config: the run (see :class:`TrainingConfig`).
        model, processor, train_dataset, eval_dataset: objects to use instead of building them from ``config``
            (``config.train_data`` / ``config.eval_data`` are read with ``tvr.data.load_annotations``).
        evaluate_fn: ``(model, processor, eval_dataset, config) -> metrics`` run after every epoch when there is an
            evaluation set; the model with the best ``t2v_R@1`` is saved in ``best/``.

    Returns:
        ``config.output_dir`` as a ``Path``.

    Example::

        config = TrainingConfig(from_image_text_model="clip-dir", train_data={"name": "msrvtt", ...}, output_dir="runs/a")
        train(config)   # then AutoModel.from_pretrained("runs/a/best")
    """
    accelerator = Accelerator(
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        # split_batches: config.batch_size is the global batch, so every process count sees the same batches
        dataloader_config=DataLoaderConfiguration(split_batches=True, use_seedable_sampler=True,
                                                  data_seed=config.seed),
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=config.ddp_find_unused_parameters)],
    )
    if config.batch_size % accelerator.num_processes:
        raise ValueError(f"batch_size={config.batch_size} must be a multiple of the {accelerator.num_processes} "
                         f"processes")
    set_seed(config.seed)
    output_dir = Path(config.output_dir)
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        config.save(output_dir / "training_config.yaml")

    # build
    model = model if model is not None else build_model(config)
    # methods that train a peft adapter (DAVRL): the frozen base goes to output_dir/base once, training sees the
    # wrapped model, and checkpoints, best/ and final/ hold the adapter only
    model = prepare_adapter_training(model, output_dir / ADAPTER_BASE_DIR, accelerator.is_main_process)
    processor = processor if processor is not None else build_processor(config, model)
    if train_dataset is None:
        if config.train_data is None:
            raise ValueError("TrainingConfig: train_data is required when no train_dataset is given")
        train_dataset = load_split(config.train_data)
    if eval_dataset is None and config.eval_data is not None:
        eval_dataset = load_split(config.eval_data)
    freeze_pretrained_layers(model, config.freeze_layer_num)
    if config.gradient_checkpointing:
        model.activation_checkpointing_enable()  # transformers 5's name; non-reentrant, so DDP-safe
    samples = CaptionVideoSamples(train_dataset, seed=config.seed)
    data_processor = processor
    if config.cache_videos:
        data_processor = CachedVideoProcessor(processor)
        keys = samples.video_keys()
        if eval_dataset is not None:
            keys += CaptionVideoSamples(eval_dataset).video_keys()
        data_processor.fill(keys, config.eval_batch_size, accelerator.is_local_main_process)
    train_loader = build_train_dataloader(samples, data_processor, config)
    optimizer = build_optimizer(model, config.optimizer, config.lr, config.coef_lr, config.weight_decay,
                                (config.adam_beta1, config.adam_beta2), config.adam_epsilon,
                                config.max_grad_norm or 0.0)
    steps_per_epoch = math.ceil(len(train_loader) / config.gradient_accumulation_steps)
    total_steps = config.max_steps or steps_per_epoch * config.epochs
    num_epochs = math.ceil(total_steps / steps_per_epoch)
    scheduler = build_scheduler(optimizer, total_steps, config.warmup_proportion)
    group_names = [group["name"] for group in optimizer.param_groups]

    # prepare
    step_module, optimizer, train_loader, scheduler = accelerator.prepare(
        ContrastiveStep(model), optimizer, train_loader, scheduler)
    model = accelerator.unwrap_model(step_module).model
    progress = TrainingProgress()
    accelerator.register_for_checkpointing(progress)
    if is_peft_model(model):
        register_adapter_checkpointing(accelerator)
    if config.resume_from:
        accelerator.load_state(resolve_checkpoint(config.resume_from, output_dir))
    metrics_log = MetricsLog(output_dir / "metrics.jsonl", accelerator.is_main_process,
                             resume_step=progress.global_step if config.resume_from else None)
    bar = tqdm(total=total_steps, initial=progress.global_step, desc="training",
               disable=not accelerator.is_local_main_process)

    # loop
    samples_per_step = config.batch_size * config.gradient_accumulation_steps
    window_losses: list[torch.Tensor] = []
    for epoch in range(progress.epoch, num_epochs):
        step_module.train()
        step_start = time.perf_counter()
        train_loader.set_epoch(epoch)  # the sampler's order
        samples.set_epoch(epoch)  # caption choice and augmentation (accelerate's set_epoch skips the dataset
        # when the sampler is sharded over processes)
        batches = train_loader
        if progress.batches_in_epoch:  # resuming mid-epoch: the same order, minus what was trained
            batches = accelerator.skip_first_batches(train_loader, progress.batches_in_epoch)
        for batch in batches:
            with accelerator.accumulate(step_module):
                loss = step_module(**batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    step_lrs = [group["lr"] for group in optimizer.param_groups]  # this step's, before the schedule
                    grad_norm = None
                    if config.max_grad_norm:
                        grad_norm = accelerator.clip_grad_norm_(step_module.parameters(), config.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            progress.batches_in_epoch += 1
            window_losses.append(loss.detach())
            if not accelerator.sync_gradients:
                continue

            clamp_logit_scale(model)
            progress.global_step += 1
            bar.update(1)
            if progress.global_step % config.logging_steps == 0 or progress.global_step == total_steps:
                step_loss = accelerator.reduce(torch.stack(window_losses).mean(), "mean").item()
                record = {
                    "step": progress.global_step,
                    "epoch": epoch + progress.batches_in_epoch / len(train_loader),
                    "loss": step_loss,
                    **{f"lr/{name}": lr for name, lr in zip(group_names, step_lrs)},
                    "samples_per_second": samples_per_step / (time.perf_counter() - step_start),
                }
                if grad_norm is not None:
                    record["grad_norm"] = float(grad_norm)
                metrics_log.write(record)
                bar.set_postfix(loss=f"{step_loss:.4f}")
            window_losses.clear()
            step_start = time.perf_counter()
            if progress.global_step >= total_steps:
                break
            if config.save_steps and progress.global_step % config.save_steps == 0 \
                    and progress.batches_in_epoch < len(train_loader):  # an epoch's end is saved below
                save_checkpoint(accelerator, output_dir, progress.global_step, config.save_total_limit)
                step_start = time.perf_counter()

        if progress.batches_in_epoch >= len(train_loader):
            progress.epoch, progress.batches_in_epoch = epoch + 1, 0
        if eval_dataset is not None:
            evaluate_and_keep_best(accelerator, model, processor, data_processor, eval_dataset, config, progress,
                                   metrics_log, evaluate_fn)
        save_checkpoint(accelerator, output_dir, progress.global_step, config.save_total_limit)
        if progress.global_step >= total_steps:
            break
    bar.close()

    if accelerator.is_main_process:
        save_model(model, processor, output_dir / "final", config, with_curves=True)
        if progress.best_metrics is not None:
            write_card(output_dir / "best", config, progress.best_metrics, with_curves=True)
        if config.push_to_hub:
            from ..hub_cards import push_to_hub

            published = output_dir / ("best" if progress.best_metrics is not None else "final")
            push_to_hub(published, config.hub_model_id)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return output_dir


def clamp_logit_scale(model: nn.Module) -> None:
    """Keep every trained ``logit_scale`` parameter (CLIP's, at ``clip.logit_scale``, or a method's own) at most
    ln 100 after each step, as CLIP and the seeds do, so the temperature never drops below 1/100 (a frozen one, as in
    DAVRL, is left exactly as loaded)."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.requires_grad and (name == "logit_scale" or name.endswith(".logit_scale")):
                parameter.clamp_(max=MAX_LOGIT_SCALE)


def evaluate_and_keep_best(accelerator: Accelerator, model: nn.Module, processor, data_processor,
                           eval_dataset: Dataset, config: TrainingConfig, progress: TrainingProgress,
                           metrics_log: MetricsLog, evaluate_fn: Callable) -> None:
    """Evaluate on the main process (as the original) with ``data_processor`` (the processor, or its video
    cache); save ``best/`` with ``processor`` when ``t2v_R@1`` improves (ties: the later epoch, as the original)."""
    metrics = [None]
    if accelerator.is_main_process:
        model.eval()
        with torch.no_grad(), accelerator.autocast():
            metrics[0] = evaluate_fn(model, data_processor, eval_dataset, config)
        model.train()
        metrics_log.write({"step": progress.global_step, "epoch": progress.epoch, **metrics[0]})
    metrics = broadcast_object_list(metrics)[0]
    if progress.best_metrics is None or metrics[BEST_METRIC] >= progress.best_metrics[BEST_METRIC]:
        progress.best_metrics = metrics
        if accelerator.is_main_process:
            save_model(model, processor, Path(config.output_dir) / "best", config, metrics)
    accelerator.wait_for_everyone()
