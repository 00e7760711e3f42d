"""Fig. 8's points and Pearson correlation (Frankle, Schwab & Morcos 2020) from a runs frame."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lth.analysis.perturbations import effective_std_points, pearson, perturbation_label


def test_pearson_against_a_known_value_and_the_t_distribution() -> None:
    from scipy.stats import t

    r, p = pearson([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    assert r == pytest.approx(0.8)  # sum of products of deviations 8, each sum of squares 10
    tt = 0.8 * math.sqrt(3 / (1 - 0.64))  # t = r sqrt((n - 2) / (1 - r^2)), n - 2 = 3 degrees of freedom
    assert p == pytest.approx(2 * t.sf(tt, 3)) and p == pytest.approx(0.1041, abs=5e-5)  # a t table's value
    assert all(math.isnan(v) for v in pearson([1, 2], [3, 4]))  # fewer than 3 points
    assert all(math.isnan(v) for v in pearson([1, 1, 1], [3, 4, 5]))  # no spread


def _frame() -> pd.DataFrame:
    rows = []
    acc = {("noise", 1.0): (0.95, 0.93), ("noise", 2.0): (0.88, 0.86), ("shuffle", None): (0.97, 0.95)}
    std = {("noise", 1.0): (0.18, 0.20), ("noise", 2.0): (0.36, 0.38), ("shuffle", None): (0.30, 0.32)}
    for (branch, scale), accs in acc.items():
        for rep in (0, 1):
            rows.append({"kind": "branch", "branch": branch, "rewind": "5it", "level": 2, "replicate": rep,
                         "path": f"/{branch}{scale}/r{rep}", "ticket_density": 0.64,
                         "branch_options.noise_scale": scale, "branch_options.branch_seed": 0,
                         "branch_options.shuffle_within": "layer" if branch == "shuffle" else None,
                         "effective_std": std[(branch, scale)][rep], "final_test_accuracy": accs[rep]})
    rows.append({"kind": "lottery", "branch": None, "rewind": "5it", "level": 2, "replicate": 0, "path": "/t",
                 "ticket_density": 0.64, "effective_std": None, "final_test_accuracy": 0.97})
    return pd.DataFrame(rows)


def test_points_are_per_perturbation_means_over_replicates_and_r_is_over_them() -> None:
    pts = effective_std_points(_frame())
    assert sorted(pts["perturbation"]) == ["noise noise_scale=1.0", "noise noise_scale=2.0",
                                           "shuffle shuffle_within=layer"]
    assert (pts["count"] == 2).all() and "/t" not in ";".join(pts["runs"])  # the trunk is no perturbation
    row = pts.set_index("perturbation").loc["noise noise_scale=2.0"]
    assert row["effective_std"] == pytest.approx(0.37) and row["accuracy"] == pytest.approx(0.87)
    assert row["accuracy_min"] == 0.86 and row["effective_std_max"] == 0.38
    r = np.corrcoef(pts["effective_std"], pts["accuracy"])[0, 1]
    assert pts["pearson_r"].iloc[0] == pytest.approx(r) and (pts["points"] == 3).all()
    assert effective_std_points(_frame().drop(columns="effective_std")).empty


def test_perturbation_label_names_the_options_not_the_seed() -> None:
    row = pd.Series({"branch": "signs", "branch_options.signs_from": "k", "branch_options.magnitudes_from": "0",
                     "branch_options.branch_seed": 3, "branch_options.noise_scale": None})
    assert perturbation_label(row) == "signs magnitudes_from=0,signs_from=k"
