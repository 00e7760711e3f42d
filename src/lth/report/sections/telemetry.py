"""Weight telemetry of the ``lth train`` runs (Frankle et al. 2020, Fig. 3), drawn under their training curves."""

from __future__ import annotations

from typing import Any

import pandas as pd

from lth.analysis.weights import run_telemetry
from lth.report.context import ReportContext
from lth.report.figures import new_figure

_TELEMETRY = [("mean_abs_weight", "Mean |weight|"), ("sign_changed_fraction", "Sign changed since init (fraction)"),
              ("l2_from_init", "L2 distance from init"), ("l2_from_final", "L2 distance from final"),
              ("cosine_to_init", "Cosine similarity to init"), ("cosine_to_final", "Cosine similarity to final")]


def draw_telemetry(df: pd.DataFrame) -> Any:
    """One panel per telemetry quantity (its y-axis names it), one line per run and replicate of ``df``
    (columns ``experiment``, ``label``, ``replicate``, ``iteration`` and the quantities)."""
    fig, axes = new_figure(ncols=3, width=12.8, height=7.0, nrows=2)
    for ax, (col, quantity) in zip(axes, _TELEMETRY, strict=True):
        for (_exp, run_label, rep), g in df.groupby(["experiment", "label", "replicate"], dropna=False):
            ax.plot(g["iteration"], g[col], marker="o", ms=3, label=f"{run_label} r{rep}")
        ax.set_xlabel("Training iteration (steps)")
        ax.set_ylabel(quantity)  # the quantity, not the last run's label (a shadowed name drew that)
    axes[0].legend(fontsize=7)
    return fig


def telemetry(ctx: ReportContext) -> None:
    """Weight telemetry panels for training runs with a telemetry.csv (recorded by the engine) or with states
    kept between init and final (--save-states) (:func:`lth.analysis.weights.run_telemetry`); drawn where the
    training curves are (training runs with test accuracies)."""
    train = ctx.train_runs
    if train.empty or ctx.train_metrics.empty:
        return
    rows = []
    for _, run in train.iterrows():
        for r in run_telemetry(run["path"]):
            rows.append({"path": run["path"], "experiment": run["experiment"], "preset": run.get("preset"),
                         "label": run["label"], "replicate": run.get("replicate"), **r})
    if not rows:
        return
    df = pd.DataFrame(rows)
    fig = draw_telemetry(df)
    presets = ", ".join(sorted(df["preset"].astype(str).unique()))
    fig.suptitle(f"{presets}: weight telemetry over training (conv and linear weights)")
    ctx.page.figure(fig, "telemetry", "Weight telemetry at the stored states (lth train --save-states ...): "
                    "magnitude, sign changes, distance and cosine similarity to the initial and final weights", df)
