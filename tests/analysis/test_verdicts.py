"""Each verdict of lth.analysis on hand-made tables and tensors with known answers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from lth.analysis import (
    CONDITIONS,
    aggregate,
    dn_histograms,
    early_stopping,
    early_stopping_by_level,
    frame_potential,
    jackpot,
    matching,
    rp_curve,
    weight_correlation,
)


def test_aggregate_across_replicates():
    df = pd.DataFrame({"level": [0, 0, 1, 1, 1], "acc": [0.9, 0.8, 0.5, 0.7, 0.6]})
    t = aggregate(df, "level", "acc")
    assert list(t.columns) == ["level", "mean", "min", "max", "std", "count"]
    r0, r1 = t.iloc[0], t.iloc[1]
    assert r0["mean"] == pytest.approx(0.85) and r0["min"] == 0.8 and r0["max"] == 0.9 and r0["count"] == 2
    assert r1["mean"] == pytest.approx(0.6) and r1["std"] == pytest.approx(0.1) and r1["count"] == 3


def _levels(accs, densities=(1.0, 0.8, 0.64, 0.512)):
    return pd.DataFrame({"level": range(len(accs)), "density": densities[:len(accs)], "mean": accs})


def test_matching_tolerance_edges():
    t, best = matching(_levels([0.95, 0.948, 0.9479, 0.951]))
    assert t["matching"].tolist() == [True, True, False, True]  # 0.948 is exactly dense - 0.002: it matches
    assert best == {"level": 3, "density": 0.512, "accuracy": 0.951}
    assert t["gap"].iloc[2] == pytest.approx(-0.0021)


def test_matching_sparsest_and_none():
    _, best = matching(_levels([0.95, 0.96, 0.90, 0.80]))
    assert best["level"] == 1
    _, none = matching(_levels([0.95, 0.90, 0.80]))
    assert none is None  # the dense level itself is never the sparsest matching ticket
    t, best = matching(_levels([0.5, 0.90]), dense_accuracy=0.91, tolerance=0.02)
    assert t["matching"].tolist() == [False, True] and best["level"] == 1


def test_matching_needs_dense():
    with pytest.raises(ValueError):
        matching(pd.DataFrame({"level": [1], "density": [0.8], "mean": [0.9]}))


def _metrics(path, level, losses, accs, val=None):
    n = len(losses)
    return pd.DataFrame({"path": path, "level": level, "replicate": 0, "iteration": [10 * i for i in range(n)],
                         "test_loss": losses, "test_accuracy": accs,
                         "val_loss": val if val is not None else [None] * n})


def test_early_stopping_picks_min_loss_row():
    m = pd.concat([_metrics("a", 0, [2.0, 0.5, 0.3, 0.4], [0.1, 0.8, 0.9, 0.95]),
                   _metrics("b", 0, [2.0, 0.2, 0.2, 0.6], [0.1, 0.7, 0.9, 0.95]),
                   _metrics("c", 1, [2.0, 1.0, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4], val=[3.0, 0.1, 0.5, 0.9])])
    # choosing on test must be asked for (the old default fell back to test silently: that was the bug)
    per = early_stopping(m, split="test").set_index("path")
    assert per.loc["a", "early_stop_iteration"] == 20 and per.loc["a", "early_stop_test_accuracy"] == 0.9
    assert per.loc["b", "early_stop_iteration"] == 10  # a tie goes to the earliest
    assert per.loc["c", "criterion"] == "test_loss" and per.loc["c", "early_stop_iteration"] == 20
    lv = early_stopping_by_level(m, split="test").set_index("level")
    assert lv.loc[0, "iteration_mean"] == 15 and lv.loc[0, "iteration_count"] == 2
    assert lv.loc[0, "accuracy_mean"] == pytest.approx(0.8) and lv.loc[0, "criterion"] == "test_loss"


def test_early_stopping_defaults_to_validation_and_never_falls_back_to_test():
    m = pd.concat([_metrics("a", 0, [2.0, 0.5, 0.3, 0.4], [0.1, 0.8, 0.9, 0.95]),
                   _metrics("c", 1, [2.0, 1.0, 0.1, 0.5], [0.1, 0.2, 0.3, 0.4], val=[3.0, 0.1, 0.5, 0.9])])
    per = early_stopping(m).set_index("path")
    # c: min val loss 0.1 at iteration 10 (test loss would pick 20); the test accuracy there is 0.2
    assert per.loc["c", "criterion"] == "val_loss" and per.loc["c", "early_stop_iteration"] == 10
    assert per.loc["c", "early_stop_test_accuracy"] == 0.2 and per.loc["c", "early_stop_loss"] == 0.1
    # a has no validation split: reported as such, not chosen on test
    assert per.loc["a", "criterion"] == "no validation split"
    assert pd.isna(per.loc["a", "early_stop_iteration"]) and pd.isna(per.loc["a", "early_stop_test_accuracy"])
    lv = early_stopping_by_level(m).set_index("level")
    assert lv.loc[0, "criterion"] == "no validation split" and lv.loc[0, "iteration_count"] == 0
    assert lv.loc[1, "criterion"] == "val_loss" and lv.loc[1, "iteration_mean"] == 10
    with pytest.raises(ValueError, match="allowed: val, test"):
        early_stopping(m, split="train")


GOOD = dict(accuracy=0.95, density=0.2, reinit_accuracy=0.90, dense_accuracy=0.94, well_trained_dense_accuracy=0.945,
            small_dense_accuracy=0.92, longer_dense_accuracy=0.942)


def test_jackpot_all_conditions():
    v = jackpot(**GOOD)
    assert v.grade == "jackpot" and v.failed == [] and all(v.conditions.values()) and v.unchecked == []
    assert set(v.conditions) == set(CONDITIONS)


@pytest.mark.parametrize(("change", "name", "grade"), [
    ({"density": 0.9}, "non_trivial_sparsity", "no prize"),
    ({"longer_dense_accuracy": 0.9451}, "sufficient_training", "no prize"),  # longer dense gains 0.51 points
    ({"reinit_accuracy": 0.945}, "beats_reinit_any_lr", "no prize"),  # exactly 0.5 points is not "more than"
    # Ma et al.: secondary prize needs conditions 1-4, so failing 4 (dense at the same lr) is no prize at all
    # (the old code gave a secondary prize here: that was the bug)
    ({"dense_accuracy": 0.951}, "matches_dense_same_lr", "no prize"),
    ({"well_trained_dense_accuracy": 0.96}, "matches_well_trained_dense", "secondary prize"),
    ({"small_dense_accuracy": 0.946}, "beats_small_dense", "no prize"),
])
def test_jackpot_each_condition_failing_names_it(change, name, grade):
    v = jackpot(**{**GOOD, **change})
    assert v.failed == [name]
    assert v.grade == grade


def test_jackpot_edges_and_threshold():
    assert jackpot(**{**GOOD, "density": 0.8}).grade == "jackpot"  # the threshold itself is non-trivial
    assert jackpot(**{**GOOD, "dense_accuracy": 0.95}).grade == "jackpot"  # ties with dense match
    assert jackpot(**{**GOOD, "longer_dense_accuracy": 0.945}).grade == "jackpot"  # +0.5 points: still sufficient
    assert jackpot(**{**GOOD, "density": 0.5}, density_threshold=0.4).failed == ["non_trivial_sparsity"]


def test_jackpot_reinit_at_any_learning_rate():
    # the ticket beats the reinit at its own lr (0.95 - 0.90) but the reinit at lr 0.01 reaches 0.948:
    # 0.95 - 0.948 = 0.2 points < 0.5, so condition 3 fails and there is no prize
    v = jackpot(**{**GOOD, "reinit_accuracy": {"lr=0.1": 0.90, "lr=0.01": 0.948}},
                sources={"beats_reinit_any_lr": "runs/a; runs/b"})
    assert v.failed == ["beats_reinit_any_lr"] and v.grade == "no prize"
    assert v.sources == {"beats_reinit_any_lr": "runs/a; runs/b"}
    assert jackpot(**{**GOOD, "reinit_accuracy": {"lr=0.1": 0.90, "lr=0.01": 0.944}}).grade == "jackpot"


def test_jackpot_training_not_checked_is_reported_not_assumed():
    v = jackpot(**{**GOOD, "longer_dense_accuracy": None})
    assert v.conditions["sufficient_training"] is None and v.unchecked == ["sufficient_training"]
    assert v.failed == [] and v.grade == "no prize" and v.provisional_grade == "jackpot"
    v = jackpot(**{**GOOD, "longer_dense_accuracy": None, "well_trained_dense_accuracy": 0.96})
    assert v.grade == "no prize" and v.provisional_grade == "secondary prize"


def test_rp_identical_states_is_one():
    g = torch.Generator().manual_seed(0)
    a = {"l1.weight": torch.randn(20, 30, generator=g), "l2.weight": torch.randn(5, 20, generator=g),
         "l1.bias": torch.randn(20, generator=g)}
    for p in (0.1, 0.2, 0.3, 0.4, 0.5, 1.0):
        assert weight_correlation(a, a, p) == 1.0
    curve = rp_curve(a, {k: v.clone() for k, v in a.items()})
    assert curve["p"].tolist() == [0.1, 0.2, 0.3, 0.4, 0.5] and (curve["r_p"] == 1.0).all()


def test_rp_disjoint_and_partial():
    w = torch.arange(1.0, 11.0).reshape(2, 5)
    a, b = {"w": w}, {"w": -w.flip(0).flip(1)}  # the largest magnitudes of a are the smallest of b
    assert weight_correlation(a, b, 0.5) == 0.0
    assert weight_correlation(a, b, 1.0) == 1.0
    # two layers: one identical (overlap 2 of 2), one disjoint (0 of 3) -> 2 / 5
    a2 = {"x": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "y": torch.arange(1.0, 7.0).reshape(2, 3)}
    b2 = {"x": a2["x"].clone(), "y": torch.arange(6.0, 0.0, -1.0).reshape(2, 3)}
    assert weight_correlation(a2, b2, 0.5) == pytest.approx(2 / 5)


def test_rp_denominator_is_p_times_all_weights():
    # Liu et al. (ICML 2021), Sec. 3: R_p = sum_l card(T_p(a^l) & T_p(b^l)) / (p * sum_l N_l).
    # Layers of 4 and 6 weights at p = 0.25: T_p keeps floor(1) = 1 and floor(1.5) = 1 weight; the denominator
    # is 0.25 * 10 = 2.5 (not the 2 weights kept).
    a = {"x": torch.tensor([[4.0, 1.0, 2.0, 3.0]]), "y": torch.tensor([[6.0, 1.0, 2.0], [3.0, 4.0, 5.0]])}
    same_x = {"x": torch.tensor([[-9.0, 0.0, 0.0, 0.0]]), "y": torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 7.0]])}
    assert weight_correlation(a, a, 0.25) == pytest.approx(2 / 2.5)  # identical, but p * N_y = 1.5
    assert weight_correlation(a, same_x, 0.25) == pytest.approx(1 / 2.5)  # top of x shared, top of y not
    assert weight_correlation(a, a, 0.5) == 1.0  # p * N_l = 2 and 3: integers, exactly 1
    for p in (0.1, 0.25, 0.3, 0.7, 1.0):  # never above 1
        assert weight_correlation(a, a, p) <= 1.0


def test_rp_random_is_about_p():
    g = torch.Generator().manual_seed(1)
    a, b = {"w": torch.randn(300, 300, generator=g)}, {"w": torch.randn(300, 300, generator=g)}
    assert weight_correlation(a, b, 0.2) == pytest.approx(0.2, abs=0.01)


def test_dn_histograms():
    init = {"w": torch.tensor([[1.0, -2.0], [0.0, 4.0]]), "b": torch.ones(2)}
    mask = {"w": torch.tensor([[True, False], [True, True]])}
    h = dn_histograms(init, mask)
    assert set(h) == {"w"}
    np.testing.assert_array_equal(h["w"]["ticket"], [1.0, 4.0])  # kept and nonzero
    np.testing.assert_array_equal(h["w"]["all"], [1.0, -2.0, 0.0, 4.0])


def test_frame_potential():
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(0)))
    assert frame_potential(q[:5] * 3.0) == pytest.approx(5.0)  # orthogonal rows, any length
    assert frame_potential(torch.eye(4).reshape(4, 1, 2, 2)) == pytest.approx(4.0)  # conv kernels flattened
    assert frame_potential(torch.ones(3, 6)) == pytest.approx(9.0)  # parallel rows: n^2
    assert frame_potential(torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])) == pytest.approx(1 + 1 + 2 * 0.5)
    assert not math.isnan(frame_potential(torch.zeros(2, 3)))


def test_jackpot_takes_sufficient_training_checked_elsewhere() -> None:
    """``sufficient_training`` (T's check made at another lr) decides [1] and takes precedence over a longer run."""
    from lth.analysis.verdicts import jackpot

    args = (0.95, 0.1, {"lr 0.1": 0.7}, 0.9, 0.9, 0.7)
    assert jackpot(*args, sufficient_training=True).grade == "jackpot"
    assert jackpot(*args, longer_dense_accuracy=0.99, sufficient_training=True).grade == "jackpot"
    v = jackpot(*args, longer_dense_accuracy=0.90, sufficient_training=False)
    assert v.grade == "no prize" and v.failed == ["sufficient_training"]
    assert jackpot(*args).unchecked == ["sufficient_training"]
