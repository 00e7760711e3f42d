"""The executor interface over a run graph: the loop every executor shares.

``run(nodes)`` takes the nodes a command asks for, adds their ancestors, and repeats: find the nodes whose
parents are all trained (ready), group them by population key into populations of at most
``max_population``, submit those (:meth:`Executor.submit`: trained in this process, as Ray tasks or as
Slurm array jobs), wait for any to end (:meth:`Executor.wait`) and look again, until nothing is ready or in
flight. A finished node is never trained again (also not by another
process: each population locks its members' directories); a node whose parent diverged or failed is
*blocked* and reported, and everything that does not depend on it goes on.

The parts change for different reasons and live apart: :mod:`lth.executor.schedule` (node states, populations,
waiting for other processes), :mod:`lth.executor.dedupe` (nodes with one digest in several directories: one run,
trained once by a representative, the others filled from it), :mod:`lth.executor.replay` (finished runs that
lack states they are asked for) and :mod:`lth.executor.keeps` (which states a node lacks or must also keep).
Their names stay importable from here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lth.data import Dataset, load_dataset
from lth.data.images import check_same_images, is_lazy
from lth.engine.stream import resolve_decoder
from lth.engine.train import EngineOptions, Job, summary
from lth.errors import UserError
from lth.executor.capacity import check_store, count_params
from lth.executor.dedupe import deduplicate, fill_duplicates, representative
from lth.executor.distributed import check_distributed, world_size_of
from lth.executor.keeps import extra_keeps, missing_states
from lth.executor.replay import REPLAY, replay
from lth.executor.schedule import blocked_by, default_population, graph_states, group_populations, wait_for_others
from lth.executor.work import check_nodes, discard_damaged, probe
from lth.graph import Node, closure
from lth.spec import DataHparams
from lth.store import RunDir
from lth.store.plans import mark_failed, record_plan
from lth.store.run import Busy, DamagedFile

__all__ = ["REPLAY", "Event", "Executor", "default_population", "extra_keeps", "missing_states", "representative",
           "wait_for_others"]

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
    plan_root: Path | None = None  # the store whose plans/ records each graph this executor runs (None: not recorded)
    command: str = "run"  # the command recorded as planning it (lth.store.plans)
    _plan_file: Path | None = field(default=None, repr=False)  # this executor's plan file: one per invocation
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
        if self.plan_root is not None:  # what was asked for, before anything trains (lth status compares)
            self._plan_file = record_plan(self.plan_root, self.command, graph, self._plan_file)
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
                    for path, error in errors.items():  # in the store too: lth status names it
                        with contextlib.suppress(OSError):
                            mark_failed(path, error)
            self.replay(asked)  # runs another process finished meanwhile may still lack what this command keeps
        state = self.states(graph, failed, reps)
        return [self.record(n, state[n.path], failed.get(n.path) or self.blocked_by(n, state, failed, reps))
                for n in nodes]

    @staticmethod
    def blocked_by(node: Node, state: dict[Path, str], failed: dict[Path, str],
                   reps: dict[Path, Node] | None = None) -> str | None:
        """For a node blocked by an ancestor that failed: which (its error names them); else None
        (:func:`lth.executor.schedule.blocked_by`)."""
        return blocked_by(node, state, failed, reps)

    def steps_per_epoch(self, node: Node) -> int:
        """Iterations per epoch of ``node``'s data (what its steps in epochs mean)."""
        return max(1, self.dataset(node.spec.data).train_x.shape[0] // node.spec.data.batch_size)

    def deduplicate(self, graph: list[Node]) -> tuple[list[Node], dict[Path, Node]]:
        """Nodes of ``graph`` with one digest and different directories are one run, trained once by a
        representative that keeps every state the others keep (:func:`lth.executor.dedupe.deduplicate`). Returns
        the graph with each representative's keeps extended, and ``{path of an unfinished duplicate: its
        representative}``."""
        return deduplicate(graph, self.steps_per_epoch, self._scaffold)

    def fill_duplicates(self, graph: list[Node], reps: dict[Path, Node], failed: dict[Path, str]) -> None:
        """Fill every unfinished duplicate whose representative is finished, recording those that cannot be
        filled in ``failed``, and remove the scaffold states of representatives whose duplicates are all filled
        (:func:`lth.executor.dedupe.fill_duplicates`)."""
        fill_duplicates(graph, reps, failed, self.steps_per_epoch, self._scaffold)

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
        the run) get them by deterministic replay, trained with :meth:`train_populations`
        (:func:`lth.executor.replay.replay`)."""
        replay(graph, self.steps_per_epoch, lambda nodes: self.train_populations(self.populations(nodes)),
               self.options.telemetry_every is not None)

    def states(self, graph: list[Node], failed: dict[Path, str],
               reps: dict[Path, Node] | None = None) -> dict[Path, str]:
        """complete | diverged | failed | blocked (an ancestor diverged or failed) | ready | waiting
        (:func:`lth.executor.schedule.graph_states`)."""
        return graph_states(graph, failed, reps)

    def check(self, graph: list[Node]) -> None:
        """Bad input (data, shapes, steps, a different run in a node's directory, runs the disk cannot hold)
        before anything is written."""
        by_data: dict[DataHparams, list[Node]] = {}
        sources: dict[Path, dict] = {}  # what each stored run read (its spec.json's data_source)
        for n in graph:
            by_data.setdefault(n.spec.data, []).append(n)
            try:
                stored = RunDir(n.path).spec
            except DamagedFile:
                stored = None
            if isinstance(stored, dict) and stored.get("node") not in (None, n.digest):
                raise UserError(f"{n.path} holds a different run (node {stored.get('node')}, asked for {n.digest}); "
                                f"use another --root")
            if isinstance(stored, dict) and isinstance(stored.get("data_source"), dict):
                sources[n.path] = stored["data_source"]
        for hp, ns in by_data.items():
            data = self.dataset(hp)
            if is_lazy(data.train_x):  # images read from disk: a decoder that is installed here
                resolve_decoder(self.options.decoder, self.options.torch_device())
                check_same_images({n.path: sources[n.path] for n in ns if n.path in sources}, data.source)
            check_nodes(ns, data)
            for n in {n.spec.model: n for n in ns}.values():  # every architecture builds on this data
                probe(n, data)
        check_distributed(self, graph)  # a world size the batch, the devices or the nodes cannot hold
        check_store(graph, self.params, self.plan_root)  # the disk for what is still to train (not finished)

    def params(self, node: Node) -> int:
        """Parameters of ``node``'s network on its data (loaded once per executor)."""
        data, m = self.dataset(node.spec.data), node.spec.model
        return count_params(m.model, m.norm, m.width, tuple(data.example_shape), data.num_classes)

    def world_size(self, group: list[Node]) -> int:
        """How many processes the population ``group`` trains on (:func:`lth.executor.distributed.world_size_of`:
        the options' ``world_size``, else chosen from the network, the data and the devices)."""
        return world_size_of(self, group)

    def populations(self, ready: list[Node]) -> list[list[Node]]:
        """Ready nodes grouped by population key, in chunks of at most the population size (``max_population``,
        else :func:`~lth.executor.schedule.default_population`)."""
        return group_populations(ready, lambda n: self.max_population or default_population(
            n.spec, self.dataset(n.spec.data), self.options.torch_device()))

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
