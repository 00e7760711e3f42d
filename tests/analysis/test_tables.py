"""Tables of a store: hyperparameters that differ become columns, damaged runs are skipped with one warning."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lth.analysis import distinguishing_fields, field_label, runs_frame
from tests.conftest import lth

STEPS_1EP = 46  # digits: 1500 training images at batch 32


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two training experiments that differ only in --training-steps, and a 1-level trunk."""
    root = tmp_path_factory.mktemp("store")
    for steps in ("1ep", "2ep"):
        assert lth("train", "--preset", "digits_mlp", "--training-steps", steps, "--root", str(root))[0] == 0
    assert lth("lottery", "--preset", "digits_mlp", "--levels", "1", "--training-steps", "1ep",
               "--root", str(root))[0] == 0
    return root


def test_distinguishing_fields_by_hand() -> None:
    frame = pd.DataFrame({"kind": ["train", "train", "lottery"], "replicate": [0, 1, 0],
                          "train.lr": [0.1, 0.1, 0.1], "train.training_steps": ["1ep", "2ep", "1ep"],
                          "pruning": [None, None, '{"fraction": 0.2}'], "data.seed": [None, 3, 4],
                          "model.width": [1.0, 1.0, None], "status": ["complete", "diverged", "complete"]})
    # replicate and status differ too, but they are not hyperparameters; pruning has one value where present
    assert distinguishing_fields(frame) == ["train.training_steps", "data.seed"]
    assert field_label(frame.iloc[1], ["train.training_steps", "data.seed"]) == "training_steps=2ep, seed=3.0"
    assert field_label(frame.iloc[0], ["train.training_steps", "data.seed"]) == "training_steps=1ep"
    assert field_label({"a.x": 1, "b.x": 2}, ["a.x", "b.x"]) == "a.x=1, b.x=2"  # same field name: prefix kept


def test_results_tell_runs_apart(store: Path) -> None:
    code, out, _ = lth("results", "--root", str(store))
    assert code == 0
    df = pd.read_csv(io.StringIO(out))
    assert "train.training_steps" in df.columns
    train = df[df["kind"] == "train"]
    last = train.groupby("train.training_steps")["iteration"].max().to_dict()
    assert last == {"1ep": STEPS_1EP, "2ep": 2 * STEPS_1EP}
    assert list(df.columns[:4]) == ["experiment", "kind", "preset", "train.training_steps"]
    # only what differs becomes a column: the learning rate is the same everywhere
    assert "train.lr" not in df.columns


def test_trunk_only_store_has_branch_dir(store: Path, tmp_path: Path) -> None:
    trunk = next(store.glob("lottery_*"))
    shutil.copytree(trunk, tmp_path / trunk.name)
    runs = runs_frame(tmp_path)
    assert len(runs) == 2 and runs["branch_dir"].isna().all() and runs["branch"].isna().all()


def _damage(store: Path, tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A copy of the store with ``name`` in the 2ep training run truncated to half; (root, damaged file)."""
    root = tmp_path / "copy"
    shutil.copytree(store, root)
    run = next(p for p in root.glob("train_*/replicate_0")
               if json.loads((p / "spec.json").read_text())["train"]["training_steps"] == "2ep")
    f = run / name
    f.write_bytes(f.read_bytes()[:f.stat().st_size // 2])
    return root, f


@pytest.mark.parametrize("name", ["metrics.csv", "done.json", "states/final.pt"])
def test_results_skip_a_damaged_run(store: Path, tmp_path: Path, name: str) -> None:
    root, bad = _damage(store, tmp_path, name)
    run = bad.parent.parent if name.startswith("states/") else bad.parent
    code, out, err = lth("results", "--root", str(root))
    assert code == 0
    skipped, account = err.splitlines()  # one line: file and run; one: the planned run it takes out
    assert str(bad) in skipped and f"run {run}:" in skipped
    assert f"{run} (training run, replicate 0: damaged)" in account
    df = pd.read_csv(io.StringIO(out))
    healthy = {p.replace(str(store.resolve()), str(root.resolve())) for p in runs_frame(store)["path"]}
    assert set(df["path"]) == healthy - {str(run)} and len(healthy) == 4  # every other run is there


def test_a_damaged_scaffold_json_does_not_hide_a_finished_run(store: Path, tmp_path: Path) -> None:
    """scaffold.json is the executor's bookkeeping (states kept for duplicates), not a result: a damaged one is
    not a reason to leave a healthy run out of the results (the next training command removes it)."""
    root = tmp_path / "copy"
    shutil.copytree(store, root)
    run = next(root.glob("train_*/replicate_0"))
    (run / "scaffold.json").write_text("garbage{{")
    code, out, err = lth("results", "--root", str(root))
    assert code == 0 and err == "", err
    assert str(run.resolve()) in set(pd.read_csv(io.StringIO(out))["path"])
    assert "damaged file" not in err


def test_level_stays_a_whole_number_beside_runs_without_levels(tmp_path) -> None:
    import io

    import pandas as pd
    from conftest import lth as run_lth

    root = str(tmp_path)
    assert run_lth("train", "--preset", "digits_mlp", "--training-steps", "10it", "--root", root)[0] == 0
    assert run_lth("lottery", "--preset", "digits_mlp", "--training-steps", "10it", "--levels", "1",
                   "--root", root)[0] == 0
    code, out, err = run_lth("results", "--root", root)
    assert code == 0, err
    df = pd.read_csv(io.StringIO(out), dtype=str, keep_default_na=False)
    assert set(df["level"]) == {"0", "1", ""}  # whole numbers, empty for the train run (not 1.0 / NaN)


def test_a_metric_some_runs_never_filled_stays_numeric(tmp_path) -> None:
    """A pretraining head run trains 0 steps, so its metrics.csv has no train_loss: the column stays a number
    column (a None among floats made it object, and pandas' numeric means then dropped it: a KeyError in the
    ticket-distribution recipe)."""
    from lth.analysis import metrics_frame

    root = tmp_path / "s"
    code, _, err = lth("lottery", "--preset", "digits_mlp", "--levels", "1", "--training-steps", "5it",
                           "--pretrain-steps", "2it", "--pretrain-task", "rotation", "--root", str(root))
    assert code == 0, err
    df = metrics_frame(root)
    assert df["train_loss"].isna().any() and df["train_loss"].notna().any()
    assert pd.api.types.is_float_dtype(df["train_loss"]) and pd.api.types.is_float_dtype(df["test_accuracy"])
    assert df.groupby("iteration")[["test_accuracy", "train_loss"]].mean(numeric_only=True).shape[1] == 2
