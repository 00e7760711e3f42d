"""Verdicts computed from tidy tables: replicate statistics, matching tickets, early stopping, jackpot grades.

Accuracies are fractions throughout (0.982, not 98.2); tolerances and margins too (0.5 points = 0.005).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

_EPS = 1e-12  # comparisons at exactly the tolerance edge count as met despite float rounding


def aggregate(df: pd.DataFrame, by: str | Sequence[str], value: str) -> pd.DataFrame:
    """Statistics of ``value`` across replicates within each group of ``by``: columns ``by``..., ``mean``,
    ``min``, ``max``, ``std`` (sample std, ddof=1; NaN for a single replicate) and ``count`` (non-null values).
    Groups are sorted by ``by``; a missing key (NaN/None) is its own group."""
    keys = [by] if isinstance(by, str) else list(by)
    if df.empty:
        return pd.DataFrame(columns=[*keys, "mean", "min", "max", "std", "count"])
    vals = pd.to_numeric(df[value], errors="coerce")
    out = (df.assign(_v=vals).groupby(keys, dropna=False, sort=True)["_v"]
           .agg(["mean", "min", "max", "std", "count"]).reset_index())
    return out


def matching(table: pd.DataFrame, tolerance: float = 0.002, dense_accuracy: float | None = None,
             value: str = "mean", level: str = "level", density: str = "density"
             ) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """Mark each level *matching* when its accuracy is within ``tolerance`` of the dense network's.

    ``table`` holds one row per level with the mean accuracy in ``value`` (a fraction) and the density.
    The dense accuracy is ``dense_accuracy`` when given, else the ``value`` of the level-0 row. A level matches
    when ``acc >= dense - tolerance`` (the default 0.002 is 0.2 points; the edge itself matches).

    Returns ``(table + columns dense_accuracy, gap (= acc - dense), matching, sparsest_matching)`` where
    ``sparsest_matching`` is ``{"level", "density", "accuracy"}`` of the lowest-density *pruned* level
    (density < 1) that matches, or None when no pruned level does."""
    t = table.copy()
    if dense_accuracy is None:
        dense_rows = t[t[level] == 0]
        if dense_rows.empty:
            raise ValueError("matching: no level-0 row and no dense_accuracy given")
        dense_accuracy = float(dense_rows[value].iloc[0])
    t["dense_accuracy"] = dense_accuracy
    t["gap"] = t[value] - dense_accuracy
    t["matching"] = t[value] >= dense_accuracy - tolerance - _EPS
    pruned = t[t["matching"] & (t[density] < 1.0)]
    if pruned.empty:
        return t, None
    row = pruned.sort_values([density, level], ascending=[True, False]).iloc[0]
    return t, {"level": int(row[level]), "density": float(row[density]), "accuracy": float(row[value])}


def early_stopping(metrics: pd.DataFrame, run: str = "path") -> pd.DataFrame:
    """Per run, the early-stopping point: the iteration of minimum validation loss (test loss when the run has
    no validation split, i.e. no ``val_loss`` value) and the test accuracy at that evaluation. Ties go to the
    earliest iteration; runs whose losses are all missing are left out.

    Returns one row per run: the run's identifying columns (those of ``metrics`` that are constant in it:
    path, level, replicate, branch, density, ...), ``criterion`` (``val_loss`` or ``test_loss``),
    ``early_stop_iteration``, ``early_stop_loss`` and ``early_stop_test_accuracy``."""
    ident = [c for c in ("path", "experiment", "kind", "preset", "branch", "rewind", "replicate", "level",
                         "density", "ticket_density") if c in metrics.columns]
    if run not in ident:
        ident.insert(0, run)
    rows = []
    for _, g in metrics.groupby(run, sort=False):
        g = g.sort_values("iteration", kind="stable")
        crit = "val_loss" if "val_loss" in g and pd.to_numeric(g["val_loss"], errors="coerce").notna().any() \
            else "test_loss"
        loss = pd.to_numeric(g[crit], errors="coerce")
        if loss.notna().sum() == 0:
            continue
        best = g.loc[loss.idxmin()]
        rows.append({**{c: g[c].iloc[0] for c in ident}, "criterion": crit,
                     "early_stop_iteration": int(best["iteration"]), "early_stop_loss": float(loss.min()),
                     "early_stop_test_accuracy": float(best["test_accuracy"])})
    return pd.DataFrame(rows, columns=[*ident, "criterion", "early_stop_iteration", "early_stop_loss",
                                       "early_stop_test_accuracy"])


def early_stopping_by_level(metrics: pd.DataFrame, by: Sequence[str] = ("level",)) -> pd.DataFrame:
    """:func:`early_stopping` aggregated across replicates: per group of ``by``, the mean/min/max/std/count of
    the early-stop iteration (``iteration_*``) and of the test accuracy there (``accuracy_*``)."""
    per_run = early_stopping(metrics)
    it = aggregate(per_run, list(by), "early_stop_iteration")
    acc = aggregate(per_run, list(by), "early_stop_test_accuracy")
    stats = ["mean", "min", "max", "std", "count"]
    it = it.rename(columns={s: f"iteration_{s}" for s in stats})
    acc = acc.rename(columns={s: f"accuracy_{s}" for s in stats})
    return it.merge(acc.drop(columns=["accuracy_count"]), on=list(by))


# ------------------------------------------------------------------------------------------------ jackpot
CONDITIONS = ("non_trivial_sparsity", "beats_reinit", "matches_dense_same_lr", "matches_well_trained_dense",
              "beats_small_dense")


@dataclass
class JackpotVerdict:
    """A ticket's grade (``jackpot``, ``secondary prize`` or ``no prize``) and the conditions it fails."""

    grade: str
    failed: list[str] = field(default_factory=list)
    conditions: dict[str, bool] = field(default_factory=dict)


def jackpot(accuracy: float, density: float, reinit_accuracy: float, dense_accuracy: float,
            well_trained_dense_accuracy: float, small_dense_accuracy: float, *, density_threshold: float = 0.8,
            margin: float = 0.005) -> JackpotVerdict:
    """Grade a ticket by the sanity checks of Ma et al., "Sanity Checks for Lottery Tickets: Does Your Winning
    Ticket Really Win the Jackpot?" (NeurIPS 2021). All accuracies are fractions; ``margin`` 0.005 = 0.5 points.

    The five conditions (named as in ``failed``):

    1. ``non_trivial_sparsity``: the ticket is genuinely sparse, ``density <= density_threshold``
       (default 0.8, i.e. at least 20% of the weights pruned);
    2. ``beats_reinit``: the ticket beats the same mask with a fresh random initialisation by more than
       ``margin``: ``accuracy - reinit_accuracy > margin`` (its initial weights matter);
    3. ``matches_dense_same_lr``: ``accuracy >= dense_accuracy``, the dense network trained with the same
       learning rate and schedule as the ticket;
    4. ``matches_well_trained_dense``: ``accuracy >= well_trained_dense_accuracy``, the best dense accuracy
       known for this architecture and data (a well-tuned baseline, passed in as a number);
    5. ``beats_small_dense``: the ticket beats a small dense network with the same number of parameters by more
       than ``margin``: ``accuracy - small_dense_accuracy > margin`` (sparsity buys something).

    Grades: ``jackpot`` when all five hold; ``secondary prize`` when 1, 2 and 5 hold but 3 or 4 does not;
    ``no prize`` otherwise."""
    ok = {
        "non_trivial_sparsity": density <= density_threshold + _EPS,
        "beats_reinit": accuracy - reinit_accuracy > margin + _EPS,
        "matches_dense_same_lr": accuracy >= dense_accuracy - _EPS,
        "matches_well_trained_dense": accuracy >= well_trained_dense_accuracy - _EPS,
        "beats_small_dense": accuracy - small_dense_accuracy > margin + _EPS,
    }
    failed = [c for c in CONDITIONS if not ok[c]]
    if not failed:
        grade = "jackpot"
    elif ok["non_trivial_sparsity"] and ok["beats_reinit"] and ok["beats_small_dense"]:
        grade = "secondary prize"
    else:
        grade = "no prize"
    return JackpotVerdict(grade, failed, ok)
