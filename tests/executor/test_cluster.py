"""What the cluster executors share, without a cluster: a population that ends lets its children start while
other populations still run (no waves); a failed population's members are retried alone, then reported; bad
cluster flags are one-line errors; a missing optional package says how to install it."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cluster_cases as cases  # (also registers the test_chain and test_fail ops)
import pytest
from conftest import lth

from lth.executor.cluster import ClusterExecutor
from lth.executor.work import error_line, train_remote
from lth.graph import Node, Recipe, Ref


@dataclass
class InProcess(ClusterExecutor):
    """A cluster of one slot per submitted population, where the oldest population ends first: the log says
    what was in flight each time a population was submitted."""

    log: list[tuple[str, list[str]]] = field(default_factory=list)
    _n: int = 0
    _work: dict[int, Any] = field(default_factory=dict)

    def start(self, groups: list[list[Node]], args: tuple[Any, ...]) -> list[Hashable]:
        handles = []
        for g in groups:
            self._n += 1
            self.log.append(("start", [n.path.name for n in g], sorted(n.path.name for h in self._flying
                                                                          for n in self._flying[h])))
            self._work[self._n] = (g, args)
            handles.append(self._n)
        return handles

    def poll(self, handles: list[Hashable]) -> list[tuple[Hashable, str | None]]:
        h = min(handles)  # type: ignore[type-var]
        group, args = self._work.pop(h)  # type: ignore[arg-type]
        try:
            train_remote(group, *args)
            return [(h, None)]
        except Exception as e:  # noqa: BLE001
            return [(h, error_line(e))]


def wide(node: Node) -> Node:
    """The same node with another width: never in a population with the default width."""
    m = dataclasses.replace(node.spec.model, width=2.0)
    return dataclasses.replace(node, spec=dataclasses.replace(node.spec, model=m))


def test_a_chain_goes_on_while_another_population_still_trains(tmp_path: Path) -> None:
    log = tmp_path / "log"
    a0 = Node(cases.SPEC, 0, tmp_path / "a0")
    a1 = Node(cases.SPEC, 0, tmp_path / "a1", setup=Recipe.make("test_chain", Ref(a0, "state:final"), log=str(log)))
    b0 = wide(Node(cases.SPEC, 0, tmp_path / "b0"))
    b1 = wide(Node(cases.SPEC, 0, tmp_path / "b1", setup=Recipe.make("test_chain", Ref(b0, "state:final"),
                                                                     log=str(log))))
    ex = InProcess(options=cases.OPTIONS)
    records = ex.run([a1, b1])
    assert [r["status"] for r in records] == ["complete", "complete"]
    starts = [(names, flying) for _, names, flying in ex.log]
    # a0 and b0 start together; a0 ends first and a1 starts while b0 still trains (a wave would wait for b0)
    assert sorted(starts[:2]) == [(["a0"], []), (["b0"], [])]
    assert starts[2:] == [(["a1"], ["b0"]), (["b1"], ["a1"])]


def test_a_failed_population_is_retried_alone_then_reported(tmp_path: Path) -> None:
    log = tmp_path / "attempts.log"
    g = cases.failing_graph(tmp_path / "store", log)
    ex = InProcess(options=cases.OPTIONS, retries=1)
    names = ["bad", "after_bad", "good", "after_good", "alone", "p"]
    records = dict(zip(names, ex.run([g[n] for n in names]), strict=True))
    starts = [sorted(names) for _, names, _ in ex.log]
    assert ["bad", "good"] in starts  # one population at first (same spec, ready together) ...
    assert starts.count(["bad"]) == 1 and starts.count(["good"]) == 1  # ... then each alone, bad once more
    assert records["bad"]["status"] == "failed" and records["after_bad"]["status"] == "blocked"
    assert records["after_bad"]["error"] == f"blocked: {g['bad'].path} failed"
    assert all(records[n]["status"] == "complete" for n in ("good", "after_good", "alone", "p"))
    assert [ln.rsplit("/", 1)[1] for ln in log.read_text().splitlines()].count("bad") == 2
    assert ex.attempts(g["bad"].path) == 2


def test_a_failure_is_recorded_in_the_store_until_the_run_finishes(tmp_path: Path) -> None:
    """The executor writes failed.json (the error) beside a run whose training raised after its retries, so ``lth
    status`` names it failed and its descendant blocked; the run finishing later removes it."""
    from lth.store import RunDir
    from lth.store.plans import store_status

    store = tmp_path / "store"
    g = cases.failing_graph(store, tmp_path / "attempts.log")
    InProcess(options=cases.OPTIONS, retries=0, plan_root=store, command="test").run(list(g.values()))
    doc = store_status(store)
    assert {Path(m["path"]).name: m["status"] for m in doc["missing"]} == {"bad": "failed", "good": "failed",
                                                                          "after_bad": "blocked",
                                                                          "after_good": "blocked"}
    assert all("injected failure in bad" in m["error"] for m in doc["missing"] if m["status"] == "failed")
    InProcess(options=cases.OPTIONS, retries=0).run([g["good"]])  # alone, it trains
    assert not (g["good"].path / "failed.json").exists() and RunDir(g["good"].path).complete()
    assert {Path(m["path"]).name for m in store_status(store)["missing"]} == {"bad", "after_bad", "after_good"}


def test_retries_zero_reports_the_whole_failed_population(tmp_path: Path) -> None:
    g = cases.failing_graph(tmp_path / "store", tmp_path / "log")
    records = InProcess(options=cases.OPTIONS, retries=0).run([g["bad"], g["good"], g["alone"]])
    assert [r["status"] for r in records] == ["failed", "failed", "complete"]
    assert all("injected failure in bad" in r["error"] for r in records[:2])


@pytest.mark.parametrize("argv, message", [
    (["--address", "auto"], "--address is for --executor ray"),
    (["--executor", "ray", "--retries", "-1"], "--retries"),
    (["--executor", "ray", "--slurm-time", "10"], "--slurm-time is for --executor slurm"),
    (["--executor", "ray", "--ray-gpus-per-task", "x"], "--ray-gpus-per-task: bad value 'x'"),
    (["--executor", "slurm", "--slurm-option", "account"], "--slurm-option: bad value 'account'"),
    (["--executor", "slurm", "--slurm-time", "4h"], "--slurm-time: bad value '4h'"),
    (["--executor", "slurm", "--slurm-array-parallelism", "0"], "--slurm-array-parallelism: bad value 0; allowed: "
     "a whole number >= 1"),
])
def test_bad_cluster_flags_are_one_line_exit_2(tmp_path: Path, argv: list[str], message: str) -> None:
    code, _, err = lth("train", "--preset", "digits_mlp", "--root", str(tmp_path), *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


def test_a_missing_package_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("ray", "submitit"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    for kind, extra in (("ray", "ray"), ("slurm", "slurm")):
        code, _, err = lth("train", "--preset", "digits_mlp", "--root", str(tmp_path), "--executor", kind)
        assert code == 2 and f"pip install 'lth[{extra}]'" in err, err


def test_a_cluster_replays_a_finished_representative_for_a_new_trunk(tmp_path: Path) -> None:
    """A trunk added with another rewind step: its level 0 is the stored level 0 of the first trunk (one digest),
    which a cluster executor too replays to keep the new rewind state (it trains with submit/wait, not
    train_populations), then fills the new trunk's level 0 from it; the new trunk's level 1 trains."""
    import lth.api as api
    from lth.store import RunDir

    first = api.lottery("digits_mlp", 1, replicates=1, rewind=["5it"], training_steps="20it", root=tmp_path)
    assert all(r["status"] == "complete" for r in InProcess(options=cases.OPTIONS).run(first.nodes()))
    both = api.lottery("digits_mlp", 1, replicates=1, rewind=["5it", "10it"], training_steps="20it", root=tmp_path)
    ex = InProcess(options=cases.OPTIONS)
    assert all(r["status"] == "complete" for r in ex.run(both.nodes()))
    k5, k10 = both.trunks
    rep, dup = RunDir(k5.level_dir(0, 0)), RunDir(k10.level_dir(0, 0))
    assert dup.spec["trained_as"] == str(rep.path) and dup.state_iterations()["rewind"] == 10
    assert set(rep.states()) == {"init", "rewind", "final"} and not (rep.path / ".replay").exists()
    assert RunDir(k10.level_dir(0, 1)).complete()
    assert [names for _, names, _ in ex.log] == [[".replay"], ["level_1"]]  # the replay, then k=10's level 1


def test_train_populations_of_a_cluster_retries_then_reports(tmp_path: Path) -> None:
    """What replays train with on a cluster: every group submitted, a failed member tried again alone up to
    ``retries`` more times, then reported; the others finish."""
    from lth.store import RunDir

    log = tmp_path / "attempts.log"
    g = cases.small_failing_graph(tmp_path / "store", log)
    ex = InProcess(options=cases.OPTIONS, retries=1)
    errors = ex.train_populations([[g["bad"]], [g["alone"]]])
    assert list(errors) == [g["bad"].path] and "injected failure in bad" in errors[g["bad"].path]
    assert log.read_text().count("/bad\n") == 2 and RunDir(g["alone"].path).complete()
    assert ex.train_populations([]) == {}


def test_a_failed_lottery_run_is_failed_in_the_plan_records_and_the_command_fails(tmp_path: Path) -> None:
    """The lottery's records (level records, branch records) say ``failed`` for a run whose task failed, and
    ``blocked`` for what depends on it, so that the command exits non-zero (they said ``missing``: exit 0)."""
    import lth.api as api
    from lth.cli.output import report_divergence

    @dataclass
    class FailsLevel0(InProcess):
        def poll(self, handles: list[Hashable]) -> list[tuple[Hashable, str | None]]:
            h = min(handles)  # type: ignore[type-var]
            group, _ = self._work[h]
            if group[0].path.name == "level_0" and group[0].replicate == 0:
                self._work.pop(h)
                return [(h, "RuntimeError: worker lost")]
            return super().poll(handles)

    plan = api.lottery("digits_mlp", 1, replicates=2, branches=["reinit"], training_steps="20it", root=tmp_path)
    records = plan.records(FailsLevel0(options=cases.OPTIONS, retries=0, max_population=1).run(plan.nodes()))
    status = {(r["replicate"], r["level"], r.get("branch")): (r["status"], r.get("error")) for key in records
              for r in records[key]}
    assert status[(0, 0, None)] == ("failed", "RuntimeError: worker lost")
    assert status[(0, 1, None)][0] == status[(0, 1, "reinit")][0] == "blocked"
    assert all(status[(1, lv, b)][0] == "complete" for lv, b in ((0, None), (1, None), (1, "reinit")))
    assert report_divergence(records["runs"] + records["branches"]) == 1
