"""Scheduling a run graph: the state of every node (complete, ready, waiting, blocked, ...), which failure blocks
a node, how ready nodes group into populations and how large a population is by default, and waiting for runs
that another process trains. The loop that uses them is :meth:`lth.executor.base.Executor.run`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from lth.data import Dataset
from lth.engine.train import population_key
from lth.executor.work import CPU_POPULATION_MAX_PARAMS
from lth.graph import Node
from lth.spec import TrainSpec
from lth.store import RunDir


def graph_states(graph: list[Node], failed: dict[Path, str], reps: dict[Path, Node] | None = None) -> dict[Path, str]:
    """complete | diverged | failed | blocked (an ancestor diverged or failed) | ready | waiting, per node of
    ``graph`` (parents first). A duplicate (a path in ``reps``) is never ready: it waits for its representative
    (and is blocked when that failed or is blocked)."""
    reps = reps or {}
    state: dict[Path, str] = {}
    for n in graph:  # parents come first
        run = RunDir(n.path)
        if n.path in failed:
            state[n.path] = "failed"
        elif run.finished():  # a damaged marker or final state counts as unfinished: trained again
            state[n.path] = run.done.get("status", "complete")  # type: ignore[union-attr]
        elif n.path in reps:
            rep = reps[n.path]
            rs = "failed" if rep.path in failed else state.get(rep.path, "waiting")  # it comes first
            state[n.path] = "blocked" if rs in ("failed", "blocked") else "waiting"
        else:
            ps = [state[p.path] for p in n.parents()]
            if any(s in ("diverged", "failed", "blocked") for s in ps):
                state[n.path] = "blocked"
            elif all(s == "complete" for s in ps):
                state[n.path] = "ready"
            else:
                state[n.path] = "waiting"
    return state


def blocked_by(node: Node, state: dict[Path, str], failed: dict[Path, str],
               reps: dict[Path, Node] | None = None) -> str | None:
    """For a node blocked by an ancestor that failed: which (its error names them); else None (a diverged
    ancestor blocks without an error: divergence is a result). ``reps``: the representative of each duplicate
    (:func:`lth.executor.dedupe.deduplicate`), which a duplicate waits for as for a parent."""
    if state.get(node.path) != "blocked" or not failed:
        return None
    reps = reps or {}

    def deps(n: Node) -> list[Node]:
        return n.parents() + ([reps[n.path]] if n.path in reps else [])

    found: dict[Path, None] = {}
    seen: set[Path] = set()
    todo = deps(node)
    while todo:
        n = todo.pop()
        if n.path in seen:
            continue
        seen.add(n.path)
        if n.path in failed:
            found[n.path] = None
        elif state.get(n.path) == "blocked":
            todo += deps(n)
    return f"blocked: {', '.join(map(str, found))} failed" if found else None


def group_populations(ready: list[Node], size: Callable[[Node], int]) -> list[list[Node]]:
    """Ready nodes grouped by population key, in chunks of at most ``size(first node of the group)``."""
    groups: dict[tuple, list[Node]] = {}
    for n in ready:
        groups.setdefault(population_key(n.spec), []).append(n)
    out = []
    for group in groups.values():
        most = size(group[0])
        out += [group[a:a + most] for a in range(0, len(group), most)]
    return out


def default_population(spec: TrainSpec, data: Dataset, device: torch.device) -> int:
    """How many members to train at once when the user did not say: from free memory on a GPU; on a CPU,
    one at a time unless the network is tiny."""
    from lth.models import build_model

    m = spec.model
    params = build_model(m.model, 1, data.example_shape, data.num_classes, m.norm, m.width).num_params()
    if device.type != "cuda":
        return 16 if params <= CPU_POPULATION_MAX_PARAMS else 1
    free, _ = torch.cuda.mem_get_info(device)
    example = int(torch.tensor(data.example_shape).prod())
    # weights, grads, two optimiser moments (4 x fp32) + activations (a generous 64 floats per input value)
    per_member = params * 16 + spec.data.batch_size * example * 4 * 64
    return max(1, min(256, int(free * 0.5) // per_member))


def wait_for_others(busy: list[Node], poll: float = 0.5) -> None:
    """Block until another process releases at least one of ``busy``'s runs (it finished or gave up on it)."""
    import time

    while all(RunDir(n.path).busy() for n in busy):
        time.sleep(poll)
