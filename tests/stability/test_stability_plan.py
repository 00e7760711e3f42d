"""Stability copies as graph nodes: what copies share, what differs, where they live."""

from __future__ import annotations

from pathlib import Path

import pytest

from lth.errors import UserError
from lth.graph import closure
from lth.lottery import Trunk
from lth.presets import get_preset
from lth.prune import PruneHparams
from lth.spec import Step
from lth.stability import Stability, StabilityPlan, copy_seed, trajectory_steps


def _trunk(tmp_path: Path, k: str = "0it") -> Trunk:
    p = get_preset("digits_mlp")
    return Trunk(p.spec, PruneHparams(**p.pruning), Step.parse(k), tmp_path, "digits_mlp")  # type: ignore[arg-type]


def test_copies_share_start_and_differ_only_in_sgd_noise(tmp_path):
    exp = Stability(_trunk(tmp_path, "20it"), "imp")
    a, b = exp.node(1, 2, 0), exp.node(1, 2, 1)
    assert a.setup == b.setup and a.start_step == b.start_step == Step(20, "it")
    assert a.spec.train.order_seed == a.spec.train.augment_seed == copy_seed(1, 0) != copy_seed(1, 1)
    assert b.spec.train.order_seed == copy_seed(1, 1)
    assert a.spec.train.init_seed == b.spec.train.init_seed and a.spec.model == b.spec.model
    assert a.digest != b.digest and a.path.parent == b.path.parent
    assert a.path == exp.root / "replicate_1" / "level_2" / "copy_0"
    # the copies depend on the trunk: its level 2 mask and level 0's state at k
    paths = {n.path for n in closure([a])}
    assert exp.trunk.level_dir(1, 1) in paths and exp.trunk.level_dir(1, 0) in paths
    assert ("start", Step(20, "it")) in a.keep


def test_same_noise_copies_are_identical_runs_in_their_own_directory(tmp_path):
    t = _trunk(tmp_path)
    same = Stability(t, "dense", same_noise=True)
    a, b = same.node(0, 0, 0), same.node(0, 0, 1)
    assert a.digest == b.digest and a.path != b.path
    assert same.root != Stability(t, "dense").root


def test_schedule_from_zero_starts_at_zero_from_the_state_at_k(tmp_path):
    t = _trunk(tmp_path, "20it")
    usual, restart = Stability(t, "dense"), Stability(t, "dense", schedule_from_zero=True)
    n0, n1 = usual.node(0, 0, 0), restart.node(0, 0, 0)
    assert n0.start_step == Step(20, "it") and n1.start_step == Step(0, "it")
    assert n0.setup == n1.setup and n0.setup.refs[0].what == "state:rewind"
    assert usual.root != restart.root


def test_subnetwork_recipes(tmp_path):
    t = _trunk(tmp_path, "20it")
    assert Stability(t, "dense").recipe(0, 0).op == "ticket"
    assert len(Stability(t, "dense").recipe(0, 0).refs) == 1
    imp = Stability(t, "imp").recipe(0, 3)
    assert imp.op == "ticket" and imp.refs[1].what == "mask" and imp.refs[1].node.path == t.level_dir(0, 3)
    assert Stability(t, "random-prune").recipe(0, 3).op == "random_mask"
    reinit = Stability(t, "random-reinit")
    assert reinit.recipe(0, 3).op == "mask_only"
    n = reinit.node(2, 3, 0)
    assert n.spec.train.init_seed not in (None, 0, 1, 2) and n.start_step == Step(20, "it")


def test_plan_cells_and_bad_input(tmp_path):
    t0, t1 = _trunk(tmp_path, "0it"), _trunk(tmp_path, "20it")
    plan = StabilityPlan([t0, t1, t0], ["imp", "random-prune"], [0, 1, 2], replicates=2, copies=3)
    cells = [(e.subnetwork, str(e.k), lv) for e, lv in plan.cells()]
    assert cells.count(("dense", "0it", 0)) == 1 and ("imp", "20it", 2) in cells and ("imp", "0it", 0) not in cells
    assert len(cells) == 2 * (1 + 2 * 2)
    assert len(plan.copy_nodes()) == len(cells) * 2 * 3
    assert len(plan.pairs()) == len(cells) * 2 * 3  # 3 pairs of 3 copies
    with pytest.raises(UserError, match="--copies"):
        StabilityPlan([t0], ["dense"], [0], copies=1)
    with pytest.raises(UserError, match="--subnetwork 'bogus'"):
        StabilityPlan([t0], ["bogus"], [0])
    with pytest.raises(UserError, match="levels >= 1"):
        StabilityPlan([t0], ["imp"], [0])
    with pytest.raises(UserError, match="dense network is level 0"):
        Stability(t0, "dense").node(0, 1, 0)


def test_trajectory_steps_evenly_spaced_inside():
    assert [s.count for _, s in trajectory_steps(0, 100, 4)] == [20, 40, 60, 80]
    assert [s.count for _, s in trajectory_steps(40, 100, 2)] == [60, 80]
    assert trajectory_steps(0, 100, 0) == () and trajectory_steps(99, 100, 3) == ()


def test_copies_of_a_sparse_pretrained_trunk_start_where_its_level_starts(tmp_path):
    """With --pretrain-sparse each level has its own pretrained start; a copy at level l starts there, as the
    trunk's level l does (level 0 has none: a one-line error)."""
    import dataclasses

    from lth.graph import Ref
    from lth.lottery.pretrain import Pretraining

    t = dataclasses.replace(_trunk(tmp_path, "5it"), pretrain=Pretraining("blur", sparse=True))
    for sub in ("imp", "random-prune"):
        exp = Stability(t, sub)
        for level in (1, 2):
            assert exp.node(0, level, 0).setup.refs[0] == Ref(t.pretrain_node(0, level), "state:final") \
                == t.node(0, level).setup.refs[0]
    with pytest.raises(UserError, match="--pretrain-sparse"):
        Stability(t, "dense").node(0, 0, 0)


def test_oneshot_copies_hang_off_the_dense_trunk_only(tmp_path):
    """``--subnetwork oneshot``: the copies start from level 0's state at k under a mask made from level 0's final
    weights; no IMP level is in the plan (LMC Table 1's ImageNet rows train one dense network, then prune once)."""
    from lth.graph import Ref

    t = _trunk(tmp_path, "20it")
    plan = StabilityPlan([t], ["oneshot"], [3], replicates=2, copies=2)
    assert [(e.subnetwork, lv) for e, lv in plan.cells()] == [("oneshot", 3)]
    copies = plan.copy_nodes()
    assert len(copies) == 2 * 2 and all(c.start_step == Step(20, "it") for c in copies)
    for c in copies:
        r = c.replicate
        assert c.setup.op == "oneshot_levels" and c.setup.refs == (Ref(t.node(r, 0), "state:rewind"),
                                                                   Ref(t.node(r, 0), "state:final"))
        assert c.setup.opts["level"] == 3 and c.setup.opts["replicate"] == r
    trained = {n.path for n in closure(copies)} - {c.path for c in copies}
    assert trained == {t.level_dir(0, 0), t.level_dir(1, 0)}  # the dense trunk, nothing else
    assert Stability(t, "oneshot").root != Stability(t, "imp").root
    with pytest.raises(UserError, match="levels >= 1"):
        StabilityPlan([t], ["oneshot"], [0])


def test_oneshot_mask_is_the_largest_final_weights_at_imp_level_ls_density(tmp_path):
    """The op prunes level 0's final weights once: global pruning of 20% a level keeps 0.8^L of the prunable
    weights (the ignored layer counted and kept, as IMP's level L), and every kept weight outweighs every pruned one."""
    import torch

    from lth.graph import OpContext
    from lth.stability.plan import oneshot_levels

    g = torch.Generator().manual_seed(0)
    final = {"a.weight": torch.randn(40, 50, generator=g), "b.weight": torch.randn(30, 40, generator=g),
             "out.weight": torch.randn(10, 30, generator=g)}
    start = {k: torch.zeros_like(v) for k, v in final.items()}
    kinds = {"a.weight": "fc", "b.weight": "fc", "out.weight": "output"}
    ctx = OpContext(node=None, prunable=list(final), kinds=kinds, example_shape=(50,), num_classes=10,
                    steps_per_epoch=1)
    pruning = PruneHparams(strategy="global", fraction=0.2, ignore=("out.weight",), count_ignored=True).record()
    for level in (1, 3, 8):
        setup = oneshot_levels(ctx, start, final, pruning=pruning, replicate=0, level=level)
        mask = setup.mask
        assert setup.state is start and mask["out.weight"].all()
        total = sum(v.numel() for v in final.values())
        kept = sum(int(m.sum()) for m in mask.values())
        assert abs(kept - round(0.8 ** level * total)) <= 1
        pruned_max = max(final[k][~mask[k]].abs().max().item() for k in ("a.weight", "b.weight"))
        kept_min = min(final[k][mask[k]].abs().min().item() for k in ("a.weight", "b.weight"))
        assert kept_min >= pruned_max
    # at level 1 the one-shot mask is IMP level 1's (both prune the dense network's final weights once)
    from lth.lottery.trunk import imp

    ones = {k: torch.ones_like(v, dtype=torch.bool) for k, v in final.items()}
    first = imp(ctx, start, final, ones, pruning=pruning, replicate=0, level=1).mask
    one = oneshot_levels(ctx, start, final, pruning=pruning, replicate=0, level=1).mask
    assert all(torch.equal(first[k].bool(), one[k].bool()) for k in final)


def test_omp_copies_start_rewound_under_the_one_shot_mask_of_the_dense_network(tmp_path):
    """Ma et al. 2021 (Figs. 4-5) draw OMP's trajectories beside IMP's: ``omp`` copies start from level 0's state at
    k under the one-shot magnitude mask of level 0's *trained* weights at level L's density (the ``oneshot``
    branch's mask), and differ only in SGD noise."""
    import json

    import torch
    from conftest import lth

    from lth.models import build_model
    from lth.prune import density, kinds_of, prune_to_density
    from lth.store import RunDir

    t = _trunk(tmp_path)
    rec = Stability(t, "omp").recipe(0, 2)
    assert rec.op == "oneshot" and [r.node.path for r in rec.refs] == [t.level_dir(0, 0)] * 2 + [t.level_dir(0, 2)]
    flags = ["--preset", "digits_mlp", "--training-steps", "1ep", "--root", str(tmp_path / "s")]
    assert lth("lottery", "--levels", "2", *flags)[0] == 0  # the IMP ticket at level 2 trained, to compare with
    code, out, err = lth("stability", "--subnetwork", "omp", "--levels", "2", *flags, "--json")
    assert code == 0, err
    (res,) = json.loads(out)["results"]
    spec = json.loads((Path(res["runs"][0]) / "spec.json").read_text())
    assert spec["subnetwork"] == "omp"
    root = Path(spec["parent_trunk"]) / "replicate_0"
    final0, init0 = RunDir(root / "level_0").load_state("final"), RunDir(root / "level_0").load_state("init")
    ticket = RunDir(root / "level_2").load_mask()
    p = get_preset("digits_mlp")
    want = prune_to_density({k: final0[k] for k in ticket}, PruneHparams(**p.pruning),
                            kinds_of(build_model("fc_64_32", 1, (1, 8, 8), 10)), density(ticket))
    starts = []
    for run in res["runs"]:
        mask = RunDir(run).load_mask()
        assert all(torch.equal(mask[k], want[k]) for k in want)
        assert not all(torch.equal(mask[k], ticket[k]) for k in want)  # one-shot, not IMP's mask
        starts.append(RunDir(run).load_state("init"))
    for k, v in init0.items():
        assert torch.equal(starts[0][k], v * want[k] if k in want else v) and torch.equal(starts[1][k], starts[0][k])
