"""Run nodes: frozen descriptions of runs whose starts and masks are references to other runs.

A :class:`Node` says what to train (a :class:`~lth.spec.TrainSpec`), which replicate it is, where it lives in
the store, the step it starts at, and how its starting weights and mask are made: ``setup`` is ``None`` (a fresh
initialisation from the node's init seed, no mask) or a :class:`Recipe`, the name of an op in
:data:`lth.graph.ops.OPS` applied to :class:`Ref` s (another node's stored state, or the mask another node
trains under) with JSON-able options. A node never holds a tensor: the executor resolves its recipe just before
training.

A node's :attr:`Node.digest` is built from its spec, replicate, start step and recipe, and a recipe's identity
from the digests of the nodes it references, so the identity of every node in a graph is known before any of
it has trained. The store path is chosen by the experiment that makes the node (so the store reads like the
experiment); the digest is recorded in the run's ``spec.json`` and the executor refuses to train a node into a
directory that holds a different one.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lth.spec import Step, TrainSpec, non_default

STATE_PREFIX = "state:"
MASK = "mask"


def freeze(options: dict[str, Any] | None) -> str:
    """Options as canonical JSON (sorted keys, steps as strings), so a recipe is hashable and exact."""
    return json.dumps(options or {}, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Ref:
    """What a recipe reads from another node: ``state:<name>`` (a stored state: init, final, rewind, or a step
    such as ``500it``; needs that node trained) or ``mask`` (the mask that node trains under, computed from its
    own recipe; needs only that node's parents trained)."""

    node: Node
    what: str

    def __post_init__(self) -> None:
        if self.what != MASK and not self.what.startswith(STATE_PREFIX):
            raise ValueError(f"bad reference {self.what!r}: expected 'mask' or 'state:<name>'")

    @property
    def state_name(self) -> str:
        """The stored state's name (``final`` for ``state:final``)."""
        return self.what[len(STATE_PREFIX):]

    def identity(self) -> list[str]:
        """``[node digest, what]``."""
        return [self.node.digest, self.what]


@dataclass(frozen=True)
class Recipe:
    """An op of :data:`lth.graph.ops.OPS` applied to references with options; it yields a start state and/or a
    mask."""

    op: str
    refs: tuple[Ref, ...] = ()
    options: str = "{}"  # canonical JSON (see :func:`freeze`)

    @classmethod
    def make(cls, op: str, *refs: Ref, **options: Any) -> Recipe:
        """``Recipe.make("imp", ref_a, ref_b, fraction=0.2)``."""
        return cls(op, tuple(refs), freeze(options))

    @property
    def opts(self) -> dict[str, Any]:
        """The options as a dict (a fresh copy)."""
        return json.loads(self.options)

    def identity(self) -> dict[str, Any]:
        """JSON identity: op, options, and the digests of what it references."""
        return {"op": self.op, "options": self.opts, "refs": [r.identity() for r in self.refs]}


@dataclass(frozen=True, eq=False)
class Node:
    """One run of a graph (see the module docstring). Equality and hashing go by digest and path (a node's
    fields reference whole chains of other nodes; comparing those field by field would be exponential)."""

    spec: TrainSpec
    replicate: int
    path: Path
    start_step: Step = Step(0, "it")
    setup: Recipe | None = None
    keep: tuple[tuple[str, Step], ...] = ()  # extra states to store: (name, step); not part of the identity
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)  # recorded in spec.json

    @functools.cached_property
    def digest(self) -> str:
        """12 hex digits of the node's identity (spec, replicate, start step, recipe with its references)."""
        ident = {"spec": non_default(self.spec), "replicate": self.replicate, "start": str(self.start_step),
                 "setup": None if self.setup is None else self.setup.identity()}
        text = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.md5(text.encode()).hexdigest()[:12]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and other.digest == self.digest and other.path == self.path

    def __hash__(self) -> int:
        return hash((self.digest, self.path))

    @property
    def name(self) -> str:
        """A short readable name for progress lines (the path below the experiment directory)."""
        parts = self.path.parts
        for i, p in enumerate(parts):
            if p.startswith("replicate_"):
                return "/".join(parts[i - 1:])
        return str(self.path)

    def parents(self) -> list[Node]:
        """The nodes that must be trained before this one (in reference order, without repeats)."""
        out: dict[Path, Node] = {}
        for n in _setup_parents(self.setup):
            out.setdefault(n.path, n)
        return list(out.values())

    def with_keep(self, keep: Iterable[tuple[str, Step]]) -> Node:
        """A copy asking for more stored states."""
        merged = dict(self.keep)
        merged.update(dict(keep))
        return dataclasses.replace(self, keep=tuple(sorted(merged.items())))


def _setup_parents(setup: Recipe | None) -> Iterator[Node]:
    if setup is None:
        return
    for r in setup.refs:
        if r.what == MASK:  # a mask is computed from the referenced node's own recipe
            yield from _setup_parents(r.node.setup)
        else:
            yield r.node


def closure(nodes: Iterable[Node]) -> list[Node]:
    """Every node of ``nodes`` and every ancestor, parents before children, one node per path.

    ValueError when two different nodes claim one path.
    """
    order: list[Node] = []
    seen: dict[Path, Node] = {}

    def visit(n: Node, stack: tuple[Path, ...]) -> None:
        if n.path in seen:
            if seen[n.path].digest != n.digest:
                raise ValueError(f"two different runs share the directory {n.path}")
            return
        if n.path in stack:
            raise ValueError(f"cycle in the run graph at {n.path}")
        for p in n.parents():
            visit(p, stack + (n.path,))
        seen[n.path] = n
        order.append(n)

    for n in nodes:
        visit(n, ())
    return order
