"""The branches (ablations) through `lth branch`, each against its defining property on one shared trunk
(digits_mlp for 2 epochs, levels 0-2, 2 replicates, k = 0): masks, counts, starting weights, spec.json, JSON
records, populations and bad input. Every branch in the registry must have a test here."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from conftest import lth, populations  # noqa: E402  (tests/ is on sys.path)

from lth.lottery import BRANCHES
from lth.models import build_model
from lth.presets import get_preset
from lth.prune import PruneHparams, density, kinds_of, mask_counts, prune_to_density

PRESET = "digits_mlp"
STEPS = "2ep"
REPLICATES = 2
BRANCH_LEVELS = (1, 2)
EXAMPLE_SHAPE, NUM_CLASSES = (1, 8, 8), 10
PRUNABLE = ("layers.0.weight", "layers.1.weight", "layers.2.weight")
# branch -> the extra flags it is run with (every branch runs at levels 1-2 of both replicates)
TESTED: dict[str, list[str]] = {
    "reinit": [],
    "random-mask": [],
    "dn-reinit": [],
    "remask": [],
    "small-dense": [],
    "retrain": ["--set", "lr=0.001"],
    "oneshot": [],
    "signs": ["--magnitudes-from", "0", "--signs-from", "k"],
    "shuffle": ["--shuffle-within", "unit", "--same-sign"],
    "noise": ["--noise-scale", "2"],
    "transfer": ["--target-dataset", "digits"],
    "finetune": ["--finetune-steps", "1ep", "--finetune-lr", "0.001"],
}


def load(path: str | Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


def common(root: Path) -> list[str]:
    return ["--preset", PRESET, "--training-steps", STEPS, "--root", str(root), "--replicates", str(REPLICATES)]


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture(scope="module")
def trunk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("branches") / "store"
    code, out, err = lth("lottery", "--levels", "2", *common(root), "--json")
    assert code == 0, err
    runs = {(r["replicate"], r["level"]): r for r in json.loads(out)["runs"]}
    return {"root": root, "runs": runs, "branches": {}}


def branch(trunk: dict[str, Any], name: str) -> dict[str, Any]:
    """Run branch ``name`` (with its flags from TESTED) at levels 1-2 once per module; its records and stderr."""
    if name not in trunk["branches"]:
        code, out, err = lth("branch", name, "--levels", "1-2", *common(trunk["root"]), *TESTED[name], "--json")
        assert code == 0, err
        runs = json.loads(out)["runs"]
        trunk["branches"][name] = {"runs": runs, "err": err,
                                   "by_key": {(r["replicate"], r["level"]): r for r in runs}}
    return trunk["branches"][name]


def ticket(trunk: dict[str, Any], r: int, level: int) -> dict[str, torch.Tensor]:
    return load(trunk["runs"][(r, level)]["mask"])


def trunk_state(trunk: dict[str, Any], r: int, level: int, name: str) -> dict[str, torch.Tensor]:
    return load(trunk["runs"][(r, level)]["states"][name])


def spec_json(rec: dict[str, Any]) -> dict[str, Any]:
    return json.loads((Path(rec["path"]) / "spec.json").read_text())


def branch_cases(trunk: dict[str, Any], name: str):
    """(replicate, level, record, mask or None, init state) of every run of a branch."""
    out = branch(trunk, name)
    for (r, level), rec in sorted(out["by_key"].items()):
        mask = load(rec["mask"]) if "mask" in rec else None
        yield r, level, rec, mask, load(rec["states"]["init"])


def assert_zero_outside(state: dict[str, torch.Tensor], mask: dict[str, torch.Tensor]) -> None:
    for k, m in mask.items():
        assert torch.all(state[k][~m] == 0), k


def dn_values(trunk: dict[str, Any], r: int, level: int, k: str | None = None) -> torch.Tensor:
    """The ticket's distribution D_n: its nonzero initial weights at kept positions, of the whole network (study
    004's definition, the default) or of layer ``k``."""
    init, t = trunk_state(trunk, r, 0, "init"), ticket(trunk, r, level)
    return torch.cat([init[n][t[n] & (init[n] != 0)] for n in ([k] if k else PRUNABLE)])


# ------------------------------------------------------------------------------------------------ registry
def test_every_branch_in_the_registry_has_a_test() -> None:
    assert sorted(TESTED) == sorted(BRANCHES.keys())
    for name in TESTED:
        assert callable(globals().get(f"test_{name.replace('-', '_')}")), name


# ------------------------------------------------------------------------------------------------ branches
def test_reinit(trunk) -> None:
    out = branch(trunk, "reinit")
    assert populations(out["err"]) == [len(BRANCH_LEVELS) * REPLICATES]  # levels x replicates, one population
    inits = {}
    for r, level, rec, mask, init in branch_cases(trunk, "reinit"):
        t = ticket(trunk, r, level)
        assert all(torch.equal(mask[k], t[k]) for k in PRUNABLE)
        assert_zero_outside(init, mask)
        init0 = trunk_state(trunk, r, 0, "init")
        for k in PRUNABLE:
            kept_new, kept_old = init[k][mask[k]], init0[k][mask[k]]
            assert (kept_new == kept_old).float().mean() < 0.01, k  # a fresh draw
        w_new, w_old = init["layers.0.weight"][mask["layers.0.weight"]], init0["layers.0.weight"]
        assert 0.8 < float(w_new.std() / w_old.std()) < 1.25  # the same initialiser, another seed
        assert set(rec["states"]) == {"init", "final"}
        assert set(init) == set(init0)
        spec = spec_json(rec)
        assert spec["kind"] == "branch" and spec["branch"] == "reinit" and spec["level"] == level
        assert spec["train"]["init_seed"] is not None and spec["train"]["init_seed"] not in range(REPLICATES)
        inits[(r, level)] = init
    for level in BRANCH_LEVELS:
        assert not torch.equal(inits[(0, level)]["layers.0.weight"], inits[(1, level)]["layers.0.weight"])


def test_random_mask(trunk) -> None:
    for r, level, rec, mask, init in branch_cases(trunk, "random-mask"):
        t = ticket(trunk, r, level)
        assert mask_counts(mask) == mask_counts(t)
        for k in PRUNABLE:
            assert not torch.equal(mask[k], t[k]), k
        init0 = trunk_state(trunk, r, 0, "init")  # k = 0: the trunk's start state
        for k, v in init0.items():
            assert torch.equal(init[k], v * mask[k] if k in mask else v), k
        assert_zero_outside(load(rec["states"]["final"]), mask)
    # the same total count spread over all layers
    code, out, err = lth("branch", "random-mask", "--levels", "2", *common(trunk["root"]), "--mask-mode", "global",
                         "--json")
    assert code == 0, err
    for rec in json.loads(out)["runs"]:
        mask, t = load(rec["mask"]), ticket(trunk, rec["replicate"], 2)
        assert sum(mask_counts(mask).values()) == sum(mask_counts(t).values())
        assert mask_counts(mask) != mask_counts(t)
        layerwise_dir = Path(branch(trunk, "random-mask")["by_key"][(rec["replicate"], 2)]["path"]).parent
        assert Path(rec["path"]).parent != layerwise_dir  # the options name the branch's directory


def test_dn_reinit(trunk) -> None:
    for r, level, _, mask, init in branch_cases(trunk, "dn-reinit"):
        t = ticket(trunk, r, level)
        assert all(torch.equal(mask[k], t[k]) for k in PRUNABLE)
        assert_zero_outside(init, mask)
        init0 = trunk_state(trunk, r, 0, "init")
        for k in PRUNABLE:
            kept = init[k][mask[k]]
            assert torch.isin(kept, dn_values(trunk, r, level)).all(), k
            assert not torch.equal(kept, init0[k][mask[k]]), k  # resampled, not the ticket itself
        # the whole network's pool: some layer draws values that only another layer holds
        assert any(not torch.isin(init[k][mask[k]], dn_values(trunk, r, level, k)).all() for k in PRUNABLE)
        for k in init0:
            if k not in PRUNABLE:
                assert torch.equal(init[k], init0[k]), k


def test_remask(trunk) -> None:
    for r, level, _, mask, init in branch_cases(trunk, "remask"):
        t = ticket(trunk, r, level)
        assert mask_counts(mask) == mask_counts(t)
        for k in PRUNABLE:
            assert not torch.equal(mask[k], t[k]), k
            assert torch.equal(init[k] != 0, mask[k]), k  # D_n holds no zeros: nonzero exactly where kept
            assert torch.isin(init[k][mask[k]], dn_values(trunk, r, level)).all(), k


def test_dn_pool_layer_draws_from_each_layers_own_pool(trunk) -> None:
    code, out, err = lth("branch", "dn-reinit", "--levels", "1", *common(trunk["root"]), "--dn-pool", "layer",
                         "--json")
    assert code == 0, err
    for rec in json.loads(out)["runs"]:
        init, mask = load(rec["states"]["init"]), load(rec["mask"])
        for k in PRUNABLE:
            assert torch.isin(init[k][mask[k]], dn_values(trunk, rec["replicate"], 1, k)).all(), k
        assert "dn-reinit_" in rec["path"] and rec["path"] != branch(trunk, "dn-reinit")["runs"][0]["path"]


def test_small_dense(trunk) -> None:
    out = branch(trunk, "small-dense")
    # widths differ between levels (not between replicates): one population per level
    assert populations(out["err"]) == [REPLICATES] * len(BRANCH_LEVELS)
    dense = build_model("fc_64_32", 1, EXAMPLE_SHAPE, NUM_CLASSES).num_params()
    widths = {}
    for r, level, rec, mask, init in branch_cases(trunk, "small-dense"):
        assert mask is None and not (Path(rec["path"]) / "mask.pt").exists()
        t = ticket(trunk, r, level)
        assert rec["density"] == 1.0 and rec["ticket_density"] == pytest.approx(density(t))
        spec = spec_json(rec)
        width = spec["model"]["width"]
        assert 0 < width < 1 and width == rec["width"]
        ticket_params = dense - sum(int((~m).sum()) for m in t.values())
        small = build_model(spec["model"]["model"], 1, EXAMPLE_SHAPE, NUM_CLASSES, spec["model"]["norm"], width)
        assert abs(small.num_params() - ticket_params) <= 0.02 * ticket_params
        assert init["layers.0.weight"].shape[0] < 64  # narrower hidden layers, stored as such
        widths[(r, level)] = width
    assert widths[(0, 2)] < widths[(0, 1)] and widths[(0, 1)] == widths[(1, 1)]


def test_retrain(trunk) -> None:
    for r, level, rec, mask, init in branch_cases(trunk, "retrain"):
        spec = spec_json(rec)
        assert spec["train"]["lr"] == 0.001
        assert spec_json(trunk["runs"][(r, level)])["train"]["lr"] == 0.003
        t = ticket(trunk, r, level)
        assert all(torch.equal(mask[k], t[k]) for k in PRUNABLE)
        ticket_init = trunk_state(trunk, r, level, "init")  # the ticket's own starting weights
        assert all(torch.equal(init[k], v) for k, v in ticket_init.items())
        # another learning rate: another result than the trunk level
        assert not torch.equal(load(rec["states"]["final"])["layers.0.weight"],
                               trunk_state(trunk, r, level, "final")["layers.0.weight"])


@pytest.mark.parametrize("extra", [[], ["--set", "lr"], ["--set", "nope=1"], ["--set", "lr=-1"]])
def test_retrain_bad_set_is_exit_2(trunk, extra: list[str]) -> None:
    before = files_under(trunk["root"])
    code, out, err = lth("branch", "retrain", "--levels", "1", *common(trunk["root"]), *extra)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and err.startswith("lth: error:"), err
    assert files_under(trunk["root"]) == before


def test_oneshot(trunk) -> None:
    hp = PruneHparams(**get_preset(PRESET).pruning)
    model = build_model("fc_64_32", 1, EXAMPLE_SHAPE, NUM_CLASSES)
    kinds = kinds_of(model)
    for r, level, rec, mask, init in branch_cases(trunk, "oneshot"):
        t = ticket(trunk, r, level)
        total = sum(m.numel() for m in t.values())
        assert abs(density(mask) - density(t)) <= len(t) / total
        assert rec["density"] == density(mask)
        final0 = trunk_state(trunk, r, 0, "final")
        want = prune_to_density({k: final0[k] for k in PRUNABLE}, hp, kinds, density(t))
        assert all(torch.equal(mask[k], want[k]) for k in PRUNABLE)
        init0 = trunk_state(trunk, r, 0, "init")
        for k, v in init0.items():
            assert torch.equal(init[k], v * mask[k] if k in mask else v), k


def test_oneshot_set_trains_the_same_mask_at_another_rate(trunk) -> None:
    from lth.lottery.branches.base import BranchOptions
    from lth.lottery.branches.oneshot import OneshotOptions
    from lth.spec import spec_hash

    assert spec_hash(OneshotOptions()) == spec_hash(BranchOptions())  # no --set: the directory of old runs
    plain = branch(trunk, "oneshot")["by_key"]
    code, out, err = lth("branch", "oneshot", "--levels", "1", *common(trunk["root"]), "--set", "lr=0.001", "--json")
    assert code == 0, err
    for rec in json.loads(out)["runs"]:
        base = plain[(rec["replicate"], rec["level"])]
        assert Path(rec["path"]).parent != Path(base["path"]).parent  # its own branch directory
        assert spec_json(rec)["train"]["lr"] == 0.001 and spec_json(base)["train"]["lr"] == 0.003
        m, m0 = load(rec["mask"]), load(base["mask"])
        assert all(torch.equal(m[k], m0[k]) for k in PRUNABLE)  # the same one-shot mask
        assert all(torch.equal(v, load(base["states"]["init"])[k]) for k, v in load(rec["states"]["init"]).items())
        assert not torch.equal(load(rec["states"]["final"])["layers.0.weight"],
                               load(base["states"]["final"])["layers.0.weight"])


def test_oneshot_density_masks_at_several_densities_from_the_one_dense_run(trunk) -> None:
    """Liu et al. ICML 2021, Figs. 6c/7: one-shot masks at any density off level 0 (no IMP level trained for them):
    each mask is the one-shot magnitude mask of the dense network's final weights at that density (so a sparser
    one lies inside a denser one), and what trains under it starts rewound (the one-shot ticket), from the trained
    weights (pruning & fine-tuning, step 0) or from a fresh initialisation (step 0)."""
    from lth.graph import closure

    hp = PruneHparams(**get_preset(PRESET).pruning)
    kinds = kinds_of(build_model("fc_64_32", 1, EXAMPLE_SHAPE, NUM_CLASSES))
    masks: dict[tuple[float, str], dict[int, dict[str, torch.Tensor]]] = {}
    for d in (0.5, 0.2):
        for start in ("rewind", "trained", "reinit"):
            code, out, err = lth("branch", "oneshot", "--levels", "0", *common(trunk["root"]), "--oneshot-density",
                                 str(d), "--oneshot-start", start, "--json")
            assert code == 0, err
            runs = json.loads(out)["runs"]
            assert sorted(r["replicate"] for r in runs) == list(range(REPLICATES))
            for rec in runs:
                r, mask, init = rec["replicate"], load(rec["mask"]), load(rec["states"]["init"])
                assert rec["level"] == 0 and rec["density"] == density(mask)
                final0 = trunk_state(trunk, r, 0, "final")
                want = prune_to_density({k: final0[k] for k in PRUNABLE}, hp, kinds, d)
                assert all(torch.equal(mask[k], want[k]) for k in PRUNABLE)
                assert abs(density(mask) - d) < 0.01
                masks.setdefault((d, start), {})[r] = mask
                source = {"rewind": trunk_state(trunk, r, 0, "init"), "trained": final0}.get(start)
                if source is None:  # a fresh draw: not the trunk's initialisation under the mask
                    assert not torch.equal(init["layers.0.weight"], trunk_state(trunk, r, 0, "init")["layers.0.weight"]
                                           * mask["layers.0.weight"])
                    assert_zero_outside(init, mask)
                else:
                    for k, v in source.items():
                        assert torch.equal(init[k], v * mask[k] if k in mask else v), (start, k)
                assert spec_json(rec)["branch_options"]["oneshot_start"] == start
    for r in range(REPLICATES):
        dense, sparse = masks[(0.5, "rewind")][r], masks[(0.2, "rewind")][r]
        assert all(torch.equal(sparse[k] & dense[k], sparse[k]) for k in PRUNABLE)  # nested: one ranking
        assert all(torch.equal(masks[(0.2, s)][r][k], sparse[k]) for s in ("trained", "reinit") for k in PRUNABLE)
    # planning: a density of its own needs level 0 of the trunk only (no IMP level per density)
    from lth.recipes.base import plan_lottery

    lp = plan_lottery(PRESET, 3, root=trunk["root"], replicates=1, training_steps=STEPS,
                      branches={"oneshot": {"oneshot_density": 0.1}}, branch_levels=[0])
    branch_nodes = [n for n in lp.nodes() if n.meta.get("branch") == "oneshot"]
    assert branch_nodes and {n.meta["level"] for n in closure(branch_nodes)} == {0}


@pytest.mark.parametrize("extra", [["--levels", "0", "--oneshot-density", "1.5"],
                                   ["--levels", "0", "--oneshot-density", "0"],
                                   ["--levels", "1", "--oneshot-density", "0.3"],
                                   ["--levels", "1", "--oneshot-start", "trained"],
                                   ["--levels", "0", "--oneshot-density", "0.3", "--oneshot-start", "scratch"]])
def test_oneshot_density_bad_options_are_exit_2(trunk, extra: list[str]) -> None:
    code, _, err = lth("branch", "oneshot", *common(trunk["root"]), *extra)
    assert code == 2 and "--oneshot-" in err and len(err.strip().splitlines()) == 1, err


def test_reinit_and_small_dense_set_change_only_the_training(tmp_path: Path) -> None:
    """``--set`` on reinit and small-dense (Ma et al.'s baselines at every ticket lr), planned only: without it the
    old directory; with it the same mask reference (reinit) or width (small-dense) at the other rate, elsewhere."""
    import dataclasses

    import lth.api as api
    from lth.lottery.branches.base import BranchOptions
    from lth.lottery.branches.reinit import ReinitOptions
    from lth.lottery.branches.small_dense import SmallDenseOptions
    from lth.spec import spec_hash

    assert spec_hash(ReinitOptions()) == spec_hash(SmallDenseOptions()) == spec_hash(BranchOptions())

    def nodes(opts: dict[str, Any]) -> dict[str, Any]:
        lp = api.lottery(PRESET, 2, branches={"reinit": opts, "small-dense": opts}, branch_levels=[2],
                         root=tmp_path, training_steps=STEPS)
        return {n.meta["branch"]: n for n in lp.branch_nodes()}

    plain, at = nodes({}), nodes({"set": ("lr=0.001",)})
    for name in ("reinit", "small-dense"):
        assert plain[name].spec.train.lr == 0.003 and at[name].spec.train.lr == 0.001
        assert at[name].path.parent != plain[name].path.parent and at[name].path.name == "level_2"
        back = dataclasses.replace(at[name].spec, train=dataclasses.replace(at[name].spec.train, lr=0.003))
        assert back == plain[name].spec and at[name].setup == plain[name].setup


def test_finetune(trunk) -> None:
    for r, level, rec, mask, init in branch_cases(trunk, "finetune"):
        t = ticket(trunk, r, level)
        assert all(torch.equal(mask[k], t[k]) for k in PRUNABLE)
        final0 = trunk_state(trunk, r, 0, "final")  # the dense network's trained weights, pruned
        for k, v in final0.items():
            assert torch.equal(init[k], v * t[k] if k in t else v), k
        assert_zero_outside(load(rec["states"]["final"]), mask)
        spec, trunk_spec = spec_json(rec), spec_json(trunk["runs"][(r, level)])
        assert spec["branch"] == "finetune" and spec["train"]["lr"] == 0.001
        assert spec["train"]["training_steps"] == "1ep" and trunk_spec["train"]["training_steps"] == STEPS
        # fine-tuned from step 0 for one epoch: half the trunk's iterations
        last = int(pd.read_csv(Path(rec["path"]) / "metrics.csv")["iteration"].max())
        last0 = int(pd.read_csv(Path(trunk["runs"][(r, level)]["path"]) / "metrics.csv")["iteration"].max())
        assert 2 * last == last0
    # the defaults: the trunk's schedule (its spec unchanged)
    from lth.api import spec as preset_spec
    from lth.lottery.branches.finetune import FinetuneOptions, finetune_spec

    base = preset_spec(PRESET, training_steps=STEPS)
    assert finetune_spec(base, FinetuneOptions()) == base


@pytest.mark.parametrize("extra", [["--finetune-steps", "x"], ["--finetune-lr", "0"], ["--finetune-lr", "-1"]])
def test_finetune_bad_options_are_exit_2(trunk, extra: list[str]) -> None:
    before = files_under(trunk["root"])
    code, out, err = lth("branch", "finetune", "--levels", "1", *common(trunk["root"]), *extra)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "--finetune-" in err, err
    assert files_under(trunk["root"]) == before


def test_signs(trunk, tmp_path: Path) -> None:
    # k = 0 (the shared trunk): every combination is the ticket itself
    for _, _, rec, mask, init in branch_cases(trunk, "signs"):
        init0 = trunk_state(trunk, rec["replicate"], 0, "init")
        assert all(torch.equal(init[k], init0[k] * mask[k] if k in mask else init0[k]) for k in init0)
        assert rec["effective_std"] == 0.0
    # k = 5it: each of the four combinations takes magnitudes and signs from the asked step
    args = ["--preset", PRESET, "--training-steps", "1ep", "--root", str(tmp_path), "--rewind", "5it"]
    code, out, err = lth("lottery", "--levels", "1", *args, "--json")
    assert code == 0, err
    level0 = next(r for r in json.loads(out)["runs"] if r["level"] == 0)
    steps = {"0": load(level0["states"]["init"]), "k": load(level0["states"]["rewind"])}
    for mag in ("0", "k"):
        for sgn in ("0", "k"):
            code, out, err = lth("branch", "signs", "--levels", "1", *args, "--magnitudes-from", mag,
                                 "--signs-from", sgn, "--json")
            assert code == 0, err
            (rec,) = json.loads(out)["runs"]
            mask, init = load(rec["mask"]), load(rec["states"]["rewind"])
            for k in PRUNABLE:
                m = mask[k]
                assert torch.equal(init[k][m].abs(), steps[mag][k][m].abs()), (mag, sgn, k)
                assert torch.equal(torch.sign(init[k][m]), torch.sign(steps[sgn][k][m])), (mag, sgn, k)
                assert torch.all(init[k][~m] == 0)
            assert torch.equal(init["layers.0.bias"], steps["k"]["layers.0.bias"])  # the rest: step k's
            diff = torch.cat([(init[k] - steps["k"][k])[mask[k]].double() for k in PRUNABLE])
            assert rec["effective_std"] == pytest.approx(float(diff.std()), rel=1e-6, abs=1e-12)
            assert (rec["effective_std"] == 0.0) == (mag == sgn == "k")


def test_shuffle(trunk) -> None:
    for r, level, rec, mask, init in branch_cases(trunk, "shuffle"):
        init0 = trunk_state(trunk, r, 0, "init")  # k = 0: the rewound state is the trunk's init
        moved = False
        for k in PRUNABLE:
            m, w, w0 = mask[k], init[k], init0[k] * mask[k]
            assert torch.equal(m, ticket(trunk, r, level)[k]) and torch.all(w[~m] == 0)
            assert torch.equal(torch.sign(w), torch.sign(w0)), k  # --same-sign: every position keeps its sign
            for o in range(w.shape[0]):  # --shuffle-within unit: each neuron keeps its multiset
                assert torch.equal(w[o][m[o]].sort().values, w0[o][m[o]].sort().values), (k, o)
            moved = moved or not torch.equal(w, w0)
        assert moved
        diff = torch.cat([(init[k] - init0[k])[mask[k]].double() for k in PRUNABLE])
        assert rec["effective_std"] == pytest.approx(float(diff.std()), rel=1e-6) and rec["effective_std"] > 0
    # within the layer: a unit's multiset changes, the layer's does not
    code, out, err = lth("branch", "shuffle", "--levels", "1", *common(trunk["root"]), "--json")
    assert code == 0, err
    rec = json.loads(out)["runs"][0]
    mask, init, init0 = load(rec["mask"]), load(rec["states"]["init"]), trunk_state(trunk, 0, 0, "init")
    w, w0, m = init["layers.0.weight"], init0["layers.0.weight"], mask["layers.0.weight"]
    assert torch.equal(w[m].sort().values, w0[m].sort().values)
    assert not torch.equal(w[0][m[0]].sort().values, w0[0][m[0]].sort().values)


def test_noise(trunk) -> None:
    from lth.prune.perturb import init_std

    for r, _, rec, mask, init in branch_cases(trunk, "noise"):
        init0 = trunk_state(trunk, r, 0, "init")
        for k in PRUNABLE:
            d = (init[k] - init0[k] * mask[k]).double()
            assert torch.all(d[~mask[k]] == 0)
            sigma = init_std(init0[k].shape, "kaiming_normal")
            n = int(mask[k].sum())
            assert abs(float(d[mask[k]].std()) / (2 * sigma) - 1) < 5 / n ** 0.5 + 0.02, k  # --noise-scale 2
        diff = torch.cat([(init[k] - init0[k])[mask[k]].double() for k in PRUNABLE])
        assert rec["effective_std"] == pytest.approx(float(diff.std()), rel=1e-6)
    code, _, err = lth("branch", "noise", "--levels", "1", *common(trunk["root"]), "--noise-scale", "-1")
    assert code == 2 and "--noise-scale" in err


def test_transfer(trunk, tmp_path: Path) -> None:
    # the same class count: the ticket itself (mask and rewound weights) on the target dataset
    for r, level, rec, mask, init in branch_cases(trunk, "transfer"):
        init0 = trunk_state(trunk, r, 0, "init")
        assert all(torch.equal(mask[k], ticket(trunk, r, level)[k]) for k in PRUNABLE)
        assert all(torch.equal(init[k], v * mask[k] if k in mask else v) for k, v in init0.items())
        assert rec["head_replaced"] is False and spec_json(rec)["data"]["dataset"] == "digits"
    # a 4-class synthetic trunk of digits' shape -> digits (10 classes): the head is replaced, the rest kept
    args = ["--preset", PRESET, "--training-steps", "10it", "--root", str(tmp_path), "--dataset", "synthetic",
            "--synthetic-shape", "1", "8", "8", "--synthetic-classes", "4", "--synthetic-size", "600"]
    code, out, err = lth("lottery", "--levels", "1", *args, "--json")
    assert code == 0, err
    runs = {r["level"]: r for r in json.loads(out)["runs"]}
    src_init, src_mask = load(runs[0]["states"]["init"]), load(runs[1]["mask"])
    recs = {}
    for how in ("ticket", "reinit"):
        code, out, err = lth("branch", "transfer", "--levels", "1", *args, "--target-dataset", "digits",
                             "--transfer-init", how, "--json")
        assert code == 0, err
        (recs[how],) = json.loads(out)["runs"]
    rec = recs["ticket"]
    init, mask = load(rec["states"]["init"]), load(rec["mask"])
    assert rec["head_replaced"] is True and spec_json(rec)["data"]["dataset"] == "digits"
    assert init["layers.2.weight"].shape == (10, 32) and src_init["layers.2.weight"].shape == (4, 32)
    assert bool(mask["layers.2.weight"].all())
    for k in ("layers.0.weight", "layers.1.weight"):
        assert torch.equal(mask[k], src_mask[k]) and torch.equal(init[k], src_init[k] * src_mask[k])
    ctrl_init, ctrl_mask = load(recs["reinit"]["states"]["init"]), load(recs["reinit"]["mask"])
    assert all(torch.equal(ctrl_mask[k], mask[k]) for k in PRUNABLE)
    assert not torch.equal(ctrl_init["layers.0.weight"], init["layers.0.weight"])
    assert spec_json(recs["reinit"])["train"]["init_seed"] not in (None, 0)
    code, _, err = lth("branch", "transfer", "--levels", "1", *args)
    assert code == 2 and "--target-dataset" in err


# ------------------------------------------------------------------------------------------------ records
@pytest.mark.parametrize("name", sorted(TESTED))
def test_json_records(trunk, name: str) -> None:
    out = branch(trunk, name)
    runs = out["runs"]
    assert [(r["replicate"], r["level"]) for r in runs] == [(r, lv) for r in range(REPLICATES)
                                                              for lv in BRANCH_LEVELS]
    for rec in runs:
        assert rec["branch"] == name and rec["status"] == "complete" and rec["rewind"] == "0it"
        path = Path(rec["path"])
        assert path.is_absolute() and path.is_dir() and path.name == f"level_{rec['level']}"
        assert path.parent.name.startswith(f"branch_{name}_")
        assert path.parent.parent == Path(trunk["runs"][(rec["replicate"], 0)]["path"]).parent
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in rec["states"].values())
        assert 0.3 < rec["final_test_accuracy"] <= 1.0
        t = ticket(trunk, rec["replicate"], rec["level"])
        if "mask" in rec:
            assert Path(rec["mask"]).is_absolute()
            assert rec["density"] == pytest.approx(density(load(rec["mask"])))
            assert abs(rec["density"] - density(t)) <= 3 / 6464
        else:
            assert rec["density"] == 1.0
    # asked again: the same records, nothing trained
    code, again, err = lth("branch", name, "--levels", "1-2", *common(trunk["root"]), *TESTED[name], "--json")
    assert code == 0 and json.loads(again)["runs"] == runs and populations(err) == []


def test_level_list_and_level_0(trunk) -> None:
    branch(trunk, "reinit")
    code, out, err = lth("branch", "reinit", "--levels", "0,2", *common(trunk["root"]), "--json")
    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert [(r["replicate"], r["level"]) for r in runs] == [(0, 0), (0, 2), (1, 0), (1, 2)]
    assert populations(err) == [REPLICATES]  # level 2 is already trained; level 0 of both replicates trains
    for rec in runs:
        if rec["level"] == 0:
            assert rec["density"] == 1.0 and all(bool(m.all()) for m in load(rec["mask"]).values())


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("argv", [
    ["branch", "reinit", "--levels", "3"],
    ["branch", "reinit", "--levels", "1-3"],
    ["branch", "nope", "--levels", "1"],
    ["branch", "reinit", "--levels", "3-1"],
    ["branch", "reinit", "--levels", "x"],
    ["branch", "reinit", "--levels", "-1"],
    ["branch", "reinit", "--levels", ""],
    ["branch", "reinit", "--levels", "1", "--rewind", "0it", "10it"],
    ["branch", "random-mask", "--levels", "1", "--mask-mode", "bogus"],
    ["branch", "reinit", "--levels", "1", "--rewind", "10it"],
])
def test_bad_input_is_exit_2_and_writes_nothing(trunk, argv: list[str]) -> None:
    root = trunk["root"]
    before = files_under(root)
    code, out, err = lth(*argv, *common(root))
    assert code == 2, err
    assert out == "" and len(err.strip().splitlines()) == 1 and err.startswith("lth: error:"), err
    assert files_under(root) == before


def test_missing_level_names_the_lottery_command(trunk) -> None:
    code, _, err = lth("branch", "oneshot", "--levels", "1-3", *common(trunk["root"]), "--set", "lr=0.5",
                       "--branch-seed", "4", "--json")
    assert code == 2
    assert "level 3" in err and "it has levels 0-2" in err and "`lth lottery" in err
    command = re.search(r"`(lth lottery[^`]*)`", err).group(1)
    assert "--branch-seed" not in command and "--set" not in command and "--json" not in command
    code, _, err = lth("branch", "reinit", "--levels", "1", *common(trunk["root"])[:-1], "3")
    assert code == 2 and "replicate 2" in err and "`lth lottery" in err


def test_the_named_command_makes_the_missing_trunk(tmp_path: Path) -> None:
    args = ["--preset", PRESET, "--training-steps", "1ep", "--root", str(tmp_path)]
    code, _, err = lth("branch", "reinit", "--levels", "1", *args)
    assert code == 2 and "it does not exist yet" in err
    command = re.search(r"`(lth lottery[^`]*)`", err).group(1)
    argv = shlex.split(command.replace("<highest level>", "1"))
    assert argv[:2] == ["lth", "lottery"]
    code, _, err = lth(*argv[1:])
    assert code == 0, err
    code, out, err = lth("branch", "reinit", "--levels", "1", *args, "--json")
    assert code == 0, err
    assert [r["level"] for r in json.loads(out)["runs"]] == [1] and populations(err) == [1]


def test_dn_reinit_and_remask_set_train_them_longer_than_the_trunk(tmp_path: Path) -> None:
    """Study 004's Algorithm 1 finds the mask with j = 5 training iterations per round and then trains each network
    for its full length: a short trunk, ``--set training_steps=...`` on dn-reinit and remask (as on retrain).
    Without ``--set`` the directory is as before (the hash of the default options); with it only the training
    length differs and the D_n recipe (start, mask, seed, pool) is the same."""
    import dataclasses

    import lth.api as api
    from lth.lottery.branches.dn_reinit import DnReinitOptions
    from lth.spec import Step, spec_hash

    assert spec_hash(DnReinitOptions(), {"dn_pool": "network"}) == spec_hash(
        DnReinitOptions(dn_pool="network"), {"dn_pool": "network"})

    def nodes(opts: dict[str, Any]) -> dict[str, Any]:
        lp = api.lottery(PRESET, 2, branches={"dn-reinit": opts, "remask": opts}, branch_levels=[2],
                         root=tmp_path, training_steps="5it")
        return {n.meta["branch"]: n for n in lp.branch_nodes()}

    plain, long = nodes({}), nodes({"set": ("training_steps=2ep",)})
    for name in ("dn-reinit", "remask"):
        assert plain[name].spec.train.training_steps == Step(5, "it")
        assert long[name].spec.train.training_steps == Step(2, "ep")
        assert long[name].path.parent != plain[name].path.parent and long[name].path.name == "level_2"
        back = dataclasses.replace(long[name].spec, train=dataclasses.replace(long[name].spec.train,
                                                                              training_steps=Step(5, "it")))
        assert back == plain[name].spec and long[name].setup == plain[name].setup
