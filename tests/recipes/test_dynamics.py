"""The dynamics recipe (seed 003): the dense network keeps its states over training, for the frame potential per
layer over training (plan only; the quick run end to end, single-unit ablation included, is
tests/recipes/test_recipes.py::test_quick_dynamics)."""

from __future__ import annotations

from pathlib import Path

from lth.recipes.base import Context
from lth.recipes.dynamics import FP_POINTS, RECIPE


def test_dense_network_keeps_evenly_spaced_states_over_training(tmp_path: Path) -> None:
    pieces = RECIPE.plan(Context(quick=True, root=tmp_path))
    first = pieces[0]
    assert first.meta.get("over training") and not any(p.meta.get("over training") for p in pieces[1:])
    nodes = RECIPE.nodes(pieces)  # what the executor runs: each path once, the copies that keep more win
    paths = {n.path for n in first.plan.nodes() if n.meta.get("level") == 0 and n.meta.get("kind") != "branch"}
    dense = [n for n in nodes if n.path in paths]
    assert len(dense) == first.plan.replicates
    spe = first.plan.spe
    total = dense[0].spec.train.training_steps.iterations(spe)
    for n in dense:
        its = sorted(step.iterations(spe) for name, step in n.keep)
        assert len(its) == FP_POINTS and 0 < its[0] and its[-1] < total
        gaps = {b - a for a, b in zip(its, its[1:], strict=False)}
        assert max(gaps) - min(gaps) <= 1  # evenly spaced
    others = [n for n in nodes if n.meta.get("level", 0) > 0]
    assert others and all(len(n.keep) <= 1 for n in others)  # only the dense network pays for the states
