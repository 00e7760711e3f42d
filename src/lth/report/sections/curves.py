"""A study's training curves: test accuracy over training of the IMP trunk at its dense, a middle and its
sparsest level."""

from __future__ import annotations

from lth.analysis import aggregate
from lth.report.captions import runs_text, split_text
from lth.report.context import Study, rewind_order
from lth.report.figures import new_figure, pct


def accuracy_curves(study: Study) -> None:
    """Test accuracy against iteration at three levels of the trunk's first rewind step (mean, min to max)."""
    s, metrics = study.runs, study.report.metrics
    trunk = s[s["kind"] == "lottery"]
    if trunk.empty or metrics.empty:
        return
    rewind = sorted(trunk["rewind"].dropna().unique(), key=rewind_order)[0]
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
        label = f"level {level} ({dens[level] * 100:.3g}% remaining)"
        line = ax.plot(g["iteration"], pct(g["mean"]), marker="o", ms=3, label=label,
                       color=study.page.colour(label))[0]
        ax.fill_between(g["iteration"], pct(g["min"]), pct(g["max"]), color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("Training iteration (steps)")
    ax.set_ylabel("Test accuracy (%)")
    ax.set_title(f"{study.title}: test accuracy during training (IMP, rewind {rewind})")
    ax.legend(loc="lower right")
    counts = m.groupby("level")["path"].nunique()
    study.page.figure(fig, f"{study.prefix}accuracy_curves",
                      f"Test accuracy on {split_text(trunk)} over training of the IMP trunk (rewind {rewind}) at "
                      f"levels {', '.join(map(str, chosen))} (the dense, a middle and the sparsest): mean over "
                      f"{runs_text(counts)}, shaded from min to max", table)
