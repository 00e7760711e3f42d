"""The jackpot verdicts of a study (Ma et al., NeurIPS 2021, section 3): which runs each condition compares, and
the grade of every pruned level of the IMP trunk (:func:`jackpot_table`).

For a ticket at one rewind step and level (its learning rate: the trunk's), the conditions compare:

* [1] ``non_trivial_sparsity``: the ticket's runs; ``sufficient_training``: the dense level 0 of the trunk against
  the best group of dense runs of the same architecture, data, learning rate and optimiser trained longer (in the
  same unit, it or ep);
* [2] ``beats_small_dense``: the study's ``small-dense`` branch at that level and rewind step;
* [3] ``beats_reinit_any_lr``: the ``reinit`` branches of the same architecture, data and pruning at that level
  and rewind step, at every learning rate in the store (the best one is named);
* [4] ``matches_dense_same_lr``: the trunk's level 0;
* [5] ``matches_well_trained_dense``: the best group (a trunk's level 0, or an ``lth train`` experiment) of the
  dense runs of the same architecture and data, any learning rate and length.

A level without a reinit branch or a small-dense branch is not graded. Runs are named relative to the store root,
replicates folded into ``replicate_*``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lth.analysis.verdicts import CONDITIONS, jackpot

ARCH = ("data.dataset", "model.model", "model.width", "model.norm")  # runs of one architecture and data


def same_runs(runs: pd.DataFrame, like: pd.Series, cols: tuple[str, ...]) -> pd.DataFrame:
    """The rows of ``runs`` that agree with ``like`` on each of ``cols`` that both have (NaN equals NaN)."""
    keep = pd.Series(True, index=runs.index)
    for c in cols:
        if c in runs and c in like.index:
            keep &= (runs[c] == like[c]) | (runs[c].isna() & pd.isna(like[c]))
    return runs[keep]


def run_ids(paths: Any, root: Path | None) -> str:
    """Run directories relative to the store root, replicates folded into ``replicate_*``, joined by ``; ``."""
    out = []
    for p in paths:
        rel = Path(p).relative_to(root) if root is not None and Path(p).is_relative_to(root) else Path(p)
        out.append("/".join("replicate_*" if part.startswith("replicate_") else part for part in rel.parts))
    return "; ".join(dict.fromkeys(out))


def _steps(text: Any) -> tuple[str, int] | None:
    t = str(text)
    for unit in ("it", "ep"):
        if t.endswith(unit) and t[:-2].isdigit():
            return unit, int(t[:-2])
    return None


def dense_runs(runs: pd.DataFrame, like: pd.Series) -> pd.DataFrame:
    """Completed dense runs of ``like``'s architecture and data: lth train runs and level 0 of every trunk, with
    ``group`` (the trunk of a level 0, the experiment of a training run: the runs whose mean is one accuracy)."""
    done = runs[runs["final_test_accuracy"].notna()] if "final_test_accuracy" in runs else runs.iloc[0:0]
    kind = done["kind"] if "kind" in done else pd.Series("train", index=done.index)
    level = done["level"] if "level" in done else pd.Series(pd.NA, index=done.index)
    dense = done[(kind == "train") | ((kind == "lottery") & (level == 0))]
    dense = same_runs(dense, like, ARCH).copy()
    dense["group"] = dense["trunk"].astype(str).where(dense["kind"] == "lottery", dense["experiment"]) \
        if "trunk" in dense else dense["experiment"]
    return dense


def _best_group(df: pd.DataFrame, by: str) -> tuple[float, list[str]] | None:
    if df.empty:
        return None
    means = df.groupby(by, dropna=False)["final_test_accuracy"].mean()
    key = means.idxmax()
    return float(means[key]), df.loc[df[by] == key, "path"].tolist() if pd.notna(key) else df["path"].tolist()


def jackpot_table(study: pd.DataFrame, accuracy: pd.DataFrame, runs: pd.DataFrame, root: Path | None
                  ) -> pd.DataFrame:
    """One verdict row per graded ticket of ``study`` (its runs), from its accuracy table (the lottery rows of
    :func:`lth.analysis.studies.accuracy_by_level`) and the store's ``runs``: rewind, level, lr, density, accuracy,
    grade, provisional_grade, failed, not_checked, the accuracies compared, each condition's outcome (``met``,
    ``FAILED`` or ``not checked``) and, in ``<condition>_runs``, the runs it compared. Empty when no ticket is
    graded (no trunk level 0, or no level with both a reinit and a small-dense branch)."""
    trunk_acc = accuracy[accuracy["kind"] == "lottery"]
    trunk_runs = study[study["kind"] == "lottery"]
    lvl0 = trunk_runs[trunk_runs["level"] == 0]
    grades: list[dict[str, Any]] = []
    if lvl0.empty:
        return pd.DataFrame()
    for rewind, t in trunk_acc.groupby("rewind", sort=False):
        if (t["level"] == 0).any():
            grades.extend(_jackpot_rows(study, t, rewind, lvl0.iloc[0], runs, root))
    return pd.DataFrame(grades)


def _jackpot_rows(s: pd.DataFrame, t: pd.DataFrame, rewind: Any, like: pd.Series, runs: pd.DataFrame,
                  root: Path | None) -> list[dict[str, Any]]:
    """One verdict row per pruned level of the trunk table ``t`` (one rewind step), with the runs behind it."""
    trunk = s[(s["kind"] == "lottery") & (s["rewind"] == rewind)]
    branches = s[(s["kind"] == "branch") & (s["rewind"] == rewind)]
    done = runs[runs["final_test_accuracy"].notna()]
    lr = like.get("train.lr")
    # [3] reinit branches of the same architecture, data and pruning at any learning rate
    reinit_all = done[(done["kind"] == "branch") & (done["branch"] == "reinit")] if "branch" in done else done[:0]
    reinit_all = same_runs(reinit_all, like, (*ARCH, "pruning"))
    reinit_all = reinit_all[reinit_all["rewind"] == rewind] if "rewind" in reinit_all else reinit_all
    # [4] the dense net at this lr; [1] the same dense net trained longer; [5] the best dense net anywhere
    dense = dense_runs(runs, like)
    here = trunk[trunk["level"] == 0]
    dense_acc = float(here["final_test_accuracy"].mean())
    mine, longer = _steps(like.get("train.training_steps")), []
    same_lr = same_runs(dense, like, ("train.lr", "train.optimizer"))
    for _, r in same_lr.iterrows():
        st = _steps(r.get("train.training_steps"))
        if mine is not None and st is not None and st[0] == mine[0] and st[1] > mine[1]:
            longer.append(r["path"])
    longer_best = _best_group(same_lr[same_lr["path"].isin(longer)], "group")
    well = _best_group(dense, "group")
    out = []
    for _, r in t[t["level"] > 0].iterrows():
        level = int(r["level"])
        ticket = trunk[trunk["level"] == level]
        ri = reinit_all[reinit_all["level"] == level]
        sd = branches[(branches["branch"] == "small-dense") & (branches["level"] == level)]
        if ri.empty or sd.empty:
            continue
        by_lr = ri.groupby("train.lr" if "train.lr" in ri else "experiment")
        reinit = {f"lr={k}": float(g["final_test_accuracy"].mean()) for k, g in by_lr}
        best_lr = max(reinit, key=reinit.get)
        best_reinit = ri[[f"lr={k}" == best_lr for k in ri["train.lr" if "train.lr" in ri else "experiment"]]]
        well_acc, well_paths = well if well is not None else (dense_acc, here["path"].tolist())
        sources = {"non_trivial_sparsity": run_ids(ticket["path"], root),
                   "sufficient_training": run_ids([*here["path"], *(longer_best[1] if longer_best else [])], root),
                   "beats_small_dense": run_ids(sd["path"], root),
                   "beats_reinit_any_lr": run_ids(best_reinit["path"], root),
                   "matches_dense_same_lr": run_ids(here["path"], root),
                   "matches_well_trained_dense": run_ids(well_paths, root)}
        v = jackpot(float(r["mean"]), float(r["density"]), reinit, dense_acc, max(well_acc, dense_acc),
                    float(sd["final_test_accuracy"].mean()),
                    longer_dense_accuracy=None if longer_best is None else longer_best[0], sources=sources)
        row: dict[str, Any] = {"rewind": rewind, "level": level, "lr": lr, "density": r["density"],
                               "accuracy": r["mean"], "grade": v.grade, "provisional_grade": v.provisional_grade,
                               "failed": ", ".join(v.failed), "not_checked": ", ".join(v.unchecked),
                               "small_dense_accuracy": float(sd["final_test_accuracy"].mean()),
                               "best_reinit_accuracy": reinit[best_lr], "best_reinit_lr": best_lr,
                               "reinit_lrs": ", ".join(reinit), "dense_accuracy": dense_acc,
                               "longer_dense_accuracy": None if longer_best is None else longer_best[0],
                               "well_trained_dense_accuracy": max(well_acc, dense_acc)}
        for c in CONDITIONS:
            row[c] = {True: "met", False: "FAILED", None: "not checked"}[v.conditions[c]]
        for c in CONDITIONS:
            row[f"{c}_runs"] = sources[c]
        out.append(row)
    return out
