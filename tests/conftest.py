"""Shared fixtures: where the real data lives, a small digits spec, CPU determinism."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest
import torch

from lth.cli import main

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def mnist_dir() -> Path:
    """The data root holding MNIST/raw (the shared folder beside the checkout)."""
    if not (SHARED_DATA / "MNIST" / "raw").exists():
        pytest.skip("real MNIST not available beside the checkout")
    return SHARED_DATA


def lth(*argv: str) -> tuple[int, str, str]:
    """Run the `lth` command in-process; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def populations(err: str) -> list[int]:
    """The sizes of the populations an `lth` command reported training."""
    return [int(n) for n in re.findall(r"training a population of (\d+) run", err)]
