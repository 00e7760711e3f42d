"""Frankle, Schwab & Morcos (ICLR 2020), Fig. 8: the effective standard deviation of each perturbation of an IMP
subnetwork's starting weights against its mean evaluation accuracy, and their Pearson correlation.

A perturbation branch (``signs``, ``shuffle``, ``noise``) records in its run's ``spec.json`` the standard deviation
of its perturbed starting weights minus the unperturbed ones over the kept weights (``effective_std``,
:func:`lth.prune.perturb.effective_std`); the runs frame carries it as a column. One point of Fig. 8 is one
perturbation (a branch with its options) at one rewind step k and level: its effective std and its final test
accuracy, each the mean over the replicates (the paper: "mean evaluation accuracy (across 5 seeds)"; it does not
say how the effective std of several seeds is combined: lth averages it too). The correlation is Pearson's r over
the points of one (k, level), with its two-sided p-value (the paper's caption: r = -0.672, p = 0.008 at k = 500;
r = -0.726, p = 0.003 at k = 2000, sparsity 26.2%).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

_SKIP_OPTIONS = ("branch_options.branch_seed", "branch_options.set")


def perturbation_label(row: pd.Series) -> str:
    """A perturbation's name: its branch and the options it was run with (``noise noise_scale=2.0``; the seed
    aside), read from a runs frame row's ``branch_options.*`` columns."""
    opts = [f"{k.split('.', 1)[1]}={row[k]}" for k in sorted(row.index)
            if k.startswith("branch_options.") and k not in _SKIP_OPTIONS and pd.notna(row[k])]
    return f"{row['branch']} {','.join(opts)}".strip()


def pearson(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Pearson's r of ``x`` and ``y`` and its two-sided p-value (:func:`scipy.stats.pearsonr`: under the null of
    no correlation, r's exact distribution for normal data, the same as Student's t with n - 2 degrees of freedom
    for t = r sqrt((n - 2) / (1 - r^2))). ``(nan, nan)`` with fewer than 3 points or no spread in either."""
    from scipy.stats import pearsonr

    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if a.size < 3 or a.size != b.size or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan, math.nan
    res = pearsonr(a, b)
    return float(res.statistic), float(res.pvalue)


def effective_std_points(runs: pd.DataFrame) -> pd.DataFrame:
    """Fig. 8's points from a runs frame: one row per (rewind, level, perturbation) over the finished branch runs
    that recorded an ``effective_std``: ``rewind, level, density, branch, perturbation, effective_std`` (mean),
    ``effective_std_min/max``, ``accuracy`` (mean final test accuracy), ``accuracy_min/max``, ``count`` (runs:
    replicates) and ``runs`` (their paths, ``;``-joined); then per (rewind, level) ``pearson_r``, ``p_value`` and
    ``points`` (the perturbations it is over). Empty (no columns) when no run has an effective std."""
    if "effective_std" not in runs or "kind" not in runs:
        return pd.DataFrame()
    d = runs[(runs["kind"] == "branch") & runs["effective_std"].notna() & runs["final_test_accuracy"].notna()]
    if d.empty:
        return pd.DataFrame()
    d = d.assign(perturbation=d.apply(perturbation_label, axis=1), rewind=d["rewind"].astype(str))
    pts = d.groupby(["rewind", "level", "perturbation"], sort=True).agg(
        branch=("branch", "first"), density=("ticket_density", "mean"), effective_std=("effective_std", "mean"),
        effective_std_min=("effective_std", "min"), effective_std_max=("effective_std", "max"),
        accuracy=("final_test_accuracy", "mean"), accuracy_min=("final_test_accuracy", "min"),
        accuracy_max=("final_test_accuracy", "max"), count=("path", "size"),
        runs=("path", lambda p: ";".join(sorted(p)))).reset_index()
    stats = []
    for (k, lv), g in pts.groupby(["rewind", "level"], sort=False):
        r, p = pearson(g["effective_std"], g["accuracy"])
        stats.append({"rewind": k, "level": lv, "pearson_r": r, "p_value": p, "points": len(g)})
    return pts.merge(pd.DataFrame(stats), on=["rewind", "level"])


__all__ = ["effective_std_points", "pearson", "perturbation_label"]
