"""The executor over a graph: a chain runs in one call, parents before children, nothing twice (also when run
again, or by two processes at once), and a diverged parent blocks only its descendants."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from lth.engine.train import EngineOptions
from lth.executor import LocalExecutor
from lth.graph import Node, Recipe, Ref
from lth.presets import get_preset
from lth.spec import Step
from lth.store import RunDir

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "graph"))
import chain_ops  # noqa: E402,F401  (registers the test_chain op)

SPEC = get_preset("digits_mlp").spec
SPEC = dataclasses.replace(SPEC, train=dataclasses.replace(SPEC.train, training_steps=Step(20, "it"),
                                                           eval_every=Step(10, "it")))


def chain(root: Path, log: Path, n: int = 3) -> list[Node]:
    """n0 <- n1 <- n2: each starts from its parent's final weights."""
    nodes = [Node(SPEC, 0, root / "n0")]
    for i in range(1, n):
        nodes.append(Node(SPEC, 0, root / f"n{i}",
                          setup=Recipe.make("test_chain", Ref(nodes[-1], "state:final"), log=str(log))))
    return nodes


def executor(sizes: list[int] | None = None) -> LocalExecutor:
    return LocalExecutor(options=EngineOptions(device="cpu", checkpoint_every=None),
                         on_population=None if sizes is None else sizes.append)


def test_a_chain_trains_in_one_call_parents_first_and_never_twice(tmp_path: Path) -> None:
    log = tmp_path / "resolved.log"
    nodes = chain(tmp_path / "store", log)
    sizes: list[int] = []
    records = executor(sizes).run([nodes[-1]])  # asking for the last node trains its ancestors too
    assert [r["status"] for r in records] == ["complete"] and sizes == [1, 1, 1]
    for parent, child in zip(nodes, nodes[1:], strict=False):
        # the child started (wrote its spec) after the parent finished (wrote its marker)
        assert (parent.path / "done.json").stat().st_mtime_ns <= (child.path / "spec.json").stat().st_mtime_ns
        start = RunDir(child.path).load_tensors("states/init.pt")
        final = RunDir(parent.path).load_tensors("states/final.pt")
        assert all((start[k] == final[k]).all() for k in final)  # it really started from its parent
    assert log.read_text().splitlines() == [str(nodes[1].path.resolve()), str(nodes[2].path.resolve())] or \
        log.read_text().splitlines() == [str(nodes[1].path), str(nodes[2].path)]
    sizes.clear()
    assert executor(sizes).run(nodes) and sizes == []  # again: nothing trains
    assert len(log.read_text().splitlines()) == 2


def test_two_processes_on_one_graph_train_each_node_once(tmp_path: Path) -> None:
    root, log = tmp_path / "store", tmp_path / "resolved.log"
    script = (f"import sys; sys.path[:0] = [{str(HERE)!r}, {str(HERE.parent / 'graph')!r}]\n"
              "from pathlib import Path\nimport test_graph as t\n"
              f"t.executor().run(t.chain(Path({str(root)!r}), Path({str(log)!r}), 4))\n")
    procs = [subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    lines = log.read_text().splitlines()
    assert len(lines) == 3 and len(set(lines)) == 3  # n1..n3 resolved (trained) once each
    assert all(RunDir(root / f"n{i}").done["status"] == "complete" for i in range(4))


def test_a_diverged_parent_blocks_only_its_descendants(tmp_path: Path) -> None:
    log = tmp_path / "resolved.log"
    bad_spec = dataclasses.replace(SPEC, train=dataclasses.replace(SPEC.train, optimizer="sgd", lr=1e6))
    bad = Node(bad_spec, 0, tmp_path / "bad")
    child = Node(SPEC, 0, tmp_path / "child", setup=Recipe.make("test_chain", Ref(bad, "state:final"), log=str(log)))
    ok = chain(tmp_path / "ok", log, 2)
    records = executor().run([child, ok[-1]])
    assert [r["status"] for r in records] == ["blocked", "complete"]
    assert RunDir(bad.path).done["status"] == "diverged" and not child.path.exists()
