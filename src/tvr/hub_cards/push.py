"""Upload a tvr model (weights, processor, card) to the Hugging Face Hub in one commit."""

from __future__ import annotations

import fnmatch
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi, ModelCard

from ..peft import ADAPTER_CONFIG_NAME
from ..processing.model_processor import PROCESSOR_FILE
from ..utils.output_dir import MARKER
from .card import build_model_card

HUB_BASE_DIR = "base"  # where a pushed adapter's base goes in its repo

# files accelerate's save_state writes: training state, not part of the model
TRAINING_STATE_PATTERNS = (
    "optimizer*.bin",
    "scheduler*.bin",
    "sampler*.bin",
    "scaler*.pt",
    "random_states*.pkl",
    "custom_checkpoint*.pkl",
)


def files_to_upload(folder: str | os.PathLike) -> list[str]:
    """The files of a model folder that go to the Hub: top-level files (checkpoint sub-folders stay local) except
    training state (:data:`TRAINING_STATE_PATTERNS`), sorted."""
    return sorted(
        path.name
        for path in Path(folder).iterdir()
        if path.is_file() and not any(fnmatch.fnmatch(path.name, pattern) for pattern in TRAINING_STATE_PATTERNS)
    )


def adapter_base_files(folder: str | os.PathLike) -> dict[str, str]:
    """For a ``peft`` adapter folder whose base is a local folder: ``{name: path}`` of what goes to the Hub repo's
    ``base/`` (the base's files, and the adapter's processor files where the base has none), so the pushed repo loads
    on its own; ``{}`` for a model folder or an adapter whose base is a Hub id."""
    from ..peft import resolve_adapter_base

    folder = Path(folder)
    if not (folder / ADAPTER_CONFIG_NAME).is_file():
        return {}
    base = Path(resolve_adapter_base(folder))
    if not base.is_dir():
        return {}
    files = {name: str(base / name) for name in files_to_upload(base) if name != MARKER}
    if PROCESSOR_FILE not in files:
        files.update({name: str(folder / name) for name in files_to_upload(folder)
                      if name == PROCESSOR_FILE or name.startswith(("tokenizer", "vocab", "merges", "special_tokens"))})
    return files


def push_to_hub(
    folder_or_model: str | os.PathLike | Any,
    repo_id: str,
    processor: Any = None,
    card: ModelCard | None = None,
    commit_message: str = "Upload tvr model",
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    api: HfApi | None = None,
):
    """Create ``repo_id`` if needed and upload the model, its processor and its card in one commit.

    Args:
        folder_or_model: a folder saved with ``save_pretrained`` (model + processor, and usually ``README.md`` from
            ``tvr card``), or a model object, saved here with ``processor``. A ``peft`` adapter folder (DAVRL) goes
            with its local base, uploaded to ``base/`` (:func:`adapter_base_files`), so the repo loads on its own.
        repo_id: e.g. ``"you/clip4clip-msrvtt"``.
        processor: the processor to save with a model object (a folder already holds its processor files).
        card: the model card to upload as ``README.md``; default the folder's ``README.md``, else a card without
            results built from the config.
        commit_message, private, token, revision, create_pr: as in ``huggingface_hub.HfApi``.
        api: the Hub client; default ``HfApi(token=token)``.

    Returns:
        The ``CommitInfo`` of the upload.
    """
    api = api or HfApi(token=token)
    with tempfile.TemporaryDirectory() as staging:
        if isinstance(folder_or_model, (str, os.PathLike)):
            if processor is not None:
                raise ValueError("processor is saved with a model object; a folder must already hold its files")
            folder = Path(folder_or_model)
            if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
                raise FileNotFoundError(f"{folder}/config.json not found: expected a folder saved with save_pretrained "
                                        "(or a peft adapter folder)")
        else:
            folder = Path(staging)
            folder_or_model.save_pretrained(folder)
            if processor is not None:
                processor.save_pretrained(folder)
        files = files_to_upload(folder)
        base_files = adapter_base_files(folder)
        if card is None and "README.md" not in files:
            config_folder = folder if not base_files else Path(base_files["config.json"]).parent
            card = build_model_card(json.loads((config_folder / "config.json").read_text(encoding="utf-8")), repo_id)
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name))
            for name in files
            if not (name == "README.md" and card is not None) and not (base_files and name == ADAPTER_CONFIG_NAME)
        ]
        if base_files:  # the base goes along, in base/, and the adapter points to it there
            operations += [CommitOperationAdd(path_in_repo=f"{HUB_BASE_DIR}/{name}", path_or_fileobj=path)
                           for name, path in base_files.items()]
            adapter_config = json.loads((folder / ADAPTER_CONFIG_NAME).read_text(encoding="utf-8"))
            adapter_config["base_model_name_or_path"] = f"./{HUB_BASE_DIR}"
            operations.append(CommitOperationAdd(path_in_repo=ADAPTER_CONFIG_NAME, path_or_fileobj=(
                json.dumps(adapter_config, indent=2, sort_keys=True) + "\n").encode("utf-8")))
        if card is not None:
            operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode("utf-8")))
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        return api.create_commit(
            repo_id,
            operations=operations,
            commit_message=commit_message,
            revision=revision,
            create_pr=create_pr,
            repo_type="model",
        )
