"""Figure helpers: matplotlib without pyplot (an Agg canvas per figure), saved as PNG and SVG, print-readable;
tables as CSV. Every file is written whole (rendered in memory, then a temporary file renamed over the old one),
so a report killed part-way leaves each file as it was or as it is now, never a part of one."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lth.store.atomic import atomic_write_bytes  # noqa: E402

# Use inside ``matplotlib.rc_context(STYLE)`` while drawing and saving.
STYLE = {"font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11, "legend.fontsize": 9, "lines.linewidth": 1.8,
         "svg.fonttype": "none", "axes.grid": True, "grid.alpha": 0.3}


def _palette() -> list[str]:
    """Distinct colours for the report's series, none of them grey or black (greys and black mark references:
    the dense level, thresholds, the paper's values): tab10 without its grey, then tab20's light shades, Dark2,
    Set1, tab20b and tab20c without their greys."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    out: list[str] = []
    for name, picks in (("tab10", [0, 1, 2, 3, 4, 5, 6, 8, 9]), ("tab20", [1, 3, 5, 7, 9, 11, 13, 17, 19]),
                        ("Dark2", range(8)), ("Set1", [0, 1, 2, 3, 4, 6, 7]), ("tab20b", range(20)),
                        ("tab20c", range(16))):
        colours = colormaps[name].colors
        out.extend(c for c in (to_hex(colours[i]) for i in picks) if c not in out)
    return out


PALETTE = _palette()


def new_figure(ncols: int = 1, width: float = 6.4, height: float = 4.2, nrows: int = 1) -> tuple[Figure, list]:
    """A figure with ``nrows`` x ``ncols`` axes (returned as a flat list, row by row)."""
    fig = Figure(figsize=(width if ncols == 1 or nrows > 1 else 3.6 * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()


def save(fig: Figure, out: Path, name: str) -> list[Path]:
    """Save ``fig`` as ``out/name.png`` (150 dpi) and ``out/name.svg``; returns both absolute paths."""
    paths = []
    for ext, kw in (("png", {"dpi": 150}), ("svg", {})):
        p = (out / f"{name}.{ext}").resolve()
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, **kw)
        atomic_write_bytes(p, buf.getvalue())
        paths.append(p)
    return paths


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    """``df.to_csv(path, index=False)``, written whole (atomically); returns the absolute path."""
    path = Path(path).resolve()
    atomic_write_bytes(path, df.to_csv(index=False).encode("utf-8"))
    return path


def density_axis(ax: Any, densities: Any) -> None:
    """Log-scale x axis of weights remaining (%), sparser to the right, ticked at the levels' densities."""
    ax.set_xscale("log")
    ticks = sorted({round(float(v) * 100, 3) for v in densities if pd.notna(v)}, reverse=True)
    if len(ticks) > 8:
        ticks = ticks[::int(np.ceil(len(ticks) / 8))]
    ax.set_xticks(ticks, [f"{v:.3g}" for v in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.invert_xaxis()


def pct(x: Any) -> Any:
    """Fractions as percent (an array of floats)."""
    return np.asarray(x, dtype=float) * 100.0
