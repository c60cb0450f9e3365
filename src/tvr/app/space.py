"""``tvr space``: write a ready-to-push Hugging Face Space (Gradio SDK) that runs ``tvr app`` for a model, and
optionally upload it.

The folder holds ``README.md`` (the Space's metadata: ``sdk: gradio``, its version, ``app_file: app.py``, the model),
``app.py`` (the same app as ``tvr app``), tvr itself as a wheel built from the installed source
(``tvr-<version>-py3-none-any.whl``: no package registry has tvr), ``requirements.txt`` (tvr's third-party
requirements with their ranges) and what the app serves: the model folder when a local one is given (``model/``; a
Hub id is loaded from the Hub), and the videos (``videos/``) with their index (``index/``, paths made relative to the
Space) or indexed when the Space starts.

The Space builder installs ``requirements.txt`` before the Space's files are copied in (only that file is mounted),
so the wheel cannot be listed there: ``app.py`` installs it with pip (``--no-deps --no-index``) when it starts in an
environment without tvr. ``tvr space`` rewrites a Space folder it wrote; any other non-empty folder is refused.

Example::

    tvr space runs/clip4clip/best my_space/ --index my_videos.index    # index + its videos copied
    tvr space you/clip4clip my_space/ --videos clips/ --push-to-hub you/clip4clip-demo
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from ..loading import is_adapter_folder, merge_adapter
from ..utils.atomic import atomic_directory
from ..utils.output_dir import MARKER
from .cli import check_model_argument

APP_FILE = "app.py"
SPACE_KIND = "space"
# what tvr 0.1 wrote into a Space folder (recognised as its own before the output marker existed)
SPACE_FILES = (APP_FILE, "README.md", "requirements.txt", "model", "videos", "index", "tvr-*.whl")
# what a wheel of tvr is built from: the files setup.cfg packages, and the metadata files it reads
SOURCE_FILES = ("pyproject.toml", "setup.cfg", "setup.py", "README.md", "LICENSE", "src")
APP_TEMPLATE = '''"""A tvr Space (the app of `tvr app`): text search over videos, zero-shot labels and captions for an
uploaded video."""

import glob
import importlib
import importlib.util
import os
import site
import subprocess
import sys

if importlib.util.find_spec("tvr") is None:
    # no registry has tvr: install the wheel bundled with this Space (its requirements are in requirements.txt)
    wheel = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "tvr-*.whl")))[-1]
    print(f"installing {{os.path.basename(wheel)}}", flush=True)
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", wheel])
    importlib.invalidate_caches()
    if importlib.util.find_spec("tvr") is None and os.path.isdir(site.getusersitepackages()):
        site.addsitedir(site.getusersitepackages())  # pip installed it for the user: a folder new to sys.path

from tvr.app.demo import RetrievalDemo  # noqa: E402
from tvr.app.ui import launch  # noqa: E402

demo = RetrievalDemo({model!r}, index={index!r}, videos={videos!r})

if __name__ == "__main__":
    launch(demo)  # host / port from GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (Spaces set them)
'''


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "space",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", help="folder saved with save_pretrained (copied into the Space), or a Hub id")
    parser.add_argument("output_dir", help="folder to write the Space into (created; a non-empty folder must be a "
                        "Space tvr wrote, which is replaced)")
    gallery = parser.add_mutually_exclusive_group()
    gallery.add_argument("--index", default=None, help="folder written by `tvr index`: it and its videos are copied")
    gallery.add_argument("--videos", default=None, help="folder of videos, copied and indexed when the Space starts")
    parser.add_argument("--title", default=None,
                        help="the Space's title (default: 'tvr video search: <model name from its card>')")
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
        output_dir: the Space folder; created, or a Space folder tvr wrote (replaced whole); any other non-empty
            folder, or one inside the model, index or video folder, is refused.
        index: a ``tvr index`` folder: its videos are copied to ``videos/`` and the index is re-saved to ``index/``
            with paths relative to the Space. Needs the model locally (to reopen the index).
        videos: a folder of videos, copied to ``videos/``; the Space indexes them when it starts.
        title: the Space's title (default: ``"tvr video search: <model name>"``).
    """
    if index is not None and videos is not None:
        raise ValueError("give an index or a video folder, not both")
    local_model = check_model_argument(model)
    if index is not None and not local_model:
        raise ValueError("--index needs the model as a local folder (it reopens the index); give --videos with a "
                         "Hub id")
    inputs = [path for path in (model if local_model else None, index, videos) if path is not None]
    with atomic_directory(output_dir, kind=SPACE_KIND, inputs=inputs, legacy=SPACE_FILES) as output:
        model_ref = "model" if local_model else os.fspath(model)
        if local_model and is_adapter_folder(model):  # a Space serves a plain model: the adapter merged into its base
            merge_adapter(model, output / "model")
        elif local_model:
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
        wheel = build_tvr_wheel(output)
        (output / "requirements.txt").write_text("".join(f"{line}\n" for line in wheel_requirements(wheel)),
                                                 encoding="utf-8")
        (output / "README.md").write_text(space_readme(os.fspath(model), local_model, title), encoding="utf-8")
    return Path(output_dir)


def tvr_source() -> Path:
    """The source tree of the running tvr (a clone installed with ``pip install -e``, or on ``PYTHONPATH``).

    Raises:
        FileNotFoundError: tvr was installed from a wheel (no source tree next to the package).
    """
    import tvr

    root = Path(tvr.__file__).resolve().parents[2]  # CLONE/src/tvr/__init__.py
    if not (root / "setup.cfg").is_file() or not (root / "pyproject.toml").is_file():
        raise FileNotFoundError(f"tvr space bundles tvr as a wheel built from its source, but {os.fspath(root)!r} "
                                "(where tvr is installed) holds no setup.cfg: run it from a clone of tvr "
                                "(pip install -e CLONE), or copy a Space's tvr-*.whl into yours")
    return root


def build_tvr_wheel(destination: str | os.PathLike) -> Path:
    """Build a wheel of the running tvr from its source (:func:`tvr_source`) into ``destination``, offline, with
    setuptools' PEP 517 backend (a copy of the source is built, so the clone gets no ``build/`` folder).

    Returns:
        The wheel's path (``tvr-<version>-py3-none-any.whl``).

    Raises:
        OSError: the build failed (its last output lines are in the message).
    """
    source = tvr_source()
    with tempfile.TemporaryDirectory(prefix="tvr-wheel-") as scratch:
        copy = Path(scratch) / "src"
        copy.mkdir()
        for name in SOURCE_FILES:
            if (source / name).is_dir():
                shutil.copytree(source / name, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
            elif (source / name).is_file():
                shutil.copy2(source / name, copy / name)
        build = subprocess.run(
            [sys.executable, "-c", "import sys; from setuptools import build_meta; "
             "print(build_meta.build_wheel(sys.argv[1]))", os.fspath(Path(destination).resolve())],
            cwd=copy, capture_output=True, text=True)
    if build.returncode != 0:
        tail = " | ".join((build.stderr or build.stdout).strip().splitlines()[-3:])
        raise OSError(f"could not build a wheel of tvr from {os.fspath(source)!r} (needs setuptools>=64 and wheel): "
                      f"{tail}")
    return Path(destination) / build.stdout.strip().splitlines()[-1]


def wheel_requirements(wheel: str | os.PathLike, extras: tuple[str, ...] = ("app",)) -> list[str]:
    """The third-party requirements (with their version ranges) that ``wheel``'s metadata declares, those of
    ``extras`` included: what the Space installs from the registry."""
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as archive:
        metadata = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode("utf-8").split("\n\n", 1)[0].splitlines()
    requirements = []
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        requirement = Requirement(line.split(":", 1)[1].strip())
        marker, requirement.marker = requirement.marker, None
        if marker is None or any(marker.evaluate({"extra": extra}) for extra in extras):
            requirements.append(str(requirement))
    return requirements


def model_title(model: str, local_model: bool) -> str:
    """``"tvr video search: <name>"``: the name its model card gives (``model_name``), else the card's naming rule
    (the run folder above ``best`` / ``final``, or the Hub id)."""
    import yaml

    from ..hub_cards.card import card_name

    name = None
    card = Path(model) / "README.md"
    if local_model and card.is_file():
        text = card.read_text(encoding="utf-8")
        if text.startswith("---\n"):
            try:
                name = (yaml.safe_load(text.split("---\n", 2)[1]) or {}).get("model_name")
            except yaml.YAMLError:
                name = None
    name = name or (card_name(os.path.abspath(model)) if local_model else model)
    return f"tvr video search: {name}"


def space_readme(model: str, local_model: bool, title: str | None = None) -> str:
    """The Space's README: Gradio SDK metadata (pinned to the installed gradio) and a short description."""
    import yaml

    try:
        from importlib.metadata import version

        sdk_version = version("gradio")
    except Exception:  # noqa: BLE001  (gradio not installed here: the Space still declares its SDK)
        sdk_version = None
    metadata: dict[str, Any] = {
        "title": (title or model_title(model, local_model))[:60],
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
            f"video with {source}, made with `tvr space` (the app of `tvr app`).\n\n"
            "tvr itself is bundled as `tvr-*.whl` (no package registry has it): `app.py` installs it when it starts "
            "in an environment without tvr; `requirements.txt` lists tvr's third-party requirements. To run the Space "
            "locally: `pip install -r requirements.txt && python app.py`.\n")


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
                             commit_message=commit_message, ignore_patterns=[MARKER])


def _copy_index(model: str | os.PathLike, index_dir: str | os.PathLike, output: Path) -> None:
    """Copy an index's videos to ``output/videos`` and re-save the index to ``output/index`` with those relative
    paths (what the Space opens from its own folder)."""
    from ..retrieval import VideoIndex, load_model_and_processor

    loaded, processor = load_model_and_processor(model, device="cpu")
    index = VideoIndex.load(index_dir, model=loaded, processor=processor)
    root = Path(os.path.commonpath([os.path.dirname(os.path.abspath(path)) for path in index.paths]))
    paths = []
    for path in index.paths:
        relative = Path("videos") / Path(os.path.abspath(path)).relative_to(root)
        (output / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, output / relative)
        paths.append(relative.as_posix())
    # the same FAISS index under the same row ids (a Milvus index's vectors are indexed anew: a Space is one folder)
    VideoIndex(loaded, processor, paths, index.encoding, index.index_type, index.nlist, index.nprobe,
               store=index.store if index.faiss_index is not None else None, row_ids=index.row_ids
               ).save(output / "index")
