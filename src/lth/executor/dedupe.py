"""Deduplication: nodes with one digest in several directories (level 0 of IMP trunks that differ only in their
rewind step) are one run.

A *representative* trains once, keeping every state the others keep (:func:`deduplicate`), and each other
directory is filled from it without training as soon as it is finished (:func:`fill_duplicates`, with
:func:`~lth.executor.work.fill_duplicate`). The extra states a representative keeps only for its duplicates are
*scaffolding*, recorded in its directory (:meth:`lth.store.run.RunDir.scaffold`) and removed once every duplicate
is filled.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from lth.executor.keeps import extra_keeps, missing_states
from lth.executor.work import error_line, fill_duplicate
from lth.graph import Node
from lth.spec import Step
from lth.store import RunDir
from lth.store.run import DamagedFile

StepsPerEpoch = Callable[[Node], int]


def deduplicate(graph: list[Node], steps_per_epoch: StepsPerEpoch, scaffold: dict[Path, list[str]]
                ) -> tuple[list[Node], dict[Path, Node]]:
    """Nodes of ``graph`` with one digest and different directories are one run, trained once.

    Per digest, the *representative* is a finished one (not itself filled from another where possible) or,
    when none is, the first in graph order; it keeps, besides its own states, every state the unfinished
    others keep, at steps its own keeps miss, named by their step (the ``--save-states`` convention:
    ``5it``), so keep names that collide across duplicates (``rewind`` at 5it and at 10it) never clash.
    A finished representative without such a state gets it by replay (:func:`lth.executor.replay.replay`), like
    any finished run asked for more states. Those extra states are scaffolding: once every duplicate is filled,
    the ones this call added are removed again (:func:`fill_duplicates`), so each directory holds the states its
    own node asks for; ``scaffold`` (the executor's, ``{representative: its scaffold states}``) receives them.
    Returns the graph with each representative's keeps extended, and ``{path of an unfinished duplicate: its
    representative}``; a finished duplicate is left as it is."""
    by_digest: dict[str, list[int]] = {}
    for i, n in enumerate(graph):
        by_digest.setdefault(n.digest, []).append(i)
    graph = list(graph)
    reps: dict[Path, Node] = {}
    for idx in by_digest.values():
        if len(idx) < 2:
            continue
        same = [graph[i] for i in idx]
        rep = representative(same)
        at = idx[same.index(rep)]
        todo = [d for d in same if d is not rep and not RunDir(d.path).finished()]
        spe = steps_per_epoch(rep)

        def extras(dups: list[Node], rep: Node = rep, spe: int = spe) -> dict[int, tuple[str, Step]]:
            return extra_keeps(rep, [kept for d in dups for kept in d.keep], spe)

        # this graph's scaffolding that a run of it left behind (it stopped before removing it); another
        # process's (other duplicates) is that process's to remove
        mine = {name for name, _ in extras([d for d in same if d is not rep]).values()}
        earlier = [name for name in RunDir(rep.path).scaffold() if name in mine]
        if earlier:
            scaffold[rep.path] = earlier
        if not todo:
            continue
        extra = extras(todo)
        if extra:
            held = RunDir(rep.path).states()
            added = list(dict.fromkeys(earlier + [name for name, _ in extra.values() if name not in held]))
            if added:  # recorded in rep's directory first, so a run that stops before removing them ...
                record = list(dict.fromkeys(RunDir(rep.path).scaffold() + added))
                RunDir(rep.path).write_scaffold(record)  # ... leaves them to the next run
                scaffold[rep.path] = added
            rep = graph[at] = rep.with_keep(extra.values())
        reps.update({d.path: rep for d in todo})
    return graph, reps


def fill_duplicates(graph: list[Node], reps: dict[Path, Node], failed: dict[Path, str],
                    steps_per_epoch: StepsPerEpoch, scaffold: dict[Path, list[str]]) -> None:
    """Fill every unfinished duplicate whose representative is finished (:func:`fill_duplicate`), in graph
    order; a duplicate that cannot be filled is recorded in ``failed``; one whose representative another
    process trained without the extra states is no duplicate any more (removed from ``reps``: it trains). A
    representative whose duplicates are all finished loses the extra states :func:`deduplicate` added (taken
    out of ``scaffold``)."""
    for n in graph:
        rep = reps.get(n.path)
        if rep is None or n.path in failed or RunDir(n.path).finished() or not RunDir(rep.path).finished():
            continue
        if RunDir(rep.path).complete() and missing_states(rep):  # another process trained it, without the
            del reps[n.path]  # states kept for the duplicates: this one trains itself (as before dedupe)
            continue
        try:
            fill_duplicate(n, rep, steps_per_epoch(n))
        except Exception as e:  # noqa: BLE001  (reported as this node's failure; the rest goes on)
            failed[n.path] = error_line(e)
    for path in [p for p in scaffold if all(RunDir(d).finished() for d, r in reps.items() if r.path == p)]:
        run = RunDir(path)
        with run.lock():
            gone = scaffold.pop(path)
            for name in gone:
                run.drop_state(name)
            run.write_scaffold([name for name in run.scaffold() if name not in gone])


def representative(same: list[Node]) -> Node:
    """Of nodes with one digest (graph order): the one that trains for all, or whose run all others take (see
    :func:`deduplicate`)."""
    finished = [n for n in same if RunDir(n.path).finished()]
    if not finished:
        return same[0]
    trained = [n for n in finished if "trained_as" not in (_spec(n) or {})]
    return (trained or finished)[0]


def _spec(node: Node) -> dict | None:
    try:
        spec = RunDir(node.path).spec
    except DamagedFile:
        return None
    return spec if isinstance(spec, dict) else None
