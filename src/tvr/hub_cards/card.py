"""Model cards for tvr models: Hub metadata with ``model-index`` results, usage, training config and curves.

Metadata choices:

- ``library_name: tvr``, not ``transformers``. The weights are a transformers ``PreTrainedModel`` folder, but
  ``AutoModel`` only knows tvr's model types after ``import tvr``; a ``transformers`` library tag would make the
  Hub show a snippet that fails. The card's own snippet imports tvr.
- ``pipeline_tag: video-classification``: the Hub has no video-retrieval task (``text-to-video`` means generation);
  a tvr model classifies videos zero-shot (``pipeline("zero-shot-video-classification")``), as X-CLIP's cards
  declare. tvr's own pipeline tasks (``video-text-retrieval``, ``zero-shot-video-classification``) are tags, and the
  usage section shows both pipelines (registered by ``import tvr``).
- The title, ``model_name`` and usage name the Hub repo when known, else the model folder's name (never a temporary
  or machine-specific path).
- ``license: apache-2.0`` (tvr's own license) unless another is given; the owner of the weights can change it.
- ``datasets`` lists the named benchmarks only; your own csv / jsonl data is named in the results table.
- The training config is the fields that differ from ``TrainingConfig``'s defaults, which ``tvr train --config`` reads
  back as they are.
- ``model-index`` holds the plain metrics only. DSL / inverted softmax use the whole test query set
  (transductive), so they appear in the README table, marked, and never in the leaderboard metadata.
"""

from __future__ import annotations

import io
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..utils.atomic import atomic_write_bytes, atomic_write_text

TRAINING_CURVES_FILE = "training_curves.png"
DEFAULT_LICENSE = "apache-2.0"
GENERIC_DATASETS = ("generic", "csv", "jsonl", "custom")
# run folders whose name says nothing about the model: the card is named after the folder above
RUN_FOLDER_NAMES = ("best", "final", "model")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
PIPELINE_TAG = "video-classification"  # the Hub task nearest to tvr's pipelines (see the module doc)

DATASET_NAMES = {
    "kinetics400": "Kinetics-400",
    "kinetics600": "Kinetics-600",
    "kinetics700": "Kinetics-700",
    "ucf101": "UCF-101",
    "hmdb51": "HMDB-51",
    "ssv2": "Something-Something V2",
    "msrvtt": "MSR-VTT",
    "msvd": "MSVD",
    "lsmdc": "LSMDC",
    "activitynet": "ActivityNet Captions",
    "didemo": "DiDeMo",
    "vatex": "VATEX",
    "charades-sta": "Charades-STA",
}
TASKS = {
    "t2v": ("text-to-video-retrieval", "Text-to-Video Retrieval"),
    "v2t": ("video-to-text-retrieval", "Video-to-Text Retrieval"),
}
ZERO_SHOT_TASK = ("zero-shot-video-classification", "Zero-Shot Video Classification")
# zero-shot result key -> (model-index metric type, its name)
ZERO_SHOT_METRICS = {"top1": ("top_1_accuracy", "top-1 accuracy"), "top5": ("top_5_accuracy", "top-5 accuracy"),
                     "mean_class_accuracy": ("mean_class_accuracy", "mean class accuracy")}
MOMENT_TASK = ("moment-retrieval", "Moment Retrieval")
# moment result key -> (model-index metric type, its name); baselines ("whole_video/R@1_IoU0.5") stay out of it
MOMENT_METRICS = {
    **{f"R@{k}_IoU{t}": (f"recall@{k}_iou{t}", f"R@{k} IoU={t}") for k in (1, 5) for t in ("0.3", "0.5", "0.7")},
    "mIoU": ("mean_iou", "mIoU"),
}
MOMENT_BASELINES = {"whole_video": "whole video", "random_window": "random window †"}
METRICS = {"R@1": "recall@1", "R@5": "recall@5", "R@10": "recall@10", "MedR": "median_rank", "MeanR": "mean_rank"}
# "<post-processing>/t2v_R@1" or "t2v_R@1"
METRIC_KEY = re.compile(r"^(?:(?P<postprocessing>[\w-]+)/)?(?P<direction>t2v|v2t)_(?P<metric>R@\d+|MedR|MeanR)$")


def load_eval_results(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, Any]:
    """An eval-results dict (as ``tvr eval --output`` writes): ``dataset``, ``split``, the metric keys of its ``task``
    (``retrieval`` when absent: ``t2v_R@1``, ...; ``zero-shot-classification``: ``top1``, ``top5``,
    ``mean_class_accuracy``; ``moments``: ``R@1_IoU0.5``, ..., ``mIoU``)."""
    if isinstance(source, Mapping):
        results = dict(source)
        where = "eval results"
    else:
        with open(source, encoding="utf-8") as file:
            results = json.load(file)
        where = os.fspath(source)
    if not isinstance(results, dict) or "dataset" not in results:
        raise ValueError(f"{where}: expected a JSON object with 'dataset', 'split' and metric keys like 't2v_R@1'")
    task = result_task(results, where)
    if not task.has_metrics(results):
        raise ValueError(f"{where}: no metric keys like {task.metric_example!r} (found "
                         f"{sorted(results)})")
    return results


def eval_results_to_model_index(results: Iterable[Mapping[str, Any]]) -> list[EvalResult]:
    """Plain (not post-processed) metrics of each eval-results dict as ``huggingface_hub.EvalResult`` entries, as
    its ``task`` declares them (retrieval when absent)."""
    return [entry for result in results for entry in result_task(result).model_index(result)]


def _retrieval_model_index(result: Mapping[str, Any]) -> list[EvalResult]:
    entries = []
    dataset = str(result["dataset"])
    for key, value in result.items():
        match = METRIC_KEY.match(key)
        if not match or match["postprocessing"]:
            continue
        task_type, task_name = TASKS[match["direction"]]
        entries.append(
            EvalResult(
                task_type=task_type,
                task_name=task_name,
                dataset_type=dataset,
                dataset_name=DATASET_NAMES.get(dataset, dataset),
                dataset_split=result.get("split"),
                metric_type=METRICS[match["metric"]],
                metric_name=f"{match['direction']} {match['metric']}",
                metric_value=round(float(value), 2),
            )
        )
    return entries


def _flat_model_index(task: tuple[str, str], metrics: Mapping[str, tuple[str, str]]
                      ) -> Callable[[Mapping[str, Any]], list[EvalResult]]:
    """The model-index entries of a task whose results hold flat metric keys: ``task`` is ``(type, name)``,
    ``metrics`` maps a result key to its ``(metric type, metric name)``; other keys (baselines) stay out."""
    def entries(result: Mapping[str, Any]) -> list[EvalResult]:
        dataset = str(result["dataset"])
        return [EvalResult(task_type=task[0], task_name=task[1], dataset_type=dataset,
                           dataset_name=DATASET_NAMES.get(dataset, dataset), dataset_split=result.get("split"),
                           metric_type=metric_type, metric_name=metric_name,
                           metric_value=round(float(result[key]), 2))
                for key, (metric_type, metric_name) in metrics.items() if key in result]

    return entries


def training_series(records: Iterable[Mapping[str, Any]]) -> dict[str, tuple[list[float], list[float]]]:
    """Numeric series of a training log, keyed by name: ``{"loss": (steps, values), ...}``.

    The x value is each record's ``step`` (its position in the log when absent); ``step`` and ``epoch`` are not
    plotted; a record without a key simply has no point for it.
    """
    series: dict[str, tuple[list[float], list[float]]] = {}
    for position, record in enumerate(records):
        step = record.get("step", position)
        for key, value in record.items():
            if key in ("step", "epoch") or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if math.isfinite(value):
                steps, values = series.setdefault(key, ([], []))
                steps.append(step)
                values.append(float(value))
    return series


def read_training_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Records of a JSON-lines training log (one JSON object per line, e.g. ``{"step": 10, "loss": 2.3}``)."""
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]


def curve_panel(name: str) -> str:
    """The panel a series is drawn in: every learning-rate group together, recalls together, ranks together."""
    if name == "lr" or name.startswith("lr/"):
        return "learning rate"
    if "_R@" in name:
        return "recall (%)"
    if name.endswith(("_MedR", "_MeanR")):
        return "rank"
    return name


def plot_training_curves(
    log: str | os.PathLike | Iterable[Mapping[str, Any]], output_path: str | os.PathLike
) -> Path:
    """Plot the numeric series of a training log to a PNG, related series sharing a panel (see ``curve_panel``),
    on a shared step axis.

    Args:
        log: a JSON-lines file or its records (keys such as ``step``, ``loss``, ``lr``, ``t2v_R@1``).
        output_path: the PNG to write.

    Returns:
        ``output_path`` as a ``Path``.
    """
    from matplotlib.figure import Figure  # a bare Figure renders with Agg and leaves pyplot's state alone

    records = read_training_log(log) if isinstance(log, (str, os.PathLike)) else list(log)
    series = training_series(records)
    if not series:
        raise ValueError(f"training log {log if isinstance(log, (str, os.PathLike)) else ''} has no numeric series")
    panels: dict[str, list[str]] = {}
    for name in series:
        panels.setdefault(curve_panel(name), []).append(name)
    figure = Figure(figsize=(6, 2.2 * len(panels)), layout="constrained")
    axes = figure.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, (panel, names) in zip(axes, panels.items()):
        for name in names:
            steps, values = series[name]
            ax.plot(steps, values, marker="." if len(steps) < 50 else None, label=name)
        if len(names) > 1:
            ax.legend(fontsize="small")
        ax.set_ylabel(panel)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("step")
    output_path = Path(output_path)
    image = io.BytesIO()
    figure.savefig(image, dpi=100, format=output_path.suffix.lstrip(".") or "png")
    atomic_write_bytes(output_path, image.getvalue())  # a crash never leaves half an image
    return output_path


def build_model_card(
    model_config: Mapping[str, Any] | Any,
    model_id: str,
    eval_results: Sequence[Mapping[str, Any]] = (),
    base_model: str | None = None,
    training_config: Mapping[str, Any] | None = None,
    training_curves: str | None = None,
    datasets: Sequence[str] | None = None,
    license: str | None = DEFAULT_LICENSE,
    num_parameters: int | None = None,
    training_command: str | None = None,
    space: str | None = None,
) -> ModelCard:
    """A model card for a tvr model.

    Args:
        model_config: the model's config (``PretrainedConfig`` or its dict / ``config.json``).
        model_id: Hub repo id or local folder; the card names the repo, or the folder by its name
            (:func:`card_name`), and the usage snippet loads it.
        eval_results: eval-results dicts (:func:`load_eval_results`); plain metrics go to ``model-index``.
        base_model: the checkpoint the model was initialised from, e.g. ``openai/clip-vit-base-patch32``.
        training_config: training arguments, shown as a YAML block as given (`tvr.training.config.rerunnable_config`:
            the fields that differ from the defaults).
        training_curves: file name of the training-curve PNG next to the README (linked when given).
        datasets: Hub dataset ids for the metadata; default the ``dataset`` of each named benchmark evaluated on.
        license: license id for the metadata (default tvr's, ``apache-2.0``).
        num_parameters: shown in the model details when given.
        training_command: how to re-run the training, when the config alone does not say it (e.g. ``tvr demo``).
        space: a Hugging Face Space running the model (``tvr space``), e.g. ``you/clip4clip-demo``: linked from the
            usage section.

    Returns:
        ``huggingface_hub.ModelCard``; ``card.save("README.md")`` writes it.
    """
    config = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
    model_type = config.get("model_type")
    if not model_type:
        raise ValueError("model_config has no 'model_type'; pass the config of a saved tvr model")
    from ..methods import METHODS

    entry = METHODS.get(model_type)
    method, paper = (entry.name, entry.paper) if entry is not None else (model_type, None)
    eval_results = [load_eval_results(result) for result in eval_results]
    if datasets is None:
        datasets = list(dict.fromkeys(str(result["dataset"]) for result in eval_results
                                      if str(result["dataset"]) not in GENERIC_DATASETS
                                      and not str(result["dataset"]).endswith((".csv", ".jsonl"))))
    name = card_name(model_id)
    base_on_hub = base_model is not None and card_name(base_model) == os.fspath(base_model).rstrip("/\\") \
        and HUB_ID.match(card_name(base_model)) is not None
    data = ModelCardData(
        library_name="tvr",
        pipeline_tag=PIPELINE_TAG,
        tags=["tvr", "video-text-retrieval", "text-to-video-retrieval", "zero-shot-video-classification", model_type],
        datasets=list(datasets) or None,
        base_model=base_model if base_on_hub else None,  # the Hub reads it as a repo id
        license=license,
        model_name=name,
        eval_results=eval_results_to_model_index(eval_results) or None,
    )
    sections = [
        f"# {name}",
        _summary(method, paper, model_type, base_model, base_on_hub),
        _model_details(config, num_parameters),
        _usage_section(name, model_id) + _space_link(space),
        _intended_use_section(license),
    ]
    if eval_results:
        sections.append(_results_section(eval_results))
    if training_config or training_curves or training_command:
        sections.append(_training_section(training_config, training_curves, training_command))
    content = f"---\n{data.to_yaml()}\n---\n\n" + "\n\n".join(sections) + "\n"
    return ModelCard(content)


def card_name(model_id: str | os.PathLike) -> str:
    """What a card calls a model: its Hub repo id, else its folder's name (the run's name for ``runs/x/best``)."""
    text = os.fspath(model_id).rstrip("/\\")
    if HUB_ID.match(text) and not os.path.exists(text):
        return text
    path = Path(os.path.abspath(text))
    return path.parent.name if path.name in RUN_FOLDER_NAMES and path.parent.name else path.name


def _usage_section(name: str, model_id: str | os.PathLike) -> str:
    on_hub = name == os.fspath(model_id).rstrip("/\\") and HUB_ID.match(name) is not None
    if not on_hub:  # the folder by its own name, loadable from the folder above it
        name = Path(os.path.abspath(model_id)).name
    where = "" if on_hub else (f"\n\nBelow, `{name}` stands for this model's folder: use its path (or, once pushed, "
                               "its Hub repo id).")
    return (
        "## Usage\n\nInstall tvr (from its repository: `pip install -e .`), then `import tvr`: importing it registers "
        "tvr's models, processor and pipelines with transformers' Auto classes. Without it, `AutoModel` says it does not "
        "recognize the architecture and `AutoProcessor` returns a bare tokenizer." + where + "\n\n"
        + usage_snippet(name)
        + "\n\nPublish a tvr model folder with `tvr card FOLDER --push-to-hub you/name` (model, processor and this "
        "card; `tvr train --push-to-hub you/name` does it when training ends). transformers' own "
        "`model.push_to_hub` uploads neither the processor nor this card."
    )


def _intended_use_section(license: str | None) -> str:
    text = (
        "## Intended use and limitations\n\nText-to-video retrieval: ranking videos for a text query (and captions "
        "for a video), e.g. searching a video collection with `tvr index` / `tvr search`. Scores are similarities "
        "for ranking, not calibrated probabilities. The model knows what its training data showed: expect lower "
        "accuracy on other domains, languages other than its captions', long videos (it sees `max_frames` frames) and "
        "fine temporal order; biases of the data and of the image-text model it was initialised from carry over. "
        "It is not meant for surveillance or for identifying people."
    )
    if license:
        text += f"\n\nLicense: `{license}` (set in this card's metadata; check it against the licenses of the base "
        text += "model and the training data)."
    return text


def usage_snippet(model_id: str) -> str:
    """The Python usage example of the card: the two pipelines, then the model contract (load, encode a few texts
    and videos, score them)."""
    return f'''```python
from transformers import pipeline

import tvr  # registers tvr's models, processors and pipelines

retriever = pipeline("video-text-retrieval", model="{model_id}")
retriever("a dog runs on the beach", videos=["video1.mp4", "video2.mp4"])  # videos ranked, best first
retriever("a dog runs on the beach", index="my_videos.index", top_k=10)    # search a `tvr index` folder
retriever(videos=["video1.mp4"], texts=["a person is cooking", "a dog runs"])  # captions ranked for a video

classifier = pipeline("zero-shot-video-classification", model="{model_id}")
classifier("video1.mp4", candidate_labels=["cooking", "dogs", "sports"], hypothesis_template="a video of {{}}.")
```

The pipelines score with the model's own gallery scoring (`model.score_gallery`); the same steps by hand:

```python
import torch
from transformers import AutoModel, AutoProcessor

import tvr  # registers tvr's models and processors with the Auto classes

model = AutoModel.from_pretrained("{model_id}").eval()
processor = AutoProcessor.from_pretrained("{model_id}")

texts = processor(text=["a person is cooking", "a dog runs on the beach"], return_tensors="pt")
videos = processor(videos=["video1.mp4", "video2.mp4"], return_tensors="pt")
with torch.no_grad():
    text_encoding = model.encode_text(texts["input_ids"], texts["attention_mask"])
    video_encoding = model.encode_video(videos["pixel_values_videos"], videos["video_mask"])
    scores = model.similarity(text_encoding, video_encoding)  # (num_texts, num_videos)
print(scores.argmax(dim=1))  # the best video for each text
```

`model.get_text_embeds(...)` / `model.get_video_embeds(...)` give L2-normalised embeddings for a vector
index (`tvr index` / `tvr search` build and query one over a video folder), and `tvr eval` reproduces the
numbers below.'''


def _space_link(space: str | None) -> str:
    if not space:
        return ""
    return (f"\n\nTry it in the browser: [{space}](https://huggingface.co/spaces/{space}), a Gradio Space made with "
            "`tvr space` (text search over videos, zero-shot labels and captions for an uploaded video).")


def write_model_card(
    model_dir: str | os.PathLike,
    eval_results: Sequence[str | os.PathLike | Mapping[str, Any]] = (),
    train_log: str | os.PathLike | None = None,
    training_config: str | os.PathLike | Mapping[str, Any] | None = None,
    model_id: str | None = None,
    base_model: str | None = None,
    datasets: Sequence[str] | None = None,
    license: str | None = DEFAULT_LICENSE,
    training_command: str | None = None,
    space: str | None = None,
) -> ModelCard:
    """Write ``README.md`` (and ``training_curves.png`` from ``train_log``) into a saved model folder.

    Args:
        model_dir: folder saved with ``save_pretrained`` (its ``config.json`` is read).
        eval_results: eval-results JSON files or dicts.
        train_log: JSON-lines training log to plot.
        training_config: the training arguments: a dict or a JSON / YAML file.
        model_id: Hub repo id the card refers to; default ``model_dir``.
        base_model, datasets, license, training_command, space: see :func:`build_model_card`.

    Returns:
        The card that was written.
    """
    model_dir = Path(model_dir)
    if (model_dir / "adapter_config.json").is_file():
        return write_adapter_card(model_dir, eval_results, train_log, training_config, model_id, base_model, datasets,
                                  license, space)
    config_path = model_dir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: model_dir must be a folder saved with save_pretrained")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if isinstance(training_config, (str, os.PathLike)):
        training_config = _read_config(training_config)
    curves = None
    if train_log is not None:
        plot_training_curves(train_log, model_dir / TRAINING_CURVES_FILE)
        curves = TRAINING_CURVES_FILE
    card = build_model_card(
        config,
        model_id or os.fspath(model_dir),
        eval_results=[load_eval_results(result) for result in eval_results],
        base_model=base_model,
        training_config=training_config,
        training_curves=curves,
        datasets=datasets,
        license=license,
        num_parameters=count_parameters(model_dir),
        training_command=training_command,
        space=space,
    )
    atomic_write_text(model_dir / "README.md", str(card))  # what card.save writes, crash-safely
    return card


def write_adapter_card(
    adapter_dir: str | os.PathLike,
    eval_results: Sequence[str | os.PathLike | Mapping[str, Any]] = (),
    train_log: str | os.PathLike | None = None,
    training_config: str | os.PathLike | Mapping[str, Any] | None = None,
    model_id: str | None = None,
    base_model: str | None = None,
    datasets: Sequence[str] | None = None,
    license: str | None = DEFAULT_LICENSE,
    space: str | None = None,
) -> ModelCard:
    """Write ``README.md`` into a ``peft`` adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``)
    whose ``base_model_name_or_path`` is a saved tvr base folder: the model card of the base's method, plus what the
    adapter is (trainable parameters and their share of the base) and how to load it.

    Args: as :func:`write_model_card`; ``base_model`` is the image-text model the base was built from (e.g.
    ``openai/clip-vit-base-patch32``), which the loading snippet builds the base from.
    """
    from ..peft import resolve_adapter_base

    adapter_dir = Path(adapter_dir)
    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    base_dir = Path(resolve_adapter_base(adapter_dir))  # names the adapter and its base when it is missing
    if not (base_dir / "config.json").is_file():
        raise FileNotFoundError(f"{adapter_dir}: its base_model_name_or_path {os.fspath(base_dir)!r} is not a local "
                                "saved model folder")
    config = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    if isinstance(training_config, (str, os.PathLike)):
        training_config = _read_config(training_config)
    curves = None
    if train_log is not None:
        plot_training_curves(train_log, adapter_dir / TRAINING_CURVES_FILE)
        curves = TRAINING_CURVES_FILE
    model_id = model_id or os.fspath(adapter_dir)
    base_parameters = count_parameters(base_dir) or 0
    card = build_model_card(config, model_id, eval_results=[load_eval_results(result) for result in eval_results],
                            base_model=base_model, training_config=training_config, training_curves=curves,
                            datasets=datasets, license=license, num_parameters=base_parameters, space=space)
    section = adapter_section(adapter_dir, adapter_config, config, base_parameters, model_id, base_model)
    card = ModelCard(card.content.replace("\n## Usage\n", f"\n{section}\n\n## Usage\n", 1))
    atomic_write_text(adapter_dir / "README.md", str(card))
    return card


def adapter_section(adapter_dir: Path, adapter_config: Mapping[str, Any], config: Mapping[str, Any],
                    base_parameters: int, model_id: str, base_model: str | None) -> str:
    """The card section of a LoRA adapter: what it trains, its size and share of the base, how to load it. Local
    paths appear by folder name only (a card is read on the Hub and on other machines)."""
    from safetensors import safe_open

    from ..methods import METHODS

    lora = carried = 0
    with safe_open(adapter_dir / "adapter_model.safetensors", framework="pt") as weights:
        for name in weights.keys():
            size = math.prod(weights.get_slice(name).get_shape())
            lora, carried = (lora + size, carried) if ".lora_" in name else (lora, carried + size)
    trainable = lora + (carried if config.get("global_tokens_trainable") else 0)
    entry = METHODS.get(config["model_type"])
    model_class = entry.model_class.__name__ if entry is not None else "AutoModel"
    defaults = entry.config_class().to_dict() if entry is not None else {}
    from transformers import PreTrainedConfig

    skip = {"text_config", "vision_config", "temporal_config", "projection_dim", "logit_scale_init_value"}
    skip |= set(PreTrainedConfig().to_dict()) | {"architectures", "transformers_version", "dtype", "torch_dtype"}
    fields = {key: value for key, value in config.items()
              if key in defaults and key not in skip and value != defaults[key] and _is_plain(value)}
    modules = ", ".join(f"`{name}`" for name in adapter_config.get("modules_to_save") or [])
    name = _snippet_name(model_id)
    base_on_hub = base_model is not None and HUB_ID.match(os.fspath(base_model)) and not os.path.exists(base_model)
    source = os.fspath(base_model) if base_on_hub else "IMAGE_TEXT_MODEL"
    where = "" if base_on_hub else (
        f"\n`IMAGE_TEXT_MODEL` stands for the image-text model the base was built from"
        f"{f' (a local folder, `{Path(os.path.abspath(base_model)).name}`)' if base_model else ''}: its path or Hub id.\n")
    recorded = adapter_config.get("base_model_name_or_path")
    return f"""## Adapter

This repository holds a **LoRA adapter only** (`adapter_config.json` + `adapter_model.safetensors`, \
{(adapter_dir / "adapter_model.safetensors").stat().st_size / 1e6:.2f} MB), trained with `peft` on a frozen \
`{model_class}` built from `{source}`: rank {adapter_config.get("r")} on `{adapter_config.get("target_modules")}`, \
**{trainable:,} trainable parameters, {100 * trainable / max(base_parameters, 1):.3f} % of the base's \
{base_parameters:,}**. {f"The adapter also carries {modules} ({carried:,} values), so it works on any base built from "
f"the same image-text model." if modules else ""}

```python
from peft import PeftModel

import tvr

base = tvr.{model_class}.from_image_text_model("{source}", **{fields!r})
model = PeftModel.from_pretrained(base, "{name}").eval()
merged = model.merge_and_unload()  # optional: a plain {model_class}, the deltas merged into the weights
```
{where}
Where the base folder recorded in `adapter_config.json` (`{recorded}`, relative to this folder) is present, this \
folder is used like any tvr model folder: the pipelines below, `AutoModel.from_pretrained("{name}")` and \
`AutoProcessor.from_pretrained("{name}")` (after `import tvr`), and `tvr eval` / `tvr index` / `tvr app` load base \
and adapter (after checking that the base still has the weights the adapter was trained on). \
`tvr merge {name} {name}-merged` writes a plain `{model_class}` folder (the deltas merged; same scores) for serving \
without `peft`. Pushed with `tvr card ... --push-to-hub` (or `tvr train --push-to-hub`), the base goes along into the \
repo's `base/`, so the repo id works in the same places."""


def _snippet_name(model_id: str | os.PathLike) -> str:
    """How a snippet names a model: the Hub repo id, or a local folder by its name (never an absolute path)."""
    text = os.fspath(model_id).rstrip("/\\")
    return text if HUB_ID.match(text) and not os.path.exists(text) else Path(os.path.abspath(text)).name


def _is_plain(value: Any) -> bool:
    return _is_scalar(value) or (isinstance(value, list) and all(_is_scalar(item) for item in value))


def count_parameters(model_dir: str | os.PathLike) -> int | None:
    """Parameters in a folder's safetensors weights (read from the file headers), or ``None`` without them."""
    from safetensors import safe_open

    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for path in files:
        with safe_open(path, framework="pt") as weights:
            for name in weights.keys():
                total += math.prod(weights.get_slice(name).get_shape())
    return total


def _summary(method: str, paper: str | None, model_type: str, base_model: str | None, base_on_hub: bool = True
             ) -> str:
    text = f"A **{method}** text-video retrieval model (`model_type: {model_type}`) made with `tvr`, text-to-video "
    text += "retrieval on transformers."
    if paper:
        text += f" Method: [{method}]({paper})."
    if base_model and base_on_hub:
        text += f" Initialised from [`{base_model}`](https://huggingface.co/{base_model})."
    elif base_model:
        text += f" Initialised from a local model, `{Path(os.path.abspath(base_model)).name}`."
    return text


def _model_details(config: Mapping[str, Any], num_parameters: int | None) -> str:
    from transformers import PreTrainedConfig

    shared = set(PreTrainedConfig().to_dict()) | {"architectures", "transformers_version", "dtype", "torch_dtype"}
    rows = [(key, value) for key, value in config.items() if key not in shared and _is_scalar(value)]
    if num_parameters is not None:
        rows.insert(0, ("parameters", f"{num_parameters / 1e6:.1f}M"))
    table = "\n".join(f"| `{key}` | `{value}` |" for key, value in rows)
    return f"## Model details\n\n| field | value |\n|---|---|\n{table}" if rows else "## Model details"


def _results_section(eval_results: Sequence[Mapping[str, Any]]) -> str:
    """``## Evaluation``: a table per task, in :data:`RESULT_TASKS` order."""
    tables = []
    for name, task in RESULT_TASKS.items():
        results = [result for result in eval_results if result.get("task", "retrieval") == name]
        if results:
            tables.append(task.table(results))
    return "## Evaluation\n\n" + "\n\n".join(tables)


def _retrieval_table(eval_results: Sequence[Mapping[str, Any]]) -> str:
    header = "| dataset | split | direction | post-processing | R@1 | R@5 | R@10 | MedR | MeanR |"
    lines = [header, "|" + "---|" * 9]
    for result in eval_results:
        groups: dict[tuple[str, str], dict[str, float]] = {}
        for key, value in result.items():
            match = METRIC_KEY.match(key)
            if match:
                groups.setdefault((match["postprocessing"] or "", match["direction"]), {})[match["metric"]] = value
        for (postprocessing, direction), metrics in sorted(groups.items()):
            cells = [f"{metrics[name]:.1f}" if name in metrics else "" for name in METRICS]
            dataset = str(result["dataset"])
            label = f"{postprocessing} †" if postprocessing else "none"
            lines.append(
                f"| {DATASET_NAMES.get(dataset, dataset)} | {result.get('split', '')} | {direction} | {label} | "
                + " | ".join(cells)
                + " |"
            )
    return (
        "\n".join(lines)
        + "\n\nR@K in percent (higher is better), median / mean rank 1-based (lower is better), computed with "
        "`tvr eval`; a candidate scoring exactly as much as the ground truth counts as ranked above it. "
        "† Post-processed scores (DSL, inverted softmax) normalise over the whole test query set (transductive) "
        "and are not comparable with plain numbers; QB-Norm uses the training captions as its query bank. "
        "Only the plain numbers are in the card metadata."
    )


def _zero_shot_table(eval_results: Sequence[Mapping[str, Any]]) -> str:
    lines = ["Zero-shot video classification:", "",
             "| dataset | split | templates | views | top-1 | top-5 | mean class accuracy |", "|" + "---|" * 7]
    for result in eval_results:
        dataset = str(result["dataset"])
        templates = result.get("templates", "")
        templates = templates if isinstance(templates, str) else f"{len(templates)} own"
        cells = [f"{float(result[key]):.1f}" if key in result else "" for key in ZERO_SHOT_METRICS]
        lines.append(f"| {DATASET_NAMES.get(dataset, dataset)} | {result.get('split', '')} | {templates} | "
                     f"{result.get('num_views', 1)} | " + " | ".join(cells) + " |")
    return ("\n".join(lines) + "\n\nAccuracy in percent over the split's videos, each classified among all its "
            "classes by prompts built from the class names with the named templates (`tvr eval --task "
            "zero-shot-classification`); mean class accuracy averages the per-class top-1. A class scoring exactly "
            "as much as the true one counts as ranked above it.")


def _moment_table(eval_results: Sequence[Mapping[str, Any]]) -> str:
    names = " | ".join(name for _, name in MOMENT_METRICS.values())
    lines = ["Moment retrieval (single video: each caption's moment found in its own video):", "",
             f"| dataset | split | moments from | windows (s) | {names} |", "|" + "---|" * (4 + len(MOMENT_METRICS))]
    for result in eval_results:
        dataset = str(result["dataset"])
        windows = ",".join(f"{scale:g}" for scale in result.get("windows", ()))
        for prefix, label in {"": "window search", **MOMENT_BASELINES}.items():
            keys = [f"{prefix}/{key}" if prefix else key for key in MOMENT_METRICS]
            if any(key in result for key in keys):
                cells = [f"{float(result[key]):.1f}" if key in result else "" for key in keys]
                lines.append(f"| {DATASET_NAMES.get(dataset, dataset)} | {result.get('split', '')} | {label} | "
                             f"{windows if not prefix else ''} | " + " | ".join(cells) + " |")
    return ("\n".join(lines) + "\n\nR@k IoU=t: percent of captions with one of the top k moments (after temporal NMS) "
            "overlapping the annotated moment with temporal IoU >= t; mIoU: mean IoU of the top moment (`tvr eval "
            "--task moments`). Windows of the listed lengths are scored with the model's own similarity. The whole "
            "video and a random window of the annotated moment's length are the trivial baselines († random, "
            "seeded); only the window-search numbers are in the card metadata.")


class ResultTask(NamedTuple):
    """How the card reads one ``task`` of eval results: whether a results dict holds its metrics, its model-index
    entries and its README table."""

    metric_example: str
    has_metrics: Callable[[Mapping[str, Any]], bool]
    model_index: Callable[[Mapping[str, Any]], list[EvalResult]]
    table: Callable[[Sequence[Mapping[str, Any]]], str]


# eval results' "task" -> how the card shows it: one entry per task
RESULT_TASKS = {
    "retrieval": ResultTask("t2v_R@1", lambda result: any(METRIC_KEY.match(key) for key in result),
                            _retrieval_model_index, _retrieval_table),
    "zero-shot-classification": ResultTask("top1", lambda result: any(key in result for key in ZERO_SHOT_METRICS),
                                           _flat_model_index(ZERO_SHOT_TASK, ZERO_SHOT_METRICS), _zero_shot_table),
    "moments": ResultTask("R@1_IoU0.5", lambda result: any(key in result for key in MOMENT_METRICS),
                          _flat_model_index(MOMENT_TASK, MOMENT_METRICS), _moment_table),
}


def result_task(results: Mapping[str, Any], where: str = "eval results") -> ResultTask:
    """The :class:`ResultTask` of an eval-results dict (``retrieval`` when it names no ``task``)."""
    task = results.get("task", "retrieval")
    if task not in RESULT_TASKS:
        raise ValueError(f"{where}: unknown task {task!r}; expected one of {list(RESULT_TASKS)}")
    return RESULT_TASKS[task]


def _training_section(training_config: Mapping[str, Any] | None, training_curves: str | None,
                      training_command: str | None = None) -> str:
    parts = ["## Training"]
    if training_command:
        parts.append(f"Re-run: `{training_command}`")
    if training_config:
        plain = json.loads(json.dumps(dict(training_config), default=str))  # tuples, paths -> YAML
        if not training_command:
            parts.append("The training config (the fields that differ from the defaults); save it as `train.yaml` and "
                         "re-run with `tvr train --config train.yaml`:")
        parts.append("```yaml\n" + yaml.safe_dump(plain, sort_keys=False).rstrip() + "\n```")
    if training_curves:
        parts.append(f"![Training curves]({training_curves})")
    return "\n\n".join(parts)


def dataset_label(name: str, annotation_path: str | os.PathLike | None = None) -> str:
    """How results name a dataset: a benchmark by its reader name (``msrvtt``), your own csv / jsonl file by its
    folder and file name (``my_clips/test.jsonl``) rather than ``generic``."""
    if name not in GENERIC_DATASETS or not annotation_path:
        return name
    path = Path(os.path.abspath(annotation_path))
    return f"{path.parent.name}/{path.name}" if path.suffix else path.name


def _read_config(path: str | os.PathLike) -> dict[str, Any]:
    with open(path, encoding="utf-8") as file:
        config = json.load(file) if os.fspath(path).endswith(".json") else yaml.safe_load(file)
    if not isinstance(config, dict):
        raise ValueError(f"{path}: a training config must be a JSON / YAML mapping")
    return config


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))
