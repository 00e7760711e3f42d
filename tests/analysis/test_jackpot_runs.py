"""The runs each jackpot condition compares, chosen from a runs frame (no store needed)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lth.analysis.jackpot_runs import jackpot_table, run_ids
from lth.analysis.studies import accuracy_by_level, matching_by_rewind, studies

ROOT = Path("/s")
SPEC = {"data.dataset": "digits", "model.model": "fc_32_16", "train.optimizer": "sgd", "pruning": "{}",
        "preset": "digits_mlp"}


def _run(path: str, kind: str, acc: float, level: float | None = None, density: float = 1.0,
         branch: str | None = None, trunk: str | None = None, lr: float = 0.1, steps: str = "2ep") -> dict:
    return {**SPEC, "path": str(ROOT / path), "kind": kind, "branch": branch, "rewind": "0it" if level is not None
            else None, "level": level, "density": density, "ticket_density": density, "trunk": trunk,
            "experiment": path.split("/")[0], "final_test_accuracy": acc, "train.lr": lr,
            "train.training_steps": steps, "status": "complete"}


def _store() -> pd.DataFrame:
    rows = []
    for r in (0, 1):
        a = f"lottery_a/replicate_{r}"
        rows += [_run(f"{a}/level_0", "lottery", 0.90, 0, trunk="lottery_a"),
                 _run(f"{a}/level_1", "lottery", 0.91, 1, 0.8, trunk="lottery_a"),
                 _run(f"{a}/branch_reinit_x/level_1", "branch", 0.80, 1, 0.8, "reinit", "lottery_a"),
                 _run(f"{a}/branch_small-dense_z/level_1", "branch", 0.70, 1, 0.8, "small-dense", "lottery_a"),
                 # the same mask reinitialised at another learning rate (another trunk's branch)
                 _run(f"lottery_b/replicate_{r}/branch_reinit_y/level_1", "branch", 0.85, 1, 0.8, "reinit",
                      "lottery_b", lr=0.01)]
    rows.append(_run("train_c/replicate_0", "train", 0.95, steps="4ep"))  # the same dense net, trained longer
    return pd.DataFrame(rows)


def test_each_condition_compares_the_runs_it_names() -> None:
    runs = _store()
    (study,) = [s for s in studies(runs) if (s["trunk"] == "lottery_a").any()]
    study = study.assign(series=study["branch"].fillna("IMP ticket"))
    acc = accuracy_by_level(study)
    (row,) = jackpot_table(study, acc, runs, ROOT).to_dict("records")
    assert (row["level"], row["accuracy"], row["density"]) == (1, 0.91, 0.8)
    assert row["best_reinit_lr"] == "lr=0.01" and row["best_reinit_accuracy"] == 0.85  # [3] at ANY lr
    assert row["beats_reinit_any_lr_runs"] == "lottery_b/replicate_*/branch_reinit_y/level_1"
    assert row["beats_small_dense"] == "met" and row["small_dense_accuracy"] == 0.70
    assert row["matches_dense_same_lr"] == "met"
    assert row["matches_dense_same_lr_runs"] == "lottery_a/replicate_*/level_0"
    assert row["longer_dense_accuracy"] == 0.95 and row["sufficient_training"] == "FAILED"
    assert row["well_trained_dense_accuracy"] == 0.95
    assert row["matches_well_trained_dense_runs"] == "train_c/replicate_*"
    assert row["grade"] == "no prize" and row["non_trivial_sparsity"] == "met"


def test_matching_per_rewind_and_no_grade_without_branches() -> None:
    runs = _store()
    trunk = runs[runs["kind"] == "lottery"].assign(series="IMP ticket")
    tab, summary = matching_by_rewind(accuracy_by_level(trunk))
    assert tab["matching"].tolist() == [True, True] and summary["sparsest_matching_level"].tolist() == [1]
    assert jackpot_table(trunk, accuracy_by_level(trunk), runs[runs["kind"] != "branch"], ROOT).empty
    assert run_ids([ROOT / "x/replicate_3/level_0", ROOT / "x/replicate_1/level_0"], ROOT) == "x/replicate_*/level_0"
