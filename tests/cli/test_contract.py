"""Every command against docs/CONTRACT.md: one JSON document on stdout with absolute paths, fractions and steps
beside their iterations; bad input is exit 2, one line naming the flag and the value, nothing written; diverged
runs are reported and marked; report files; states and masks keyed by parameter names; the umask."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import lth

TINY = ["--preset", "digits_mlp", "--model", "fc_8", "--training-steps", "4it"]
STEP = re.compile(r"^\d+(it|ep)$")


def listing(root: Path) -> set[str]:
    """Every path under ``root`` (empty when it does not exist)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")} if root.exists() else set()


def walk(obj: Any, key: str = ""):
    """(key, value, parent dict) of every value in a JSON document."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield k, v, obj
            yield from walk(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield key, v, None
            yield from walk(v, key)


def check_document(out: str, cwd: Path, steps: bool = True) -> Any:
    """The CONTRACT's promises on a --json stdout; returns the document. ``steps``: every reported step has its
    iteration beside it (not for ``lth presets``, whose specs are settings: ``2ep`` has no iteration count before
    a dataset is loaded)."""
    doc = json.loads(out)  # exactly one document, nothing else
    for key, v, _ in walk(doc):
        if isinstance(v, str) and "/" in v and " " not in v and ((cwd / v).exists() or Path(v).exists()):
            assert Path(v).is_absolute(), (key, v)  # every path absolute
        if isinstance(v, bool) or not isinstance(v, int | float) or v is None:
            continue
        if ("accuracy" in key or "instability" in key) and "lth" not in key:
            assert 0.0 <= v <= 1.0, (key, v)  # fractions, never percent
    for key, v, parent in walk(doc if steps else {}):
        if parent is not None and isinstance(v, str) and STEP.match(v) and key not in ("step",):
            beside = parent.get(f"{key}_iteration", parent.get("iteration"))
            assert isinstance(beside, int) and not isinstance(beside, bool), (key, v, sorted(parent))
        if parent is not None and key == "step" and isinstance(v, str):
            assert isinstance(parent.get("iteration"), int), parent
    return doc


def run_json(cwd: Path, *argv: str) -> tuple[Any, str]:
    code, out, err = lth(*argv, "--json")
    assert code == 0, err
    return check_document(out, cwd, steps=argv[0] != "presets"), err


@pytest.fixture(scope="module")
def docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One tiny run of every command with --json, from a folder of its own with relative roots (so a relative
    path in the output would show)."""
    cwd = tmp_path_factory.mktemp("contract")
    before = os.getcwd()
    os.chdir(cwd)
    out: dict[str, Any] = {"cwd": cwd}
    try:  # the recipe first: after the other commands in one process it took three times as long
        out["recipe"] = run_json(cwd, "recipe", "normalization", "--quick", "--levels", "1", "--training-steps",
                                 "21it", "--replicates", "1", "--root", "rc")
        out["train"] = run_json(cwd, "train", *TINY, "--replicates", "2", "--root", "store")
        out["lottery"] = run_json(cwd, "lottery", *TINY, "--levels", "1", "--rewind", "1it", "--branches", "reinit",
                                  "--root", "store")
        out["branch"] = run_json(cwd, "branch", "random-mask", *TINY, "--levels", "1", "--rewind", "1it",
                                 "--root", "store")
        out["stability"] = run_json(cwd, "stability", *TINY, "--alphas", "3", "--train-examples", "50",
                                    "--rewind", "0it", "1it", "--root", "stab")
        out["landscape"] = run_json(cwd, "landscape", *TINY, "--grid", "2", "--train-examples", "50", "--root", "stab")
        out["hessian"] = run_json(cwd, "hessian", "--root", "store", "--steps", "final", "--iters", "2",
                                  "--examples", "50")
        out["results"] = run_json(cwd, "results", "--root", "store")
        out["report"] = run_json(cwd, "report", "--root", "store", "-o", "out")
        out["status"] = run_json(cwd, "status", "--root", "store")  # every planned run present: exit 0
        out["presets"] = run_json(cwd, "presets")
        out["recipe list"] = run_json(cwd, "recipe", "list")
        out["demo"] = run_json(cwd, "demo", "--levels", "1", "--replicates", "1", "--training-steps", "4it",
                               "--root", "demo")
    finally:
        os.chdir(before)
    return out


COMMANDS = ["train", "lottery", "branch", "stability", "landscape", "hessian", "results", "report", "status",
            "presets", "recipe list", "recipe", "demo"]


@pytest.mark.parametrize("command", COMMANDS)
def test_json_document(docs: dict[str, Any], command: str) -> None:
    """Every command ran, and its stdout passed check_document (asserted in the fixture)."""
    doc, err = docs[command]
    assert isinstance(doc, dict) and doc


def records(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["runs"] + doc.get("branches", [])


@pytest.mark.parametrize("command", ["train", "lottery", "branch", "demo"])
def test_run_records(docs: dict[str, Any], command: str) -> None:
    doc, _ = docs[command]
    for r in records(doc):
        assert Path(r["path"]).is_dir() and isinstance(r["replicate"], int)
        assert 0 <= r["final_test_accuracy"] <= 1
        assert set(r["states"]) <= {"init", "final", "rewind"} and "final" in r["states"]
        for f in r["states"].values():
            assert Path(f).is_file()
        if command != "train":
            assert {"level", "density"} <= set(r) and 0 < r["density"] <= 1
            assert ("mask" in r) == (r["level"] > 0) or "branch" in r
        if command == "branch" or "branch" in r:
            assert {"branch", "level", "density", "mask"} <= set(r)
    if command == "lottery":
        assert [r["level"] for r in doc["runs"]] == [0, 1] and doc["runs"][0]["density"] == 1.0
        assert [b["branch"] for b in doc["branches"]] == ["reinit"]


def test_stability_and_recipe_shapes(docs: dict[str, Any]) -> None:
    results = docs["stability"][0]["results"]
    assert len(results) == 2
    for r in results:
        assert {"level", "rewind", "replicate", "test_instability", "train_instability", "stable", "runs"} <= set(r)
        assert len(r["runs"]) == 2 and all(Path(p).is_dir() for p in r["runs"])
    assert [r["rewind_iteration"] for r in results] == [0, 1]
    recipe = docs["recipe"][0]
    assert recipe["recipe"] == "normalization" and Path(recipe["report"]).is_file()
    assert recipe["report"] == str(docs["cwd"] / "rc" / "report" / "index.html")
    assert isinstance(recipe["verdicts"], dict) and recipe["verdicts"]
    for k in ("verdict_basis", "rows", "substitutions", "seconds", "datasets"):
        assert k in recipe


def test_report_files(docs: dict[str, Any]) -> None:
    out = docs["cwd"] / "out"
    assert (out / "index.html").is_file()
    for ext in ("png", "svg", "csv"):
        assert list(out.rglob(f"*.{ext}")), ext
    assert "http://" not in (out / "index.html").read_text().replace("http://www.w3.org", "")


def test_states_and_masks_keyed_by_parameter_names(docs: dict[str, Any]) -> None:
    from lth.models import build_model

    names = {n for n, _ in build_model("fc_8", 1, (64,), 10, "none", 1.0).named_parameters()}
    level1 = docs["lottery"][0]["runs"][1]
    for f in level1["states"].values():
        assert set(torch.load(f, weights_only=True)) == names
    mask = torch.load(level1["mask"], weights_only=True)
    assert set(mask) <= names and mask and all(v.dtype == torch.bool for v in mask.values())


BAD = [  # (argv, flag, value) for a bad value of each kind, every command
    (["train", *TINY, "--lr", "abc"], "--lr", "abc"),
    (["train", *TINY, "--lr", "1e999"], "--lr", "1e999"),
    (["train", *TINY, "--optimizer", "sgdd"], "--optimizer", "sgdd"),
    (["train", *TINY, "--save-states", "3x"], "--save-states", "3x"),
    (["train", "--preset", "nope"], "--preset", "nope"),
    (["train", *TINY, "--executor", "rya"], "--executor", "rya"),
    (["train", *TINY, "--cuda-graph", "of"], "--cuda-graph", "of"),
    (["lottery", *TINY, "--levels", "x"], "--levels", "x"),
    (["lottery", *TINY, "--levels", "1", "--rewind", "9"], "--rewind", "9"),
    (["lottery", *TINY, "--levels", "1", "--branches", "renit"], "--branches", "renit"),
    (["lottery", *TINY, "--levels", "1", "--save-states", "abc"], "--save-states", "abc"),
    (["lottery", *TINY, "--levels", "1", "--finetune-steps", "abc"], "--finetune-steps", "abc"),
    (["lottery", *TINY, "--levels", "1", "--pruning-fraction", "1.5"], "--pruning-fraction", "1.5"),
    (["lottery", *TINY, "--levels", "2", "--branches", "reinit", "--branch-levels", "5"], "--branch-levels", "5"),
    (["branch", "reinit", *TINY, "--levels", "1", "--dn-pool", "layer"], "--dn-pool", "layer"),
    (["branch", "nope", *TINY, "--levels", "1"], "branch", "nope"),
    (["branch", "reinit", *TINY, "--levels", "a-b"], "--levels", "a-b"),
    (["stability", *TINY, "--width", "inf"], "--width", "inf"),
    (["stability", *TINY, "--strategy", "globl"], "--strategy", "globl"),
    (["stability", *TINY, "--copies", "1"], "--copies", "1"),
    (["stability", *TINY, "--threshold", "2"], "--threshold", "2"),
    (["stability", *TINY, "--subnetwork", "dnse"], "--subnetwork", "dnse"),
    (["stability", *TINY, "--save-states", "x"], "--save-states", "x"),
    (["landscape", *TINY, "--train-examples", "abc"], "--train-examples", "abc"),
    (["landscape", *TINY, "--alphas", "1"], "--alphas", "1"),
    (["landscape", *TINY, "--plane", "plan"], "--plane", "plan"),
    (["landscape", *TINY, "--grid", "-1"], "--grid", "-1"),
    (["landscape", *TINY, "--margin", "nan"], "--margin", "nan"),
    (["train", *TINY, "--executor", "ray", "--ray-cpus-per-task", "nan"], "--ray-cpus-per-task", "nan"),
    (["demo", "--levels", "0"], "--levels", "0"),
    (["demo", "--training-steps", "4"], "--training-steps", "4"),
    (["recipe", "lotery", "--quick"], "lotery", "lottery"),
    (["recipe", "normalization", "--quick", "--levels", "-1"], "--levels", "-1"),
    (["recipe", "normalization", "--quick", "--save-states", "x"], "--save-states", "x"),
    (["recipe", "normalization", "--quick", "--datasets", "cifar"], "--datasets", "cifar"),
    (["recipe", "normalization", "--quick", "--save-states", "5it"], "--save-states", "5it"),  # not honoured: refused
    (["lottery", *TINY, "--levels", "1", "--branches", "finetune", "--finetune-steps", "0it"], "--finetune-steps",
     "0it"),
    (["train", *TINY, "--lr", "0"], "--lr", "0"),
    (["train", *TINY, "--momentum", "1"], "--momentum", "1"),
    (["train", *TINY, "--batch-size", "5000"], "--batch-size", "5000"),
    (["train", *TINY, "--validation-size", "1500"], "--validation-size", "1500"),
    (["train", *TINY, "--warmup-steps", "5it"], "--warmup-steps", "5it"),
    (["lottery", *TINY, "--levels", "1", "--milestones", "2it", "1ep"], "--milestones", "1ep"),
]

PAST_END = [  # (argv, flag, value, first allowed step): a step after the end of training (TINY: 4it)
    (["lottery", *TINY, "--levels", "1", "--rewind", "9it"], "--rewind", "9it", "0it"),
    (["lottery", *TINY, "--levels", "1", "--rewind", "1ep"], "--rewind", "1ep", "0it"),
    (["lottery", *TINY, "--levels", "1", "--pretrain-steps", "5it"], "--pretrain-steps", "5it", "1it"),
    (["lottery", *TINY, "--levels", "1", "--save-states", "5it"], "--save-states", "5it", "0it"),
    (["branch", "reinit", *TINY, "--levels", "1", "--rewind", "5it"], "--rewind", "5it", "0it"),
    (["branch", "reinit", *TINY, "--levels", "1", "--save-states", "5it"], "--save-states", "5it", "0it"),
    (["stability", *TINY, "--rewind", "5it"], "--rewind", "5it", "0it"),
    (["stability", *TINY, "--save-states", "5it"], "--save-states", "5it", "0it"),
    (["train", *TINY, "--save-states", "2it", "5it"], "--save-states", "5it", "0it"),
    (["train", *TINY, "--warmup-steps", "5it"], "--warmup-steps", "5it", "0it"),
    (["train", *TINY, "--milestones", "5it"], "--milestones", "5it", "0it"),
]


@pytest.mark.parametrize(("argv", "flag", "value"), BAD, ids=[" ".join(a[:1] + a[-2:]) for a, _, _ in BAD])
def test_bad_input(tmp_path: Path, argv: list[str], flag: str, value: str) -> None:
    root = tmp_path / "store"
    code, out, err = lth(*argv, "--root", str(root))
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("lth: error: "), err
    assert flag in lines[0] and value in lines[0], lines[0]
    assert any(w in lines[0] for w in ("allowed", "expected", "did you mean", "e.g.")), lines[0]
    assert not root.exists()  # not even an empty store


@pytest.mark.parametrize(("argv", "flag", "value", "first"), PAST_END,
                         ids=[" ".join(a[:1] + a[-2:]) for a, _, _, _ in PAST_END])
def test_steps_past_the_end_say_what_is_allowed(tmp_path: Path, argv: list[str], flag: str, value: str,
                                                first: str) -> None:
    """Every step-vs-length check says where training ends and which steps are allowed, in one line."""
    root = tmp_path / "store"
    code, out, err = lth(*argv, "--root", str(root))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.strip() == (f"lth: error: {flag} {value}: after the end of training (--training-steps 4it); "
                           f"allowed: a step from {first} to 4it (--training-steps)")
    assert not root.exists()


@pytest.mark.parametrize(("store", "argv"), [
    ("missing", ["results"]), ("missing", ["report"]), ("missing", ["hessian", "--steps", "final"]),
    ("store", ["hessian", "--steps", "final", "--k", "0"]), ("store", ["hessian", "--steps", "500it"]),
    ("store", ["hessian", "--steps", "final", "--which", "larges"]), ("store", ["report", "-o", "out/index.html/x"]),
    ("store/train_x", ["results"]), ("missing", ["status"])])
def test_bad_input_on_a_store_leaves_it_as_it_was(docs: dict[str, Any], store: str, argv: list[str]) -> None:
    before = listing(docs["cwd"])
    argv = [str(docs["cwd"] / a) if a.startswith("out/") else a for a in argv]
    code, out, err = lth(*argv, "--root", str(docs["cwd"] / store))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert listing(docs["cwd"]) == before


def test_divergence_reported_marked_and_exit_code(tmp_path: Path) -> None:
    """SGD at lr 1e20 sends 3 of these 4 replicates to inf (and 1e22 all 4): stderr names them, done.json says
    diverged, exit 0 unless all diverged or --strict."""
    argv = ["train", *TINY[:4], "--training-steps", "20it", "--optimizer", "sgd", "--replicates", "4"]
    code, out, err = lth(*argv, "--lr", "1e20", "--root", str(tmp_path / "a"), "--json")
    runs = check_document(out, tmp_path)["runs"]
    bad = [r for r in runs if r["status"] == "diverged"]
    assert 0 < len(bad) < len(runs)
    assert code == 0 and f"lth: {len(bad)} of {len(runs)} runs diverged: " in err
    for r in bad:
        assert r["path"] in err
        assert json.loads((Path(r["path"]) / "done.json").read_text())["status"] == "diverged"
    code, _, err = lth(*argv, "--lr", "1e20", "--root", str(tmp_path / "a"), "--strict")
    assert code == 1 and "runs diverged" in err
    code, _, err = lth(*argv, "--lr", "1e22", "--root", str(tmp_path / "b"))
    assert code == 1 and "4 of 4 runs diverged" in err


def test_store_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o002)
    try:
        code, _, err = lth("lottery", *TINY, "--levels", "1", "--root", str(tmp_path / "s"))
        assert code == 0, err
        code, _, err = lth("report", "--root", str(tmp_path / "s"))
        assert code == 0, err
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "s").rglob("*")]
    assert any(p.suffix == ".pt" for p in files) and any(p.name == "done.json" for p in files)
    for p in files:
        mode = stat.S_IMODE(p.stat().st_mode)
        want = stat.S_IRGRP | stat.S_IWGRP | (stat.S_IXGRP if p.is_dir() else 0)
        assert mode & want == want, (p, oct(mode))
