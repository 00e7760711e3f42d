"""The recipes' sections, first on the page: what each ``lth recipe NAME`` measured against its paper.

A recipe run into a store leaves its result there, ``ROOT/recipes/NAME.json`` (:func:`save_result`: the paper,
the mode, every substitution, the paper-vs-lth rows, the verdicts with what they compare, the recipe's own
tables), and this section draws it, so every report of the store keeps it: the one the recipe writes and any later
``lth report``. Per recipe: the substitutions, the paper-vs-lth table (``paper_vs_lth.csv``), a figure marking the
paper's values beside lth's (mean with min-max bars), the verdicts and the recipe's own tables
(``recipe_<table>.csv``). The recipe run last comes first and keeps those file names; an earlier recipe's files
are prefixed with its name (``lottery_paper_vs_lth.csv``). A damaged result file is named on stderr and left out.
"""

from __future__ import annotations

import html
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd

from lth.report.context import ReportContext
from lth.report.figures import STYLE, new_figure, save
from lth.store.atomic import atomic_write_bytes

RESULTS = "recipes"  # ROOT/recipes/<name>.json
COLUMNS = ("quantity", "paper", "lth", "lth_min", "lth_max", "n", "difference", "unit", "source", "how",
           "comparable", "paper_setup")


def rows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The paper-vs-lth rows as a frame with the columns of ``paper_vs_lth.csv``."""
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _plain(x: Any) -> Any:
    """``x`` with non-finite floats as None (strict JSON)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def save_result(root: Path, doc: dict[str, Any]) -> Path:
    """Keep a recipe's result ``doc`` (``recipe`` names it) as ``ROOT/recipes/<recipe>.json``, atomically, stamped
    with the time it was written; the report draws it from there."""
    path = Path(root) / RESULTS / f"{doc['recipe']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_plain({**doc, "written": time.time()}), indent=1, default=str, allow_nan=False)
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


def load_results(root: Path) -> list[dict[str, Any]]:
    """Every recipe result kept in the store at ``root``, the one written last first."""
    docs = []
    for p in sorted((Path(root) / RESULTS).glob("*.json")):
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
            if not isinstance(doc, dict) or "recipe" not in doc:
                raise ValueError("not a recipe result")
        except (OSError, ValueError) as e:
            print(f"lth: damaged recipe result {p} left out of the report ({e})", file=sys.stderr)
            continue
        docs.append(doc)
    return sorted(docs, key=lambda d: -float(d.get("written", 0)))


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


def recipes(ctx: ReportContext) -> None:
    """Each recipe result of the store (:func:`load_results`), the one run last first."""
    for i, doc in enumerate(load_results(ctx.root)):
        _section(ctx, doc, "" if i == 0 else f"{doc['recipe']}_")


def _section(ctx: ReportContext, doc: dict[str, Any], prefix: str) -> None:
    page = ctx.page
    df = rows_frame(doc.get("rows", []))
    subs = doc.get("substitutions", [])
    page.h(1, f"Recipe {doc['recipe']}: {doc.get('paper', '')}")
    page.p(f"Mode: {_mode(bool(doc.get('quick')), bool(subs))}; wall time {doc.get('seconds', 0):.1f} s. "
           f"Figures: {'; '.join(doc.get('figures', []))}.")
    if subs:
        page.parts.append("<p>Substitutions (what differs from the paper):</p><ul>"
                          + "".join(f"<li>{html.escape(s)}</li>" for s in subs) + "</ul>")
    else:
        page.p("Substitutions: none.")
    page.table(df, f"{prefix}paper_vs_lth", "Paper vs lth: each number the paper publishes that this recipe "
               "measures, lth's mean with its min-max over the n replicates (or samples) of the row, and lth - "
               "paper. Accuracies are fractions, on each run's test split unless the quantity names another; "
               "'how' names the runs (preset, level, density). 'comparable' is false in quick mode (another "
               "dataset and scale), with --levels or --training-steps, and where the paper's number comes from "
               "another setup than the runs compared ('paper_setup' says how it differs)")
    figs = paper_figure(df, page.out, f"{prefix}paper_vs_lth")
    page.report.figures.extend(figs)
    if figs:
        name = f"{prefix}paper_vs_lth"
        page.parts.append(f'<figure><img src="{name}.png" alt="paper vs lth"><figcaption>lth (black: mean, '
                          f"min-max) beside the paper's value (grey x) (<a href=\"{name}.svg\">SVG</a>)"
                          "</figcaption></figure>")
    page.parts.append(f"<p>Verdicts: <code>{html.escape(json.dumps(doc.get('verdicts', {})))}</code></p>")
    if doc.get("verdict_basis"):
        page.parts.append(f'<p class="cap">What the verdicts compare: {html.escape(doc["verdict_basis"])}.</p>')
    for name, records in doc.get("extra_tables", {}).items():
        page.table(pd.DataFrame(records), f"{prefix}recipe_{name}", name)
