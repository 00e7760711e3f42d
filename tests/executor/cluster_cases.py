"""What every cluster executor must do, as functions its test module calls with an executor: train a small
lottery experiment with a branch exactly as the local executor does, and retry, then report, a failing node
while everything independent of it finishes."""

from __future__ import annotations

import dataclasses
import os
import stat
import sys
from pathlib import Path
from typing import Any

import torch

import lth.api as lth
from lth.engine.train import EngineOptions
from lth.executor import Executor, LocalExecutor
from lth.graph import Node, Recipe, Ref
from lth.presets import get_preset
from lth.spec import Step
from lth.store import RunDir

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "graph")]
import chain_ops  # noqa: E402,F401  (registers test_chain)
import fail_ops  # noqa: E402,F401  (registers test_fail)

OPTIONS = EngineOptions(device="cpu", checkpoint_every=None)
SPEC = get_preset("digits_mlp").spec
SPEC = dataclasses.replace(SPEC, train=dataclasses.replace(SPEC.train, training_steps=Step(20, "it"),
                                                           eval_every=Step(10, "it")))


def small_lottery(root: Path) -> Any:
    """Two replicates of digits_mlp, levels 0 and 1, and the reinit branch at level 1 (20 iterations each)."""
    return lth.lottery("digits_mlp", 1, replicates=2, branches=["reinit"], root=root, training_steps="20it",
                       eval_every="10it")


def relative(records: list[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """Records with paths relative to the store root (two stores hold the same experiment)."""
    def rel(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: rel(x) for k, x in v.items()}
        return str(Path(v).relative_to(root)) if isinstance(v, str) and v.startswith(str(root)) else v
    return [rel(r) for r in records]


def check_lottery_equals_local(ex: Executor, tmp: Path) -> None:
    """The cluster executor's records and stored weights equal the local executor's, run for run (bit for bit:
    the local run uses the one CPU thread a worker of one CPU uses, as the reduction order follows it)."""
    remote, local = small_lottery(tmp / "cluster"), small_lottery(tmp / "local")
    got = remote.records(ex.run(remote.nodes()))
    want = local.records(local_reference(lambda: LocalExecutor(options=OPTIONS).run(local.nodes())))
    assert len(got["runs"]) == 4 and len(got["branches"]) == 2
    for key in ("runs", "branches"):
        assert relative(got[key], tmp / "cluster") == relative(want[key], tmp / "local")
        assert all(r["status"] == "complete" for r in got[key])
    check_same_weights(tmp / "cluster", tmp / "local")
    sizes: list[int] = []
    ex.on_population = sizes.append
    assert ex.run(remote.nodes()) and sizes == []  # run again: everything is done, nothing is submitted


def check_same_weights(root: Path, other: Path) -> None:
    """Every run under ``root`` stored the same final weights, bit for bit, as the run at the same place under
    ``other``."""
    runs = sorted(p.parent for p in root.rglob("done.json"))
    assert runs
    for run in runs:
        twin = other / run.relative_to(root)
        wa, wb = RunDir(run).load_tensors("states/final.pt"), RunDir(twin).load_tensors("states/final.pt")
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), run


def local_reference(fn: Any) -> Any:
    """``fn()`` on one CPU thread, as a worker with one CPU trains (the reduction order follows the threads)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return fn()
    finally:
        torch.set_num_threads(threads)


def failing_graph(root: Path, log: Path) -> dict[str, Node]:
    """p -> {bad, good} (one population: same spec, both ready together), bad -> after_bad, good -> after_good,
    and an independent node."""
    def chain(parent: Node, name: str, op: str = "test_chain") -> Node:
        return Node(SPEC, 0, root / name, setup=Recipe.make(op, Ref(parent, "state:final"), log=str(log)))
    p = Node(SPEC, 0, root / "p")
    bad, good = chain(p, "bad", "test_fail"), chain(p, "good")
    return {"p": p, "bad": bad, "good": good, "after_bad": chain(bad, "after_bad"),
            "after_good": chain(good, "after_good"), "alone": Node(SPEC, 1, root / "alone")}


def small_failing_graph(root: Path, log: Path) -> dict[str, Node]:
    """bad (fails, no parent) -> after_bad, and an independent node of another population: two rounds of jobs."""
    bad = Node(SPEC, 0, root / "bad", setup=Recipe.make("test_fail", log=str(log)))
    wide = dataclasses.replace(SPEC, model=dataclasses.replace(SPEC.model, width=2.0))
    return {"bad": bad, "after_bad": Node(SPEC, 0, root / "after_bad",
                                          setup=Recipe.make("test_chain", Ref(bad, "state:final"), log=str(log))),
            "alone": Node(wide, 0, root / "alone")}


def check_failure_is_retried_then_reported(ex: Any, tmp: Path, retries: int,
                                           small: bool = False) -> dict[str, dict[str, Any]]:
    """The failing node is tried 1 + retries times, then reported failed with its error; its descendant is
    blocked; its population mate and every independent node finish (``small``: :func:`small_failing_graph`,
    for executors whose every job is a new process)."""
    log = tmp / "attempts.log"
    g = (small_failing_graph if small else failing_graph)(tmp / "store", log)
    names = [n for n in ["bad", "after_bad", "good", "after_good", "alone", "p"] if n in g]
    records = dict(zip(names, ex.run([g[n] for n in names]), strict=True))
    attempts = [line for line in log.read_text().splitlines() if line.endswith("/bad")]
    assert len(attempts) == 1 + retries and ex.attempts(g["bad"].path) == 1 + retries
    assert records["bad"]["status"] == "failed" and "RuntimeError: injected failure in bad" in records["bad"]["error"]
    assert records["after_bad"]["status"] == "blocked" and not (g["after_bad"].path / "done.json").exists()
    assert records["after_bad"]["error"] == f"blocked: {g['bad'].path} failed"
    for n in names[2:]:
        assert records[n]["status"] == "complete", records[n]
    from lth.cli.output import report_divergence

    assert report_divergence(list(records.values())) == 1  # the command exits non-zero
    assert report_divergence([records["after_bad"]]) == 1  # also when only a descendant was asked for
    return records


def fake_sbatch(tmp_path: Path, monkeypatch: Any) -> Path:
    """Fake ``srun`` and ``sbatch`` first on PATH; returns where ``sbatch`` copies the script it is given (its job
    id: 4242)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sent = tmp_path / "sent.sh"
    for name, body in (("srun", "exit 0"), ("sbatch", f'cp "$1" {sent}; echo "Submitted batch job 4242"')):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(stat.S_IRWXU)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return sent
