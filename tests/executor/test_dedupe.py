"""Nodes with one digest in several directories train once: level 0 of IMP trunks that differ only in their
rewind step is one dense run; the representative keeps every trunk's rewind state and the other directories are
filled from it, bit for bit what training them would have stored (CPU). Run again: nothing trains; a diverged
representative makes its duplicates diverged; two processes on one graph still train each run once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import lth.api as api
from lth.engine.train import EngineOptions
from lth.executor import LocalExecutor
from lth.executor.base import missing_states
from lth.graph import closure
from lth.lottery.plan import LotteryPlan
from lth.store import RunDir

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"


def plan(root: Path, rewind: list[str], **over: object) -> LotteryPlan:
    """One pruned level, two replicates, 20 iterations of digits_mlp, one trunk per rewind step."""
    return api.lottery("digits_mlp", 1, replicates=2, rewind=rewind, training_steps="20it", root=root, **over)


def executor(sizes: list[int]) -> LocalExecutor:
    return LocalExecutor(options=EngineOptions(device="cpu", checkpoint_every=None), on_population=sizes.append)


def equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def state(path: Path, name: str) -> dict[str, torch.Tensor]:
    return RunDir(path).load_state(name)


def trained(root: Path) -> int:
    """Runs under ``root`` that trained (their spec.json does not say they were filled from another)."""
    specs = [json.loads(p.read_text()) for p in root.rglob("spec.json") if ".replay" not in str(p)]
    return sum("trained_as" not in s for s in specs)


def test_level_0_of_trunks_that_differ_in_rewind_trains_once(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    both, alone = plan(tmp_path / "both", ["0it", "5it"]), plan(tmp_path / "alone", ["5it"])
    k0, k5 = both.trunks
    events: list[dict] = []
    sizes: list[int] = []
    ex = executor(sizes)
    ex.on_event = lambda e, info: events.append(info) if e == "graph" else None
    records = ex.run(both.nodes())
    assert all(r["status"] == "complete" for r in records) and len(records) == 8
    # level 0: one population of the 2 replicates (not 4 runs); level 1: both trunks' 4 levels
    assert sizes == [2, 4] and trained(tmp_path / "both") == 6
    assert events[0]["total"] == 8 and events[-1]["done"] == 8 and events[-1]["duplicates"] == 2
    assert [e["done"] for e in events] == sorted(e["done"] for e in events)
    alone_sizes: list[int] = []
    executor(alone_sizes).run(alone.nodes())
    assert alone_sizes == [2, 2]
    for r in range(2):
        rep, dup, ref = RunDir(k0.level_dir(r, 0)), RunDir(k5.level_dir(r, 0)), RunDir(alone.trunks[0].level_dir(r, 0))
        assert rep.complete() and dup.complete()
        spec = dup.spec
        assert spec["trained_as"] == str(rep.path) and spec["node"] == k5.node(r, 0).digest == k0.node(r, 0).digest
        assert spec["rewind"] == "5it" and spec["trunk"] == str(dup.path.parent.parent) and "trained_as" not in rep.spec
        # the representative kept trunk k=5's rewind state as "5it" until the duplicate took it as "rewind"
        assert set(rep.states()) == {"init", "final"} and set(dup.states()) == {"init", "final", "rewind"}
        assert rep.state_iterations() == {"init": 0, "final": 20}
        assert dup.state_iterations() == ref.state_iterations() == {"init": 0, "rewind": 5, "final": 20}
        for name in ("init", "rewind", "final"):
            assert equal(state(dup.path, name), state(ref.path, name)), name
        assert dup.read_metrics() == ref.read_metrics() and dup.done["status"] == "complete"
        # the next level trained from the filled directory: the same ticket as trunk k=5 trained alone
        for name in ("rewind", "final"):
            assert equal(state(k5.level_dir(r, 1), name), state(alone.trunks[0].level_dir(r, 1), name)), name
        assert equal(RunDir(k5.level_dir(r, 1)).load_mask(), RunDir(alone.trunks[0].level_dir(r, 1)).load_mask())
    # run again: nothing trains, nothing is replayed or filled again
    def stamps() -> dict[Path, int]:
        return {p: p.stat().st_mtime_ns for p in (tmp_path / "both").rglob("*") if p.is_file() and p.name != ".lock"}

    before = stamps()
    capsys.readouterr()
    sizes.clear()
    again = executor(sizes).run(both.nodes())
    assert sizes == [] and all(r["status"] == "complete" for r in again)
    assert "replaying" not in capsys.readouterr().err
    assert stamps() == before
    assert not any(missing_states(n) for n in closure(both.nodes()))


def test_a_diverged_representative_makes_its_duplicates_diverged(tmp_path: Path) -> None:
    both = plan(tmp_path, ["0it", "5it"], optimizer="sgd", lr=1e6)  # no network survives this learning rate
    sizes: list[int] = []
    records = {r["path"]: r for r in executor(sizes).run(both.nodes())}
    assert sizes == [2]  # level 0 of the two replicates, once; every level 1 is blocked
    for t in both.trunks:
        for r in range(2):
            level0 = RunDir(t.level_dir(r, 0))
            assert level0.done["status"] == "diverged" and records[str(level0.path)]["status"] == "diverged"
            assert records[str(t.level_dir(r, 1))]["status"] == "blocked" and not t.level_dir(r, 1).exists()
    dup, rep = RunDir(both.trunks[1].level_dir(0, 0)), RunDir(both.trunks[0].level_dir(0, 0))
    assert dup.spec["trained_as"] == str(rep.path) and dup.done == rep.done and not dup.has_state("final")


def test_a_finished_representative_replays_for_a_state_it_lacks(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    sizes: list[int] = []
    executor(sizes).run([t.node(r, 0) for t in plan(tmp_path, ["5it"]).trunks for r in range(2)])
    assert sizes == [2]
    more = plan(tmp_path, ["5it", "10it"])
    k5, k10 = more.trunks
    sizes.clear()
    capsys.readouterr()
    executor(sizes).run([t.node(r, 0) for t in more.trunks for r in range(2)])
    # trunk k=5's level 0 is the representative: replayed once per replicate to keep the state at 10it
    assert sizes == [2] and capsys.readouterr().err.count("replaying it") == 2
    for r in range(2):
        rep, dup = RunDir(k5.level_dir(r, 0)), RunDir(k10.level_dir(r, 0))
        assert set(rep.states()) == {"init", "final", "rewind"} and dup.spec["trained_as"] == str(rep.path)
        assert equal(state(dup.path, "final"), state(rep.path, "final"))
        assert dup.state_iterations() == {"init": 0, "rewind": 10, "final": 20}
        assert not (rep.path / ".replay").exists()
    alone = plan(tmp_path / "alone", ["10it"])
    executor([]).run([alone.trunks[0].node(r, 0) for r in range(2)])
    for r in range(2):  # the replayed state at 10it is the one trunk k=10 stores when it trains alone
        assert equal(state(k10.level_dir(r, 0), "rewind"), state(alone.trunks[0].level_dir(r, 0), "rewind"))


def test_two_processes_on_one_graph_train_each_run_once(tmp_path: Path) -> None:
    root = tmp_path / "store"
    script = (f"import sys; sys.path[:0] = [{str(HERE)!r}]\n"
              "from pathlib import Path\nimport test_dedupe as t\n"
              "sizes = []\n"
              f"t.executor(sizes).run(t.plan(Path({str(root)!r}), ['0it', '5it']).nodes())\n"
              "print('SIZES', sum(sizes))\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    total = 0
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        total += int(out.split("SIZES")[-1])
    assert total == 6 == trained(root)  # 2 level-0 runs and 4 level-1 runs, between both processes
    both = plan(root, ["0it", "5it"])
    assert all(RunDir(t.level_dir(r, lv)).complete() for t in both.trunks for r in range(2) for lv in range(2))


def test_scaffolding_left_by_a_crash_is_removed_by_the_next_run(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The process dies after the representative trained (with trunk k=5's state as scaffolding) and before its
    duplicate was filled: the next run fills it and then removes the scaffolding, as one uninterrupted run does;
    a state the representative holds that no duplicate of this graph asked for is left alone (another process's
    scaffolding stays in the record for it)."""
    import lth.executor.dedupe as dedupe

    both = plan(tmp_path, ["0it", "5it"])
    k0, k5 = both.trunks

    def crash(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(dedupe, "fill_duplicate", crash)
    with pytest.raises(KeyboardInterrupt):
        executor([]).run(both.nodes())
    rep = RunDir(k0.level_dir(0, 0))
    assert rep.complete() and set(rep.states()) == {"init", "final", "5it"} and not k5.level_dir(0, 0).exists()
    assert json.loads((rep.path / "scaffold.json").read_text()) == ["5it"]
    rep.save_state("mine", rep.load_state("final"), 20)  # e.g. kept by an earlier --save-states
    rep.save_state("10it", rep.load_state("final"), 10)  # scaffolding of another process (trunk k=10) ...
    rep.write_json("scaffold.json", ["5it", "10it"])  # ... whose duplicate is not filled yet: left to it
    monkeypatch.undo()
    sizes: list[int] = []
    assert all(r["status"] == "complete" for r in executor(sizes).run(both.nodes()))
    assert sizes == [4]  # level 1 of both trunks; level 0 is not trained again
    for r in range(2):
        rep, dup = RunDir(k0.level_dir(r, 0)), RunDir(k5.level_dir(r, 0))
        assert dup.spec["trained_as"] == str(rep.path) and dup.state_iterations()["rewind"] == 5
        assert set(rep.states()) == ({"init", "final", "mine", "10it"} if r == 0 else {"init", "final"})
        assert "5it" not in rep.state_iterations()
        assert (json.loads((rep.path / "scaffold.json").read_text()) == ["10it"] if r == 0
                else not (rep.path / "scaffold.json").exists())


def test_a_representative_trained_by_another_process_without_the_states_does_not_fail(tmp_path: Path) -> None:
    """Another process whose graph holds only trunk k=0 trains the shared level 0 first (without trunk k=5's
    state): this run's duplicate then trains itself instead of failing, and everything completes in one run."""
    from lth.executor.work import train_group

    both = plan(tmp_path, ["0it", "5it"])
    plain = {n.path: n for n in closure(both.nodes())}  # as the other process has them: no extra states

    class Raced(LocalExecutor):
        raced = False

        def wait(self) -> list:
            if not self.raced:  # the other process wins the lock of the representative
                self.raced = True
                for g in self._pending:
                    train_group([plain[n.path] for n in g], self.dataset(g[0].spec.data), self.options)
            return super().wait()

    records = Raced(options=EngineOptions(device="cpu", checkpoint_every=None)).run(both.nodes())
    assert [r["status"] for r in records] == ["complete"] * 8
    k0, k5 = both.trunks
    for r in range(2):
        rep, dup = RunDir(k0.level_dir(r, 0)), RunDir(k5.level_dir(r, 0))
        assert set(rep.states()) == {"init", "final"} and "trained_as" not in dup.spec
        assert not (rep.path / "scaffold.json").exists()
        assert dup.state_iterations() == {"init": 0, "rewind": 5, "final": 20}
        assert equal(state(dup.path, "final"), state(rep.path, "final"))


def test_runs_of_one_digest_replay_once_for_states_they_lack(tmp_path: Path) -> None:
    """Two directories of one run (level 0 of two rewinding trunks) asked afterwards for a state neither kept:
    one replay serves both, and each gets the state (bit for bit what the replay stored)."""
    from lth.spec import Step

    p = plan(tmp_path, ["0it", "5it"])
    executor([]).run(p.nodes())
    k0, k5 = p.trunks
    nodes = [t.node(0, 0).with_keep([("12it", Step(12, "it"))]) for t in (k0, k5)]
    assert all(missing_states(n) == ["12it"] for n in nodes)
    sizes: list[int] = []
    executor(sizes).run(nodes)
    assert sizes == [1]  # one replay of one member, not one per directory
    a, b = (state(n.path, "12it") for n in nodes)
    assert equal(a, b) and not equal(a, state(nodes[0].path, "final"))
    assert all(RunDir(n.path).state_iterations()["12it"] == 12 for n in nodes)
