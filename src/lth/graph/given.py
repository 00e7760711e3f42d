"""Given nodes: runs whose weights are given as tensors (a ticket held in a notebook) instead of trained.

A given node is a node like any other (a spec, a store path, a digest), so other nodes reference its state and mask
with :class:`~lth.graph.Ref` s and the executor treats it as a finished parent. Its recipe is the op ``given``, whose
only option is the hash of the tensors: the node's identity (and so every child's) changes with the tensors, and the
same tensors give the same node. The study that makes one writes its run directory with :func:`write_given` before
the executor runs: ``spec.json`` (with the node's digest), ``states/init.pt`` and ``states/final.pt`` (the given
state, at iteration 0), ``mask.pt`` (when there is a mask), an empty ``telemetry.csv`` (nothing trained, nothing to
record: a given run is never replayed) and ``done.json`` last, each written atomically under the run's lock. A given
node is never trained: resolving its recipe is an error naming the directory.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lth.graph.node import Node, Recipe
from lth.graph.ops import OpContext, Setup, op
from lth.spec import Step, TrainSpec, to_dict
from lth.store import RunDir
from lth.store.run import DamagedFile

GIVEN = "given"


def tensors_hash(*parts: Mapping[str, Tensor] | None, salt: Any = None) -> str:
    """SHA-256 (hex) of the tensors' bytes: every part's names, dtypes, shapes and values in name order (``None``
    parts count as absent), and ``salt`` (JSON) when given."""
    h = hashlib.sha256()
    for i, part in enumerate(parts):
        h.update(f"part {i}: {'none' if part is None else len(part)}\n".encode())
        for name in sorted(part or {}):
            t = part[name].detach().cpu().contiguous()  # type: ignore[index]
            h.update(f"{name} {t.dtype} {tuple(t.shape)}\n".encode())
            h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    if salt is not None:
        h.update(json.dumps(salt, sort_keys=True, default=str).encode())
    return h.hexdigest()


def given_node(spec: TrainSpec, path: Path, digest: str, meta: dict[str, Any] | None = None) -> Node:
    """The node of tensors given for ``spec``'s network, stored at ``path``; ``digest`` is their
    :func:`tensors_hash` (the node's identity). Replicate 0, start step 0; its state is ``state:final`` (and
    ``state:init``), its mask ``mask``."""
    return Node(spec, 0, Path(path), start_step=Step(0, "it"), setup=Recipe.make(GIVEN, sha256=digest),
                meta={"kind": "given", "sha256": digest, **(meta or {})})


def given_spec(spec: TrainSpec) -> TrainSpec:
    """What a given node records of a study's spec: its data and network only (the tensors do not depend on how
    anything trains, so two studies that train differently share one given node)."""
    return TrainSpec(data=spec.data, model=spec.model)


def write_given(node: Node, state: Mapping[str, Tensor], mask: Mapping[str, Tensor] | None = None) -> bool:
    """Write the run directory of the given node ``node`` (see the module docstring), under its lock; nothing when
    it already holds this node, whole and finished (the same tensors: reused). True when written."""
    run = RunDir(node.path)
    with run.lock():
        if _holds(run, node):
            return False
        run.drop_done()  # from here on unfinished until the marker is written again, last
        for stale in (run.mask_file, run.state_file("init"), run.state_file("final")):
            stale.unlink(missing_ok=True)
        run.write_spec({**to_dict(node.spec), "replicate": node.replicate, **node.meta, "node": node.digest})
        run.save_state("init", dict(state), 0)
        run.link_state(run, "init", "final")
        if mask is not None:
            run.save_mask(dict(mask))
        run.write_telemetry([])
        run.write_done({"status": "complete", "iteration": 0, "step": "0it", "final_test_accuracy": None,
                        "given": True})
    return True


def _holds(run: RunDir, node: Node) -> bool:
    """Whether ``run`` holds the given node ``node``, finished and readable."""
    try:
        spec = run.spec
    except DamagedFile:
        return False
    return isinstance(spec, dict) and spec.get("node") == node.digest and run.complete() and not run.damaged()


@op(GIVEN)
def given(ctx: OpContext, *, sha256: str) -> Setup:
    """A given node is written by the study that made it, never trained: reaching here means its files are gone."""
    raise RuntimeError(f"{ctx.node.path}: the tensors given for this run (sha256 {sha256[:12]}) are not stored there; "
                       "run the study that was given them again")


__all__ = ["GIVEN", "given_node", "given_spec", "tensors_hash", "write_given"]
