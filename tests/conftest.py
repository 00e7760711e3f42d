"""Shared fixtures: where the real data lives, a small digits spec, CPU determinism."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def mnist_dir() -> Path:
    """The data root holding MNIST/raw (the shared folder beside the checkout)."""
    if not (SHARED_DATA / "MNIST" / "raw").exists():
        pytest.skip("real MNIST not available beside the checkout")
    return SHARED_DATA
