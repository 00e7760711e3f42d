"""Figures of instability analysis and loss landscapes, drawn from numbers (computation is in lth.analysis).

- :func:`plot_error_path`: error along linear interpolation paths (Frankle et al. 2020, Fig. 2 / Fig. 5 style),
  one line per label, with a mean and min-max band where a label has several replicate paths.
- :func:`plot_contour`: a filled contour of a value (error or loss) over a plane's grid, with marked states
  and projected trajectories (Li et al. 2018; Ma et al. Figs. 4-5 style).
Both write PNG and SVG with :func:`lth.report.figures.save` and return the paths.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np

from lth.report.figures import STYLE, new_figure, save

Series = Sequence[float] | Sequence[Sequence[float]]


def plot_error_path(alphas: Sequence[float], paths: Mapping[str, Series] | Sequence[float], out: Path | str,
                    name: str = "stability_path", ylabel: str = "test error", title: str | None = None) -> list[Path]:
    """Error (fraction) against the interpolation coefficient alpha for each label in ``paths``.

    ``paths`` maps a label to one path (``len(alphas)`` values) or to several replicate paths (drawn as their
    mean with a min-max band); a bare sequence is one unlabelled path. Returns the PNG and SVG paths."""
    if not isinstance(paths, Mapping):
        paths = {"": paths}
    x = np.asarray(alphas, dtype=float)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        fig, (ax,) = new_figure()
        for label, ys in paths.items():
            arr = np.atleast_2d(np.asarray(ys, dtype=float))
            if arr.shape[1] != x.size:
                raise ValueError(f"path {label!r} has {arr.shape[1]} points; alphas has {x.size}")
            (line,) = ax.plot(x, arr.mean(0), label=label or None)
            if arr.shape[0] > 1:
                ax.fill_between(x, arr.min(0), arr.max(0), color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_xlabel("interpolation coefficient alpha")
        ax.set_ylabel(ylabel)
        ax.set_xlim(float(x.min()), float(x.max()))
        if title:
            ax.set_title(title)
        if any(paths):
            ax.legend()
        return save(fig, out, name)


def plot_contour(xs: Sequence[float], ys: Sequence[float], values: Sequence[Sequence[float]] | np.ndarray,
                 out: Path | str, name: str = "landscape", zlabel: str = "test error",
                 points: Mapping[str, tuple[float, float]] | None = None,
                 trajectories: Mapping[str, Sequence[tuple[float, float]]] | None = None,
                 levels: int = 20, title: str | None = None) -> list[Path]:
    """Filled contours of ``values`` (``[len(ys), len(xs)]``, row i at ``ys[i]``, as
    :func:`lth.analysis.landscape.grid_coordinates` orders a grid) with labelled ``points`` and ``trajectories``
    (sequences of plane coordinates, drawn as lines with markers). Returns the PNG and SVG paths."""
    z = np.asarray(values, dtype=float)
    if z.shape != (len(ys), len(xs)):
        raise ValueError(f"values have shape {z.shape}; expected (len(ys), len(xs)) = ({len(ys)}, {len(xs)})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with matplotlib.rc_context(STYLE):
        fig, (ax,) = new_figure(width=5.6, height=4.6)
        cs = ax.contourf(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), z, levels=levels, cmap="viridis")
        ax.contour(cs, colors="k", linewidths=0.4, alpha=0.5)
        fig.colorbar(cs, ax=ax, label=zlabel)
        both = set(trajectories or {}) & set(points or {})  # one name for a copy's path and its end: say which
        for label, path in (trajectories or {}).items():
            p = np.asarray(path, dtype=float).reshape(-1, 2)
            ax.plot(p[:, 0], p[:, 1], marker=".", color="w", linewidth=1.2,
                    label=f"{label}: trajectory" if label in both else label)
        for label, (px, py) in (points or {}).items():
            ax.plot([px], [py], marker="o", linestyle="", markersize=7, markeredgecolor="k",
                    label=f"{label}: end" if label in both else label)
        ax.set_xlabel("direction 1")
        ax.set_ylabel("direction 2")
        ax.grid(False)
        if title:
            ax.set_title(title)
        if points or trajectories:
            ax.legend(loc="best")
        return save(fig, out, name)


__all__ = ["plot_contour", "plot_error_path"]
