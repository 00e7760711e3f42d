"""A study's early-stopping iteration against density (Frankle & Carbin 2019, section 2)."""

from __future__ import annotations

import numpy as np

from lth.analysis import aggregate
from lth.analysis import early_stopping as early_stops
from lth.report.captions import runs_text, split_text
from lth.report.context import Study
from lth.report.figures import density_axis, new_figure, pct


def early_stopping(study: Study, split: str = "val") -> None:
    """Early-stopping iteration vs density, chosen on ``split`` (Frankle & Carbin: the validation loss). Runs
    without a validation split are listed as such in the table; the figure is drawn only from runs that have
    one, and the page says when none has (it never falls back to the test set)."""
    s, metrics, page, prefix = study.runs, study.report.metrics, study.page, study.prefix
    m = metrics[metrics["path"].isin(s["path"])] if not metrics.empty else metrics
    if m.empty:
        return
    per = early_stops(m, split=split)
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
    if drawn.empty:  # one line, not a table of empty rows (one per series and level)
        page.note(f"Early stopping ({study.title}): no run has a validation split, so no early-stopping iteration "
                  "is chosen (set --validation-size, as the presets that follow Frankle & Carbin do; choosing on "
                  "the test set must be asked for explicitly)", table, f"{prefix}early_stopping")
        return
    fig, (ax,) = new_figure()
    for name, g in drawn.groupby("series", sort=False):
        g = g.sort_values("density", ascending=False)
        yerr = np.vstack([g["mean"] - g["min"], g["max"] - g["mean"]])
        ax.errorbar(pct(g["density"]), g["mean"], yerr=yerr, marker="o", ms=4, capsize=3, label=name,
                    color=page.colour(name))
    density_axis(ax, drawn["density"])
    ax.set_xlabel("Weights remaining (%, log scale)")
    crit = "validation" if split == "val" else "test"
    ax.set_ylabel(f"Early-stop iteration (min {crit} loss, steps)")
    ax.set_title(f"{study.title}: early-stopping iteration vs density (chosen on the {crit} split)")
    ax.legend(loc="best")
    missing = "" if len(drawn) == len(table) else \
        "; series/levels without a validation split are listed in the CSV and not drawn"
    runs = s[s["path"].isin(per["path"])]
    page.figure(fig, f"{prefix}early_stopping",
                f"Iteration of minimum {crit} loss (on {split_text(runs, split)}; Frankle & Carbin 2019, section 2) "
                f"against density: mean over {runs_text(drawn['count'])}, bars from min to max; the test accuracy "
                f"there (on {split_text(runs)}) is in the CSV{missing}", table)
