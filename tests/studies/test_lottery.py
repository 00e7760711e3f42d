"""The lottery study (:mod:`lth.studies.lottery`): node digests and store paths pinned, the API's document equal
to the CLI's ``--json``, every check (capacity, schedules, levels) from both faces."""

from __future__ import annotations

from pathlib import Path

import pytest
from torch import nn

import lth.api as api

# digits_mlp, levels 2, rewind 0it and 5it, branches reinit and random-mask: each node's path (under the root) and
# digest, as computed on main before the studies existed (a released identity never changes).
PINNED_SWEEP = {
    "lottery_f77e1d09c219/replicate_0/level_0": "8b496d3a101d",
    "lottery_f77e1d09c219/replicate_0/level_1": "3891adae5975",
    "lottery_f77e1d09c219/replicate_0/level_2": "5b70b06616c3",
    "lottery_153c982bbc73/replicate_0/level_0": "8b496d3a101d",
    "lottery_153c982bbc73/replicate_0/level_1": "808f1898e303",
    "lottery_153c982bbc73/replicate_0/level_2": "4900edeaf772",
    "lottery_f77e1d09c219/replicate_0/branch_reinit_99914b932bd3/level_1": "8c5c61ccae69",
    "lottery_f77e1d09c219/replicate_0/branch_reinit_99914b932bd3/level_2": "efe63eb87539",
    "lottery_f77e1d09c219/replicate_0/branch_random-mask_99914b932bd3/level_1": "e0bb603932e8",
    "lottery_f77e1d09c219/replicate_0/branch_random-mask_99914b932bd3/level_2": "b05211befc2d",
    "lottery_153c982bbc73/replicate_0/branch_reinit_99914b932bd3/level_1": "a7ab7bdc2470",
    "lottery_153c982bbc73/replicate_0/branch_reinit_99914b932bd3/level_2": "1d7908cc5d12",
    "lottery_153c982bbc73/replicate_0/branch_random-mask_99914b932bd3/level_1": "92127fd53da7",
    "lottery_153c982bbc73/replicate_0/branch_random-mask_99914b932bd3/level_2": "6e2b7af3e16c",
}
# pretraining at 5it on the rotation task (its head replaced), with a reinit branch; and sparse blur pretraining
# re-pinned for #33: the rotation task's pretraining draws rotations per presentation, recorded in the trunk's
# identity and the pretraining node's (before: lottery_b4cb1c792f05, pretrain c301333a0ff0)
PINNED_PRETRAIN = {
    "lottery_349c07cb72f4/replicate_0/level_0": "8b496d3a101d",
    "lottery_349c07cb72f4/replicate_0/level_1": "68fa054cd80e",
    "lottery_349c07cb72f4/replicate_0/level_2": "505489e493f6",
    "lottery_349c07cb72f4/replicate_0/branch_reinit_99914b932bd3/level_1": "a2849282d2eb",
    "lottery_349c07cb72f4/replicate_0/branch_reinit_99914b932bd3/level_2": "8ed00b93c9f0",
    "lottery_349c07cb72f4/replicate_0/pretrain": "b1d498b18e13",
    "lottery_349c07cb72f4/replicate_0/pretrain_head": "fb90601e7a17",
}
PINNED_SPARSE = {
    "lottery_16518f65422a/replicate_0/level_0": "8b496d3a101d",
    "lottery_16518f65422a/replicate_0/level_1": "720a649a2c65",
    "lottery_16518f65422a/replicate_0/level_2": "c0903940624b",
    "lottery_16518f65422a/replicate_0/pretrain/level_1": "a3e153b234a5",
    "lottery_16518f65422a/replicate_0/pretrain/level_2": "a3fa3dd0a60d",
}


def _digests(plan, root: Path) -> dict[str, str]:
    return {n.path.relative_to(root.resolve()).as_posix(): n.digest for n in plan.nodes() + plan.pretrain_nodes()}


def test_pinned_node_digests_of_a_sweep_with_branches_and_of_pretraining(tmp_path: Path) -> None:
    sweep = api.lottery("digits_mlp", 2, rewind=["0it", "5it"], branches=["reinit", "random-mask"], root=tmp_path)
    assert _digests(sweep, tmp_path) == PINNED_SWEEP
    assert list(_digests(sweep, tmp_path)) == list(PINNED_SWEEP)  # the order of the nodes too
    pre = api.lottery("digits_mlp", 2, pretrain_steps="5it", pretrain_task="rotation", branches=["reinit"],
                      root=tmp_path)
    assert _digests(pre, tmp_path) == PINNED_PRETRAIN
    sparse = api.lottery("digits_mlp", 2, pretrain_steps="5it", pretrain_task="blur", pretrain_sparse=True,
                         root=tmp_path)
    assert _digests(sparse, tmp_path) == PINNED_SPARSE


def test_the_study_plans_the_pinned_digests_too(tmp_path: Path) -> None:
    from lth.studies.base import resolve_spec
    from lth.studies.lottery import LotteryOptions, plan_lottery, pruning_of
    from lth.studies.runtime import RuntimeOptions

    spec, preset = resolve_spec("digits_mlp")
    opts = LotteryOptions.from_values(levels="2", rewind=["0it", "5it"], branches=["reinit,random-mask"])
    plan = plan_lottery(spec, pruning_of(preset), opts, RuntimeOptions(root=str(tmp_path)), preset=preset)
    assert list(_digests(plan, tmp_path).items()) == list(PINNED_SWEEP.items())
    opts = LotteryOptions.from_values(levels=2, pretrain_steps="5it", pretrain_task="rotation", branches=["reinit"])
    plan = plan_lottery(spec, pruning_of(preset), opts, RuntimeOptions(root=str(tmp_path)), preset=preset)
    assert _digests(plan, tmp_path) == PINNED_PRETRAIN


TINY = ["--preset", "digits_mlp", "--model", "fc_8", "--training-steps", "4it"]


def test_the_api_document_equals_the_cli_json(tmp_path: Path) -> None:
    """Trunks at two rewind steps, two branches and a saved state; then pretraining: ``lth.api.run`` of
    ``lth.api.lottery`` with the same values gives the CLI's ``--json`` document, paths included."""
    import json

    from conftest import lth

    root = str(tmp_path)
    argv = [*TINY, "--levels", "2", "--rewind", "0it", "1it", "--branches", "reinit", "random-mask",
            "--branch-levels", "1-2", "--save-states", "2it", "--pruning-fraction", "0.3", "--root", root, "--json"]
    code, out, err = lth("lottery", *argv)
    assert code == 0, err
    doc = api.run(api.lottery("digits_mlp", 2, rewind="0it,1it", branches=["reinit", "random-mask"],
                              branch_levels="1-2", save_states=["2it"], pruning={"fraction": "0.3"}, root=root,
                              model="fc_8", training_steps="4it"), progress=False)
    assert doc == json.loads(out) and len(doc["branches"]) == 2 * 2 * 2
    code, out, err = lth("lottery", *TINY, "--levels", "1", "--pretrain-steps", "2it", "--pretrain-task", "blur",
                         "--root", root, "--json")
    assert code == 0, err
    pre = api.run(api.lottery("digits_mlp", 1, pretrain_steps="2it", pretrain_task="blur", root=root,
                              model="fc_8", training_steps="4it"), progress=False)
    want = json.loads(out)
    assert set(want) == {"runs", "pretrain"} and pre == {**want, "branches": []}  # the API's records: always both


def test_the_capacity_is_refused_from_python_at_once(tmp_path: Path) -> None:
    """It planned until memory ran out (14 GB after a few minutes) where ``lth lottery`` refused at once."""
    import time

    import pytest

    from lth.errors import UserError

    started = time.perf_counter()
    with pytest.raises(UserError, match=r"^replicates 100000000: 200000000 runs would need about .* of memory"):
        api.lottery("digits_mlp", levels=1, replicates=10**8, root=tmp_path)
    with pytest.raises(UserError, match=r"^levels 100000000: 100000001 runs would need"):
        api.lottery("digits_mlp", levels=10**8, root=tmp_path)
    with pytest.raises(UserError, match=r"^replicates 100000000: "):
        api.branch("reinit", "digits_mlp", levels=1, replicates=10**8, root=tmp_path)
    assert time.perf_counter() - started < 10 and not any(tmp_path.iterdir())


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"rewnd": "5it"}, ["unknown keyword argument 'rewnd'", "did you mean 'rewind'?"]),
    ({"lrr": 0.1}, ["'lrr'", "did you mean 'lr'?"]),
    ({"brnches": "reinit"}, ["did you mean 'branches'?"]),
    ({"pruning": {"fracton": 0.3}}, ['pruning: unknown option \'fracton\'', "did you mean 'fraction'?"]),
    ({"branches": {"retrain": {"sett": ["lr=0.1"]}}}, ['branches["retrain"]: unknown option \'sett\'',
                                                       "did you mean 'set'?"]),
    ({"branches": ["renit"]}, ["branches: unknown branch 'renit'; allowed: reinit"]),
    ({"pruning": {"fraction": 1.5}}, ['pruning["fraction"] 1.5']),
    ({"branches": {"dn-reinit": {"dn_pool": "layr"}}}, ["'layr'", "allowed: network, layer"]),
    ({"branches": ["reinit"], "branch_levels": [5]}, ["branch_levels 5: level 5 is beyond the trunk's levels 2; "
                                                      "allowed: levels 0-2 (or raise levels)"]),
    ({"branch_levels": "1-x"}, ["branch_levels '1-x': expected a range"]),
    ({"pretrain_task": "blur"}, ["pretrain_task: needs pretrain_steps K"]),
    ({"pretrain_steps": "2it", "rewind": "1it"}, ["rewind 1it: with pretrain_steps 2it the rewind step is 2it",
                                                  "allowed: rewind 2it or none"]),
    ({"pretrain_steps": "2it", "pretrain_task": "rot"}, ["pretrain_task: unknown value 'rot'"]),
    ({"executor": "slurm", "address": "auto"}, ["address is for executor ray; this command runs with executor "
                                                "slurm"]),
])
def test_every_check_from_python_names_keywords(tmp_path: Path, kwargs: dict, words: list[str]) -> None:
    from lth.errors import UserError

    with pytest.raises(UserError) as e:
        api.lottery("digits_mlp", 2, root=tmp_path / "r", model="fc_8", training_steps="4it", **kwargs)
    line = str(e.value)
    assert "\n" not in line and "--" not in line, line
    for w in words:
        assert w in line, line
    assert not (tmp_path / "r").exists()


def test_a_saved_step_past_the_end_is_refused_from_python(tmp_path: Path) -> None:
    from lth.errors import UserError

    with pytest.raises(UserError, match=r"^save_states 9it: after the end of training"):
        api.lottery("digits_mlp", 2, root=tmp_path / "r", training_steps="4it", save_states="9it")
    assert not (tmp_path / "r").exists()


class TinyNet(nn.Module):
    """A model defined in a test module."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.body(x)


def test_a_model_class_trains_through_the_lottery(tmp_path: Path) -> None:
    records = api.run(api.lottery("digits_mlp", 1, branches="reinit", model=TinyNet, training_steps="4it",
                                  root=tmp_path), progress=False)
    assert [r["status"] for r in records["runs"] + records["branches"]] == ["complete"] * 3
    assert records["runs"][1]["density"] < 1
    _, mask = api.ticket(records["runs"][1]["path"])
    assert set(mask) == {"body.1.weight", "body.3.weight"}  # the module's own names


def test_a_train_spec_is_taken_as_it_is(tmp_path: Path) -> None:
    """A TrainSpec with the preset's pruning plans the preset's trunk (one identity, one directory); its runs
    record the preset as ``custom``."""
    from lth.presets import PRESETS

    spec = api.spec("digits_mlp", training_steps="4it")
    mine = api.lottery(spec, 1, branches="reinit", pruning=dict(PRESETS["digits_mlp"].pruning), root=tmp_path)
    theirs = api.lottery("digits_mlp", 1, branches="reinit", training_steps="4it", root=tmp_path)
    assert [n.path for n in mine.nodes()] == [n.path for n in theirs.nodes()]
    assert [n.digest for n in mine.nodes()] == [n.digest for n in theirs.nodes()]
    assert mine.trunks[0].preset == "custom"


def test_branches_with_no_pruned_level_are_refused_not_dropped(tmp_path) -> None:
    """``--levels 0 --branches reinit`` planned no branch at all, without a word (issue #32): refused on both
    faces, naming the branches, levels and the way to branch off the dense network; with ``branch_levels 0`` it
    plans the branch."""
    from lth.errors import UserError
    from tests.conftest import lth as cli

    code, out, err = cli("lottery", "--preset", "digits_mlp", "--levels", "0", "--branches", "reinit", "--root",
                         str(tmp_path / "r"))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "--branches reinit: with --levels 0" in err and "--branch-levels 0" in err
    with pytest.raises(UserError, match=r"^branches reinit: with levels 0 .*branch_levels 0"):
        api.lottery("digits_mlp", 0, branches=["reinit"], root=tmp_path / "r")
    assert not (tmp_path / "r").exists()
    plan = api.lottery("digits_mlp", 0, branches=["reinit"], branch_levels="0", root=tmp_path / "r",
                       training_steps="5it")
    assert [n.meta.get("branch") for n in plan.nodes()] == [None, "reinit"]
