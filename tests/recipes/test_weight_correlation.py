"""The weight-correlation recipe (Liu et al., ICML 2021): R_p at the paper's 150 epochs (or the substitution named),
and one-shot masks at several densities from the one dense run with the three starts of Fig. 6c (plan only; the
quick run end to end is tests/recipes/test_recipes.py::test_quick_weight_correlation)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lth.graph import closure
from lth.recipes.base import Context
from lth.recipes.weight_correlation import ONESHOT, RECIPE
from lth.spec import Step


def test_full_plan_trains_every_run_for_the_papers_150_epochs(tmp_path: Path) -> None:
    ctx = Context(quick=False, root=tmp_path)
    nodes = RECIPE.nodes(RECIPE.plan(ctx))
    assert {n.spec.train.training_steps for n in nodes} == {Step(150, "ep")}
    assert not any("150" in s or "training per run" in s for s in ctx.substitutions)


def test_quick_plan_names_the_length_it_substitutes(tmp_path: Path) -> None:
    ctx = Context(quick=True, root=tmp_path)
    RECIPE.plan(ctx)
    assert any("150 epochs" in s for s in ctx.substitutions) and any("4ep" in s for s in ctx.substitutions)


@pytest.mark.parametrize("quick", [True, False])
def test_one_shot_masks_at_every_level_density_from_the_one_dense_run(tmp_path: Path, quick: bool) -> None:
    """Figs. 6c/7: per rate, for each density 0.8^l (l = 1..L) the oneshot branch off level 0 with each start
    (rewound ticket, fine-tuning from the trained weights, fresh reinit); their graph needs the trunk's level 0
    only, the same dense run as the iterative piece's."""
    pieces = RECIPE.plan(Context(quick=quick, root=tmp_path))
    iterative = {p.meta["lr"]: p for p in pieces if "oneshot" not in p.meta}
    levels = next(iter(iterative.values())).meta["levels"]
    for lr, it in iterative.items():
        dense0 = {n.path for n in it.plan.nodes() if n.meta.get("level") == 0 and n.meta.get("kind") != "branch"}
        shots = [p for p in pieces if p.meta.get("lr") == lr and "oneshot" in p.meta]
        assert sorted({p.meta["oneshot"] for p in shots}) == sorted(round(0.8 ** lv, 6) for lv in range(1, levels + 1))
        assert len(shots) == levels * len(ONESHOT)
        for p in shots:
            branch = [n for n in p.all_nodes() if n.meta.get("kind") == "branch"]
            assert len(branch) == p.plan.replicates
            for n in branch:
                opts = n.meta["branch_options"]
                assert opts["oneshot_density"] == p.meta["oneshot"]
                assert opts["oneshot_start"] == ONESHOT[p.meta["series"]]
                assert n.meta["level"] == 0 and n.setup.op == "oneshot_at"
            trunk = {n.path for n in closure(branch) if n.meta.get("kind") != "branch"}
            assert trunk and trunk <= dense0  # the iterative piece's own dense runs, nothing else
