"""Test-wide settings: offline, small thread count, a private HF cache."""

import os
import tempfile

_HF_HOME = tempfile.mkdtemp(prefix="tvr-hf-home-")
os.environ.update(
    HF_HUB_OFFLINE="1",
    HF_DATASETS_OFFLINE="1",
    HF_EVALUATE_OFFLINE="1",
    TRANSFORMERS_OFFLINE="1",
    HF_HOME=_HF_HOME,
    TOKENIZERS_PARALLELISM="false",
)
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pathlib  # noqa: E402

import pytest  # noqa: E402

FIXTURES = pathlib.Path(__file__).parent / "fixtures"
SHARED_ANNOTATIONS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "annotations"


@pytest.fixture
def fixtures_dir() -> pathlib.Path:
    return FIXTURES


@pytest.fixture
def shared_annotations() -> pathlib.Path:
    """Real annotation files (third-party, never copied into the repo); tests skip when absent."""
    if not SHARED_ANNOTATIONS.is_dir():
        pytest.skip(f"real annotation files not found at {SHARED_ANNOTATIONS}")
    return SHARED_ANNOTATIONS
