"""Replay: a finished run asked for states it did not keep (``node.keep``, e.g. ``--save-states`` added after the
run; or telemetry) trains again in ``<run>/.replay/`` with the extra states, the missing ones are copied into
``<run>/states/`` (and ``states/index.json``), and the replay directory is deleted (:func:`replay`)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from lth.executor.keeps import extra_keeps, missing_states
from lth.executor.schedule import wait_for_others
from lth.executor.work import link_aliases
from lth.graph import Node
from lth.spec import Step
from lth.store import RunDir
from lth.store.run import Busy

REPLAY = ".replay"  # where a finished run is trained again to keep states it lacks

Train = Callable[[list[Node]], dict[Path, str]]  # train nodes as populations; {path: error} of those that failed


def replay(graph: list[Node], steps_per_epoch: Callable[[Node], int], train: Train, telemetry: bool) -> None:
    """Finished runs of ``graph`` asked for states they did not keep get them by deterministic replay: the node
    trains again (``train``) in ``<run>/.replay/`` with the extra states (and telemetry, when ``telemetry`` and
    the run has none), the missing ones are copied into the run, and the replay directory is deleted. Parents
    replay before children; said on stderr. Directories of one run (one digest: one filled from the other)
    replay once, keeping what each of them lacks (named by its step). A replay holds the locks of its runs: where
    another process holds one (training or replaying it), the run waits for it and is looked at again."""

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
                    link_aliases(n, steps_per_epoch(n))
                for n in [n for n in groups[digest] if not lacking(n)]:  # held, or another process replayed it
                    del pending[n.path]
                    groups[digest].remove(n)
                if not groups[digest]:
                    del groups[digest]
            if groups:
                _replay_groups(groups, pending, steps_per_epoch, train, telemetry)
        if busy:  # our locks released first: the other process may be waiting for one of them
            wait_for_others(busy)


def _replay_groups(groups: dict[str, list[Node]], pending: dict[Path, Node], steps_per_epoch: Callable[[Node], int],
                   train: Train, telemetry: bool) -> None:
    """:func:`replay` of one wave whose runs' locks are held: train, copy what each run lacks, clean up."""
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
        extra = extra_keeps(head, lacked, steps_per_epoch(head))
        heads[digest] = head.with_keep(extra.values()) if extra else head
    failed = train([dataclasses.replace(h, path=h.path / REPLAY) for h in heads.values()])
    for digest, same in groups.items():
        head = heads[digest]
        if head.path / REPLAY in failed:
            raise RuntimeError(f"replaying {head.path} failed: {failed[head.path / REPLAY]}")
        src = RunDir(head.path / REPLAY)
        for n in same:
            del pending[n.path]
            run, spe = RunDir(n.path), steps_per_epoch(n)
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
