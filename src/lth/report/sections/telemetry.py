"""Weight telemetry over training (Frankle, Schwab & Morcos, ICLR 2020, Fig. 3), for every run that recorded it.

Fig. 3's nine panels, in its order (top row, then bottom row): evaluation accuracy and loss (one panel, loss on its
right axis), mean |weight|, the percentage of weights whose sign changed since initialisation, the values of ten
randomly selected weights; the gradient norm, the L2 distance from the initial and from the final weights, the
cosine similarity to the initial and to the final weights. The quantities come from each run's ``telemetry.csv``
(the engine's, ``--telemetry-every``) or from its stored states (``--save-states``), read by
:func:`lth.analysis.weights.telemetry_frame`; accuracy and loss are the run's evaluations (``metrics.csv``).

Drawn: the ``lth train`` runs (one figure for the store, from their ``telemetry.csv`` or from three or more stored
states) and, per study, the IMP trunk's dense network (level 0, the network Fig. 3 follows; each run once, where
trunks that differ only in their rewind step share it) where it recorded a ``telemetry.csv``. A store whose
``telemetry.csv`` files are elsewhere only (a branch, stability copies) gets one figure of those runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from lth.analysis.telemetry import sampled_columns
from lth.analysis.weights import telemetry_frame
from lth.report.context import ReportContext, Study, pretrain_text
from lth.report.figures import PALETTE, new_figure, pct

# (column, y-axis label, scale) in Fig. 3's order; "test_accuracy" carries test_loss on its right axis, and
# "sampled" the ten fixed weights (the w[...] columns)
PANELS = (("test_accuracy", "Test accuracy (%)", 100.0), ("mean_abs_weight", "Mean |weight|", 1.0),
          ("sign_changed_fraction", "Weights whose sign changed since init (%)", 100.0),
          ("sampled", "Value of each of ten fixed weights", 1.0),
          ("grad_norm", "Gradient norm (L2, masked)", 1.0), ("l2_from_init", "L2 distance from init", 1.0),
          ("l2_from_final", "L2 distance from final", 1.0), ("cosine_to_init", "Cosine similarity to init", 1.0),
          ("cosine_to_final", "Cosine similarity to final", 1.0))
LOSS_LABEL = "Test loss (dashed)"
_SLOTS = (0, 1, 2, 3, 5, 6, 7, 8, 9)  # the 2 x 5 grid's cells of the nine panels; cell 4 holds the legend


def _missing(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=8, color="0.35")


def draw_telemetry(df: pd.DataFrame, acc: pd.DataFrame | None = None,
                   colour: Callable[[str], str] | None = None) -> tuple[Any, dict[str, Any]]:
    """Fig. 3's nine panels for the runs of ``df`` (telemetry rows: ``series``, ``path``, ``replicate``,
    ``iteration``, the quantities and the sampled ``w[...]`` columns), one line per run in its series' colour;
    ``acc`` (evaluation rows: ``series``, ``path``, ``iteration``, ``test_accuracy``, ``test_loss``) for the
    first panel. Returns the figure and its panels by column (``PANELS``; ``"test_loss"``: the first panel's
    right axis). A quantity no run recorded (the gradient norm and the ten weights come only from the engine's
    telemetry) is a panel that says so. The ten weights are the first run's (its series and replicate in the
    panel's title): every run samples its own positions' values."""
    series = list(dict.fromkeys(df["series"]))
    colour = colour or (lambda s: PALETTE[series.index(s) % len(PALETTE)])
    fig, cells = new_figure(ncols=5, nrows=2, width=17.5, height=7.0)
    panels = {col: cells[i] for (col, _, _), i in zip(PANELS, _SLOTS, strict=True)}
    runs = list(df.groupby(["series", "path"], sort=False))
    for col, label, scale in PANELS:
        ax = panels[col]
        ax.set_xlabel("Training iteration (steps)")
        ax.set_ylabel(label)
        if col == "test_accuracy":
            loss = ax.twinx()
            loss.grid(False)
            loss.set_ylabel(LOSS_LABEL)
            panels["test_loss"] = loss
            if acc is None or acc.empty or acc["test_accuracy"].notna().sum() == 0:
                _missing(ax, "no evaluations stored")
                continue
            for (name, _path), g in acc.sort_values("iteration").groupby(["series", "path"], sort=False):
                ax.plot(g["iteration"], pct(g["test_accuracy"]), marker="o", ms=3, color=colour(name))
                if "test_loss" in g:
                    loss.plot(g["iteration"], g["test_loss"], ls="--", marker=".", ms=3, color=colour(name))
            continue
        if col == "sampled":
            w = sampled_columns(df)
            first = df[df[w].notna().any(axis=1)] if w else df.iloc[0:0]
            if first.empty:
                _missing(ax, "not recorded (the engine's\n--telemetry-every records them)")
                continue
            path = first["path"].iloc[0]
            g = first[first["path"] == path].sort_values("iteration")
            for c in w:
                ax.plot(g["iteration"], g[c], lw=1.0, color=colour(str(g["series"].iloc[0])), alpha=0.8)
            ax.set_title(f"{g['series'].iloc[0]}, replicate {g['replicate'].iloc[0]}", fontsize=8)
            continue
        if col not in df or df[col].notna().sum() == 0:
            _missing(ax, "not recorded (the engine's\n--telemetry-every records it)" if col == "grad_norm"
                     else "not recorded")
            continue
        for (name, _path), g in runs:
            g = g.sort_values("iteration")
            ax.plot(g["iteration"], scale * g[col], marker="o", ms=2.5, color=colour(name), label=name)
    legend = cells[4]
    legend.axis("off")
    handles = {}
    for line in panels["mean_abs_weight"].lines:
        handles.setdefault(line.get_label(), line)
    if handles:
        legend.legend(list(handles.values()), list(handles), loc="center", fontsize=8,
                      title="one line per run")
    return fig, panels


def _draw(page: Any, name: str, title: str, caption: str, df: pd.DataFrame, metrics: pd.DataFrame) -> None:
    acc = metrics[metrics["path"].isin(df["path"])] if not metrics.empty else metrics
    if not acc.empty:
        acc = acc.drop(columns=[c for c in ("series",) if c in acc]).merge(
            df[["path", "series"]].drop_duplicates(), on="path")
    fig, _ = draw_telemetry(df, acc, page.colour)
    fig.suptitle(title)
    page.figure(fig, name, caption, df)


def _caption(what: str, df: pd.DataFrame) -> str:
    src = ("the engine's telemetry.csv" if "grad_norm" in df and df["grad_norm"].notna().any() else
           "the stored states")
    return (f"Weight telemetry (Frankle, Schwab & Morcos 2020, Fig. 3) of {what}, from {src}, over the conv and "
            "linear (prunable) weights taken together: test accuracy and loss at each evaluation; mean |weight|; "
            "the percentage of weights whose sign differs from the run's start; ten fixed weights of one run; the "
            "gradient norm; L2 distance and cosine similarity to the start and to the final weights. One line per "
            f"run ({df['path'].nunique()} runs); the CSV holds every run's rows")


def telemetry(ctx: ReportContext) -> None:
    """The ``lth train`` runs' telemetry (their legend labels as series); and, when no study drew one, the
    telemetry of whatever runs recorded it (by experiment)."""
    train = ctx.train_runs
    if not train.empty:
        df = telemetry_frame(train, ("path", "experiment", "preset", "label", "replicate"))
        if not df.empty:
            df = df.assign(series=df["label"])
            presets = ", ".join(sorted(df["preset"].astype(str).unique()))
            _draw(ctx.page, "telemetry", f"{presets}: weight telemetry over training (conv and linear weights)",
                  _caption("the training runs", df), df, ctx.metrics)
            return
    if any(p.stem.endswith("telemetry") for p in ctx.page.report.figures):
        return
    runs = ctx.runs[ctx.runs["kind"] != "train"] if "kind" in ctx.runs else ctx.runs
    df = telemetry_frame(runs.sort_values("path"), ("path", "experiment", "replicate"), recorded=True)
    if df.empty:
        return
    df = df.assign(series=df["experiment"].astype(str))
    _draw(ctx.page, "telemetry", "Weight telemetry over training", _caption("the runs that recorded it", df), df,
          ctx.metrics)


def dense_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of a study's IMP trunk at its lowest level (level 0: the dense network), each training once: a
    run filled from another (``trained_as``, the level 0 of trunks that differ only in their rewind step) is
    left out where the one it was trained as is there, else the first run of each node is kept."""
    t = runs[runs["kind"] == "lottery"] if "kind" in runs else runs.iloc[0:0]
    if t.empty:
        return t
    t = t[t["level"] == t["level"].min()]
    if "trained_as" in t:
        t = t[t["trained_as"].isna() | ~t["trained_as"].isin(set(runs["path"]))]
    return t.drop_duplicates("node") if "node" in t else t


def study_telemetry(study: Study) -> None:
    """Fig. 3 for a study: the telemetry of its IMP trunk's dense network (level 0), one line per replicate (and
    per pretraining task where level 0 differs by it)."""
    dense = dense_runs(study.runs)
    if dense.empty:
        return
    level = int(dense["level"].iloc[0])
    dense = dense.assign(series=[f"level {level} (dense)" if level == 0 else f"level {level}"] * len(dense))
    tasks = dense["pretrain"].map(pretrain_text) if "pretrain" in dense else pd.Series("", index=dense.index)
    if tasks.nunique() > 1:
        dense = dense.assign(series=dense["series"] + tasks.map(lambda t: f" ({t})" if t else ""))
    df = telemetry_frame(dense, ("path", "experiment", "series", "replicate"), recorded=True)
    if df.empty:
        return
    _draw(study.page, f"{study.prefix}telemetry", f"{study.title}: weight telemetry of the IMP trunk's "
          f"level {level} over training", _caption(f"the IMP trunk's level {level}, each replicate", df), df,
          study.report.metrics)
