"""Stability and landscape figures: real, non-empty PNG (and SVG) files from numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lth.report.stability import plot_contour, plot_error_path

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _is_png(p: Path) -> bool:
    return p.is_file() and p.stat().st_size > 1000 and p.read_bytes()[:8] == PNG_SIGNATURE


def test_error_path_figure(tmp_path: Path):
    alphas = np.linspace(0, 1, 5)
    paths = plot_error_path(alphas, {"k=0": [[0.1, 0.3, 0.5, 0.3, 0.1], [0.12, 0.2, 0.4, 0.2, 0.1]],
                                     "k=500": [0.1, 0.1, 0.11, 0.1, 0.1]}, tmp_path / "figs")
    assert [p.suffix for p in paths] == [".png", ".svg"]
    assert _is_png(paths[0]) and paths[1].stat().st_size > 1000
    single = plot_error_path(alphas, [0.1, 0.2, 0.3, 0.2, 0.1], tmp_path, name="one")
    assert _is_png(single[0]) and single[0].name == "one.png"
    with pytest.raises(ValueError, match="points"):
        plot_error_path(alphas, [0.1, 0.2], tmp_path)


def test_contour_figure(tmp_path: Path):
    xs, ys = np.linspace(-1, 2, 7), np.linspace(-1, 1, 5)
    z = np.add.outer(ys ** 2, (xs - 0.5) ** 2)
    paths = plot_contour(xs, ys, z, tmp_path, points={"a": (0, 0), "b": (1, 0)},
                         trajectories={"run": [(1.5, 0.8), (1.0, 0.3), (0.5, 0.0)]})
    assert _is_png(paths[0]) and paths[0].name == "landscape.png"
    with pytest.raises(ValueError, match="shape"):
        plot_contour(xs, ys, z.T, tmp_path)
    # a copy's trajectory and its end point share a name: the legend says which is which, each once
    paths = plot_contour(xs, ys, z, tmp_path, name="both", points={"copy 0": (0, 0), "b": (1, 0)},
                         trajectories={"copy 0": [(1.5, 0.8), (0.0, 0.0)]})
    svg = paths[1].read_text()
    assert svg.count("copy 0: trajectory") == 1 and svg.count("copy 0: end") == 1 and ">b<" in svg
