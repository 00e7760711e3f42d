"""The recipe's report: lth's store report (:func:`lth.report.build_report`) with the recipe's section first: the
paper, every substitution, the paper-vs-lth table (``paper_vs_lth.csv``), a figure that marks the paper's values
beside lth's (mean with min-max bars), the verdicts and the recipe's own tables."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd

from lth.recipes.base import Recipe, RecipeResult
from lth.report.figures import STYLE, new_figure, save
from lth.store.run import atomic_write_bytes

COLUMNS = ("quantity", "paper", "lth", "lth_min", "lth_max", "n", "difference", "unit", "source", "how",
           "comparable", "paper_setup")


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The paper-vs-lth rows as a frame with the columns of ``paper_vs_lth.csv``."""
    return pd.DataFrame(rows, columns=list(COLUMNS))


def paper_figure(df: pd.DataFrame, out: Path, name: str = "paper_vs_lth") -> list[Path]:
    """Accuracy-like rows (unit ``fraction``) with a paper value: lth's mean with min-max bars (black) and the
    paper's value (grey x), one row each; black and grey, which no series of the report's figures is drawn in.
    Returns the files written (none when no row qualifies)."""
    d = df[(df["unit"] == "fraction") & df["paper"].notna()].reset_index(drop=True)
    if d.empty:
        return []
    with matplotlib.rc_context(STYLE):
        fig, (ax,) = new_figure(width=8.0, height=0.45 * len(d) + 1.4)
        y = list(range(len(d)))
        has = d["lth"].notna()
        lo = (d["lth"] - d["lth_min"]).where(has, 0).fillna(0)
        hi = (d["lth_max"] - d["lth"]).where(has, 0).fillna(0)
        ax.errorbar(d["lth"][has], [y[i] for i in d.index[has]], xerr=[lo[has], hi[has]], fmt="o", color="k",
                    label="lth (mean, min-max)")
        ax.scatter(d["paper"], y, marker="x", s=60, color="0.5", zorder=3, label="paper")
        ax.set_yticks(y, [q if len(q) < 60 else q[:57] + "..." for q in d["quantity"]], fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("accuracy (fraction)")
        ax.legend(loc="best")
        return save(fig, out, name)


def _mode(quick: bool, substituted: bool) -> str:
    if quick:
        return "quick (a CPU in minutes)"
    return "full, except the substitutions listed below" if substituted else \
        "full (the paper’s datasets and hyperparameters)"


def write_recipe_report(recipe: Recipe, result: RecipeResult, root: Path, quick: bool) -> Path:
    """Build the store report under ``root/report`` and put the recipe's section at its top; returns the path
    of ``index.html`` (absolute)."""
    from lth.report import build_report
    from lth.report.figures import write_csv

    root = Path(root).resolve()
    out = root / "report"
    report = build_report(root, out)
    df = rows_frame(result.rows)
    csv = out / "paper_vs_lth.csv"
    write_csv(df, csv)
    figs = paper_figure(df, out)
    parts = [f"<h1>Recipe {html.escape(recipe.name)}: {html.escape(recipe.paper)}</h1>",
             f"<p>Mode: {_mode(quick, bool(result.substitutions))}"
             f"; wall time {result.seconds:.1f} s. Figures: {html.escape('; '.join(recipe.figures))}.</p>"]
    if result.substitutions:
        parts.append("<p>Substitutions (what differs from the paper):</p><ul>"
                     + "".join(f"<li>{html.escape(s)}</li>" for s in result.substitutions) + "</ul>")
    else:
        parts.append("<p>Substitutions: none.</p>")
    shown = df.to_html(index=False, na_rep="", border=0, classes="t", float_format=lambda x: f"{x:.4g}")
    parts.append('<div class="tbl"><p class="cap">Paper vs lth: each number the paper publishes that this recipe '
                 "measures, lth's mean with its min-max over the n replicates (or samples) of the row, and lth - "
                 "paper. Accuracies are fractions, on each run's test split unless the quantity names another; "
                 "'how' names the runs (preset, level, density). "
                 '"comparable" is false in quick mode (another dataset and scale), with --levels or '
                 "--training-steps, and where the paper's number comes from another setup than the runs compared "
                 "(\"paper_setup\" says how it differs) "
                 f'(<a href="{csv.name}">CSV</a>)</p>{shown}</div>')
    if figs:
        parts.append('<figure><img src="paper_vs_lth.png" alt="paper vs lth"><figcaption>lth (black: mean, '
                     "min-max) beside the paper's value (grey x) (<a href=\"paper_vs_lth.svg\">SVG</a>)"
                     "</figcaption></figure>")
    parts.append(f"<p>Verdicts: <code>{html.escape(json.dumps(result.verdicts))}</code></p>")
    if recipe.verdict_basis:
        parts.append(f'<p class="cap">What the verdicts compare: {html.escape(recipe.verdict_basis)}.</p>')
    for name, table in result.extra_tables.items():
        p = out / f"recipe_{name}.csv"
        write_csv(table, p)
        parts.append(f'<div class="tbl"><p class="cap">{html.escape(name)} (<a href="{p.name}">CSV</a>)</p>'
                     + table.to_html(index=False, na_rep="", border=0, classes="t",
                                     float_format=lambda x: f"{x:.4g}") + "</div>")
    page = report.index.read_text(encoding="utf-8")
    head, sep, rest = page.partition("<body>\n")
    atomic_write_bytes(report.index, (head + sep + "\n".join(parts) + "\n" + rest).encode("utf-8"))
    return report.index
