"""The executor interface over a run graph, and the scheduling every executor shares.

``run(nodes)`` takes the nodes a command asks for, adds their ancestors, and repeats: find the nodes whose
parents are all trained (ready), group them by population key into populations of at most
``max_population``, submit those (:meth:`Executor.submit`: trained in this process, as Ray tasks or as
Slurm array jobs), wait for any to end (:meth:`Executor.wait`) and look again, until nothing is ready or in
flight. A finished node is never trained again (also not by another
process: each population locks its members' directories); a node whose parent diverged or failed is
*blocked* and reported, and everything that does not depend on it goes on.

Nodes with one digest in several directories (level 0 of IMP trunks that differ only in their rewind step) are
one run: a *representative* trains once, keeping every state the others keep, and each other directory is
filled from it without training as soon as it is finished (:meth:`Executor.deduplicate`,
:func:`~lth.executor.work.fill_duplicate`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lth.data import Dataset, load_dataset
from lth.engine.train import EngineOptions, Job, population_key, summary
from lth.errors import UserError
from lth.executor.work import (
    CPU_POPULATION_MAX_PARAMS,
    check_nodes,
    discard_damaged,
    error_line,
    fill_duplicate,
    link_aliases,
    probe,
)
from lth.graph import Node, closure
from lth.spec import DataHparams, Step, TrainSpec
from lth.store import RunDir, paths
from lth.store.run import Busy, DamagedFile

Event = Callable[[str, dict[str, Any]], None]


@dataclass
class Executor:
    """Runs a graph of nodes to the end. Subclasses say where a population trains."""

    data_dir: str | Path | None = None
    options: EngineOptions = field(default_factory=EngineOptions)
    max_population: int | None = None
    on_population: Callable[[int], None] | None = None  # told the size of each population it trains
    on_event: Event | None = None  # "graph" {total, done}, "wave" {ready, populations, names}, "failed" {node, error},
    # "skipped" {names} (a population of the wave that another process trains or trained)
    _data: dict[tuple[DataHparams, str], Dataset] = field(default_factory=dict, repr=False)
    _pending: list[list[Node]] = field(default_factory=list, repr=False)  # submitted, not yet trained
    _scaffold: dict[Path, list[str]] = field(default_factory=dict, repr=False)  # representative -> its extra states

    # -- data, loaded once per executor
    def dataset(self, hp: DataHparams) -> Dataset:
        """The dataset for ``hp`` on the training device, loaded once per executor."""
        device = self.options.torch_device()
        key = (hp, str(device))
        if key not in self._data:
            self._data[key] = load_dataset(hp, self.data_dir, device)
        return self._data[key]

    # -- the graph
    def run(self, nodes: list[Node]) -> list[dict[str, Any]]:
        """Train every node (and every ancestor) not yet finished; the run records of ``nodes``, in order.

        The loop every executor shares: submit every ready population (:meth:`submit`), wait for some to end
        (:meth:`wait`), recompute what is ready, until nothing is ready or in flight. A synchronous executor
        trains what it was given in :meth:`wait` (wave by wave); a cluster executor returns as soon as any
        population ends, so independent chains progress at their own speed. A ready node whose lock another
        process holds (two commands on one store) is left to that process; when nothing else is left, this one
        waits for it. A duplicate (a node whose digest
        another node trains: :meth:`deduplicate`) is filled from its representative in this loop as soon as
        that one is finished, so its children are ready in the same pass.
        """
        graph = closure(nodes)
        self.check(graph)
        for n in graph:  # a finished run with a damaged file is trained again (the file is named on stderr)
            run = RunDir(n.path)
            if run.has_done() and run.damaged():
                with contextlib.suppress(Busy), run.lock(wait=False):  # another process's run: left to it
                    if run.has_done() and run.damaged():  # still so now that we hold it
                        discard_damaged(run)
        asked = graph  # as asked for: a representative's keeps are extended for its duplicates below
        graph, reps = self.deduplicate(graph)
        failed: dict[Path, str] = {}
        flying: set[Path] = set()
        with self.session():  # a replay trains too: on a cluster, inside its session
            self.replay(graph)
            while True:
                self.fill_duplicates(graph, reps, failed)
                state = self.states(graph, failed, reps)
                self._emit("graph", total=len(graph),
                           done=sum(s in ("complete", "diverged") for s in state.values()), state=state,
                           duplicates=len(reps))
                ready = [n for n in graph if state[n.path] == "ready" and n.path not in flying]
                busy = [n for n in ready if RunDir(n.path).busy()]  # another process is training them
                ready = [n for n in ready if n not in busy]
                if ready:
                    groups = self.populations(ready)
                    self._emit("wave", ready=len(ready), populations=[len(g) for g in groups],
                               names=[[n.name for n in g] for g in groups])
                    self.submit(groups)
                    flying.update(n.path for g in groups for n in g)
                if not flying:
                    if not busy:
                        break
                    wait_for_others(busy)
                    continue
                for group, errors in self.wait():
                    flying.difference_update(n.path for n in group)
                    failed.update(errors)
            self.replay(asked)  # runs another process finished meanwhile may still lack what this command keeps
        state = self.states(graph, failed, reps)
        return [self.record(n, state[n.path], failed.get(n.path) or self.blocked_by(n, state, failed, reps))
                for n in nodes]

    @staticmethod
    def blocked_by(node: Node, state: dict[Path, str], failed: dict[Path, str],
                   reps: dict[Path, Node] | None = None) -> str | None:
        """For a node blocked by an ancestor that failed: which (its error names them); else None (a diverged
        ancestor blocks without an error: divergence is a result). ``reps``: the representative of each
        duplicate (:meth:`deduplicate`), which a duplicate waits for as for a parent."""
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

    def steps_per_epoch(self, node: Node) -> int:
        """Iterations per epoch of ``node``'s data (what its steps in epochs mean)."""
        return max(1, self.dataset(node.spec.data).train_x.shape[0] // node.spec.data.batch_size)

    def deduplicate(self, graph: list[Node]) -> tuple[list[Node], dict[Path, Node]]:
        """Nodes of ``graph`` with one digest and different directories are one run, trained once.

        Per digest, the *representative* is a finished one (not itself filled from another where possible) or,
        when none is, the first in graph order; it keeps, besides its own states, every state the unfinished
        others keep, at steps its own keeps miss, named by their step (the ``--save-states`` convention:
        ``5it``), so keep names that collide across duplicates (``rewind`` at 5it and at 10it) never clash.
        A finished representative without such a state gets it by :meth:`replay`, like any finished run asked
        for more states. Those extra states are scaffolding: once every duplicate is filled, the ones this call
        added are removed again (:meth:`fill_duplicates`), so each directory holds the states its own node asks
        for. Returns the graph with each representative's keeps extended, and ``{path of an unfinished
        duplicate: its representative}``; a finished duplicate is left as it is."""
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
            spe = self.steps_per_epoch(rep)

            def extras(dups: list[Node], rep: Node = rep, spe: int = spe) -> dict[int, tuple[str, Step]]:
                return extra_keeps(rep, [kept for d in dups for kept in d.keep], spe)

            # this graph's scaffolding that a run of it left behind (it stopped before removing it); another
            # process's (other duplicates) is that process's to remove
            mine = {name for name, _ in extras([d for d in same if d is not rep]).values()}
            earlier = [name for name in _scaffold_record(RunDir(rep.path)) if name in mine]
            if earlier:
                self._scaffold[rep.path] = earlier
            if not todo:
                continue
            extra = extras(todo)
            if extra:
                held = RunDir(rep.path).states()
                scaffold = list(dict.fromkeys(earlier + [name for name, _ in extra.values() if name not in held]))
                if scaffold:  # recorded in rep's directory first, so a run that stops before removing them ...
                    record = list(dict.fromkeys(_scaffold_record(RunDir(rep.path)) + scaffold))
                    RunDir(rep.path).write_json(paths.SCAFFOLD, record)  # ... leaves them to the next run
                    self._scaffold[rep.path] = scaffold
                rep = graph[at] = rep.with_keep(extra.values())
            reps.update({d.path: rep for d in todo})
        return graph, reps

    def fill_duplicates(self, graph: list[Node], reps: dict[Path, Node], failed: dict[Path, str]) -> None:
        """Fill every unfinished duplicate whose representative is finished (:func:`fill_duplicate`), in graph
        order; a duplicate that cannot be filled is recorded in ``failed``; one whose representative another
        process trained without the extra states is no duplicate any more (removed from ``reps``: it trains). A
        representative whose duplicates are all finished loses the extra states :meth:`deduplicate` added."""
        for n in graph:
            rep = reps.get(n.path)
            if rep is None or n.path in failed or RunDir(n.path).finished() or not RunDir(rep.path).finished():
                continue
            if RunDir(rep.path).complete() and missing_states(rep):  # another process trained it, without the
                del reps[n.path]  # states kept for the duplicates: this one trains itself (as before dedupe)
                continue
            try:
                fill_duplicate(n, rep, self.steps_per_epoch(n))
            except Exception as e:  # noqa: BLE001  (reported as this node's failure; the rest goes on)
                failed[n.path] = error_line(e)
        for path in [p for p in self._scaffold if all(RunDir(d).finished() for d, r in reps.items() if r.path == p)]:
            run = RunDir(path)
            with run.lock():
                gone = self._scaffold.pop(path)
                for name in gone:
                    run.drop_state(name)
                left = [name for name in _scaffold_record(run) if name not in gone]
                if left:
                    run.write_json(paths.SCAFFOLD, left)
                else:
                    (run.path / paths.SCAFFOLD).unlink(missing_ok=True)

    def session(self) -> contextlib.AbstractContextManager[Any]:
        """Held while a graph runs (a cluster executor connects here, or starts a local cluster and stops it)."""
        return contextlib.nullcontext()

    def submit(self, groups: list[list[Node]]) -> None:
        """Start training ``groups`` (each one population). Default: keep them for :meth:`wait`."""
        self._pending += groups

    def wait(self) -> list[tuple[list[Node], dict[Path, str]]]:
        """Block until at least one submitted population ends; ``(group, {path: error})`` for each that ended.
        Default: train every pending group now with :meth:`train_populations` (one wave)."""
        groups, self._pending = self._pending, []
        if not groups:
            return []
        errors = self.train_populations(groups)
        return [(g, {n.path: errors[n.path] for n in g if n.path in errors}) for g in groups]

    def replay(self, graph: list[Node]) -> None:
        """Finished runs asked for states they did not keep (``node.keep``, e.g. ``--save-states`` added after
        the run) get them by deterministic replay: the node trains again in ``<run>/.replay/`` with the extra
        states, the missing ones are copied into ``<run>/states/`` (and ``states/index.json``), and the replay
        directory is deleted. Parents replay before children; said on stderr. Directories of one run (one digest:
        one filled from the other) replay once, keeping what each of them lacks (named by its step). A replay holds
        the locks of its runs: where another process holds one (training or replaying it), the run waits for it and
        is looked at again."""

        telemetry = self.options.telemetry_every is not None

        def lacking(n: Node) -> bool:
            return bool(missing_states(n)) or (telemetry and not RunDir(n.path).has_telemetry())

        pending = {n.path: n for n in graph if RunDir(n.path).complete() and lacking(n)}
        while pending:
            wave = [n for n in pending.values() if not any(p.path in pending for p in n.parents())]
            # runs with one digest (a directory filled from another's run) replay once, for all of them
            groups: dict[str, list[Node]] = {}
            for n in wave:
                groups.setdefault(n.digest, []).append(n)
            with contextlib.ExitStack() as held:
                busy: list[Node] = []
                for digest in list(groups):
                    locks = contextlib.ExitStack()
                    try:
                        for n in groups[digest]:
                            locks.enter_context(RunDir(n.path).lock(wait=False))
                    except Busy:
                        locks.close()
                        busy += groups.pop(digest)
                        continue
                    held.enter_context(locks)
                    for n in groups[digest]:  # a step held under another name (92it where 2ep is kept): linked
                        link_aliases(n, self.steps_per_epoch(n))
                    for n in [n for n in groups[digest] if not lacking(n)]:  # held, or another process replayed it
                        del pending[n.path]
                        groups[digest].remove(n)
                    if not groups[digest]:
                        del groups[digest]
                if groups:
                    self._replay_groups(groups, pending, telemetry)
            if busy:  # our locks released first: the other process may be waiting for one of them
                wait_for_others(busy)

    def _replay_groups(self, groups: dict[str, list[Node]], pending: dict[Path, Node], telemetry: bool) -> None:
        """:meth:`replay` of one wave whose runs' locks are held: train, copy what each run lacks, clean up."""
        import shutil
        import sys

        for same in groups.values():
            for n in same:
                lacks = [f"the states {', '.join(missing_states(n))}"] if missing_states(n) else []
                lacks += ["telemetry"] if telemetry and not RunDir(n.path).has_telemetry() else []
                print(f"lth: {n.path} is trained but lacks {' and '.join(lacks)}: replaying it to record "
                      f"them", file=sys.stderr)
        heads = {}
        for digest, same in groups.items():
            head = same[0]
            lacked: list[tuple[str, Step]] = []
            for other in same[1:]:
                missing = set(missing_states(other))
                lacked += [(name, step) for name, step in other.keep if name in missing]
            extra = extra_keeps(head, lacked, self.steps_per_epoch(head))
            heads[digest] = head.with_keep(extra.values()) if extra else head
        replays = [dataclasses.replace(h, path=h.path / REPLAY) for h in heads.values()]
        failed = self.train_populations(self.populations(replays))
        for digest, same in groups.items():
            head = heads[digest]
            if head.path / REPLAY in failed:
                raise RuntimeError(f"replaying {head.path} failed: {failed[head.path / REPLAY]}")
            src = RunDir(head.path / REPLAY)
            for n in same:
                del pending[n.path]
                run, spe = RunDir(n.path), self.steps_per_epoch(n)
                keep = dict(n.keep)  # the run's lock is held (replay)
                for name in missing_states(n):
                    it = keep[name].iterations(spe)
                    run.save_state(name, src.load_state(src.state_at(it, prefer=name)), it)
                if telemetry and not run.has_telemetry() and src.has_telemetry():
                    run.copy_telemetry(src)
                old, new = run.load_state("final"), src.load_state("final")
                same_final = old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)
                if not same_final:
                    print(f"lth: warning: the replay of {n.path} ended at other final weights than the stored "
                          f"run (float rounding on this device): its replayed states are approximate",
                          file=sys.stderr)
            shutil.rmtree(head.path / REPLAY)

    def states(self, graph: list[Node], failed: dict[Path, str],
               reps: dict[Path, Node] | None = None) -> dict[Path, str]:
        """complete | diverged | failed | blocked (an ancestor diverged or failed) | ready | waiting. A duplicate
        (a path in ``reps``) is never ready: it waits for its representative (and is blocked when that failed or
        is blocked)."""
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

    def check(self, graph: list[Node]) -> None:
        """Bad input (data, shapes, steps, a different run in a node's directory) before anything is written."""
        by_data: dict[DataHparams, list[Node]] = {}
        for n in graph:
            by_data.setdefault(n.spec.data, []).append(n)
            try:
                stored = RunDir(n.path).spec
            except DamagedFile:
                stored = None
            if isinstance(stored, dict) and stored.get("node") not in (None, n.digest):
                raise UserError(f"{n.path} holds a different run (node {stored.get('node')}, asked for {n.digest}); "
                                f"use another --root")
        for hp, ns in by_data.items():
            data = self.dataset(hp)
            check_nodes(ns, data)
            for n in {n.spec.model: n for n in ns}.values():  # every architecture builds on this data
                probe(n, data)

    def populations(self, ready: list[Node]) -> list[list[Node]]:
        """Ready nodes grouped by population key, in chunks of at most the population size."""
        groups: dict[tuple, list[Node]] = {}
        for n in ready:
            groups.setdefault(population_key(n.spec), []).append(n)
        out = []
        for group in groups.values():
            size = self.max_population or default_population(group[0].spec, self.dataset(group[0].spec.data),
                                                              self.options.torch_device())
            out += [group[a:a + size] for a in range(0, len(group), size)]
        return out

    def train_populations(self, groups: list[list[Node]]) -> dict[Path, str]:
        """Train each group as one population; return ``{path: error}`` for the nodes that failed. A synchronous
        executor implements this; an asynchronous one implements :meth:`submit` and :meth:`wait` instead, and
        this default (what :meth:`replay` trains with) submits the groups and waits until every member ended,
        submitting again the members :meth:`wait` left unfinished without an error (retried after a failure)."""
        if type(self).wait is Executor.wait:
            raise NotImplementedError(f"{type(self).__name__} implements neither train_populations nor submit/wait")
        errors: dict[Path, str] = {}
        todo = [g for g in groups if g]
        for _ in range(getattr(self, "retries", 0) + 1):
            if not todo:
                break
            self.submit(todo)
            left, again = {n.path for g in todo for n in g}, []
            while left:
                ended = self.wait()
                if not ended:
                    break
                for g, errs in ended:
                    left.difference_update(n.path for n in g)
                    errors.update(errs)
                    again += [n for n in g if n.path not in errs and not RunDir(n.path).finished()]
            todo = self.populations(again) if again else []
        errors.update({n.path: "not finished after its retries" for g in todo for n in g})
        return errors

    def record(self, node: Node, state: str, error: str | None = None) -> dict[str, Any]:
        """The CONTRACT's run record of a node, with its graph state (``blocked``: an ancestor diverged)."""
        rec = summary(Job(node.spec, node.replicate, node.path), RunDir(node.path))
        if state in ("blocked", "failed", "waiting"):
            rec["status"] = state
        if error:
            rec["error"] = error
        return rec

    def _emit(self, event: str, **info: Any) -> None:
        if self.on_event is not None:
            self.on_event(event, info)


def wait_for_others(busy: list[Node], poll: float = 0.5) -> None:
    """Block until another process releases at least one of ``busy``'s runs (it finished or gave up on it)."""
    import time

    while all(RunDir(n.path).busy() for n in busy):
        time.sleep(poll)


REPLAY = ".replay"  # where a finished run is trained again to keep states it lacks


def extra_keeps(head: Node, wanted: list[tuple[str, Step]], spe: int) -> dict[int, tuple[str, Step]]:
    """The states ``head`` must also keep so that it holds every step of ``wanted`` (name, step), by iteration:
    steps it keeps already are left out; the others are named by their step (the ``--save-states`` convention:
    ``5it``), so names that collide across directories (``rewind`` at 5it and at 10it) never clash."""
    names = {name for name, _ in head.keep}
    covered = {step.iterations(spe) for _, step in head.keep}
    out: dict[int, tuple[str, Step]] = {}
    for _, step in wanted:
        it = step.iterations(spe)
        if it not in covered and it not in out:
            out[it] = (str(step) if str(step) not in names else f"{it}it", step)
    return out


def representative(same: list[Node]) -> Node:
    """Of nodes with one digest (graph order): the one that trains for all, or whose run all others take (see
    :meth:`Executor.deduplicate`)."""
    finished = [n for n in same if RunDir(n.path).finished()]
    if not finished:
        return same[0]
    trained = [n for n in finished if "trained_as" not in (_spec(n) or {})]
    return (trained or finished)[0]


def _scaffold_record(run: RunDir) -> list[str]:
    """The extra states a representative holds (or will hold) for its duplicates (:meth:`Executor.deduplicate`)
    until they are filled: ``scaffold.json`` in its directory (empty when none or unreadable)."""
    try:
        names = run.read_json(paths.SCAFFOLD)
    except DamagedFile:
        return []
    return [str(n) for n in names] if isinstance(names, list) else []


def _spec(node: Node) -> dict | None:
    try:
        spec = RunDir(node.path).spec
    except DamagedFile:
        return None
    return spec if isinstance(spec, dict) else None


def missing_states(node: Node) -> list[str]:
    """The states ``node`` asks to keep that its run directory does not hold."""
    have = RunDir(node.path).states()
    return [name for name, _ in node.keep if name not in have]


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
