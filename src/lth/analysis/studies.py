"""Studies in a store's runs frame: lottery trunks grouped by everything but the rewind step, with the branches
hanging off them (:func:`studies`); a study's final accuracy per series and level (:func:`accuracy_by_level`); its
matching verdict per rewind step (:func:`matching_by_rewind`). The report draws these; it computes none of them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pandas as pd

from lth.analysis.verdicts import aggregate, matching

_SPEC_COLS = ("data.", "model.", "train.")


def _study_key(row: pd.Series) -> str:
    spec = {k: row[k] for k in row.index if k.startswith(_SPEC_COLS) and pd.notna(row[k])}
    return json.dumps({"preset": row.get("preset"), "pruning": row.get("pruning"), **spec}, sort_keys=True,
                      default=str)


def studies(runs: pd.DataFrame) -> list[pd.DataFrame]:
    """Lottery trunks grouped by everything but the rewind step (preset, pruning and the data, model and training
    hyperparameters), each with the branches hanging off them; sorted by that key, [] without lottery runs."""
    if "kind" not in runs or "trunk" not in runs:
        return []
    trunk_rows = runs[runs["kind"] == "lottery"]
    key_of_trunk: dict[str, str] = {}
    for trunk, g in trunk_rows.groupby("trunk"):
        key_of_trunk[str(trunk)] = _study_key(g.iloc[0])
    tagged = runs[runs["trunk"].astype(str).isin(key_of_trunk)].copy()
    tagged["study"] = tagged["trunk"].astype(str).map(key_of_trunk)
    return [g.drop(columns="study") for _, g in tagged.groupby("study", sort=True)]


def accuracy_by_level(study: pd.DataFrame, label: str = "series") -> pd.DataFrame:
    """Final test accuracy of a study's finished runs across replicates (:func:`~lth.analysis.aggregate`: mean,
    min, max, std, count) per ``label`` (a column that names each line: IMP or a branch), kind, branch, rewind and
    level, with the mean ticket ``density`` of each (label, level); sorted by label and level. Empty (no columns)
    when no run has a final accuracy."""
    done = study[study["final_test_accuracy"].notna()]
    if done.empty:
        return pd.DataFrame()
    table = aggregate(done, [label, "kind", "branch", "rewind", "level"], "final_test_accuracy")
    dens = done.groupby([label, "level"])["ticket_density"].mean().rename("density").reset_index()
    return table.merge(dens, on=[label, "level"]).sort_values([label, "level"])


MATCHING_COLUMNS = ("rewind", "level", "density", "mean", "min", "max", "count", "dense_accuracy", "gap", "matching")


def matching_by_rewind(accuracy: pd.DataFrame, columns: Sequence[str] = MATCHING_COLUMNS
                       ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The matching verdict of the IMP trunk (``kind == "lottery"`` rows of :func:`accuracy_by_level`) at each
    rewind step that has a dense level 0 (:func:`~lth.analysis.matching`, its default tolerance).

    Returns ``(per level, per rewind)``: each level's row with ``dense_accuracy``, ``gap`` and ``matching`` (the
    ``columns``), and per rewind step the dense accuracy and the sparsest matching level, density and accuracy
    (None when no pruned level matches). Both are empty when no rewind step has a level 0."""
    trunk = accuracy[accuracy["kind"] == "lottery"]
    rows, summary = [], []
    for rewind, t in trunk.groupby("rewind", sort=False):
        if not (t["level"] == 0).any():
            continue
        tab, best = matching(t[["level", "density", "mean", "min", "max", "count"]])
        rows.append(tab.assign(rewind=rewind))
        summary.append({"rewind": rewind, "dense_accuracy": float(tab["dense_accuracy"].iloc[0]),
                        "sparsest_matching_level": None if best is None else best["level"],
                        "sparsest_matching_density": None if best is None else best["density"],
                        "sparsest_matching_accuracy": None if best is None else best["accuracy"]})
    if not rows:
        return pd.DataFrame(), pd.DataFrame()
    return pd.concat(rows, ignore_index=True)[list(columns)], pd.DataFrame(summary)
