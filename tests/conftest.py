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

# before any test module imports decord: decord's wheel links NVBLAS, which takes over the BLAS calls of libraries
# loaded after it (torch's matmuls, FAISS's searches) and crashes them without a GPU; tvr itself always loads torch
# first (through transformers), a test file that imports decord at its top must not change that
import torch  # noqa: E402, F401

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
