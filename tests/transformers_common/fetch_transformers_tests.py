"""Fetch the common test mixins of the installed transformers (its sdist's `tests/*.py`) into a cache beside the venv.

`make test` runs this before pytest; it downloads the sdist of exactly the installed version with pip (a package
registry, as every dependency), extracts only the top-level `tests/*.py` as the package `transformers_tests` and adds
tvr's stubs for the few modules the sdist lacks (`stubs/`). Nothing fetched is committed. Run again: no-op.

    python tests/transformers_common/fetch_transformers_tests.py [CACHE_DIR]   # default: .venv/transformers-tests
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import transformers

HERE = Path(__file__).resolve().parent
DEFAULT_CACHE = HERE.parent.parent / ".venv" / "transformers-tests"


def cache_dir(root: Path = DEFAULT_CACHE) -> Path:
    """Where the installed transformers version's tests live: `<root>/<version>`."""
    return root / transformers.__version__


def fetch(root: Path = DEFAULT_CACHE) -> Path:
    target = cache_dir(root)
    if (target / "transformers_tests" / "test_modeling_common.py").is_file():
        return target
    version = transformers.__version__
    with tempfile.TemporaryDirectory() as download:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             f"transformers=={version}", "--dest", download],
            check=True,
        )
        (archive,) = Path(download).glob("transformers-*.tar.gz")
        staging = Path(tempfile.mkdtemp(dir=root.parent if root.parent.exists() else None))
        package = staging / "transformers_tests"
        package.mkdir()
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                parts = Path(member.name).parts
                if len(parts) == 3 and parts[1] == "tests" and parts[2].endswith(".py") and member.isfile():
                    (package / parts[2]).write_bytes(tar.extractfile(member).read())
        (package / "__init__.py").touch()
        shutil.copytree(HERE / "stubs", staging, dirs_exist_ok=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # complete or absent: an interrupted fetch leaves no half folder behind
    return target


if __name__ == "__main__":
    print(fetch(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_CACHE))
