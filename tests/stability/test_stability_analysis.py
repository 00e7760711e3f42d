"""Paths between trained stability copies: exact zeros for identical copies, end points = the copies' own
errors, results stored and read back (digits, a few steps)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import lth.api as api
from lth.engine.evaluate import evaluate_states
from lth.lottery import Trunk
from lth.presets import get_preset
from lth.prune import PruneHparams
from lth.spec import Step
from lth.stability import StabilityPlan
from lth.stability.analysis import PAIRS, evaluate_pairs, read_pairs, record, stability_frame, summary
from lth.store import RunDir

ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0]


def _plan(root: Path, same_noise: bool, subnetworks=("dense",), levels=(0,)) -> StabilityPlan:
    spec = api.spec("digits_mlp", training_steps="60it", eval_every="30it")
    trunk = Trunk(spec, PruneHparams(**get_preset("digits_mlp").pruning), Step(10, "it"), root,  # type: ignore[arg-type]
                  "digits_mlp")
    return StabilityPlan([trunk], list(subnetworks), list(levels), replicates=1, copies=2, same_noise=same_noise,
                         trajectory_points=2, steps_per_epoch=44)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("stab")
    ex = api.executor(device="cpu")
    same, diff = _plan(root, True), _plan(root, False, ("dense", "imp"), (0, 1))
    ex.run(same.copy_nodes() + diff.copy_nodes())
    return root, ex, same, diff


def test_identical_seeds_give_instability_exactly_zero(trained):
    _, ex, same, _ = trained
    (item,) = same.pairs()
    exp, lv, r, (c1, c2) = item
    a = RunDir(exp.copy_dir(r, lv, c1)).load_tensors("states/final.pt")
    b = RunDir(exp.copy_dir(r, lv, c2)).load_tensors("states/final.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)
    (e,) = evaluate_pairs([item], ex.dataset(exp.trunk.spec.data), alphas=ALPHAS)
    assert e["test_instability"] == 0.0 and e["train_instability"] == 0.0
    assert len(set(e["test_error"])) == 1


def test_end_points_are_the_copies_own_errors(trained):
    _, ex, _, diff = trained
    data = ex.dataset(diff.trunks[0].spec.data)
    items = diff.pairs()
    entries = evaluate_pairs(items, data, alphas=ALPHAS, train_examples=500)
    assert len(entries) == 2 and all(e["status"] == "complete" for e in entries)
    for (exp, lv, r, pair), e in zip(items, entries, strict=True):
        for end, c in zip((0, -1), pair, strict=True):
            run = RunDir(exp.copy_dir(r, lv, c))
            own = evaluate_states(exp.trunk.spec.model, [run.load_tensors("states/final.pt")], data.test_x,
                                  data.test_y, example_shape=data.example_shape, num_classes=data.num_classes)
            assert e["test_error"][end] == pytest.approx(float(own["error"][0]), abs=1e-12)
            assert e["test_error"][end] == pytest.approx(1 - run.done["final_test_accuracy"], abs=1e-6)
        err = e["test_error"]
        assert e["test_instability"] == pytest.approx(max(err) - (err[0] + err[-1]) / 2)
        assert 0.0 <= e["test_instability"] <= 1.0 and 0.0 <= e["train_instability"] <= 1.0
        assert e["train_examples"] == 500
        rec = record(exp, lv, r, pair, e)
        assert rec["stable"] == (e["test_instability"] < 0.02) and rec["runs"] == e["runs"]
    # stored beside the copies, and reused (not recomputed) on a second call
    exp, lv, r, _ = items[1]
    stored = read_pairs(exp.level_dir(r, lv))
    assert (exp.level_dir(r, lv) / PAIRS).exists() and list(stored) == ["alphas=5,align=0,train=500"]
    (exp.level_dir(r, lv) / PAIRS).write_text((exp.level_dir(r, lv) / PAIRS).read_text().replace(
        '"test_instability": ', '"test_instability": 0.5, "was": '))
    again = evaluate_pairs(items[1:], data, alphas=ALPHAS, train_examples=500)
    assert again[0]["test_instability"] == 0.5
    fresh = evaluate_pairs(items[1:], data, alphas=ALPHAS, train_examples=500, recompute=True)
    assert fresh[0]["test_instability"] == pytest.approx(entries[1]["test_instability"])


def test_stability_frame_reads_the_store(trained):
    root, *_ = trained
    df = stability_frame(root)
    assert set(df["subnetwork"]) >= {"dense", "imp"} and set(df["split"]) == {"test", "train"}
    imp = df[(df["subnetwork"] == "imp") & (df["split"] == "test")]
    assert imp["density"].iloc[0] < 1.0 and sorted(imp["alpha"].unique()) == ALPHAS


def test_summary_first_stable_and_matching():
    def rec(k: str, inst: float, err: float) -> dict:
        return {"subnetwork": "imp", "level": 3, "schedule_from_zero": False, "rewind": k,
                "test_instability": inst, "end_test_errors": [err, err]}
    recs = [rec("0it", 0.10, 0.05), rec("100it", 0.01, 0.05), rec("500it", 0.01, 0.02)]
    (s,) = summary(recs, dense_accuracy=0.98)
    assert s["first_stable"] == "100it" and s["first_stable_and_matching"] == "500it"
    (s,) = summary(recs, dense_accuracy=None)
    assert s["first_stable_and_matching"] is None


def test_batchnorm_paths_recompute_statistics_on_the_training_subset(tmp_path):
    spec = api.spec("digits_mlp", model="resnet_8", norm="batchnorm", training_steps="10it", eval_every="10it")
    trunk = Trunk(spec, PruneHparams(**get_preset("digits_mlp").pruning), Step(0, "it"), tmp_path,  # type: ignore[arg-type]
                  "digits_mlp")
    plan = StabilityPlan([trunk], ["dense"], [0], trajectory_points=0)
    ex = api.executor(device="cpu")
    ex.run(plan.copy_nodes())
    data = ex.dataset(spec.data)
    (item,) = plan.pairs()
    (e,) = evaluate_pairs([item], data, alphas=[0.0, 1.0], train_examples=256)
    from lth.stability.analysis import BN_BATCH_SIZE, BN_BATCHES, train_subset

    tx, _ = train_subset(data, 256)
    exp, lv, r, (c1, _) = item
    state = RunDir(exp.copy_dir(r, lv, c1)).load_tensors("states/final.pt")
    kw = dict(example_shape=data.example_shape, num_classes=data.num_classes)
    direct = evaluate_states(spec.model, [state], data.test_x, data.test_y, bn_data=tx, bn_batches=BN_BATCHES,
                             bn_batch_size=BN_BATCH_SIZE, **kw)
    assert e["test_loss"][0] == pytest.approx(float(direct["loss"][0]), rel=1e-6)
    stored = evaluate_states(spec.model, [state], data.test_x, data.test_y, **kw)  # the trained running stats
    assert float(stored["loss"][0]) != pytest.approx(e["test_loss"][0], rel=1e-6)


def test_summary_gives_the_papers_fig9_median_of_each_samples_first_k() -> None:
    from lth.stability.analysis import median_first_k, summary

    def rec(r: int, k: str, inst: float, acc: float) -> dict:
        return {"subnetwork": "imp", "level": 3, "schedule_from_zero": False, "replicate": r, "rewind": k,
                "test_instability": inst, "end_test_errors": [1 - acc, 1 - acc],
                "runs": [f"/s/replicate_{r}/level_3/copy_0", f"/s/replicate_{r}/level_3/copy_1"]}

    # sample 0 stable from 100it, sample 1 from 500it, sample 2 never; every sample matching where stable
    inst = {0: [0.05, 0.01, 0.01], 1: [0.05, 0.05, 0.01], 2: [0.06, 0.05, 0.03]}
    records = [rec(r, k, inst[r][i], 0.98) for r in range(3) for i, k in enumerate(["0it", "100it", "500it"])]
    (row,) = summary(records, dense_accuracy=0.98)
    # the median of the three samples' first ks (100it, 500it, never): never counts as later than every k
    assert row["median_first_stable"] == "500it" and row["median_first_stable_and_matching"] == "500it"
    assert row["samples"] == 3
    # the mean over samples is stable only at 500it (0.0167; at 100it it is 0.0367)
    assert row["first_stable"] == "500it"
    # no majority: None (2 of 4 samples never stable)
    assert median_first_k([None, None, "a", "a"]) is None and median_first_k([1, 3, None]) == 3
    # nine samples (the paper's 3 x 3): the 5th smallest of all nine, never-stable ones last
    assert median_first_k([0, 0, 100, 100, 500, None, None, None, None]) == 500
    assert median_first_k([0, 0, 100, 100, 500, 2000, None, None, None]) == 500
    assert median_first_k([0] * 4 + [None] * 5) is None
    assert median_first_k([2000, 0, 100]) == 100 and median_first_k([5, 1, 3, None]) == 3


def test_end_accuracies_count_each_copy_once() -> None:
    """Three copies make three pairs, and each copy ends two of them: Table 2's accuracies are the three copies',
    not the six pair ends."""
    from lth.stability.analysis import end_accuracies

    err = {0: 0.02, 1: 0.03, 2: 0.07}
    recs = [{"runs": [f"/s/copy_{a}", f"/s/copy_{b}"], "end_test_errors": [err[a], err[b]]}
            for a, b in ((0, 1), (0, 2), (1, 2))]
    assert end_accuracies(recs) == {f"/s/copy_{c}": pytest.approx(1 - e) for c, e in err.items()}
    unnamed = [{"end_test_errors": [0.1, 0.2]}, {"end_test_errors": [0.1, 0.2]}]
    assert len(end_accuracies(unnamed)) == 4  # without run names every end counts


def test_full_accuracy_is_the_dense_copies_made_at_k_0() -> None:
    """Matching's baseline (Table 2's "full"): the dense copies made at k = 0, each copy once; not the dense
    copies of later k, nor another subnetwork, nor the schedule-from-zero variant."""
    from lth.stability.analysis import full_accuracy

    def rec(sub: str, k: str, runs: tuple[str, str], errs: tuple[float, float], **kw: object) -> dict:
        return {"subnetwork": sub, "rewind": k, "runs": list(runs), "end_test_errors": list(errs), **kw}

    recs = [rec("dense", "0it", ("/d0/c0", "/d0/c1"), (0.02, 0.04)), rec("dense", "0it", ("/d0/c0", "/d0/c2"),
                                                                           (0.02, 0.06)),
            rec("dense", "10it", ("/d10/c0", "/d10/c1"), (0.5, 0.5)), rec("imp", "0it", ("/i/c0", "/i/c1"), (0.3, 0.3)),
            rec("dense", "0it", ("/s/c0", "/s/c1"), (0.9, 0.9), schedule_from_zero=True)]
    acc, n = full_accuracy(recs)
    assert n == 3 and acc == pytest.approx(1 - (0.02 + 0.04 + 0.06) / 3)
    assert full_accuracy(recs[2:4]) == (None, 0)


def test_full_accuracy_reads_records_as_lth_stability_writes_them() -> None:
    """k = 0 in any unit ('0ep'); ``lth stability --align`` records (key ``aligned``: the second copy permuted, the
    same function, so the same end accuracy) still give the copies' accuracy, each copy once; a record without a
    rewind (another tool's) is no copy made at k = 0, never a KeyError."""
    from lth.stability.analysis import full_accuracy

    aligned = [{"subnetwork": "dense", "rewind": "0ep", "level": 0, "schedule_from_zero": False, "aligned": True,
                "runs": ["/a/copy_0", f"/a/copy_{c}"], "end_test_errors": [0.1, e]} for c, e in ((1, 0.2), (2, 0.3))]
    acc, n = full_accuracy(aligned)
    assert n == 3 and acc == pytest.approx(1 - (0.1 + 0.2 + 0.3) / 3)
    assert full_accuracy([{"subnetwork": "dense", "runs": ["/x"], "end_test_errors": [0.5]}, *aligned]) == (acc, 3)


def _store_copy(trained, dst: Path) -> tuple[Path, StabilityPlan, object]:
    """A copy of the trained store at ``dst`` (the module's store stays as the other tests expect it), its plan
    and the dataset."""
    import shutil

    root, ex, _, diff = trained
    shutil.copytree(root, dst)
    plan = _plan(dst, False, ("dense", "imp"), (0, 1))
    return dst, plan, ex.dataset(diff.trunks[0].spec.data)


def test_a_damaged_pairs_json_is_named_once_and_its_paths_evaluated_again(trained, tmp_path, capsys):
    root, plan, data = _store_copy(trained, tmp_path / "store")
    items = plan.pairs()
    first = evaluate_pairs(items, data, alphas=ALPHAS, train_examples=500)
    exp, lv, r, _ = items[1]
    f = exp.level_dir(r, lv) / PAIRS
    f.write_text(f.read_text()[: len(f.read_text()) // 2])  # a truncated file (a crash, a full disk)
    capsys.readouterr()
    df = stability_frame(root)  # the report: the other cell's rows, one warning naming the file
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(f) in err[0] and err[0].startswith("lth: warning:")
    assert set(df["level"]) == {items[0][1]}
    again = evaluate_pairs(items, data, alphas=ALPHAS, train_examples=500)  # recomputed, not fatal
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(f) in err[0]
    assert again[1]["test_error"] == first[1]["test_error"] and again[0] == first[0]
    assert read_pairs(exp.level_dir(r, lv))  # rewritten whole
    assert capsys.readouterr().err == ""


def test_a_moved_store_reads_its_own_copies(trained, tmp_path):
    import shutil

    old, plan, data = _store_copy(trained, tmp_path / "old")
    evaluate_pairs(plan.pairs(), data, alphas=ALPHAS, train_examples=500)
    new = tmp_path / "new"
    shutil.move(old, new)  # a store copied off a cluster, a renamed folder
    df = stability_frame(new)
    imp = df[df["subnetwork"] == "imp"]
    assert len(imp) and (imp["density"] < 1.0).all()  # the moved store's masks, not 1.0 for "absent"
    moved = _plan(new, False, ("dense", "imp"), (0, 1))
    for (exp, lv, r, pair), e in zip(moved.pairs(), evaluate_pairs(moved.pairs(), data, alphas=ALPHAS,
                                                                   train_examples=500), strict=True):
        assert e["runs"] == [str(exp.copy_dir(r, lv, c)) for c in pair]


def test_a_pairs_json_holding_no_object_is_damaged(tmp_path, capsys) -> None:
    """Valid JSON of another shape (``[1]``, ``null``) is named like a truncated file, never an AttributeError in
    ``evaluate_pairs`` or the report."""
    level = tmp_path / "stability_x" / "replicate_0" / "level_0"
    level.mkdir(parents=True)
    for text in ("[1]\n", "null\n", '"x"\n'):
        (level / PAIRS).write_text(text)
        assert read_pairs(level) == {}
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(level / PAIRS) in err[0] and "not a JSON object" in err[0]
        assert stability_frame(tmp_path).empty
        capsys.readouterr()
