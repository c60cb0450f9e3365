"""Loading a saved tvr model for use: one loader for every command and pipeline that takes a model folder.

A model folder is either a plain folder saved with ``save_pretrained`` (``config.json`` + weights + processor) or a
``peft`` adapter folder (``adapter_config.json`` + ``adapter_model.safetensors``, as DAVRL training and
``tvr convert dual_attention`` write). An adapter is loaded onto the base its ``adapter_config.json`` names
(``base_model_name_or_path``; a relative path is read against the adapter folder, so a moved run still loads), after
checking that the base still has the weights the adapter was saved against (:func:`tvr.peft.check_adapter_base`).
Its processor is the adapter folder's own, else the base's.

Example::

    model, processor = load_model_and_processor("runs/davrl/best")   # base + adapter, eval mode
    merge_adapter("runs/davrl/best", "davrl-merged")                 # a plain model folder for serving
"""

from __future__ import annotations

import argparse
import contextlib
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .peft import ADAPTER_CONFIG_NAME, check_adapter_base, resolve_adapter_base

if TYPE_CHECKING:
    import torch

# an unmarked folder is never taken for tvr's (as in `tvr convert`): config.json + weights may be a downloaded model
MODEL_KIND = "model"


def is_adapter_folder(folder: str | os.PathLike) -> bool:
    """Whether ``folder`` is a ``peft`` adapter folder (holds ``adapter_config.json``)."""
    return (Path(folder) / ADAPTER_CONFIG_NAME).is_file()


def model_config_folder(folder: str | os.PathLike, allow_base_change: bool = False) -> Path:
    """The folder whose ``config.json`` describes the model of ``folder``: the folder itself, or an adapter's base.

    Raises:
        FileNotFoundError: ``folder`` is neither a model nor an adapter folder, or the adapter's base is missing.
        ValueError: the model is an image-text model (CLIP, SigLIP, ...), not a tvr retrieval model; the
            adapter's base has other weights than it was saved against (``allow_base_change`` skips that check).
    """
    folder = Path(folder)
    if is_adapter_folder(folder):
        base = resolve_adapter_base(folder)
        if not os.path.isdir(base):
            raise ValueError(f"adapter {os.fspath(folder)!r}: its base {base!r} is not a local folder; tvr loads "
                             "adapters onto a local base (download it, or `tvr merge` the adapter where it is)")
        check_adapter_base(folder, base, allow_base_change)
        config_folder = Path(base)
    else:
        config_folder = folder
    if not (config_folder / "config.json").is_file():
        raise FileNotFoundError(
            f"model folder {os.fspath(folder)!r} has no config.json{'' if folder.is_dir() else ' (it does not exist)'}: "
            f"expected a folder saved with save_pretrained (model + processor) or a peft adapter folder "
            f"({ADAPTER_CONFIG_NAME})")
    check_retrieval_model(config_folder, folder)
    return config_folder


def check_retrieval_model(config_folder: str | os.PathLike, given: str | os.PathLike | None = None) -> None:
    """Refuse a folder whose ``config.json`` is not a tvr method's (a plain CLIP / SigLIP folder), naming how to build
    a tvr model from it."""
    import json

    path = Path(config_folder) / "config.json"
    try:
        model_type = json.loads(path.read_text(encoding="utf-8")).get("model_type")
    except ValueError as error:
        raise ValueError(f"{os.fspath(path)!r} is not valid JSON ({error}): the file is truncated or damaged") from None
    message = not_a_retrieval_model(model_type, given or config_folder)
    if message:
        raise ValueError(message)


def not_a_retrieval_model(model_type: str | None, given: str | os.PathLike) -> str | None:
    """Why a model of ``model_type`` (from ``given``) is not a tvr retrieval model, or ``None`` when it is one."""
    from .methods import METHODS

    if model_type in METHODS:
        return None
    given = os.fspath(given)
    what, where = (f"model folder {given!r}", given) if given else ("the model", "IMAGE_TEXT_MODEL")
    return (f"{what} is a {model_type!r} model, not a tvr retrieval model (model_type one of "
            f"{', '.join(sorted(METHODS))})"
            + (": it is an image-text model; build a retrieval model from it with `tvr train --from-clip "
               f"{where}` or `Model.from_image_text_model({where!r})` (e.g. tvr.CLIP4ClipModel)"
               if _is_image_text(model_type) else ""))


def _is_image_text(model_type: str | None) -> bool:
    from .modeling.towers import TOWER_FAMILIES

    return model_type in TOWER_FAMILIES or model_type in ("clip", "siglip", "siglip2", "metaclip_2", "chinese_clip")


def load_model(folder: str | os.PathLike, device: str | torch.device | None = None, allow_base_change: bool = False,
               **from_pretrained_kwargs):
    """The model of a plain or adapter folder, in eval mode on ``device`` (default: not moved).

    An adapter folder gives a ``peft.PeftModel`` (its base with the adapter; every method of the tvr model contract
    reaches the base through it); ``from_pretrained_kwargs`` (e.g. ``dtype``) go to the base's ``from_pretrained``.

    Raises:
        see :func:`model_config_folder`; ``ValueError`` for damaged weights, naming the file.
    """
    from transformers import AutoModel

    from . import methods  # noqa: F401  (registers the tvr models and processors with the Auto classes)

    config_folder = model_config_folder(folder, allow_base_change)
    model = _from_pretrained(AutoModel, config_folder, **from_pretrained_kwargs)
    if config_folder != Path(folder):
        from peft import PeftModel

        model = _from_pretrained(PeftModel, folder, base=model)
        model.peft_config["default"].base_model_name_or_path = os.fspath(config_folder)  # resolved, if saved again
    if device is not None:
        model = model.to(device)
    return model.eval()


@contextlib.contextmanager
def naming_damaged_weights(folder: str | os.PathLike, what: str = "model folder") -> Iterator[None]:
    """Turn safetensors' errors while loading ``folder`` (they name no file) into one line naming the folder."""
    try:
        yield
    except Exception as error:  # noqa: BLE001  (safetensors' and transformers' errors do not name the file)
        if "safetensors" not in f"{type(error).__module__} {error}".lower():
            raise
        names = ", ".join(sorted(path.name for path in Path(folder).glob("*.safetensors"))) or "*.safetensors"
        raise ValueError(f"{what} {os.fspath(folder)!r}: its weights ({names}) could not be read, the file is "
                         f"truncated or damaged ({type(error).__name__}: {error}); save the model again") from None


def _from_pretrained(cls, folder, base=None, **kwargs):
    with naming_damaged_weights(folder):
        return cls.from_pretrained(folder, **kwargs) if base is None else cls.from_pretrained(base, folder, **kwargs)


def load_processor(folder: str | os.PathLike, config, processor: str | os.PathLike | None = None):
    """The processor of a plain or adapter folder: ``processor`` when given (a processor folder, or a tokenizer folder
    / Hub id), else the folder's own, else (an adapter) its base's.

    Raises:
        FileNotFoundError: neither folder holds a processor, saying what to pass.
    """
    from .processing.model_processor import PROCESSOR_FILE, load_processor_for_model

    if processor is None and is_adapter_folder(folder) and not (Path(folder) / PROCESSOR_FILE).is_file():
        base = resolve_adapter_base(folder)
        if (Path(base) / PROCESSOR_FILE).is_file():
            return load_processor_for_model(base, config, None)
    return load_processor_for_model(folder, config, processor)


def load_model_and_processor(folder: str | os.PathLike, device: str | torch.device | None = None,
                             processor: str | os.PathLike | None = None, allow_base_change: bool = False):
    """``(model, processor)`` of a plain model folder or an adapter folder, the model in eval mode on ``device``
    (default CUDA when available); see :func:`load_model` and :func:`load_processor`. The tokenizer must fit the
    model.

    Example::

        model, processor = load_model_and_processor("runs/davrl/best")  # adapter: base + adapter
    """
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_model(folder, device, allow_base_change)
    return model, load_processor(folder, model.config, processor)


class AutoRetrievalModel:
    """What tvr's pipelines load a model with (their registered ``pt_model``): ``from_pretrained`` of a local plain or
    adapter folder is :func:`load_model` (so ``pipeline("video-text-retrieval", model=ADAPTER_DIR)`` checks the base
    and finds the processor in the adapter folder); a Hub id goes to ``AutoModel``. The folder loaded from is kept
    as ``model.tvr_model_dir``."""

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args, **kwargs):
        from transformers import AutoModel

        if not os.path.isdir(pretrained_model_name_or_path):
            from transformers.utils import find_adapter_config_file

            hub = {key: kwargs[key] for key in ("revision", "token") if kwargs.get(key) is not None}
            if find_adapter_config_file(pretrained_model_name_or_path, **hub) is None:
                return AutoModel.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
            from huggingface_hub import snapshot_download  # a pushed adapter repo: adapter, processor and base/

            pretrained_model_name_or_path = snapshot_download(pretrained_model_name_or_path, **hub)
        dtype = kwargs.get("dtype")
        model = load_model(pretrained_model_name_or_path, **({"dtype": dtype} if dtype not in (None, "auto") else {}))
        model.tvr_model_dir = os.fspath(pretrained_model_name_or_path)
        return model


def merge_adapter(adapter_dir: str | os.PathLike, output_dir: str | os.PathLike, allow_base_change: bool = False,
                  processor: str | os.PathLike | None = None) -> Path:
    """Merge an adapter into its base and write a plain model folder (``save_pretrained`` + processor): what every
    tvr command, ``AutoModel`` and the pipelines load without ``peft``. The output folder is claimed first (an
    occupied folder tvr did not write as a model is refused) and written through a temporary folder.

    The processor saved is ``processor`` (a processor or tokenizer folder / Hub id), else the adapter's or its
    base's; with none, the model is merged alone, with a warning.

    Returns:
        ``output_dir``.

    Raises:
        ValueError: ``adapter_dir`` is not an adapter folder; see also :func:`load_model`,
            :func:`tvr.utils.output_dir.claim_output_dir`.
    """
    from .utils.atomic import atomic_directory
    from .utils.output_dir import claim_output_dir

    if not is_adapter_folder(adapter_dir):
        raise ValueError(f"{os.fspath(adapter_dir)!r} is not a peft adapter folder (no {ADAPTER_CONFIG_NAME}): "
                         "there is nothing to merge; it can be used as it is")
    base = resolve_adapter_base(adapter_dir)
    claim_output_dir(output_dir, MODEL_KIND, inputs=[adapter_dir, base])
    model = load_model(adapter_dir, "cpu", allow_base_change)
    try:
        processor = load_processor(adapter_dir, model.config, processor)
    except FileNotFoundError as error:  # a converted folder written without --tokenizer: the model merges all the same
        warnings.warn(f"{error}; merging the model without a processor (give one to tvr eval / index as --processor)",
                      stacklevel=2)
        processor = None
    merged = model.merge_and_unload()
    with atomic_directory(output_dir, MODEL_KIND, [adapter_dir, base]) as staging:
        merged.save_pretrained(staging)
        if processor is not None:
            processor.save_pretrained(staging)
    return Path(output_dir)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """``tvr merge ADAPTER_DIR OUTPUT_DIR``."""
    parser = subparsers.add_parser(
        "merge",
        description="Merge a peft adapter folder (e.g. a DAVRL run's best/ or a converted DAVRL folder) into its "
        "base (peft merge_and_unload) and save a plain model folder with its processor: what tvr eval / index / app "
        "/ space, the pipelines and AutoModel load without peft, with the same scores.")
    parser.add_argument("adapter_dir", help="adapter folder (adapter_config.json + adapter_model.safetensors)")
    parser.add_argument("output_dir", help="new (or empty) folder for the merged model")
    parser.add_argument("--processor", default=None,
                        help="processor folder, or tokenizer folder / Hub id, to save with the merged model (default: "
                             "the adapter folder's, else its base's)")
    parser.add_argument("--allow-base-change", action="store_true",
                        help="merge even if the base's weights changed since the adapter was saved")
    parser.set_defaults(func=_run_merge)
    return parser


def _run_merge(args: argparse.Namespace) -> int:
    output = merge_adapter(args.adapter_dir, args.output_dir, args.allow_base_change, args.processor)
    print(f"merged {args.adapter_dir} into its base: {output}")
    return 0


__all__ = ["AutoRetrievalModel", "add_parser", "check_retrieval_model", "is_adapter_folder", "load_model",
           "load_model_and_processor", "load_processor", "merge_adapter", "model_config_folder",
           "not_a_retrieval_model"]
