"""Build the report of a store: one section per study (a trunk spec with its rewind points and branches).

Every figure the store's contents allow is drawn; a figure whose data is absent is skipped. Figures go to
``OUT/<name>.png`` and ``.svg``, the table behind each to ``OUT/<name>.csv``, and ``OUT/index.html`` shows them
with relative links, so the folder can be moved and opened from disk. The page is removed when a rebuild starts
and written last, whole, so a report that fails part-way leaves no page that shows stale figures.

Runs with a damaged file are left out (one warning line each on stderr, from :func:`lth.analysis.runs_frame`).
Legends and figure titles name the hyperparameters that differ between runs
(:func:`lth.analysis.distinguishing_fields`).
"""

from __future__ import annotations

import datetime
import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pandas as pd

from lth.analysis import (
    CONDITIONS,
    aggregate,
    distinguishing_fields,
    dn_histograms,
    dn_values,
    early_stopping,
    field_label,
    frame_potential,
    jackpot,
    matching,
    metrics_frame,
    rp_curve,
    runs_frame,
    telemetry,
)
from lth.errors import UserError
from lth.report.figures import STYLE, new_figure, save, write_csv
from lth.store import RunDir
from lth.store.run import atomic_write_bytes

_SPEC_COLS = ("data.", "model.", "train.")


@dataclass
class Report:
    """What a report wrote: the page, its figures (PNG and SVG) and its tables (CSV), all absolute paths."""

    index: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``lth report --json`` document."""
        return {"report": str(self.index), "figures": [str(p) for p in self.figures],
                "tables": [str(p) for p in self.tables]}


@dataclass
class _Page:
    out: Path
    report: Report
    parts: list[str] = field(default_factory=list)

    def h(self, level: int, text: str) -> None:
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def p(self, text: str) -> None:
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def table(self, df: pd.DataFrame, name: str, caption: str, show: pd.DataFrame | None = None) -> None:
        p = write_csv(df, self.out / f"{name}.csv")
        self.report.tables.append(p)
        shown = (show if show is not None else df).to_html(index=False, na_rep="", border=0, classes="t",
                                                           float_format=lambda x: f"{x:.4g}")
        self.parts.append(f'<div class="tbl"><p class="cap">{html.escape(caption)} '
                          f'(<a href="{p.name}">CSV</a>)</p>{shown}</div>')

    def figure(self, fig: Any, name: str, caption: str, data: pd.DataFrame | None = None) -> None:
        paths = save(fig, self.out, name)
        self.report.figures.extend(paths)
        links = f'<a href="{name}.svg">SVG</a>'
        if data is not None:
            csv = write_csv(data, self.out / f"{name}.csv")
            self.report.tables.append(csv)
            links += f' · <a href="{name}.csv">CSV</a>'
        self.parts.append(f'<figure><img src="{name}.png" alt="{html.escape(caption)}">'
                          f"<figcaption>{html.escape(caption)} ({links})</figcaption></figure>")


# ------------------------------------------------------------------------------------------------ grouping
def _study_key(row: pd.Series) -> str:
    spec = {k: row[k] for k in row.index if k.startswith(_SPEC_COLS) and pd.notna(row[k])}
    return json.dumps({"preset": row.get("preset"), "pruning": row.get("pruning"), **spec}, sort_keys=True,
                      default=str)


def _studies(runs: pd.DataFrame) -> list[pd.DataFrame]:
    """Lottery trunks grouped by everything but the rewind step, each with the branches hanging off them."""
    if "kind" not in runs or "trunk" not in runs:
        return []
    trunk_rows = runs[runs["kind"] == "lottery"]
    key_of_trunk: dict[str, str] = {}
    for trunk, g in trunk_rows.groupby("trunk"):
        key_of_trunk[str(trunk)] = _study_key(g.iloc[0])
    tagged = runs[runs["trunk"].astype(str).isin(key_of_trunk)].copy()
    tagged["study"] = tagged["trunk"].astype(str).map(key_of_trunk)
    return [g.drop(columns="study") for _, g in tagged.groupby("study", sort=True)]


def _series(study: pd.DataFrame) -> pd.DataFrame:
    """Add ``series`` (the legend label: IMP or the branch, with the rewind step when there are several)."""
    s = study.copy()
    rewinds = sorted(s["rewind"].dropna().unique(), key=_rewind_order)
    branches = s[s["kind"] == "branch"]
    # several folders of one branch (different options): told apart by the options that differ, else the hash
    differ = {b: distinguishing_fields(g) for b, g in branches.groupby("branch")
              if "branch_dir" in g and g["branch_dir"].nunique() > 1}

    def label(r: pd.Series) -> str:
        name = "IMP ticket" if r["kind"] == "lottery" else str(r["branch"])
        if r["kind"] == "branch" and r["branch"] in differ:
            name += f" [{field_label(r, differ[r['branch']]) or str(r['branch_dir']).rsplit('_', 1)[-1]}]"
        return f"{name}, rewind {r['rewind']}" if len(rewinds) > 1 else name
    s["series"] = s.apply(label, axis=1)
    return s


def _rewind_order(text: Any) -> tuple[int, float]:
    t = str(text)
    unit = 1 if t.endswith("ep") else 0
    try:
        return unit, float(t.rstrip("itep") or 0)
    except ValueError:
        return 2, 0.0


def _density_axis(ax: Any, densities: Any) -> None:
    """Log-scale x axis of weights remaining (%), sparser to the right, ticked at the levels' densities."""
    ax.set_xscale("log")
    ticks = sorted({round(float(v) * 100, 3) for v in densities if pd.notna(v)}, reverse=True)
    if len(ticks) > 8:
        ticks = ticks[::int(np.ceil(len(ticks) / 8))]
    ax.set_xticks(ticks, [f"{v:.3g}" for v in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.invert_xaxis()


def _pct(x: Any) -> Any:
    return np.asarray(x, dtype=float) * 100.0



# Test-set sizes of the built-in datasets (lth.data.datasets: MNIST / Fashion-MNIST / CIFAR's own test files; the
# last 297 of scikit-learn's 1,797 digits; synthetic_size // 5 for synthetic data), so captions can name the split.
_TEST_EXAMPLES = {"mnist": 10000, "fashion_mnist": 10000, "cifar10": 10000, "cifar100": 10000, "digits": 297}


def _one(df: pd.DataFrame, col: str) -> Any:
    """The single value of ``col`` in ``df`` (None when absent or when the rows disagree)."""
    if col not in df:
        return None
    vals = df[col].dropna().unique()
    return vals[0] if len(vals) == 1 else None


def split_text(df: pd.DataFrame, split: str = "test") -> str:
    """The data split that ``df``'s runs were evaluated on, for a caption: ``"the digits test split of 297
    examples"``; for ``split="val"`` the held-out validation examples (``"the validation split of 200 training
    examples held out (data seed 0)"``). Runs on several datasets are named together; sizes are omitted when
    unknown."""
    names = sorted(map(str, df["data.dataset"].dropna().unique())) if "data.dataset" in df else []
    if split == "val":
        n, seed = _one(df, "data.validation_size"), _one(df, "data.data_seed")
        if n is None:
            return "the validation split (training examples held out; see the CSV's runs)"
        return (f"the validation split of {int(n):,} training examples held out"
                + (f" (data seed {int(seed)})" if seed is not None else ""))
    if len(names) != 1:
        return f"the test split of {', '.join(names) or 'each run'}"
    name = names[0]
    n = _TEST_EXAMPLES.get(name)
    if name == "synthetic" and _one(df, "data.synthetic_size") is not None:
        n = int(_one(df, "data.synthetic_size")) // 5
    return f"the {name} test split" + (f" of {n:,} examples" if n else "")


def runs_text(counts: Any, what: str = "replicates") -> str:
    """How many runs each plotted or tabled point aggregates, from the per-point ``counts``: ``"2 replicates per
    point"``, or ``"1-3 replicates per point (see the count column)"`` when they differ."""
    c = pd.to_numeric(pd.Series(counts), errors="coerce").dropna().astype(int)
    if c.empty:
        return f"no {what}"
    lo, hi = int(c.min()), int(c.max())
    return f"{lo} {what} per point" if lo == hi else f"{lo}-{hi} {what} per point (see the count column)"


# ------------------------------------------------------------------------------------------------ sections
def _accuracy_vs_density(page: _Page, s: pd.DataFrame, preset: str, prefix: str) -> pd.DataFrame:
    done = s[s["final_test_accuracy"].notna()]
    if done.empty:
        return pd.DataFrame()
    table = aggregate(done, ["series", "kind", "branch", "rewind", "level"], "final_test_accuracy")
    dens = done.groupby(["series", "level"])["ticket_density"].mean().rename("density").reset_index()
    table = table.merge(dens, on=["series", "level"]).sort_values(["series", "level"])
    fig, (ax,) = new_figure()
    for name, g in table.groupby("series", sort=False):
        g = g.sort_values("density", ascending=False)
        line = ax.plot(_pct(g["density"]), _pct(g["mean"]), marker="o", ms=4, label=name)[0]
        ax.fill_between(_pct(g["density"]), _pct(g["min"]), _pct(g["max"]), color=line.get_color(), alpha=0.2,
                        lw=0)
    dense = table[(table["kind"] == "lottery") & (table["level"] == 0)]
    if not dense.empty:
        ax.axhline(_pct(dense["mean"].max()), color="0.4", ls=":", lw=1.2, label="dense (level 0)")
    _density_axis(ax, table["density"])
    ax.set_xlabel("Weights remaining (%, log scale)")
    ax.set_ylabel("Test accuracy (%)")
    ax.set_title(f"{preset}: final test accuracy vs density")
    ax.legend(loc="best")
    page.figure(fig, f"{prefix}accuracy_vs_density",
                f"Final test accuracy (after the last training step, on {split_text(done)}) against the fraction of "
                f"weights remaining: mean over {runs_text(table['count'])}, shaded from min to max; series: "
                f"{', '.join(table['series'].drop_duplicates())}", table)
    return table


def _curves(page: _Page, metrics: pd.DataFrame, s: pd.DataFrame, preset: str, prefix: str) -> None:
    trunk = s[s["kind"] == "lottery"]
    if trunk.empty or metrics.empty:
        return
    rewind = sorted(trunk["rewind"].dropna().unique(), key=_rewind_order)[0]
    trunk = trunk[trunk["rewind"] == rewind]
    levels = sorted(trunk["level"].dropna().astype(int).unique())
    chosen = sorted({levels[0], levels[len(levels) // 2], levels[-1]})
    m = metrics[metrics["path"].isin(trunk["path"]) & metrics["test_accuracy"].notna()]
    m = m[m["level"].isin(chosen)]
    if m.empty:
        return
    table = aggregate(m, ["level", "iteration"], "test_accuracy")
    dens = trunk.groupby("level")["density"].mean()
    fig, (ax,) = new_figure()
    for level, g in table.groupby("level"):
        line = ax.plot(g["iteration"], _pct(g["mean"]), marker="o", ms=3,
                       label=f"level {level} ({dens[level] * 100:.3g}% remaining)")[0]
        ax.fill_between(g["iteration"], _pct(g["min"]), _pct(g["max"]), color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("Training iteration (steps)")
    ax.set_ylabel("Test accuracy (%)")
    ax.set_title(f"{preset}: test accuracy during training (IMP, rewind {rewind})")
    ax.legend(loc="lower right")
    counts = m.groupby("level")["path"].nunique()
    page.figure(fig, f"{prefix}accuracy_curves",
                f"Test accuracy on {split_text(trunk)} over training of the IMP trunk (rewind {rewind}) at levels "
                f"{', '.join(map(str, chosen))} (the dense, a middle and the sparsest): mean over "
                f"{runs_text(counts)}, shaded from min to max", table)


def _early_stopping(page: _Page, metrics: pd.DataFrame, s: pd.DataFrame, preset: str, prefix: str,
                   split: str = "val") -> None:
    """Early-stopping iteration vs density, chosen on ``split`` (Frankle & Carbin: the validation loss). Runs
    without a validation split are listed as such in the table; the figure is drawn only from runs that have
    one, and the page says when none has (it never falls back to the test set)."""
    m = metrics[metrics["path"].isin(s["path"])] if not metrics.empty else metrics
    if m.empty:
        return
    per = early_stopping(m, split=split)
    if per.empty:
        return
    per = per.merge(s[["path", "series"]], on="path")
    table = aggregate(per, ["series", "level"], "early_stop_iteration")
    extra = per.groupby(["series", "level"]).agg(density=("ticket_density", "mean"),
                                                 accuracy=("early_stop_test_accuracy", "mean"),
                                                 criterion=("criterion", lambda c: ", ".join(sorted(set(c))))
                                                 ).reset_index()
    table = table.merge(extra, on=["series", "level"])
    table.insert(0, "chosen_on", split)
    drawn = table[table["count"] > 0]
    if drawn.empty:
        page.table(table, f"{prefix}early_stopping",
                   "Early stopping: no run of this study has a validation split, so no early-stopping iteration "
                   "is chosen (set --validation-size, as the presets that follow Frankle & Carbin do; choosing on "
                   "the test set must be asked for explicitly)")
        return
    fig, (ax,) = new_figure()
    for name, g in drawn.groupby("series", sort=False):
        g = g.sort_values("density", ascending=False)
        yerr = np.vstack([g["mean"] - g["min"], g["max"] - g["mean"]])
        ax.errorbar(_pct(g["density"]), g["mean"], yerr=yerr, marker="o", ms=4, capsize=3, label=name)
    _density_axis(ax, drawn["density"])
    ax.set_xlabel("Weights remaining (%, log scale)")
    crit = "validation" if split == "val" else "test"
    ax.set_ylabel(f"Early-stop iteration (min {crit} loss, steps)")
    ax.set_title(f"{preset}: early-stopping iteration vs density (chosen on the {crit} split)")
    ax.legend(loc="best")
    missing = "" if len(drawn) == len(table) else \
        "; series/levels without a validation split are listed in the CSV and not drawn"
    runs = s[s["path"].isin(per["path"])]
    page.figure(fig, f"{prefix}early_stopping",
                f"Iteration of minimum {crit} loss (on {split_text(runs, split)}; Frankle & Carbin 2019, section 2) "
                f"against density: mean over {runs_text(drawn['count'])}, bars from min to max; the test accuracy "
                f"there (on {split_text(runs)}) is in the CSV{missing}", table)


_ARCH = ("data.dataset", "model.model", "model.width", "model.norm")


def _same(runs: pd.DataFrame, like: pd.Series, cols: tuple[str, ...]) -> pd.DataFrame:
    """The rows of ``runs`` that agree with ``like`` on each of ``cols`` that both have (NaN equals NaN)."""
    keep = pd.Series(True, index=runs.index)
    for c in cols:
        if c in runs and c in like.index:
            keep &= (runs[c] == like[c]) | (runs[c].isna() & pd.isna(like[c]))
    return runs[keep]


def _ids(paths: Any, root: Path | None) -> str:
    """Run directories relative to the store root, replicates folded into ``replicate_*``."""
    out = []
    for p in paths:
        rel = Path(p).relative_to(root) if root is not None and Path(p).is_relative_to(root) else Path(p)
        out.append("/".join("replicate_*" if part.startswith("replicate_") else part for part in rel.parts))
    return "; ".join(dict.fromkeys(out))


def _steps(text: Any) -> tuple[str, int] | None:
    t = str(text)
    for unit in ("it", "ep"):
        if t.endswith(unit) and t[:-2].isdigit():
            return unit, int(t[:-2])
    return None


def _dense_runs(runs: pd.DataFrame, like: pd.Series) -> pd.DataFrame:
    """Completed dense runs of ``like``'s architecture and data: lth train runs and level 0 of every trunk."""
    done = runs[runs["final_test_accuracy"].notna()] if "final_test_accuracy" in runs else runs.iloc[0:0]
    kind = done["kind"] if "kind" in done else pd.Series("train", index=done.index)
    level = done["level"] if "level" in done else pd.Series(pd.NA, index=done.index)
    dense = done[(kind == "train") | ((kind == "lottery") & (level == 0))]
    dense = _same(dense, like, _ARCH).copy()
    dense["group"] = dense["trunk"].astype(str).where(dense["kind"] == "lottery", dense["experiment"]) \
        if "trunk" in dense else dense["experiment"]
    return dense


def _best_group(df: pd.DataFrame, by: str) -> tuple[float, list[str]] | None:
    if df.empty:
        return None
    means = df.groupby(by, dropna=False)["final_test_accuracy"].mean()
    key = means.idxmax()
    return float(means[key]), df.loc[df[by] == key, "path"].tolist() if pd.notna(key) else df["path"].tolist()


def _verdicts(page: _Page, s: pd.DataFrame, acc: pd.DataFrame, runs: pd.DataFrame, prefix: str,
              root: Path | None = None) -> None:
    if acc.empty:
        return
    rows, summary, grades = [], [], []
    trunk_acc = acc[acc["kind"] == "lottery"]
    trunk_runs = s[s["kind"] == "lottery"]
    lvl0 = trunk_runs[trunk_runs["level"] == 0]
    for rewind, t in trunk_acc.groupby("rewind", sort=False):
        if not (t["level"] == 0).any():
            continue
        tab, best = matching(t[["level", "density", "mean", "min", "max", "count"]])
        rows.append(tab.assign(rewind=rewind))
        summary.append({"rewind": rewind, "dense_accuracy": float(tab["dense_accuracy"].iloc[0]),
                        "sparsest_matching_level": None if best is None else best["level"],
                        "sparsest_matching_density": None if best is None else best["density"],
                        "sparsest_matching_accuracy": None if best is None else best["accuracy"]})
        if lvl0.empty:
            continue
        like = lvl0.iloc[0]
        grades.extend(_jackpot_rows(s, t, rewind, like, runs, root))
    if rows:
        page.h(3, "Verdicts")
        tab = pd.concat(rows, ignore_index=True)
        tab = tab[["rewind", "level", "density", "mean", "min", "max", "count", "dense_accuracy", "gap", "matching"]]
        basis = (f"final test accuracy on {split_text(trunk_runs)}, mean over {runs_text(tab['count'])} of the IMP "
                 "trunk; matching: mean >= the dense network's (level 0, same replicates) - 0.2 points, the edge "
                 "included (Frankle et al. ICML 2020, Fig. 9 and Table 2; docs/stability.md)")
        page.table(pd.DataFrame(summary), f"{prefix}sparsest_matching",
                   f"Sparsest matching ticket per rewind step ({basis})")
        page.table(tab, f"{prefix}matching", f"Matching per level (accuracies as fractions; gap = mean - dense; "
                   f"{basis})")
    if grades:
        table = pd.DataFrame(grades)
        show = table[[c for c in table if not c.endswith("_runs")]]
        page.table(table, f"{prefix}jackpot",
                   f"Jackpot grades (Ma et al. NeurIPS 2021, section 3), one row per ticket at its learning rate; "
                   f"every accuracy is the mean final test accuracy on {split_text(s)} over the replicates of the "
                   f"runs named in the CSV (the ticket: {runs_text(trunk_acc['count'])}). Conditions: [1] density "
                   "<= 80% and the dense net sufficiently trained (a longer dense run at the same lr gains <= 0.5 "
                   "points; 'not checked' without one); [2] > 0.5 points over a small dense net of equal size; [3] > "
                   "0.5 points over the reinitialised ticket at ANY learning rate in the store; [4] >= the dense "
                   "net at the same lr; [5] >= the best dense net in the store. Secondary prize: [1]-[4]; jackpot: "
                   "[1]-[5]; a condition not checked counts as unmet (provisional_grade assumes it holds). The CSV "
                   "names the runs each condition used (columns *_runs)", show)


def _jackpot_rows(s: pd.DataFrame, t: pd.DataFrame, rewind: Any, like: pd.Series, runs: pd.DataFrame,
                  root: Path | None) -> list[dict[str, Any]]:
    """One verdict row per pruned level of the trunk table ``t`` (one rewind step), with the runs behind it."""
    trunk = s[(s["kind"] == "lottery") & (s["rewind"] == rewind)]
    branches = s[(s["kind"] == "branch") & (s["rewind"] == rewind)]
    done = runs[runs["final_test_accuracy"].notna()]
    lr = like.get("train.lr")
    # [3] reinit branches of the same architecture, data and pruning at any learning rate
    reinit_all = done[(done["kind"] == "branch") & (done["branch"] == "reinit")] if "branch" in done else done[:0]
    reinit_all = _same(reinit_all, like, (*_ARCH, "pruning"))
    reinit_all = reinit_all[reinit_all["rewind"] == rewind] if "rewind" in reinit_all else reinit_all
    # [4] the dense net at this lr; [1] the same dense net trained longer; [5] the best dense net anywhere
    dense = _dense_runs(runs, like)
    here = trunk[trunk["level"] == 0]
    dense_acc = float(here["final_test_accuracy"].mean())
    mine, longer = _steps(like.get("train.training_steps")), []
    same_lr = _same(dense, like, ("train.lr", "train.optimizer"))
    for _, r in same_lr.iterrows():
        st = _steps(r.get("train.training_steps"))
        if mine is not None and st is not None and st[0] == mine[0] and st[1] > mine[1]:
            longer.append(r["path"])
    longer_best = _best_group(same_lr[same_lr["path"].isin(longer)], "group")
    well = _best_group(dense, "group")
    out = []
    for _, r in t[t["level"] > 0].iterrows():
        level = int(r["level"])
        ticket = trunk[trunk["level"] == level]
        ri = reinit_all[reinit_all["level"] == level]
        sd = branches[(branches["branch"] == "small-dense") & (branches["level"] == level)]
        if ri.empty or sd.empty:
            continue
        by_lr = ri.groupby("train.lr" if "train.lr" in ri else "experiment")
        reinit = {f"lr={k}": float(g["final_test_accuracy"].mean()) for k, g in by_lr}
        best_lr = max(reinit, key=reinit.get)
        best_reinit = ri[[f"lr={k}" == best_lr for k in ri["train.lr" if "train.lr" in ri else "experiment"]]]
        well_acc, well_paths = well if well is not None else (dense_acc, here["path"].tolist())
        sources = {"non_trivial_sparsity": _ids(ticket["path"], root),
                   "sufficient_training": _ids([*here["path"], *(longer_best[1] if longer_best else [])], root),
                   "beats_small_dense": _ids(sd["path"], root),
                   "beats_reinit_any_lr": _ids(best_reinit["path"], root),
                   "matches_dense_same_lr": _ids(here["path"], root),
                   "matches_well_trained_dense": _ids(well_paths, root)}
        v = jackpot(float(r["mean"]), float(r["density"]), reinit, dense_acc, max(well_acc, dense_acc),
                    float(sd["final_test_accuracy"].mean()),
                    longer_dense_accuracy=None if longer_best is None else longer_best[0], sources=sources)
        row: dict[str, Any] = {"rewind": rewind, "level": level, "lr": lr, "density": r["density"],
                               "accuracy": r["mean"], "grade": v.grade, "provisional_grade": v.provisional_grade,
                               "failed": ", ".join(v.failed), "not_checked": ", ".join(v.unchecked),
                               "small_dense_accuracy": float(sd["final_test_accuracy"].mean()),
                               "best_reinit_accuracy": reinit[best_lr], "best_reinit_lr": best_lr,
                               "reinit_lrs": ", ".join(reinit), "dense_accuracy": dense_acc,
                               "longer_dense_accuracy": None if longer_best is None else longer_best[0],
                               "well_trained_dense_accuracy": max(well_acc, dense_acc)}
        for c in CONDITIONS:
            row[c] = {True: "met", False: "FAILED", None: "not checked"}[v.conditions[c]]
        for c in CONDITIONS:
            row[f"{c}_runs"] = sources[c]
        out.append(row)
    return out


def _weights(page: _Page, s: pd.DataFrame, preset: str, prefix: str) -> None:
    trunk = s[(s["kind"] == "lottery") & (s["status"] == "complete")]
    if trunk.empty:
        return
    rewind = sorted(trunk["rewind"].dropna().unique(), key=_rewind_order)[0]
    trunk = trunk[trunk["rewind"] == rewind]
    rep = int(trunk["replicate"].min())
    trunk = trunk[trunk["replicate"] == rep]
    lvl0 = trunk[trunk["level"] == 0]
    sparse = trunk[trunk["level"] == trunk["level"].max()]
    if lvl0.empty or sparse.empty or int(sparse["level"].iloc[0]) == 0:
        return
    d0, ds = RunDir(Path(lvl0["path"].iloc[0])), RunDir(Path(sparse["path"].iloc[0]))
    level, density = int(sparse["level"].iloc[0]), float(sparse["density"].iloc[0])
    if not ds.has_mask():
        return
    mask = ds.load_mask()
    states0 = d0.states()
    start_name = "rewind" if "rewind" in states0 else "init"
    if start_name in states0:
        init = d0.load_state(start_name)
        layers = dn_histograms(init, mask)
        # seed 004's D_n is the network's theta_LT (its Figure 5: one histogram per network), then per layer
        hist = {"whole network (D_n)": {"ticket": dn_values(init, mask),
                                        "all": np.concatenate([h["all"] for h in layers.values()])}, **layers}
        names = list(hist)[:6]
        fig, axes = new_figure(len(names), height=3.6)
        rows = []
        for ax, name in zip(axes, names, strict=True):
            h = hist[name]
            edges = np.histogram_bin_edges(h["all"], bins=40)
            ca, _ = np.histogram(h["all"], bins=edges)
            ct, _ = np.histogram(h["ticket"], bins=edges)
            ax.hist(h["all"], bins=edges, density=True, alpha=0.45, label="initialisation (all)")
            if ct.sum():  # a layer initialised to zero (Fixup's last convolutions) keeps no nonzero weight
                ax.hist(h["ticket"], bins=edges, density=True, histtype="step", lw=1.8, label="ticket (kept)")
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("Initial weight value")
            rows.append(pd.DataFrame({"layer": name, "bin_left": edges[:-1], "bin_right": edges[1:],
                                      "all_count": ca, "ticket_count": ct}))
        axes[0].set_ylabel("Probability density (1/unit weight)")
        axes[0].legend(loc="upper left", fontsize=8)
        fig.suptitle(f"{preset}: D_n, level {level} ticket ({density * 100:.3g}% remaining) vs the "
                     f"initialisation ({start_name} state)")
        page.figure(fig, f"{prefix}dn_histograms",
                    f"Initial weights kept by the sparsest ticket (level {level}, replicate {rep}) against all "
                    "initial weights, over the whole network (the study's D_n) and per layer (histograms "
                    "normalised to unit area)", pd.concat(rows))
    if "final" in states0 and "final" in ds.states():
        f0, fs = d0.load_state("final"), ds.load_state("final")
        layers = list(mask)
        ps = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
        curves = [rp_curve(f0, fs, ps, layers).assign(comparison=f"level 0 final vs level {level} final")]
        if start_name in states0:
            init = d0.load_state(start_name)
            curves.append(rp_curve(init, f0, ps, layers).assign(comparison=f"level 0 {start_name} vs final"))
        table = pd.concat(curves, ignore_index=True)
        fig, (ax,) = new_figure()
        for name, g in table.groupby("comparison", sort=False):
            ax.plot(_pct(g["p"]), g["r_p"], marker="o", ms=4, label=name)
        ax.plot(_pct(ps), ps, color="0.5", ls=":", label="chance (R_p = p)")
        ax.set_xlabel("Top fraction p of weights by magnitude (%)")
        ax.set_ylabel("Overlap R_p (fraction of top-p weights shared)")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{preset}: weight correlation R_p (replicate {rep})")
        ax.legend(loc="lower right")
        page.figure(fig, f"{prefix}rp_overlap",
                    "R_p (Liu et al. 2021): fraction of the top-p weights by magnitude shared by two states, "
                    "over the prunable layers", table)
        fp = [{"layer": k, "rows": int(f0[k].shape[0]), "fp_dense_final": frame_potential(f0[k]),
               "fp_ticket_final": frame_potential(fs[k] * mask[k]),
               "fp_minimum": max(f0[k].shape[0], f0[k].shape[0] ** 2 / f0[k][0].numel())} for k in layers]
        page.table(pd.DataFrame(fp), f"{prefix}frame_potential",
                   f"Frame potential of each layer's rows (sum of squared cosines; minimum max(n, n^2/d)), "
                   f"level 0 vs level {level} final weights")


def _train_section(page: _Page, runs: pd.DataFrame, metrics: pd.DataFrame) -> None:
    train = runs[runs["kind"] == "train"] if "kind" in runs else runs.iloc[0:0]
    if train.empty:
        return
    page.h(2, "Training runs (lth train)")
    train = _with_run_labels(train)
    table = aggregate(train, ["experiment", "preset", "label"], "final_test_accuracy")
    page.table(table, "train_runs", f"Final test accuracy (on {split_text(train)}) of each training experiment: "
               f"mean, min, max and std over {runs_text(table['count'])}")
    m = metrics[metrics["path"].isin(train["path"])] if not metrics.empty else metrics
    if m.empty or m["test_accuracy"].notna().sum() == 0:
        return
    curves = aggregate(m.drop(columns="label", errors="ignore").merge(train[["path", "label"]], on="path"),
                       ["experiment", "preset", "label", "iteration"], "test_accuracy")
    fig, (ax,) = new_figure()
    for (_exp, _preset, label), g in curves.groupby(["experiment", "preset", "label"]):
        line = ax.plot(g["iteration"], _pct(g["mean"]), marker="o", ms=3, label=label)[0]
        ax.fill_between(g["iteration"], _pct(g["min"]), _pct(g["max"]), color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("Training iteration (steps)")
    ax.set_ylabel("Test accuracy (%)")
    presets = ", ".join(sorted(curves["preset"].astype(str).unique()))
    ax.set_title(f"{presets}: test accuracy during training")
    ax.legend(loc="lower right")
    page.figure(fig, "train_curves", f"Test accuracy on {split_text(train)} over training: mean over "
                f"{runs_text(curves['count'])}, shaded from min to max", curves)
    _telemetry(page, train)


def _with_run_labels(runs: pd.DataFrame) -> pd.DataFrame:
    """Add ``label``: the preset and the hyperparameters that differ between the runs of that preset
    (``digits_mlp, training_steps=2ep``); the experiment folder when nothing differs but the folder. Fields are
    compared within a preset: two presets' own values (batch size, dataset, model, ...) would make every label
    a line of the spec and the legend wider than the figure."""
    preset = runs["preset"].astype(str)
    fields = {p: distinguishing_fields(g) for p, g in runs.groupby(preset)}
    several = runs.groupby(preset)["experiment"].nunique().to_dict()

    def label(r: pd.Series) -> str:
        p = str(r["preset"])
        text = field_label(r, fields[p])
        if text:
            return f"{p}, {text}"
        return f"{p} ({r['experiment']})" if several[p] > 1 else p
    return runs.assign(label=runs.apply(label, axis=1))


_TELEMETRY = [("mean_abs_weight", "Mean |weight|"), ("sign_changed_fraction", "Sign changed since init (fraction)"),
              ("l2_from_init", "L2 distance from init"), ("l2_from_final", "L2 distance from final"),
              ("cosine_to_init", "Cosine similarity to init"), ("cosine_to_final", "Cosine similarity to final")]


def _telemetry(page: _Page, train: pd.DataFrame) -> None:
    """Weight telemetry panels (Frankle et al. 2020, Fig. 3) for training runs with a telemetry.csv (recorded by
    the engine) or with states kept between init and final (--save-states)."""
    rows = []
    for _, run in train.iterrows():
        store = RunDir(Path(run["path"]))
        recorded = store.path / "telemetry.csv"  # the engine's telemetry (EngineOptions.telemetry_every) first
        if recorded.exists():
            found = pd.read_csv(recorded).to_dict("records")
        else:
            index = store.state_iterations()
            if len(index) < 3:
                continue
            states = [(it, store.load_state(name)) for name, it in index.items()]
            layers = [k for k, v in states[0][1].items() if v.dim() >= 2]  # conv and linear weights
            found = telemetry(states, layers)
        for r in found:
            rows.append({"path": run["path"], "experiment": run["experiment"], "preset": run.get("preset"),
                         "label": run["label"], "replicate": run.get("replicate"), **r})
    if not rows:
        return
    df = pd.DataFrame(rows)
    fig, axes = new_figure(ncols=3, width=12.8, height=7.0, nrows=2)
    for ax, (col, label) in zip(axes, _TELEMETRY, strict=True):
        for (_exp, label, rep), g in df.groupby(["experiment", "label", "replicate"], dropna=False):
            ax.plot(g["iteration"], g[col], marker="o", ms=3, label=f"{label} r{rep}")
        ax.set_xlabel("Training iteration (steps)")
        ax.set_ylabel(label)
    axes[0].legend(fontsize=7)
    presets = ", ".join(sorted(df["preset"].astype(str).unique()))
    fig.suptitle(f"{presets}: weight telemetry over training (conv and linear weights)")
    page.figure(fig, "telemetry", "Weight telemetry at the stored states (lth train --save-states ...): "
                "magnitude, sign changes, distance and cosine similarity to the initial and final weights", df)


# ------------------------------------------------------------------------------------------------ entry points
_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}figcaption,.cap{font-size:.9em;color:#444}
table.t{border-collapse:collapse;font-size:.85em;margin:.5em 0}table.t td,table.t th{border:1px solid #ccc;
padding:2px 6px;text-align:right}.tbl{overflow-x:auto}"""


def build_report(root: Path, out: Path | None = None) -> Report:
    """Write the report of the store at ``root`` to ``out`` (default ``root/report``); returns what it wrote."""
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise UserError(f"--root {root}: no such directory; give a store written by lth train/lottery/branch")
    runs = runs_frame(root)
    runs = runs[~runs["path"].str.startswith(str((out or root / "report").resolve()))] if not runs.empty else runs
    if runs.empty:
        raise UserError(f"--root {root}: no runs in this store (no spec.json under it); nothing to report")
    out = Path(out).expanduser().resolve() if out is not None else root / "report"
    out.mkdir(parents=True, exist_ok=True)
    report = Report(out / "index.html")
    # No page until every figure and table is written: a failure part-way leaves no index.html showing an old
    # build beside newer figures. The page is then written whole (atomically) as the last step.
    report.index.unlink(missing_ok=True)
    page = _Page(out, report)
    metrics = metrics_frame(root, runs)
    with matplotlib.rc_context(STYLE):
        page.h(1, "lth report")
        page.p(f"Store: {root} — {len(runs)} runs, {int((runs['status'] == 'complete').sum())} complete. "
               f"Generated {datetime.datetime.now().isoformat(timespec='seconds')}. Accuracies in tables are "
               "fractions; figures show percent.")
        cols = [c for c in ("experiment", "kind", "preset", "branch", "rewind", "level") if c in runs]
        aggs: dict[str, Any] = {"runs": ("path", "size"), "complete": ("complete", "sum")}
        if "level" in runs:
            aggs["levels"] = ("level", lambda x: ", ".join(str(v) for v in sorted(x.dropna().unique())))
        overview = runs.assign(complete=runs["status"] == "complete").groupby(
            [c for c in ("experiment", "kind", "preset", "branch", "rewind") if c in runs], dropna=False).agg(
            **aggs).reset_index()
        page.table(overview, "experiments", "Experiments in the store")
        keep = [c for c in ("path", *cols[:5], "replicate", "level", "density", "ticket_density", "status",
                            "final_test_accuracy") if c in runs]
        p = write_csv(runs[list(dict.fromkeys(keep))], out / "runs.csv")
        report.tables.append(p)
        page.parts.append('<p class="cap">Every run: <a href="runs.csv">runs.csv</a></p>')
        studies = _studies(runs)
        trunks = pd.concat([st[st["kind"] == "lottery"] for st in studies]) if studies else runs.iloc[0:0]
        study_fields = [f for f in distinguishing_fields(trunks) if not f.startswith("branch_options.")]
        for i, study in enumerate(studies):
            s = _series(study)
            preset = str(s["preset"].iloc[0])
            prefix = "" if len(studies) == 1 else f"study{i + 1}_"
            strategy = json.loads(s["pruning"].dropna().iloc[0]).get("strategy", "?") if "pruning" in s and \
                s["pruning"].notna().any() else "?"
            differs = field_label(s[s["kind"] == "lottery"].iloc[0], study_fields) if study_fields else ""
            page.h(2, f"Study {i + 1}: {preset} (pruning: {strategy}{'; ' + differs if differs else ''})")
            rewinds = ", ".join(sorted(map(str, s["rewind"].dropna().unique()), key=_rewind_order))
            branches = ", ".join(sorted(map(str, s["branch"].dropna().unique()))) or "none"
            page.p(f"Rewind steps: {rewinds}. Branches: {branches}. Trunk: {s['trunk'].iloc[0]}")
            preset = f"{preset} ({differs})" if differs else preset  # figure titles tell studies apart
            acc = _accuracy_vs_density(page, s, preset, prefix)
            _curves(page, metrics, s, preset, prefix)
            _early_stopping(page, metrics, s, preset, prefix)
            _verdicts(page, s, acc, runs, prefix, root)
            _weights(page, s, preset, prefix)
        _train_section(page, runs, metrics)
        from lth.report.lmc import stability_section

        stability_section(page, root)
    doc = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>lth report</title>"
           f"<style>{_CSS}</style></head><body>\n" + "\n".join(page.parts) + "\n</body></html>\n")
    atomic_write_bytes(report.index, doc.encode("utf-8"))
    return report


def write_report(root: Path, out: Path | None = None) -> Path:
    """Write the report of the store at ``root``; returns the path of its ``index.html``."""
    return build_report(root, out).index
