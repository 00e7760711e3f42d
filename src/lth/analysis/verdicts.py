"""Verdicts computed from tidy tables: replicate statistics, matching tickets, early stopping, jackpot grades.

Accuracies are fractions throughout (0.982, not 98.2); tolerances and margins too (0.5 points = 0.005).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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


EARLY_STOP_SPLITS = ("val", "test")
NO_VALIDATION = "no validation split"


def early_stopping(metrics: pd.DataFrame, run: str = "path", split: str = "val") -> pd.DataFrame:
    """Per run, the early-stopping point: the iteration of minimum loss on ``split`` and the test accuracy there.

    Frankle & Carbin (ICLR 2019, section 2 and appendix) choose the early-stopping iteration by the loss on a
    *validation* set (5,000 training examples held out for MNIST and CIFAR-10) and report the test accuracy at
    that iteration. ``split="val"`` (the default) does exactly that with ``val_loss``; ``split="test"`` picks
    the iteration by ``test_loss`` and must be asked for explicitly (it selects on the data it then reports).
    A run that has no validation loss under ``split="val"`` is *not* silently scored on test: its row says
    ``criterion = "no validation split"`` and its iteration, loss and accuracy are NaN. Ties go to the earliest
    iteration; runs whose losses on an existing split are all missing are left out.

    Returns one row per run: the run's identifying columns (those of ``metrics`` that are constant in it:
    path, level, replicate, branch, density, ...), ``criterion`` (``val_loss``, ``test_loss`` or
    ``no validation split``), ``early_stop_iteration``, ``early_stop_loss`` and ``early_stop_test_accuracy``."""
    if split not in EARLY_STOP_SPLITS:
        raise ValueError(f"early_stopping: unknown split {split!r}; allowed: {', '.join(EARLY_STOP_SPLITS)}")
    ident = [c for c in ("path", "experiment", "kind", "preset", "branch", "rewind", "replicate", "level",
                         "density", "ticket_density") if c in metrics.columns]
    if run not in ident:
        ident.insert(0, run)
    crit = f"{split}_loss"
    nan = float("nan")
    rows = []
    for _, g in metrics.groupby(run, sort=False):
        g = g.sort_values("iteration", kind="stable")
        loss = pd.to_numeric(g[crit], errors="coerce") if crit in g else pd.Series(nan, index=g.index)
        head = {c: g[c].iloc[0] for c in ident}
        if loss.notna().sum() == 0:
            if split == "val":
                rows.append({**head, "criterion": NO_VALIDATION, "early_stop_iteration": nan,
                             "early_stop_loss": nan, "early_stop_test_accuracy": nan})
            continue
        best = g.loc[loss.idxmin()]
        rows.append({**head, "criterion": crit, "early_stop_iteration": int(best["iteration"]),
                     "early_stop_loss": float(loss.min()), "early_stop_test_accuracy": float(best["test_accuracy"])})
    return pd.DataFrame(rows, columns=[*ident, "criterion", "early_stop_iteration", "early_stop_loss",
                                       "early_stop_test_accuracy"])


def early_stopping_by_level(metrics: pd.DataFrame, by: Sequence[str] = ("level",), split: str = "val"
                            ) -> pd.DataFrame:
    """:func:`early_stopping` (on ``split``) aggregated across replicates: per group of ``by``, the
    mean/min/max/std/count of the early-stop iteration (``iteration_*``) and of the test accuracy there
    (``accuracy_*``); ``criterion`` names the split that chose the iteration (``no validation split`` when
    none of the group's runs has one)."""
    per_run = early_stopping(metrics, split=split)
    it = aggregate(per_run, list(by), "early_stop_iteration")
    acc = aggregate(per_run, list(by), "early_stop_test_accuracy")
    stats = ["mean", "min", "max", "std", "count"]
    it = it.rename(columns={s: f"iteration_{s}" for s in stats})
    acc = acc.rename(columns={s: f"accuracy_{s}" for s in stats})
    crit = per_run.groupby(list(by), dropna=False)["criterion"].agg(lambda c: ", ".join(sorted(set(c))))
    return it.merge(acc.drop(columns=["accuracy_count"]), on=list(by)).merge(crit.reset_index(), on=list(by))


# ------------------------------------------------------------------------------------------------ jackpot
# Ma et al. (NeurIPS 2021), "Rigorous definition": five conditions, the first split here into its two halves.
CONDITIONS = ("non_trivial_sparsity", "sufficient_training", "beats_small_dense", "beats_reinit_any_lr",
              "matches_dense_same_lr", "matches_well_trained_dense")
PAPER_CONDITION = {"non_trivial_sparsity": 1, "sufficient_training": 1, "beats_small_dense": 2,
                   "beats_reinit_any_lr": 3, "matches_dense_same_lr": 4, "matches_well_trained_dense": 5}
SECONDARY_CONDITIONS = tuple(c for c in CONDITIONS if PAPER_CONDITION[c] <= 4)
GRADES = ("jackpot", "secondary prize", "no prize")


@dataclass
class JackpotVerdict:
    """A ticket's grade and the evidence behind it.

    ``conditions`` maps each name of :data:`CONDITIONS` to True (met), False (failed) or None (not checked: the
    store holds no run that could decide it). ``grade`` is strict: a condition not checked counts as unmet.
    ``provisional_grade`` is the grade the ticket would get if every unchecked condition held. ``failed`` and
    ``unchecked`` list condition names in :data:`CONDITIONS` order; ``sources`` maps each condition to the runs
    (paths or ids) whose accuracies it compared, as given by the caller."""

    grade: str
    failed: list[str] = field(default_factory=list)
    conditions: dict[str, bool | None] = field(default_factory=dict)
    unchecked: list[str] = field(default_factory=list)
    provisional_grade: str = "no prize"
    sources: dict[str, str] = field(default_factory=dict)


def _grade(ok: dict[str, bool | None], unchecked_holds: bool) -> str:
    def met(c: str) -> bool:
        return ok[c] is True or (ok[c] is None and unchecked_holds)
    if all(met(c) for c in CONDITIONS):
        return "jackpot"
    if all(met(c) for c in SECONDARY_CONDITIONS):
        return "secondary prize"
    return "no prize"


def jackpot(accuracy: float, density: float, reinit_accuracy: float | Mapping[str, float], dense_accuracy: float,
            well_trained_dense_accuracy: float, small_dense_accuracy: float, *,
            longer_dense_accuracy: float | None = None, sufficient_training: bool | None = None,
            density_threshold: float = 0.8, margin: float = 0.005,
            sources: Mapping[str, str] | None = None) -> JackpotVerdict:
    """Grade a ticket by the sanity checks of Ma et al., "Sanity Checks for Lottery Tickets: Does Your Winning
    Ticket Really Win the Jackpot?" (NeurIPS 2021, section 3, "a rigorous definition"). Accuracies are fractions;
    ``margin`` 0.005 = 0.5 points. ``accuracy`` is the ticket's, trained at one learning rate (the *ticket's lr*).

    Conditions (paper number in brackets; names as in ``failed``):

    * [1] ``non_trivial_sparsity``: ``density <= density_threshold`` (default 0.8: at least 20% pruned);
    * [1] ``sufficient_training``: the dense network at the ticket's lr and length T is trained sufficiently:
      the same dense network trained *longer* (more iterations, same lr) is not better by more than ``margin``,
      ``longer_dense_accuracy - dense_accuracy <= margin``. The paper's example is ResNet-20 at 78 vs 160
      epochs. ``longer_dense_accuracy=None`` (no longer run available) leaves it *not checked*.
      ``sufficient_training`` (True/False), when given, is the outcome of that check made elsewhere (the paper
      states [1] of the training length T, "a sufficient training epochs T": a caller may check it once, at one lr,
      and pass the outcome for every lr); it takes precedence over ``longer_dense_accuracy``;
    * [2] ``beats_small_dense``: a clear advantage over a small dense network with the ticket's parameter count,
      ``accuracy - small_dense_accuracy > margin``;
    * [3] ``beats_reinit_any_lr``: the ticket beats the same mask randomly reinitialised and trained at *any*
      learning rate by more than ``margin``: ``accuracy - max(reinit_accuracy.values()) > margin``.
      ``reinit_accuracy`` maps a label (e.g. the lr) to the reinit's accuracy there; a float is one lr only;
    * [4] ``matches_dense_same_lr``: ``accuracy >= dense_accuracy``, the dense network trained at the ticket's lr;
    * [5] ``matches_well_trained_dense``: ``accuracy >= well_trained_dense_accuracy``, the best dense network
      known for this architecture and data (any lr, any length).

    The paper's conditions quantify over learning rates ("there exists a lr such that ..."): the ticket's
    family at a given sparsity wins a prize if its verdict at *some* lr does; grade each lr's ticket and take the
    best. Grades: ``jackpot`` when [1]-[5] all hold; ``secondary prize`` when [1]-[4] all hold; ``no prize``
    otherwise."""
    reinit = {"": reinit_accuracy} if isinstance(reinit_accuracy, int | float) else dict(reinit_accuracy)
    if not reinit:
        raise ValueError("jackpot: no reinitialised accuracy given")
    best_reinit = max(float(v) for v in reinit.values())
    ok: dict[str, bool | None] = {
        "non_trivial_sparsity": density <= density_threshold + _EPS,
        "sufficient_training": sufficient_training if sufficient_training is not None
        else None if longer_dense_accuracy is None else longer_dense_accuracy - dense_accuracy <= margin + _EPS,
        "beats_small_dense": accuracy - small_dense_accuracy > margin + _EPS,
        "beats_reinit_any_lr": accuracy - best_reinit > margin + _EPS,
        "matches_dense_same_lr": accuracy >= dense_accuracy - _EPS,
        "matches_well_trained_dense": accuracy >= well_trained_dense_accuracy - _EPS,
    }
    failed = [c for c in CONDITIONS if ok[c] is False]
    unchecked = [c for c in CONDITIONS if ok[c] is None]
    return JackpotVerdict(_grade(ok, False), failed, ok, unchecked, _grade(ok, True), dict(sources or {}))
