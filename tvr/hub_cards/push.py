"""Upload a tvr model (weights, processor, card) to the Hugging Face Hub in one commit."""

from __future__ import annotations

import fnmatch
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from huggingface_hub import CommitOperationAdd, HfApi, ModelCard

from .card import build_model_card

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
            ``tvr card``), or a model object, saved here with ``processor``.
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
        if card is None and "README.md" not in files:
            card = build_model_card(json.loads((folder / "config.json").read_text(encoding="utf-8")), repo_id)
        operations = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name))
            for name in files
            if not (name == "README.md" and card is not None)
        ]
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
