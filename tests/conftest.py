"""Shared fixtures. Tests that need the shared datasets or a bundled model fail loudly (never skip)
when they are missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from personalign.paths import shared_data_dir

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared datasets folder (``../shared/data``); a missing folder is a test failure."""
    path = shared_data_dir(required=False)
    if path is None:
        pytest.fail(
            "shared data not found: put the datasets at ../shared/data or set PERSONALIGN_DATA_DIR",
            pytrace=False,
        )
    return path
