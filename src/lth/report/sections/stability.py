"""The report's instability-analysis section (Frankle, Dziugaite, Roy & Carbin, ICML 2020), drawn from what
``lth stability`` and ``lth landscape`` stored (:func:`lth.stability.analysis.stability_frame`):

- error along the path (test and train; mean over pairs and replicates with a min-max band) per subnetwork,
  one line per rewind step k and sparsity (the paper's Figs. 2 and 5);
- test instability against k, one line per subnetwork and sparsity (Figs. 3 and 6), and the Fig. 4 control
  (schedule restarted at 0) as its own lines;
- the paper's Table 2 for whatever the store holds: full / IMP / random pruning / random reinit accuracies
  (mean end-point test accuracy of the copies), delta = full - IMP, and whether IMP is matching;
- test error of the copies against k, one line per subnetwork and sparsity (Fig. 7);
- the median first stable and first stable-and-matching k against sparsity, every level the store holds (Fig. 9);
- the contour plots of every stored landscape (``lth landscape``).

The numbers (the setting drawn, instabilities, Table 2's verdicts) come from :mod:`lth.analysis.instability`.
"""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lth.analysis.instability import k_iterations, latest_setting, pair_instabilities, table2
from lth.analysis.stability import STABLE_THRESHOLD
from lth.report.captions import runs_text
from lth.report.context import ReportContext
from lth.report.figures import new_figure

_ORDER = ("dense", "imp", "oneshot", "random-prune", "random-reinit", "omp")


def _label(row: pd.Series | dict, with_k: bool = True) -> str:
    parts = [f"k={row['rewind']}"] if with_k else []
    if row["subnetwork"] != "dense":
        parts.append(f"{100 * row['density']:.1f}% weights")
    if row.get("schedule_from_zero"):
        parts.append("schedule from 0")
    if row.get("align"):
        parts.append("aligned")
    return ", ".join(parts) or "dense"


def stability(ctx: ReportContext) -> None:
    """Add the instability section to the page when the store holds stability results."""
    from lth.stability.analysis import stability_frame

    page, root = ctx.page, ctx.root
    df = stability_frame(root)
    lands = sorted(Path(root).resolve().glob("stability_*/replicate_*/level_*/landscape_*.json"))
    if df.empty and not lands:
        return
    page.h(2, "Instability analysis (lth stability)")
    page.p("Error along the straight line between copies of a network (or subnetwork) made at step k and trained "
           "with different SGD noise (data order, augmentation); instability = largest error on the path minus the "
           f"mean of its end points; stable below {100 * STABLE_THRESHOLD:.0f} points (Frankle et al. 2020). "
           "Networks with BatchNorm have their running statistics recomputed on training data at every point.")
    if not df.empty:
        df = latest_setting(df)
        _paths(page, df)
        _versus_k(page, df)
        _fig7(page, df)
        _fig9(page, df)
        _table2(page, df)
    for f in lands:
        _contour(page, f, root)


def _paths(page: Any, df: pd.DataFrame) -> None:
    for sub in [s for s in _ORDER if s in set(df["subnetwork"])]:
        d = df[df["subnetwork"] == sub]
        fig, axes = new_figure(ncols=2, width=11.0)
        rows = []
        for ax, split in zip(axes, ("test", "train"), strict=True):
            s = d[d["split"] == split]
            keys = ["rewind", "level", "density", "schedule_from_zero", "align"]
            for key, g in sorted(s.groupby(keys), key=lambda kv: (k_iterations(kv[0][0]), kv[0][1:])):
                agg = g.groupby("alpha")["error"].agg(["mean", "min", "max", "count"]).reset_index()
                label = _label(dict(zip(keys, key, strict=True), subnetwork=sub))
                (line,) = ax.plot(agg["alpha"], 100 * agg["mean"], marker=".", label=label,
                                  color=page.colour(f"{sub}: {label}"))
                ax.fill_between(agg["alpha"], 100 * agg["min"], 100 * agg["max"], color=line.get_color(),
                                alpha=0.2, lw=0)
                rows.extend({"subnetwork": sub, "split": split, **dict(zip(keys, key, strict=True)), **r}
                            for r in agg.to_dict("records"))
            ax.set_xlabel("interpolation coefficient alpha")
            ax.set_ylabel(f"{split} error (%)")
            ax.set_title(f"{sub}: {split} error along the path")
        axes[0].legend(fontsize=7)
        page.figure(fig, f"stability_path_{sub}", f"{sub}: error (percent) along the path between two copies, on "
                    "the test split (left) and a fixed subset of the training split (right: a seeded permutation's "
                    "first --train-examples, 10,000 by default, all of it when smaller): mean over "
                    f"{_pairs_text(d)}, shaded from min to max", pd.DataFrame(rows))


def _span(values: list[int]) -> str:
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def _pairs_text(d: pd.DataFrame) -> str:
    """How many paths each point of ``d`` aggregates: ``"2 pairs of copies (2 replicates) per point"``, or ranges
    when points differ."""
    keys = ["experiment", "subnetwork", "rewind", "level", "schedule_from_zero", "align"]
    pairs = d.groupby(keys)[["replicate", "pair"]].apply(lambda g: len(g.drop_duplicates()))
    reps = d.groupby(keys)["replicate"].nunique()
    return f"{_span(sorted(set(pairs)))} pairs of copies ({_span(sorted(set(reps)))} replicates) per point"


def _versus_k(page: Any, df: pd.DataFrame) -> None:
    per = pair_instabilities(df)
    keys = ["subnetwork", "level", "density", "schedule_from_zero", "align"]
    table = per.groupby([*keys, "rewind"]).agg(
        test_instability=("test_instability", "mean"), test_min=("test_instability", "min"),
        test_max=("test_instability", "max"), train_instability=("train_instability", "mean"),
        accuracy=("accuracy", "mean"), pairs=("pair", "size")).reset_index()
    table["k_order"] = table["rewind"].map(k_iterations)
    table = table.sort_values([*keys, "k_order"])
    fig, axes = new_figure(ncols=2, width=11.0)
    for key, g in table.groupby(keys, sort=False):
        row = dict(zip(keys, key, strict=True))
        label = f"{row['subnetwork']}" + (f" ({_label(row, with_k=False)})" if _label(row, False) != "dense" else "")
        x = np.arange(len(g)) if g["k_order"].max() >= 1e6 else g["k_order"]
        (line,) = axes[0].plot(x, 100 * g["test_instability"], marker="o", label=label, color=page.colour(label))
        axes[0].fill_between(x, 100 * g["test_min"], 100 * g["test_max"], color=line.get_color(), alpha=0.2, lw=0)
        axes[1].plot(x, 100 * g["train_instability"], marker="o", label=label, color=line.get_color())
    for ax, split in zip(axes, ("test", "train"), strict=True):
        ax.axhline(100 * STABLE_THRESHOLD, color="k", lw=0.8, ls="--")
        ax.set_xlabel("rewind step k (iterations)")
        ax.set_ylabel(f"{split} instability (percentage points)")
    axes[0].legend(fontsize=7)
    fig.suptitle("Instability against the step k the copies are made at")
    page.figure(fig, "stability_vs_k", "Test (left) and train (right) instability against k for each subnetwork "
                f"and sparsity: mean over {_pairs_text(df)} (the pairs column), test shaded from min to max; "
                f"dashed: the stability threshold, {100 * STABLE_THRESHOLD:.0f} points (Frankle et al. ICML 2020, "
                "section 2: stable when instability < 2%)",
                table.drop(columns="k_order"))


def _k_axis(ax: Any, ks: list[str]) -> None:
    """An axis of the steps k run, one tick each in order (k = 0, 100, 500, 2000 evenly spaced; units may mix)."""
    ax.set_xticks(range(len(ks)), ks)
    ax.set_xlabel("rewind step k (copies made at this step)")


def _fig7(page: Any, df: pd.DataFrame) -> None:
    """Frankle et al. ICML 2020, Fig. 7: test error of the copies made at k, against k (mean, shaded +- std)."""
    from lth.stability.analysis import copy_errors

    t = copy_errors(df)
    if t.empty:
        return
    ks = sorted(t["rewind"].unique(), key=k_iterations)
    subs = [s for s in _ORDER if s in set(t["subnetwork"])] + sorted(set(t["subnetwork"]) - set(_ORDER))
    fig, axes = new_figure(ncols=len(subs), width=4.6 * len(subs), height=4.2)
    if len(subs) > 1:
        fig.set_size_inches(4.6 * len(subs), 4.2)
    for ax, sub in zip(axes, subs, strict=True):
        for key, g in t[t["subnetwork"] == sub].groupby(["preset", "level", "schedule_from_zero"], sort=True):
            row = {"subnetwork": sub, "density": g["density"].iloc[0], "schedule_from_zero": key[2]}
            label = f"{sub}" + (f" ({_label(row, with_k=False)})" if _label(row, False) != "dense" else "")
            if t["preset"].nunique() > 1:
                label = f"{key[0]}: {label}"
            x = [ks.index(k) for k in g["rewind"]]
            c = page.colour(label)
            ax.plot(x, 100 * g["mean"], marker="o", label=label, color=c)
            sd = g["std"].fillna(0)
            ax.fill_between(x, 100 * (g["mean"] - sd), 100 * (g["mean"] + sd), color=c, alpha=0.2, lw=0)
        _k_axis(ax, ks)
        ax.set_ylabel("test error of the copies (%)")
        ax.set_title(f"{sub}: test error against k")
        ax.legend(fontsize=7)
    fig.suptitle("Test error of the (sub)networks made at step k (Frankle et al. ICML 2020, Fig. 7)")
    page.figure(fig, "stability_error_vs_k", "Final test error (percent, test split) of the copies trained from "
                "the network at step k (under each subnetwork's mask): mean over every copy of every replicate "
                f"({runs_text(t['count'], 'copies')}), shaded +- one standard deviation, one line per sparsity "
                "(Frankle et al. ICML 2020, Fig. 7)", t)


def _fig9(page: Any, df: pd.DataFrame) -> None:
    """Frankle et al. ICML 2020, Fig. 9: median first stable and stable-and-matching k against sparsity."""
    from lth.stability.analysis import fig9_table

    t = fig9_table(df)
    if t.empty:
        return
    t = t[~t["schedule_from_zero"].astype(bool)]
    ks = sorted({k for v in t["ks"] for k in str(v).split(",")}, key=k_iterations)
    fig, axes = new_figure(ncols=2, width=11.0)
    for ax, col, what in zip(axes, ("median_first_stable", "median_first_stable_and_matching"),
                             ("stable", "stable and matching"), strict=True):
        for (preset, sub), g in t.groupby(["preset", "subnetwork"], sort=True):
            label = sub if t["preset"].nunique() == 1 else f"{preset}: {sub}"
            g = g.sort_values("density", ascending=False)
            y = [ks.index(v) if isinstance(v, str) and v in ks else np.nan for v in g[col]]
            ax.plot(100 * g["density"], y, marker="o", label=label, color=page.colour(f"Fig. 9: {label}"))
        ax.set_xscale("log")
        ax.invert_xaxis()
        ax.set_yticks(range(len(ks)), ks)
        ax.set_ylim(-0.5, len(ks) - 0.5)
        ax.set_xlabel("weights remaining (%, log scale)")
        ax.set_ylabel(f"median first {what} k")
        ax.set_title(what)
        ax.legend(fontsize=7)
    fig.suptitle("The first rewind step k at which the subnetworks are stable (left) and stable and matching "
                 "(right), median over samples (Frankle et al. ICML 2020, Fig. 9)", fontsize=10)
    dense = t["dense_accuracy"].dropna()
    page.figure(fig, "stability_fig9", "Frankle et al. ICML 2020, Fig. 9 at every level the store holds: per "
                "subnetwork and sparsity, the median over samples (a replicate's pair of copies; "
                f"{_span(sorted(set(t['samples'].astype(int))))} per point) of the first k at which a sample is "
                f"stable (test instability < {100 * STABLE_THRESHOLD:.0f}%, left) and also matching (its copies' "
                "mean test accuracy within 0.2 points of the dense copies made at k = 0"
                + (f", {dense.iloc[0]:.4f}" if dense.nunique() == 1 else "") + ", right); a point is drawn only "
                "where a majority of the samples get there at some k run (the paper's rule); missing: no k run "
                "gets a majority there", t)


def _table2(page: Any, df: pd.DataFrame) -> None:
    """Frankle et al. 2020, Table 2, for every (k, level) the store holds (:func:`lth.analysis.instability.table2`)."""
    t = table2(df)
    if t.empty:
        return
    page.table(t, "stability_table2", "Frankle et al. 2020, Table 2 for this store: test accuracy (fractions, mean "
               "over copies and replicates) of the full network (dense copies made at k = 0; full_from names them), "
               "IMP, random pruning and random reinitialisation at each k and level; delta = full - IMP; "
               "matching = IMP within 0.2 points")


def _contour(page: Any, f: Path, root: Path) -> None:
    from lth.report.stability import plot_contour

    need = ("xs", "ys", "test_error", "plane", "subnetwork", "rewind", "level", "points", "trajectories")
    try:
        doc = json.loads(f.read_text())
        ok = isinstance(doc, dict) and all(k in doc for k in need)
    except (OSError, UnicodeDecodeError, ValueError):
        ok = False
    if not ok:
        print(f"lth: warning: damaged file {f}: its landscape is left out of the report (run `lth landscape` "
              "again to recompute it)", file=sys.stderr)
        return
    rel = f.relative_to(Path(root).resolve()).parts
    name = f"landscape_{rel[0].split('_', 1)[1]}_r{rel[1].split('_')[1]}_l{rel[2].split('_')[1]}_{doc['plane']}"
    title = f"{doc['subnetwork']}, k = {doc['rewind']}, level {doc['level']} ({doc['plane']} plane)"
    paths = plot_contour(doc["xs"], doc["ys"], doc["test_error"], page.out, name=name, points=doc["points"],
                         trajectories=doc["trajectories"], title=title)
    page.report.figures.extend(p.resolve() for p in paths)
    cap = (f"Test error (fraction, on the test split) over the {doc['plane']} plane, {title}, replicate "
           f"{rel[1].split('_')[1]}, with the trajectories of its copies projected")
    page.parts.append(f'<figure><img src="{name}.png" alt="{html.escape(cap)}"><figcaption>{html.escape(cap)} '
                      f'(<a href="{name}.svg">SVG</a>)</figcaption></figure>')
