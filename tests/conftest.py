"""Shared fixtures. Every test session writes its artifacts to a fresh temporary data root, so
tests never read a developer's cache and a CI run always starts cold."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# Set before any helpers import reads it; papermill kernels inherit the environment.
_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="sid-tests-"))
os.environ.setdefault("SID_DATA_ROOT", str(_SESSION_ROOT / "data"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_root() -> Path:
    return Path(os.environ["SID_DATA_ROOT"])


@pytest.fixture
def synthetic_dataset():
    from helpers.data.synthetic import make_synthetic_dataset

    return make_synthetic_dataset()


@pytest.fixture(scope="session")
def smoke_cfg():
    from helpers.config import load_profile

    return load_profile("smoke")
