"""The normalization recipe (seed 000): WeightNorm beside BatchNorm and Fixup, and how erratic each one's accuracy
is, on cases with a known answer (the quick run end to end is tests/recipes/test_recipes.py)."""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from lth.recipes.base import Context, Measured
from lth.recipes.normalization import LAST_EVALS, NORMS, RECIPE, last_spread, level_fluctuation


def test_plan_runs_weightnorm_beside_batchnorm_and_fixup(tmp_path: Path) -> None:
    pieces = RECIPE.plan(Context(quick=True, root=tmp_path))
    norms = {p.label: {n.spec.model.norm for n in p.all_nodes()} for p in pieces}
    assert norms == {"resnet20": {"batchnorm"}, "resnet20_fixup": {"fixup"}, "resnet20_weightnorm": {"weightnorm"}}
    assert set(NORMS.values()) == {"BatchNorm", "Fixup", "WeightNorm"}


def test_last_spread_is_the_deviation_of_the_last_evaluations(tmp_path: Path) -> None:
    from lth.store import RunDir

    acc = [0.1, 0.5, 0.9, 0.91, 0.89, 0.95, 0.85, 0.9]
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    (run.path / "metrics.csv").write_text("iteration,step,test_accuracy\n" + "".join(
        f"{10 * i},{10 * i}it,{a}\n" for i, a in enumerate(acc)))
    assert last_spread(str(run.path)) == pytest.approx(statistics.pstdev(acc[-LAST_EVALS:]))
    assert last_spread(str(run.path), last=2) == pytest.approx(0.025)


def test_level_fluctuation_is_zero_for_a_straight_curve_and_counts_zigzags() -> None:
    def recs(accs: list[float], rewind: str = "0it", rep: int = 0) -> list[dict]:
        return [{"level": lv, "rewind": rewind, "replicate": rep, "final_test_accuracy": a}
                for lv, a in enumerate(accs)]

    assert level_fluctuation(recs([0.9, 0.88, 0.86, 0.84]), ["0it"], 3) == pytest.approx([0.0])
    # second differences of 0.9, 0.8, 0.9, 0.8: +0.2, -0.2 -> mean |.| 0.2; a missing level drops that curve
    got = level_fluctuation(recs([0.9, 0.8, 0.9, 0.8]) + recs([0.9, 0.9], rep=1), ["0it"], 3)
    assert got == pytest.approx([0.2])


def test_erratic_verdicts_compare_fixup_with_batchnorm(tmp_path: Path) -> None:
    ctx = Context(quick=True, root=tmp_path)
    m = {f"{n}: spread of test accuracy over the last {LAST_EVALS} evaluations": Measured([s])
         for n, s in (("BatchNorm", 0.01), ("Fixup", 0.03))}
    m.update({f"{n}: level-to-level fluctuation of accuracy": Measured([s]) for n, s in (("BatchNorm", 0.02),
                                                                                        ("Fixup", 0.01))})
    v = RECIPE.verdicts(ctx, m)
    assert v["Fixup more erratic than BatchNorm (spread over the last evaluations)"] is True
    assert v["Fixup more erratic than BatchNorm (level-to-level fluctuation)"] is False
