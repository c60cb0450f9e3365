"""``tvr space``: write a ready-to-push Hugging Face Space (Gradio SDK) that runs ``tvr app`` for a model, and
optionally upload it.

The folder holds ``README.md`` (the Space's metadata: ``sdk: gradio``, its version, ``app_file: app.py``, the model),
``app.py`` (the same app as ``tvr app``), ``requirements.txt`` (``tvr[app]`` pinned to this version) and what the
app serves: the model folder when a local one is given (``model/``; a Hub id is loaded from the Hub), and the videos
(``videos/``) with their index (``index/``, paths made relative to the Space) or indexed when the Space starts.

Example::

    tvr space runs/clip4clip/best my_space/ --index my_videos.index    # index + its videos copied
    tvr space you/clip4clip my_space/ --videos clips/ --push-to-hub you/clip4clip-demo
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

APP_FILE = "app.py"
APP_TEMPLATE = '''"""A tvr Space (the app of `tvr app`): text search over videos, zero-shot labels and captions for an
uploaded video."""

from tvr.app.demo import RetrievalDemo
from tvr.app.ui import launch

demo = RetrievalDemo({model!r}, index={index!r}, videos={videos!r})

if __name__ == "__main__":
    launch(demo)  # host / port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (Spaces set them)
'''


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "space", help="write a Hugging Face Space (Gradio) running `tvr app` for a model, optionally push it",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="folder saved with save_pretrained (copied into the Space), or a Hub id")
    parser.add_argument("output_dir", help="folder to write the Space into (created; must be empty if it exists)")
    gallery = parser.add_mutually_exclusive_group()
    gallery.add_argument("--index", default=None, help="folder written by `tvr index`: it and its videos are copied")
    gallery.add_argument("--videos", default=None, help="folder of videos, copied and indexed when the Space starts")
    parser.add_argument("--title", default=None, help="the Space's title (default: from the model)")
    parser.add_argument("--push-to-hub", metavar="SPACE_ID", default=None, help="upload the folder to this Space")
    parser.add_argument("--private", action="store_true", help="create the Space private")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    write_space(args.model, args.output_dir, index=args.index, videos=args.videos, title=args.title)
    print(f"wrote a Space into {args.output_dir} (run it locally: cd {args.output_dir} && python {APP_FILE})")
    if args.push_to_hub:
        commit = push_space(args.output_dir, args.push_to_hub, private=args.private or None)
        print(f"pushed to {getattr(commit, 'commit_url', None) or args.push_to_hub}")
        print(f"link it from the model card: tvr card MODEL_DIR --space {args.push_to_hub}")
    return 0


def write_space(model: str | os.PathLike, output_dir: str | os.PathLike, index: str | os.PathLike | None = None,
                videos: str | os.PathLike | None = None, title: str | None = None) -> Path:
    """Write the Space folder (see the module doc) and return its path.

    Args:
        model: a local model folder (copied to ``model/``) or a Hub model id (loaded by the Space).
        output_dir: the Space folder; created, and must be empty if it exists.
        index: a ``tvr index`` folder: its videos are copied to ``videos/`` and the index is re-saved to ``index/``
            with paths relative to the Space. Needs the model locally (to reopen the index).
        videos: a folder of videos, copied to ``videos/``; the Space indexes them when it starts.
        title: the Space's title.
    """
    from .. import __version__

    if index is not None and videos is not None:
        raise ValueError("give an index or a video folder, not both")
    output = Path(output_dir)
    if output.exists() and any(output.iterdir()):
        raise FileExistsError(f"{os.fspath(output)!r} is not empty: give a new or empty folder for the Space")
    local_model = os.path.isdir(model)
    if local_model and not os.path.isfile(os.path.join(model, "config.json")):
        raise FileNotFoundError(f"model folder {os.fspath(model)!r} has no config.json: expected a folder saved with "
                                "save_pretrained (model + processor), or a Hub id")
    output.mkdir(parents=True, exist_ok=True)
    model_ref = "model" if local_model else os.fspath(model)
    if local_model:
        shutil.copytree(model, output / "model", ignore=shutil.ignore_patterns("checkpoint*", ".*"))
    index_ref = videos_ref = None
    if index is not None:
        _copy_index(model, index, output)
        index_ref = "index"
    elif videos is not None:
        from ..retrieval import list_video_files

        root = Path(videos)
        for path in list_video_files(root):
            target = output / "videos" / Path(path).relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        videos_ref = "videos"
    (output / APP_FILE).write_text(APP_TEMPLATE.format(model=model_ref, index=index_ref, videos=videos_ref),
                                   encoding="utf-8")
    (output / "requirements.txt").write_text(f"tvr[app]=={__version__}\n", encoding="utf-8")
    (output / "README.md").write_text(space_readme(os.fspath(model), local_model, title), encoding="utf-8")
    return output


def space_readme(model: str, local_model: bool, title: str | None = None) -> str:
    """The Space's README: Gradio SDK metadata (pinned to the installed gradio) and a short description."""
    import yaml

    try:
        from importlib.metadata import version

        sdk_version = version("gradio")
    except Exception:  # noqa: BLE001  (gradio not installed here: the Space still declares its SDK)
        sdk_version = None
    name = Path(model).name if local_model else model
    metadata: dict[str, Any] = {
        "title": (title or f"{name} video search")[:60],
        "emoji": "🎬",
        "colorFrom": "blue",
        "colorTo": "indigo",
        "sdk": "gradio",
        **({"sdk_version": sdk_version} if sdk_version else {}),
        "app_file": APP_FILE,
        "pinned": False,
        "tags": ["tvr", "video-text-retrieval", "zero-shot-video-classification"],
    }
    if not local_model:
        metadata["models"] = [model]
    source = "the model folder `model/`" if local_model else f"[{model}](https://huggingface.co/{model})"
    return (f"---\n{yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True)}---\n\n"
            f"# {metadata['title']}\n\nText-to-video search, zero-shot labels and best captions for an uploaded "
            f"video with {source}, made with `tvr space` (the app of `tvr app`).\n")


def push_space(folder: str | os.PathLike, space_id: str, private: bool | None = None, token: str | None = None,
               api: Any = None, commit_message: str = "Upload tvr Space"):
    """Create the Space ``space_id`` (Gradio SDK) if needed and upload ``folder`` to it in one commit.

    Args:
        api: the Hub client; default ``huggingface_hub.HfApi(token=token)``.

    Returns:
        The ``CommitInfo`` of the upload.
    """
    from huggingface_hub import HfApi

    if not os.path.isfile(os.path.join(folder, APP_FILE)):
        raise FileNotFoundError(f"{os.fspath(folder)!r} has no {APP_FILE}: write the Space with `tvr space` first")
    api = api or HfApi(token=token)
    api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    return api.upload_folder(folder_path=os.fspath(folder), repo_id=space_id, repo_type="space",
                             commit_message=commit_message)


def _copy_index(model: str | os.PathLike, index_dir: str | os.PathLike, output: Path) -> None:
    """Copy an index's videos to ``output/videos`` and re-save the index to ``output/index`` with those relative
    paths (what the Space opens from its own folder)."""
    from ..retrieval import VideoIndex, load_model_and_processor

    if not os.path.isdir(model):
        raise ValueError("--index needs the model as a local folder (it reopens the index); give --videos with a "
                         "Hub id")
    loaded, processor = load_model_and_processor(model, device="cpu")
    index = VideoIndex.load(index_dir, model=loaded, processor=processor)
    root = Path(os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path in index.paths]))
    paths = []
    for path in index.paths:
        relative = Path("videos") / Path(os.path.abspath(path)).relative_to(root)
        (output / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, output / relative)
        paths.append(relative.as_posix())
    VideoIndex(loaded, processor, paths, index.encoding, index.index_type, index.nlist, index.nprobe,
               index.faiss_index).save(output / "index")
