"""The ``lth train`` runs: final test accuracy per experiment, and test accuracy over training."""

from __future__ import annotations

from lth.analysis import aggregate
from lth.report.captions import runs_text, split_text
from lth.report.context import ReportContext
from lth.report.figures import new_figure, pct


def training(ctx: ReportContext) -> None:
    """The training runs' table and curves (mean over replicates, shaded min to max)."""
    page, train = ctx.page, ctx.train_runs
    if train.empty:
        return
    page.h(2, "Training runs (lth train)")
    table = aggregate(train, ["experiment", "preset", "label"], "final_test_accuracy")
    page.table(table, "train_runs", f"Final test accuracy (on {split_text(train)}) of each training experiment: "
               f"mean, min, max and std over {runs_text(table['count'])}")
    m = ctx.train_metrics
    if m.empty:
        return
    curves = aggregate(m.drop(columns="label", errors="ignore").merge(train[["path", "label"]], on="path"),
                       ["experiment", "preset", "label", "iteration"], "test_accuracy")
    fig, (ax,) = new_figure()
    for (_exp, _preset, label), g in curves.groupby(["experiment", "preset", "label"]):
        line = ax.plot(g["iteration"], pct(g["mean"]), marker="o", ms=3, label=label, color=page.colour(label))[0]
        ax.fill_between(g["iteration"], pct(g["min"]), pct(g["max"]), color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("Training iteration (steps)")
    ax.set_ylabel("Test accuracy (%)")
    presets = ", ".join(sorted(curves["preset"].astype(str).unique()))
    ax.set_title(f"{presets}: test accuracy during training")
    ax.legend(loc="lower right")
    page.figure(fig, "train_curves", f"Test accuracy on {split_text(train)} over training: mean over "
                f"{runs_text(curves['count'])}, shaded from min to max", curves)
