"""The IMP trunk through `lth lottery`: JSON records, per-layer densities and nested masks, masked weights exactly
zero in every stored state, starting states at k = 0 and k > 0 (rewinding), masks recomputed from the previous
level's weights, rewinding sweeps as one population, resuming, the random strategy and bad input.

One rewinding sweep (k = 0it and k = 10it, levels 0-2, 2 replicates, digits_mlp for 2 epochs) is trained once per
module and read by most tests."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import lth, populations  # noqa: E402  (tests/ is on sys.path)

from lth.models import build_model
from lth.presets import get_preset
from lth.prune import PruneHparams, density, is_submask, kinds_of, layer_densities, prune
from lth.store import RunDir

PRESET = "digits_mlp"
STEPS = "2ep"  # 1500 training examples / batch 32 = 46 iterations per epoch
ITERATIONS = 2 * (1500 // 32)
LEVELS = 2
REPLICATES = 2
REWINDS = ("0it", "10it")
K = {"0it": 0, "10it": 10}
# digits_mlp: fc 20% per level, the output layer at half that
FRACTION = {"layers.0.weight": 0.2, "layers.1.weight": 0.2, "layers.2.weight": 0.1}


def lottery_args(root: Path, *extra: str) -> list[str]:
    return ["lottery", "--preset", PRESET, "--training-steps", STEPS, "--root", str(root), *extra]


def load(path: str | Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("trunk") / "store"
    argv = lottery_args(root, "--levels", str(LEVELS), "--replicates", str(REPLICATES), "--rewind", *REWINDS,
                        "--json")
    code, out, err = lth(*argv)
    assert code == 0, err
    runs = json.loads(out)["runs"]
    by_key = {(r["rewind"], r["replicate"], r["level"]): r for r in runs}
    return {"root": root, "argv": argv, "out": out, "err": err, "runs": runs, "by_key": by_key}


@pytest.fixture(scope="module")
def model_info() -> tuple[list[str], dict[str, str]]:
    model = build_model("fc_64_32", 1, (1, 8, 8), 10)
    return model.prunable(), kinds_of(model)


def mask_of(sweep: dict[str, Any], rewind: str, replicate: int, level: int) -> dict[str, torch.Tensor]:
    rec = sweep["by_key"][(rewind, replicate, level)]
    if level == 0:
        final = load(rec["states"]["final"])
        return {k: torch.ones_like(final[k], dtype=torch.bool) for k in FRACTION}
    return load(rec["mask"])


# ------------------------------------------------------------------------------------------------ records
def test_json_has_one_record_per_replicate_and_level(sweep) -> None:
    runs = sweep["runs"]
    assert len(runs) == len(REWINDS) * REPLICATES * (LEVELS + 1)
    assert set(sweep["by_key"]) == {(k, r, lv) for k in REWINDS for r in range(REPLICATES)
                                    for lv in range(LEVELS + 1)}
    for rec in runs:
        path = Path(rec["path"])
        assert path.is_absolute() and path.is_dir()
        assert path.name == f"level_{rec['level']}" and path.parent.name == f"replicate_{rec['replicate']}"
        assert rec["status"] == "complete"
        acc = rec["final_test_accuracy"]
        assert isinstance(acc, float) and 0.3 < acc <= 1.0  # a fraction, not a percentage
        k = K[rec["rewind"]]
        if k == 0:
            expected = {"init", "final"}
        else:  # level 0 starts at 0 and keeps step k; later levels start at step k
            expected = {"init", "rewind", "final"} if rec["level"] == 0 else {"rewind", "final"}
        assert set(rec["states"]) == expected
        for p in rec["states"].values():
            assert Path(p).is_absolute() and Path(p).is_file()
        if rec["level"] == 0:
            assert rec["density"] == 1.0 and "mask" not in rec
        else:
            assert Path(rec["mask"]).is_absolute() and Path(rec["mask"]) == path / "mask.pt"
            assert 0 < rec["density"] < 1
        assert RunDir(path).done["final_test_accuracy"] == acc
        spec = json.loads((path / "spec.json").read_text())
        assert spec["level"] == rec["level"] and spec["rewind"] == rec["rewind"] and spec["kind"] == "lottery"


def test_rewinding_sweep_trains_both_trunks_as_one_population(sweep) -> None:
    trunks = {Path(r["path"]).parent.parent for r in sweep["runs"]}
    assert len(trunks) == 2  # one directory per rewind point
    for k in REWINDS:
        assert len({Path(sweep["by_key"][(k, r, lv)]["path"]).parent.parent
                    for r in range(REPLICATES) for lv in range(LEVELS + 1)}) == 1
    # one population per level, holding every replicate of both trunks; level 0 (the same dense run in both
    # trunks) trains once per replicate, the other trunk's level 0 is filled from it
    assert populations(sweep["err"]) == [REPLICATES] + [2 * REPLICATES] * LEVELS
    # asked again: the same answer, nothing trained
    code, out, err = lth(*sweep["argv"])
    assert code == 0 and json.loads(out) == json.loads(sweep["out"])
    assert populations(err) == []


# ------------------------------------------------------------------------------------------------ masks
@pytest.mark.parametrize("rewind", REWINDS)
def test_layerwise_density_and_nested_masks(sweep, rewind: str) -> None:
    for r in range(REPLICATES):
        for level in range(1, LEVELS + 1):
            rec = sweep["by_key"][(rewind, r, level)]
            mask = load(Path(rec["path"]) / "mask.pt")
            assert set(mask) == set(FRACTION)
            prev = mask_of(sweep, rewind, r, level - 1)
            assert is_submask(mask, prev)  # level l keeps nothing level l-1 pruned
            for name, m in mask.items():
                assert m.dtype == torch.bool
                n = m.numel()
                # (1 - f)^L within the rounding of L levels
                assert abs(int(m.sum()) - n * (1 - FRACTION[name]) ** level) <= 0.5 * level + 1e-9, name
                # exactly: each level removes round(f * remaining), halves up
                kept = int(prev[name].sum())
                assert int(m.sum()) == kept - int(FRACTION[name] * kept + 0.5), name
            assert rec["density"] == pytest.approx(density(mask))
            assert rec["layer_densities"] == pytest.approx(layer_densities(mask))
            total = sum(m.numel() for m in mask.values())
            ideal = sum(m.numel() * (1 - FRACTION[k]) ** level for k, m in mask.items()) / total
            assert abs(rec["density"] - ideal) <= 0.5 * level * len(mask) / total


@pytest.mark.parametrize("rewind", REWINDS)
def test_masks_are_the_strategy_applied_to_the_previous_final_weights(sweep, model_info, rewind: str) -> None:
    prunable, kinds = model_info
    hp = PruneHparams(**get_preset(PRESET).pruning)
    for r in range(REPLICATES):
        for level in range(1, LEVELS + 1):
            prev = sweep["by_key"][(rewind, r, level - 1)]
            final = load(prev["states"]["final"])
            expected = prune({k: final[k] for k in prunable}, mask_of(sweep, rewind, r, level - 1), hp, kinds)
            got = load(sweep["by_key"][(rewind, r, level)]["mask"])
            assert set(got) == set(expected)
            for k in expected:
                assert torch.equal(got[k], expected[k]), (rewind, r, level, k)


def test_masked_weights_are_exactly_zero_in_every_stored_state(sweep) -> None:
    checked = 0
    for (_, _, level), rec in sweep["by_key"].items():
        if level == 0:
            continue
        mask = load(rec["mask"])
        for name in rec["states"].values():
            state = load(name)
            for k, m in mask.items():
                assert torch.all(state[k][~m] == 0), (name, k)
                checked += 1
    assert checked == len(FRACTION) * REPLICATES * LEVELS * 4  # k=0: init+final, k=10: rewind+final


def test_k0_levels_start_from_level_0_init_times_mask(sweep) -> None:
    for r in range(REPLICATES):
        init0 = load(sweep["by_key"][("0it", r, 0)]["states"]["init"])
        for level in range(1, LEVELS + 1):
            rec = sweep["by_key"][("0it", r, level)]
            mask = load(rec["mask"])
            init = load(rec["states"]["init"])
            assert set(init) == set(init0)
            for k, v in init0.items():
                want = v * mask[k] if k in mask else v
                assert torch.equal(init[k], want), (level, k)
            rows = RunDir(Path(rec["path"])).read_metrics()
            assert rows[0]["iteration"] == 0 and rows[-1]["iteration"] == ITERATIONS
    # replicates start differently
    a, b = (load(sweep["by_key"][("0it", r, 0)]["states"]["init"]) for r in range(2))
    assert not torch.equal(a["layers.0.weight"], b["layers.0.weight"])


def test_k10_levels_start_from_level_0_rewind_state_times_mask(sweep) -> None:
    for r in range(REPLICATES):
        level0 = sweep["by_key"][("10it", r, 0)]
        init0, rewind0 = load(level0["states"]["init"]), load(level0["states"]["rewind"])
        # the rewind state is the state after 10 iterations, not the initialisation
        assert not torch.equal(init0["layers.0.weight"], rewind0["layers.0.weight"])
        # level 0 of both trunks is the same dense training: same init, same final
        same = sweep["by_key"][("0it", r, 0)]
        assert torch.equal(load(same["states"]["init"])["layers.0.weight"], init0["layers.0.weight"])
        assert torch.equal(load(same["states"]["final"])["layers.0.weight"],
                           load(level0["states"]["final"])["layers.0.weight"])
        assert RunDir(Path(level0["path"])).read_metrics()[0]["iteration"] == 0
        for level in range(1, LEVELS + 1):
            rec = sweep["by_key"][("10it", r, level)]
            mask = load(rec["mask"])
            start = load(rec["states"]["rewind"])
            for k, v in rewind0.items():
                want = v * mask[k] if k in mask else v
                assert torch.equal(start[k], want), (level, k)
            rows = RunDir(Path(rec["path"])).read_metrics()
            assert rows[0]["iteration"] == 10 and rows[-1]["iteration"] == ITERATIONS
            assert RunDir(Path(rec["path"])).done["iteration"] == ITERATIONS


def test_rewind_state_is_the_dense_network_after_k_iterations(sweep, tmp_path: Path) -> None:
    """The stored rewind state equals what a 10-iteration run of the same spec ends with."""
    code, out, err = lth("train", "--preset", PRESET, "--training-steps", "10it", "--root", str(tmp_path), "--json")
    assert code == 0, err
    short = load(json.loads(out)["runs"][0]["states"]["final"])
    rewind0 = load(sweep["by_key"][("10it", 0, 0)]["states"]["rewind"])
    for k, v in short.items():
        torch.testing.assert_close(rewind0[k], v, rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------------------------------------ resuming
def test_extending_a_trunk_trains_only_the_new_level(tmp_path: Path) -> None:
    root = tmp_path / "store"
    code, out, err = lth(*lottery_args(root, "--levels", "1", "--json"))
    assert code == 0, err
    first = json.loads(out)["runs"]
    assert [r["level"] for r in first] == [0, 1] and populations(err) == [1, 1]
    finals = {r["level"]: Path(r["states"]["final"]) for r in first}
    mtimes = {lv: p.stat().st_mtime_ns for lv, p in finals.items()}
    masks = (Path(first[1]["mask"]).stat().st_mtime_ns, load(first[1]["mask"]))

    code, out, err = lth(*lottery_args(root, "--levels", "2", "--json"))
    assert code == 0, err
    second = json.loads(out)["runs"]
    assert [r["level"] for r in second] == [0, 1, 2]
    assert populations(err) == [1]  # only level 2 trained
    assert second[:2] == first
    assert {lv: p.stat().st_mtime_ns for lv, p in finals.items()} == mtimes
    assert Path(first[1]["mask"]).stat().st_mtime_ns == masks[0]
    level2 = Path(second[2]["path"])
    assert level2.parent == Path(first[0]["path"]).parent
    assert RunDir(level2).done["status"] == "complete" and (level2 / "states" / "final.pt").is_file()
    assert is_submask(load(second[2]["mask"]), masks[1])

    # a level interrupted before it finished (no completion marker) is trained again, with the same mask
    mask2 = load(second[2]["mask"])
    (level2 / "done.json").unlink()
    (level2 / "states" / "final.pt").unlink()
    code, out, err = lth(*lottery_args(root, "--levels", "2", "--json"))
    assert code == 0, err
    assert populations(err) == [1]
    assert (level2 / "states" / "final.pt").is_file() and RunDir(level2).done is not None
    again = load(level2 / "mask.pt")
    assert all(torch.equal(again[k], mask2[k]) for k in mask2)
    assert {lv: p.stat().st_mtime_ns for lv, p in finals.items()} == mtimes


def test_a_rewind_step_given_twice_is_one_trunk(tmp_path: Path) -> None:
    result: list[tuple[int, str, str]] = []
    worker = threading.Thread(target=lambda: result.append(lth(*lottery_args(
        tmp_path, "--levels", "1", "--rewind", "10it", "10it", "--json"))), daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "deadlocked: the same run directory twice in one population"
    code, out, err = result[0]
    assert code == 0, err
    runs = json.loads(out)["runs"]
    assert [(r["rewind"], r["level"]) for r in runs] == [("10it", 0), ("10it", 1)]
    assert populations(err) == [1, 1]


# ------------------------------------------------------------------------------------------------ strategies
def test_random_strategy_draws_per_replicate_with_layerwise_counts(sweep, tmp_path: Path) -> None:
    code, out, err = lth(*lottery_args(tmp_path, "--levels", "1", "--replicates", "2", "--strategy", "random",
                                       "--json"))
    assert code == 0, err
    recs = {(r["replicate"], r["level"]): r for r in json.loads(out)["runs"]}
    m0, m1 = load(recs[(0, 1)]["mask"]), load(recs[(1, 1)]["mask"])
    layerwise = load(sweep["by_key"][("0it", 0, 1)]["mask"])
    for k in layerwise:
        assert int(m0[k].sum()) == int(m1[k].sum()) == int(layerwise[k].sum()), k
    assert any(not torch.equal(m0[k], m1[k]) for k in m0)  # the seed mixes in the replicate
    assert any(not torch.equal(m0[k], layerwise[k]) for k in m0)
    for r in range(2):
        spec = json.loads((Path(recs[(r, 1)]["path"]) / "spec.json").read_text())
        assert spec["pruning"]["strategy"] == "random"
        final = load(recs[(r, 1)]["states"]["final"])
        mask = load(recs[(r, 1)]["mask"])
        assert all(torch.all(final[k][~mask[k]] == 0) for k in mask)


# ------------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("extra", [
    ["--levels", "2", "--pruning-fraction", "1.5"],
    ["--levels", "2", "--pruning-fraction", "0"],
    ["--levels", "2", "--pruning-fc-fraction", "1"],
    ["--levels", "2", "--strategy", "nope"],
    ["--levels", "-1"],
    ["--levels", "two"],
    ["--levels", "2", "--rewind", "10xyz"],
    ["--levels", "1", "--rewind", "0it", "93it"],  # past the end of training (2ep = 92it)
    ["--levels", "2", "--pruning-ignore", "layers.9"],
    ["--levels", "2", "--pruning-layer-fractions", "layers.7.weight=0.3"],
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path: Path, extra: list[str]) -> None:
    root = tmp_path / "store"
    code, out, err = lth(*lottery_args(root, *extra))
    assert code == 2, err
    assert out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("lth: error:")
    assert not root.exists()
