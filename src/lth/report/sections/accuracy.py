"""A study's lottery curve: final test accuracy against the fraction of weights remaining, one line per series
(the IMP ticket and each branch)."""

from __future__ import annotations

from lth.report.captions import runs_text, split_text
from lth.report.context import Study
from lth.report.figures import density_axis, new_figure, pct


def accuracy_vs_density(study: Study) -> None:
    """Mean final test accuracy per level against density (shaded min to max), with the dense level 0 marked."""
    table = study.accuracy
    if table.empty:
        return
    done = study.runs[study.runs["final_test_accuracy"].notna()]
    n = table["series"].nunique()
    many = n > 6  # the legend under the axes, in two columns: inside it took the whole figure (#33)
    fig, (ax,) = new_figure(width=9.0 if many else 6.4, height=4.2 + (0.19 * ((n + 2) // 2) if many else 0))
    for name, g in table.groupby("series", sort=False):
        g = g.sort_values("density", ascending=False)
        line = ax.plot(pct(g["density"]), pct(g["mean"]), marker="o", ms=4, label=name,
                       color=study.page.colour(name))[0]
        ax.fill_between(pct(g["density"]), pct(g["min"]), pct(g["max"]), color=line.get_color(), alpha=0.2,
                        lw=0)
    dense = table[(table["kind"] == "lottery") & (table["level"] == 0)]
    if not dense.empty:
        ax.axhline(pct(dense["mean"].max()), color="0.4", ls=":", lw=1.2, label="dense (level 0)")
    density_axis(ax, table["density"])
    ax.set_xlabel("Weights remaining (%, log scale)")
    ax.set_ylabel("Test accuracy (%)")
    ax.set_title(f"{study.title}: final test accuracy vs density")
    if many:
        fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=2, fontsize=7)
    else:
        ax.legend(loc="best")
    study.page.figure(fig, f"{study.prefix}accuracy_vs_density",
                      f"Final test accuracy (after the last training step, on {split_text(done)}) against the "
                      f"fraction of weights remaining: mean over {runs_text(table['count'])}, shaded from min to "
                      f"max; series: {', '.join(table['series'].drop_duplicates())}", table)
