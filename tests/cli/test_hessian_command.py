"""`lth hessian`: finds the stored states, evaluates runs as one population, writes hessian.csv per run, and its
numbers are those of top_eigenvalues on each state alone (the function itself is checked against a dense
eigendecomposition in tests/analysis/test_hessian.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import lth

from lth.analysis.hessian import top_eigenvalues
from lth.data import load_dataset
from lth.models import build_model
from lth.spec import DataHparams


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hessian")
    code, _, err = lth("train", "--preset", "digits_mlp", "--model", "fc_8", "--training-steps", "10it",
                       "--save-states", "5it", "--replicates", "2", "--root", str(root))
    assert code == 0, err
    return root


def test_hessian_rows_match_the_function_on_each_state(store: Path) -> None:
    code, out, err = lth("hessian", "--root", str(store), "--steps", "init", "5it", "--k", "2", "--iters", "12",
                         "--examples", "200", "--device", "cpu")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert len(rows) == 2 * 2 * 2 and {r["state"] for r in rows} == {"init", "5it"}
    data = load_dataset(DataHparams(dataset="digits"))
    x, y = data.train_x[:200], data.train_y[:200]
    for path in {r["path"] for r in rows}:
        with open(Path(path) / "hessian.csv") as f:
            stored = list(csv.DictReader(f))
        assert len(stored) == 4 and {s["bn_mode"] for s in stored} == {"train"}
        for state in ("init", "5it"):
            net = build_model("fc_8", 1, (1, 8, 8), 10)
            net.load_member(0, torch.load(Path(path) / "states" / f"{state}.pt", weights_only=True))
            want = top_eigenvalues(net, x, y, 2, 12, "train", torch.Generator().manual_seed(0), tol=1e-3,
                                   max_iters=100).values[0].tolist()
            got = [r["eigenvalue"] for r in rows if r["path"] == path and r["state"] == state]
            assert got == pytest.approx(want, rel=1e-3, abs=1e-5)
            assert [float(s["eigenvalue"]) for s in stored if s["state"] == state] == pytest.approx(got)
            assert got[0] >= got[1]


@pytest.mark.parametrize("extra", [["--bn-mode", "bogus"], ["--k", "0"], ["--k", "3", "--iters", "2"],
                                   ["--steps", "9999it"], ["--threads", "0"]])
def test_bad_input_is_exit_2(store: Path, extra: list[str]) -> None:
    argv = ["hessian", "--root", str(store), "--steps", "init", *extra]
    if "--steps" in extra:
        argv = ["hessian", "--root", str(store), *extra]
    code, out, err = lth(*argv)
    assert code == 2 and out == "" and err.startswith("lth: error:") and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("device", ["gpu", "cuda:x"] + ([] if torch.cuda.is_available() else ["cuda"]))
def test_a_bad_device_is_bad_input(tmp_path: Path, device: str) -> None:
    code, out, err = lth("hessian", "--root", str(tmp_path), "--steps", "final", "--device", device)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith((f"lth: error: --device {device}", f"lth: error: --device: unknown value {device!r}")), err


def test_which_smallest_and_earlier_rows_are_kept(store: Path) -> None:
    """``--which smallest`` gives top_eigenvalues(which="smallest"); a later call on another state or order adds
    its rows to hessian.csv and replaces only the rows it recomputes."""
    base = ["hessian", "--root", str(store), "--k", "2", "--iters", "12", "--examples", "200", "--device", "cpu"]
    assert lth(*base, "--steps", "init")[0] == 0
    code, out, err = lth(*base, "--steps", "5it", "--which", "smallest")
    assert code == 0, err
    rows = json.loads(out)["rows"]
    assert {r["which"] for r in rows} == {"smallest"} and {r["state"] for r in rows} == {"5it"}
    data = load_dataset(DataHparams(dataset="digits"))
    paths = sorted({Path(r["path"]) for r in rows})  # one population, members in the store's order
    net = build_model("fc_8", len(paths), (1, 8, 8), 10)
    for i, p in enumerate(paths):
        net.load_member(i, torch.load(p / "states" / "5it.pt", weights_only=True))
    # the command iterates past --iters until converged (--tol 1e-3): at a fixed 12 iterations the second most
    # negative eigenvalue is far off (measured 42%), so the reference iterates as the command does
    want = top_eigenvalues(net, data.train_x[:200], data.train_y[:200], 2, 12, "train",
                           torch.Generator().manual_seed(0), which="smallest", tol=1e-3, max_iters=100).values.tolist()
    for i, p in enumerate(paths):
        got = [r["eigenvalue"] for r in rows if Path(r["path"]) == p]
        assert got == pytest.approx(want[i], rel=1e-4, abs=1e-6) and got[0] <= got[1] < 0
    path = paths[0]
    with open(path / "hessian.csv") as f:
        stored = list(csv.DictReader(f))
    kinds = [(s["state"], s["which"]) for s in stored]
    assert kinds.count(("5it", "smallest")) == 2 and kinds.count(("init", "largest")) == 2
    assert lth(*base, "--steps", "5it", "--which", "smallest")[0] == 0  # recomputed: replaced, not appended
    with open(path / "hessian.csv") as f:
        assert [(s["state"], s["which"]) for s in csv.DictReader(f)] == kinds


def test_a_bad_which_is_bad_input(store: Path) -> None:
    code, out, err = lth("hessian", "--root", str(store), "--steps", "init", "--which", "biggest")
    assert code == 2 and out == "" and err.startswith("lth: error: --which: bad value 'biggest'"), err


def test_a_step_no_run_holds_is_named_not_silently_dropped(store: Path) -> None:
    code, out, err = lth("hessian", "--root", str(store), "--steps", "init", "7it", "--k", "1", "--iters", "2",
                         "--examples", "50", "--device", "cpu")
    assert code == 0, err
    assert {r["state"] for r in json.loads(out)["rows"]} == {"init"}
    warnings = [line for line in err.splitlines() if line.startswith("lth: warning:")]
    assert len(warnings) == 1 and "--steps 7it" in warnings[0], err


def test_rows_of_a_hessian_csv_without_which_are_largest_and_replaced(store: Path) -> None:
    """A hessian.csv written before ``which`` was a column holds the largest eigenvalues: a later call keeps its
    rows under which=largest (not an empty cell) and a recomputation of their state replaces them."""
    argv = ["hessian", "--root", str(store), "--k", "1", "--iters", "4", "--examples", "50", "--device", "cpu"]
    path = next(p.parent for p in sorted(store.rglob("spec.json")) if (p.parent / "states" / "init.pt").exists())
    (path / "hessian.csv").write_text("state,rank,eigenvalue,bn_mode,iters,batch_size\ninit,0,123.5,train,4,50\n")
    assert lth(*argv, "--steps", "5it")[0] == 0
    with open(path / "hessian.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["state"], r["which"]) for r in rows] == [("init", "largest"), ("5it", "largest")], rows
    assert lth(*argv, "--steps", "init")[0] == 0
    with open(path / "hessian.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["state"], r["which"]) for r in rows) == [("5it", "largest"), ("init", "largest")], rows
    assert all(float(r["eigenvalue"]) != 123.5 for r in rows)


def test_a_root_under_home_is_searched_where_it_was_checked(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--root ~/x`` (quoted, so the shell leaves the ~): the store that was found is the one searched."""
    monkeypatch.setenv("HOME", str(store.parent))
    code, out, err = lth("hessian", "--root", f"~/{store.name}", "--steps", "init", "--k", "1", "--iters", "2",
                         "--examples", "50", "--device", "cpu")
    assert code == 0, err
    assert {r["state"] for r in json.loads(out)["rows"]} == {"init"}


def test_a_damaged_hessian_csv_is_named_and_written_again(store: Path) -> None:
    argv = ["hessian", "--root", str(store), "--k", "1", "--iters", "4", "--examples", "50", "--device", "cpu",
            "--steps", "init"]
    path = next(p.parent for p in sorted(store.rglob("spec.json")) if (p.parent / "states" / "init.pt").exists())
    (path / "hessian.csv").write_bytes(b'state,rank,eigenvalue\ninit,0,"cut\n\x00\xff')  # a crash, a full disk
    code, out, err = lth(*argv)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "hessian.csv" in line]
    assert len(warnings) == 1 and str(path / "hessian.csv") in warnings[0] and "Traceback" not in err
    with open(path / "hessian.csv") as f:
        assert [r["state"] for r in csv.DictReader(f)] == ["init"]
