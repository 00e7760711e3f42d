"""Pretraining the rewinding point (Frankle, Schwab & Morcos 2020, Section 5) as graph plumbing: the pretraining
nodes' specs and references, every level (and every rewound branch) starting from the pretrained state (with a
fresh head after the rotation task), sparse pretraining under each level's mask, hashes unchanged without
pretraining, records and the analysis. The data transforms themselves are tested in tests/data/test_pretrain_tasks.py.

Trained: digits_mlp for 1 epoch (46 iterations), rewind / pretraining k = 10it, levels 0-2, one replicate."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import lth  # noqa: E402  (tests/ is on sys.path)

import lth.api as api
from lth.errors import UserError
from lth.graph import Recipe, Ref
from lth.lottery import Trunk
from lth.lottery.plan import LotteryPlan
from lth.lottery.pretrain import TASKS, Pretraining, task_data
from lth.presets import get_preset
from lth.prune import PruneHparams
from lth.spec import Step, spec_hash, to_dict
from lth.store import RunDir

PRESET = "digits_mlp"
K = "10it"
HEAD = ("layers.2.weight", "layers.2.bias")  # fc_64_32's output layer


def trunk(pretrain: Pretraining | None, root: Path = Path("/tmp/none"), rewind: str = K) -> Trunk:
    spec = api.spec(PRESET, training_steps="1ep")
    return Trunk(spec, PruneHparams(**get_preset(PRESET).pruning), Step.parse(rewind), root, PRESET, pretrain)


def states(path: str | Path, name: str = "final") -> dict[str, torch.Tensor]:
    return RunDir(Path(path)).load_tensors(f"states/{name}.pt")


# ---------------------------------------------------------------------------------------------- planning only
def test_no_pretraining_keeps_every_hash_and_reference() -> None:
    t = trunk(None)
    assert t.digest == spec_hash(t.spec, t.pruning, {"rewind": K})  # the formula every stored trunk was made with
    level0 = t.node(0, 0)
    before = {k: v for k, v in to_dict(t.pruning).items() if k != "count_ignored"}  # the fields stores were made with
    old_level2 = Recipe.make("imp", Ref(level0, "state:rewind"), Ref(t.node(0, 1), "state:final"),
                             Ref(t.node(0, 1), "mask"), pruning=before, replicate=0, level=2)
    assert t.node(0, 2).setup == old_level2
    assert t.start_ref(0) == Ref(level0, "state:rewind") and t.pretrain_nodes(0, 2) == []
    digests = {trunk(Pretraining(task, sparse)).digest for task in TASKS for sparse in (False, True)}
    assert t.digest not in digests and len(digests) == 2 * len(TASKS)
    assert trunk(Pretraining()).node(0, 0).digest == level0.digest  # level 0 trains normally


@pytest.mark.parametrize("task", TASKS)
def test_pretraining_node_trains_the_task_for_k_steps_from_level0_init(task: str) -> None:
    t = trunk(Pretraining(task))
    pre = t.pretrain_node(0)
    assert pre.spec.data == task_data(t.spec.data, task) and pre.spec.model == t.spec.model
    assert pre.spec.data.rotation_task == ("rotation" in task) and pre.spec.data.blur == ("blur" in task)
    assert pre.spec.data.random_labels_fraction == (1.0 if task == "random-labels" else 0.0)
    assert pre.spec.train.training_steps == Step.parse(K) and pre.start_step == Step(0, "it")
    assert pre.setup is not None and pre.setup.refs == (Ref(t.node(0, 0), "state:init"),)
    assert pre.path == t.level_dir(0, 0).parent / "pretrain" and pre.meta["kind"] == "pretrain"
    start = t.start_ref(0)
    if "rotation" in task:  # the 4-way head is replaced by a node that trains no steps
        assert start.node.path == t.level_dir(0, 0).parent / "pretrain_head"
        assert start.node.setup.refs == (Ref(pre, "state:final"),) and start.node.start_step == Step.parse(K)
        assert start.node.spec == dataclasses.replace(
            t.spec, train=dataclasses.replace(t.spec.train, training_steps=Step.parse(K)))
    else:
        assert start == Ref(pre, "state:final")
    for level in (1, 2):
        assert t.node(0, level).setup.refs[0] == start and t.node(0, level).start_step == Step.parse(K)


def test_sparse_pretraining_is_per_level_and_branches_start_from_their_level() -> None:
    t = trunk(Pretraining("rotation", sparse=True))
    with pytest.raises(ValueError):
        t.start_ref(0)
    for level in (1, 2):
        pre = t.pretrain_node(0, level)
        prev = t.node(0, level - 1)
        assert pre.setup.refs == (Ref(t.node(0, 0), "state:init"), Ref(prev, "state:final"), Ref(prev, "mask"))
        assert pre.path == t.level_dir(0, 0).parent / "pretrain" / f"level_{level}"
        assert t.node(0, level).setup.refs[0] == Ref(t.pretrain_head_node(0, level), "state:final")
    assert len(t.pretrain_nodes(0, 2)) == 4
    plan = LotteryPlan([t], 2, 1, {"noise": api.branch_options("noise", {}), "reinit": api.branch_options("reinit",
                                                                                                            {})})
    noise = {n.meta["level"]: n for n in plan.branch_nodes() if n.meta["branch"] == "noise"}
    assert sorted(noise) == [1, 2]  # a rewound branch at level l starts where the trunk's level l starts
    for level, n in noise.items():
        assert n.setup.refs[0] == Ref(t.pretrain_head_node(0, level), "state:final") == t.node(0, level).setup.refs[0]
    reinit = [n for n in plan.branch_nodes() if n.meta["branch"] == "reinit"]
    assert reinit and all(t.pretrain_node(0, 1) not in n.parents() for n in reinit)  # a fresh init: no pretraining
    with pytest.raises(UserError, match="--pretrain-sparse"):
        LotteryPlan([t], 2, 1, {"noise": api.branch_options("noise", {})}, branch_levels=[0]).branch_nodes()


def test_dense_pretraining_is_where_rewound_branches_start() -> None:
    t = trunk(Pretraining("blur"))
    plan = LotteryPlan([t], 2, 1, {"noise": api.branch_options("noise", {}), "reinit": api.branch_options("reinit",
                                                                                                            {})})
    noise = [n for n in plan.branch_nodes() if n.meta["branch"] == "noise"]
    assert noise and all(n.setup.refs[0] == Ref(t.pretrain_node(0), "state:final") for n in noise)
    assert all(n.start_step == Step.parse(K) for n in noise)


def test_pretraining_length_is_apart_from_the_rewind_step() -> None:
    """Frankle, Schwab & Morcos (2020, Section 5) pretrain for E epochs (up to 40) and rewind IMP there, at the
    schedule's step k: the pretraining run trains E steps, the levels and the rotation head start at k."""
    t = trunk(Pretraining("rotation", steps=Step(30, "it")))
    pre = t.pretrain_node(0)
    assert pre.spec.train.training_steps == Step(30, "it") and pre.start_step == Step(0, "it")
    head = t.pretrain_head_node(0)
    assert head.start_step == Step.parse(K) and head.setup.refs == (Ref(pre, "state:final"),)
    assert all(t.node(0, lv).start_step == Step.parse(K) for lv in (1, 2))
    assert t.digest != trunk(Pretraining("rotation")).digest  # E is part of the trunk's identity ...
    assert Pretraining("blur").identity() == {"task": "blur", "sparse": False}  # ... only when given
    assert trunk(Pretraining("rotation", steps=Step.parse(K))).pretrain_node(0).spec == \
        trunk(Pretraining("rotation")).pretrain_node(0).spec  # E = k: the same run as before E was an option
    plan = api.lottery(PRESET, 2, pretrain_steps=K, pretrain_task="blur", pretrain_length="2ep", root="/tmp/none",
                       training_steps="1ep")
    assert plan.trunks[0].pretrain == Pretraining("blur", False, Step(2, "ep"))
    assert plan.pretrain_nodes()[0].spec.train.training_steps == Step(2, "ep")


def test_pretraining_for_e_steps_then_rewinding_to_k_trains(tmp_path: Path) -> None:
    code, out, err = lth("lottery", "--preset", PRESET, "--training-steps", "1ep", "--levels", "1", "--root",
                         str(tmp_path), "--pretrain-steps", K, "--pretrain-task", "blur", "--pretrain-length", "25it",
                         "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    rep, levels = paths(doc)
    spec = json.loads((rep / "pretrain" / "spec.json").read_text())
    assert spec["train"]["training_steps"] == "25it" and spec["data"]["blur"] is True
    metrics = RunDir(rep / "pretrain").read_metrics()
    assert max(int(r["iteration"]) for r in metrics) == 25  # E steps, not k
    mask = RunDir(Path(levels[1])).load_tensors("mask.pt")
    start, pre = states(levels[1], "rewind"), states(rep / "pretrain")
    assert all(torch.equal(start[k], v * mask[k] if k in mask else v) for k, v in pre.items())
    level1 = next(r for r in doc["runs"] if r["level"] == 1)
    assert level1["rewind"] == K


# ---------------------------------------------------------------------------------------------- trained
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pretrain") / "store"
    out: dict[str, Any] = {"root": root}
    for name, extra in {"standard": ["--pretrain-task", "standard"], "rotation": ["--pretrain-task", "rotation"],
                        "sparse-blur": ["--pretrain-task", "blur", "--pretrain-sparse"],
                        "sparse-rotation": ["--pretrain-task", "rotation", "--pretrain-sparse"]}.items():
        code, stdout, err = lth("lottery", "--preset", PRESET, "--training-steps", "1ep", "--levels", "2", "--root",
                                str(root), "--pretrain-steps", K, *extra, "--device", "cpu", "--json")
        assert code == 0, err
        out[name] = json.loads(stdout)
    return out


def paths(records: dict[str, Any]) -> tuple[Path, dict[int, str]]:
    levels = {r["level"]: r["path"] for r in records["runs"]}
    return Path(levels[0]).parent, levels


def test_standard_pretraining_recreates_the_state_at_k(trained: dict[str, Any]) -> None:
    rep, levels = paths(trained["standard"])
    pre = states(rep / "pretrain")
    assert {k: v.tolist() for k, v in pre.items()} == {k: v.tolist() for k, v in states(levels[0], "rewind").items()}
    for level in (1, 2):  # each level starts from it, under its mask
        mask = RunDir(Path(levels[level])).load_tensors("mask.pt")
        start = states(levels[level], "rewind")
        for k, v in pre.items():
            assert torch.equal(start[k], v * mask[k] if k in mask else v)
    assert [r["task"] for r in trained["standard"]["pretrain"]] == ["standard"]


def test_rotation_pretraining_trains_four_way_then_gets_a_fresh_head(trained: dict[str, Any]) -> None:
    rep, levels = paths(trained["rotation"])
    spec = json.loads((rep / "pretrain" / "spec.json").read_text())
    assert spec["data"]["rotation_task"] is True and spec["kind"] == "pretrain"
    pre, init = states(rep / "pretrain"), states(levels[0], "init")
    pre_init = states(rep / "pretrain", "init")
    assert pre["layers.2.weight"].shape[0] == 4 and init["layers.2.weight"].shape[0] == 10
    for k in init:  # pretraining starts at level 0's W_0 (outside the head) and moves away from it
        if k not in HEAD:
            assert torch.equal(pre_init[k], init[k])
    assert not torch.equal(pre["layers.0.weight"], init["layers.0.weight"])
    assert not torch.equal(pre["layers.0.weight"], states(levels[0], "rewind")["layers.0.weight"])
    start = states(rep / "pretrain_head")
    for k in start:  # the trunk of the pretrained network, the head of the initialisation (the node's init seed)
        assert torch.equal(start[k], init[k] if k in HEAD else pre[k])
    for level in (1, 2):
        mask = RunDir(Path(levels[level])).load_tensors("mask.pt")
        rewound = states(levels[level], "rewind")
        for k in start:
            assert torch.equal(rewound[k], start[k] * mask[k] if k in mask else start[k])


def test_sparse_pretraining_trains_under_each_levels_mask(trained: dict[str, Any]) -> None:
    rep, levels = paths(trained["sparse-blur"])
    for level in (1, 2):
        run = rep / "pretrain" / f"level_{level}"
        assert json.loads((run / "spec.json").read_text())["data"]["blur"] is True
        mask = RunDir(run).load_tensors("mask.pt")
        trunk_mask = RunDir(Path(levels[level])).load_tensors("mask.pt")
        assert {k: v.tolist() for k, v in mask.items()} == {k: v.tolist() for k, v in trunk_mask.items()}
        pre = states(run)
        assert all(torch.equal(pre[k][~mask[k]], torch.zeros_like(pre[k][~mask[k]])) for k in mask)
        assert torch.equal(states(levels[level], "rewind")["layers.0.weight"], pre["layers.0.weight"])
    rep, levels = paths(trained["sparse-rotation"])
    for level in (1, 2):
        mask = RunDir(rep / "pretrain" / f"level_{level}").load_tensors("mask.pt")
        trunk_mask = RunDir(Path(levels[level])).load_tensors("mask.pt")
        for k in trunk_mask:  # the ticket's mask, the 4-way head's all ones
            assert torch.equal(mask[k], trunk_mask[k]) if k not in HEAD else bool(mask[k].all())
        assert mask["layers.2.weight"].shape[0] == 4
    assert sorted(r["level"] for r in trained["sparse-rotation"]["pretrain"]) == [1, 1, 2, 2]


def test_analysis_labels_pretraining_runs(trained: dict[str, Any]) -> None:
    runs = api.runs(trained["root"])
    pre = runs[runs["kind"] == "pretrain"]
    assert len(pre) == 1 + 2 + 2 + 4 and set(pre["task"]) == {"standard", "rotation", "blur"}
    assert (runs["kind"] == "lottery").sum() == 4 * 3
    code, _, err = lth("report", "--root", str(trained["root"]), "--out", str(trained["root"] / "report"))
    assert code == 0, err


def test_bad_pretraining_flags_exit_2(tmp_path: Path) -> None:
    base = ["lottery", "--preset", PRESET, "--levels", "1", "--root", str(tmp_path)]
    for extra, needle in ((["--pretrain-task", "blur"], "--pretrain-task"),
                          (["--pretrain-steps", K, "--pretrain-task", "jigsaw"], "--pretrain-task"),
                          (["--pretrain-steps", K, "--rewind", "0it"], "--rewind"),
                          (["--pretrain-steps", "0it"], "--pretrain-steps"),
                          (["--pretrain-length", "40it"], "--pretrain-length"),
                          (["--pretrain-steps", K, "--pretrain-length", "0it"], "--pretrain-length")):
        code, _, err = lth(*base, *extra)
        assert code == 2 and needle in err, (extra, err)
