"""A study's perturbations against accuracy (Frankle, Schwab & Morcos, ICLR 2020, Fig. 8): each perturbation's
effective standard deviation against its mean final test accuracy, one panel per rewind step k and level, with
Pearson's r and its p-value (computed in :func:`lth.analysis.perturbations.effective_std_points`)."""

from __future__ import annotations

import numpy as np

from lth.analysis.perturbations import effective_std_points
from lth.report.captions import runs_text, split_text
from lth.report.context import Study, rewind_order
from lth.report.figures import new_figure, pct


def effective_std(study: Study) -> None:
    """Fig. 8 for every (k, level) where the study's perturbation branches (signs, shuffle, noise) ran."""
    pts = effective_std_points(study.runs)
    if pts.empty:
        return
    panels = sorted(pts.groupby(["rewind", "level"]).groups, key=lambda kl: (rewind_order(kl[0]), kl[1]))
    fig, axes = new_figure(ncols=len(panels), width=5.2 * len(panels), height=4.6)
    if len(panels) > 1:
        fig.set_size_inches(5.2 * len(panels), 4.6)
    for ax, (k, lv) in zip(axes, panels, strict=True):
        g = pts[(pts["rewind"] == k) & (pts["level"] == lv)]
        for branch, b in g.groupby("branch", sort=True):
            c = study.page.colour(f"perturbation: {branch}")
            xerr = np.vstack([b["effective_std"] - b["effective_std_min"], b["effective_std_max"] - b["effective_std"]])
            yerr = np.vstack([pct(b["accuracy"] - b["accuracy_min"]), pct(b["accuracy_max"] - b["accuracy"])])
            ax.errorbar(b["effective_std"], pct(b["accuracy"]), xerr=xerr, yerr=yerr, fmt="o", ms=6, capsize=2,
                        color=c, label=str(branch))
            for _, row in b.iterrows():
                ax.annotate(row["perturbation"].split(" ", 1)[-1], (row["effective_std"], pct(row["accuracy"])),
                            fontsize=6, xytext=(3, 3), textcoords="offset points", color="0.25")
        r, p = g["pearson_r"].iloc[0], g["p_value"].iloc[0]
        stat = f"r = {r:.3f}, p = {p:.3g}" if np.isfinite(r) else "r: fewer than 3 perturbations"
        ax.set_title(f"k = {k}, level {lv} ({100 * g['density'].iloc[0]:.3g}% remaining)\n{stat} "
                     f"({len(g)} perturbations)", fontsize=10)
        ax.set_xlabel("Effective std of the perturbation")
        ax.set_ylabel("Mean final test accuracy (%)")
        ax.legend(loc="best", fontsize=8)
    fig.suptitle(f"{study.title}: effective standard deviation against accuracy (Fig. 8)")
    done = study.runs[study.runs["path"].isin(";".join(pts["runs"]).split(";"))]
    study.page.figure(fig, f"{study.prefix}effective_std",
                      "Frankle, Schwab & Morcos 2020, Fig. 8: each perturbation of the IMP subnetwork's starting "
                      "weights (signs, shuffles, noise; its options beside its point), its effective standard "
                      "deviation (of the perturbed minus the unperturbed starting weights, over the kept weights) "
                      f"against its final test accuracy on {split_text(done)}, both the mean over "
                      f"{runs_text(pts['count'])} (bars: min to max); Pearson's r over the perturbations of each "
                      "panel with its two-sided p-value (the paper: r = -0.672, p = 0.008 at k = 500; r = -0.726, "
                      "p = 0.003 at k = 2000; sparsity 26.2%)", pts)
