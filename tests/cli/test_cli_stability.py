"""`lth stability` and `lth landscape` on digits: the CONTRACT's JSON, fractions, exact zeros for identical
seeds, one-line errors, results read back without training again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import lth, populations

BASE = ("--preset", "digits_mlp", "--training-steps", "40it", "--eval-every", "20it", "--device", "cpu",
        "--alphas", "5", "--train-examples", "300", "--trajectory-points", "2")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cli_stab")


def _json(store: Path, *extra: str) -> tuple[dict, str]:
    code, out, err = lth("stability", *BASE, "--root", str(store), "--json", *extra)
    assert code == 0, err
    return json.loads(out), err


def test_json_shape_fractions_and_sweep(store):
    doc, err = _json(store, "--rewind", "0it", "10it", "--levels", "0-1", "--subnetwork", "imp", "random-prune",
                     "random-reinit")
    assert max(populations(err)) > 1  # copies train as populations
    res = doc["results"]
    assert {(r["subnetwork"], r["rewind"], r["level"]) for r in res} == {
        (s, k, lv) for k in ("0it", "10it") for s, lv in
        (("dense", 0), ("imp", 1), ("random-prune", 1), ("random-reinit", 1))}
    for r in res:
        assert {"level", "rewind", "replicate", "test_instability", "train_instability", "stable", "runs"} <= set(r)
        assert 0.0 <= r["test_instability"] <= 1.0 and 0.0 <= r["train_instability"] <= 1.0
        assert r["stable"] == (r["test_instability"] < 0.02)
        assert len(r["runs"]) == 2 and all(Path(p, "done.json").exists() for p in r["runs"])
        assert all(0.0 <= e <= 1.0 for e in r["end_test_errors"])
    assert {s["subnetwork"] for s in doc["summary"]} == {"dense", "imp", "random-prune", "random-reinit"}
    assert all(s["first_stable"] in (None, "0it", "10it") for s in doc["summary"])
    # matching compares to the dense copies made at k = 0 (Table 2's "full"), the same number for every row
    from lth.stability.analysis import full_accuracy

    full, copies = full_accuracy(res)
    assert copies == 2 and {s["dense_accuracy"] for s in doc["summary"]} == {full}
    # a second call reads everything back: nothing trains, the numbers are the same
    again, err2 = _json(store, "--rewind", "0it", "10it", "--levels", "0-1", "--subnetwork", "imp",
                        "random-prune", "random-reinit")
    assert populations(err2) == [] and again["results"] == res
    n = len(res)  # the first call evaluated every path; the second says it reused them, evaluating none
    assert f"evaluating {n} path(s) of 5 points" in err and "reused" not in err, err
    assert f"evaluating 0 path(s) of 5 points; {n} stored path(s) with these settings reused" in err2, err2


def test_identical_seeds_give_exactly_zero(store):
    doc, _ = _json(store, "--same-noise")
    (r,) = doc["results"]
    assert r["test_instability"] == 0.0 and r["train_instability"] == 0.0 and r["stable"] is True
    assert r["end_test_errors"][0] == r["end_test_errors"][1]


def test_schedule_from_zero_and_align(store):
    usual, _ = _json(store, "--rewind", "10it")
    restart, _ = _json(store, "--rewind", "10it", "--schedule-from-zero")
    (u,), (s,) = usual["results"], restart["results"]
    assert s["schedule_from_zero"] is True and Path(s["runs"][0]).parents[2] != Path(u["runs"][0]).parents[2]
    spec = json.loads(Path(s["runs"][0], "spec.json").read_text())
    assert spec["schedule_from_zero"] is True
    metrics = Path(s["runs"][0], "metrics.csv").read_text().splitlines()
    assert metrics[1].split(",")[0] in ("0", "20") and metrics[-1].split(",")[0] == "40"  # trained T steps
    aligned, _ = _json(store, "--rewind", "10it", "--align")
    (a,) = aligned["results"]
    assert a["aligned"] is True and a["runs"] == u["runs"]
    # aligning permutes hidden units: the end points compute the same functions
    assert a["end_test_errors"] == pytest.approx(u["end_test_errors"], abs=1e-12)


@pytest.mark.parametrize("argv, needle", [
    (("--subnetwork", "bogus"), "--subnetwork 'bogus'"),
    (("--copies", "1"), "--copies"),
    (("--alphas", "1"), "--alphas"),
    (("--threshold", "2"), "--threshold"),
    (("--subnetwork", "imp"), "--levels"),
    (("--rewind", "999ep"), "--rewind"),
])
def test_bad_input_exit_2_one_line(store, argv, needle):
    code, out, err = lth("stability", *BASE, "--root", str(store), "--json", *argv)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], err


def test_landscape_writes_grid_and_contour(store):
    code, out, err = lth("landscape", *BASE, "--root", str(store), "--json", "--rewind", "10it", "--grid", "5")
    assert code == 0, err
    (land,) = json.loads(out)["landscapes"]
    doc = json.loads(Path(land["file"]).read_text())
    assert len(doc["test_error"]) == len(doc["ys"]) == 5 and len(doc["test_error"][0]) == 5
    assert all(0.0 <= v <= 1.0 for row in doc["test_error"] for v in row)
    assert doc["points"]["start (step k)"] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert doc["points"]["copy 0"][1] == pytest.approx(0.0, abs=1e-6)  # on the first axis by construction
    assert len(doc["trajectories"]["copy 0"]) == 2 + 2  # start, 2 kept steps, final
    assert all(Path(f).exists() for f in land["figures"])
    code, out, err = lth("landscape", *BASE, "--root", str(store), "--json", "--rewind", "10it", "--plane", "pca",
                         "--grid", "4")
    assert code == 0, err
    assert json.loads(out)["landscapes"][0]["plane"] == "pca"
    code, _, err = lth("landscape", *BASE, "--root", str(store), "--plane", "diagonal")
    assert code == 2 and "--plane 'diagonal'" in err


def test_table_in_a_pipe_is_one_plain_line_per_row_with_nothing_cut(capsys, monkeypatch):
    """Piped output (a log, a Slurm output file) is not folded to 80 columns: the names that tell rows apart are
    never cut to "random-…", and each row is one greppable line."""
    from lth.cli.stability import _print

    monkeypatch.setenv("COLUMNS", "80")
    records = [{"subnetwork": name, "rewind": "500it", "level": 4, "replicate": 0, "copies": [0, 1],
                "test_instability": 0.0034, "train_instability": None, "stable": True}
               for name in ("dense", "imp", "random-prune", "random-reinit")]
    _print(records, [])
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].split() == ["subnetwork", "rewind", "level", "replicate", "copies", "test", "instability",
                                "train", "instability", "stable"]
    assert [ln.split() for ln in lines[1:]] == [[name, "500it", "4", "0", "0-1", "0.0034", "n/a", "True"]
                                               for name in ("dense", "imp", "random-prune", "random-reinit")]
    assert "…" not in "".join(lines)
