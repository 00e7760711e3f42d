"""Ops: how a node's recipe becomes tensors. One registry, :data:`OPS`, of plain functions.

An op is ``op(ctx, *inputs, **options) -> Setup``: ``inputs`` are the recipe's references already loaded
(state dicts for ``state:<name>``, masks for ``mask``; a node that trains without a mask gives an all-ones
mask), ``options`` the recipe's options. It returns the member's start state (``None``: a fresh initialisation
from the node's init seed) and its mask (``None``: dense). Ops are registered with :func:`op` beside the
experiment that uses them (``lth.lottery.trunk``, each branch's own file), so adding a branch adds its op in
its own file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from lth.engine.batches import generator
from lth.graph.node import MASK, Node, Recipe, Ref
from lth.store import RunDir

State = dict[str, Tensor]


@dataclass
class Setup:
    """What an op makes: a start state (None: fresh init), a mask (None: dense) and ``info``, small JSON values
    the op measured (e.g. a perturbation's effective standard deviation), written into the run's spec.json."""

    state: State | None = None
    mask: State | None = None
    info: dict[str, Any] | None = None


@dataclass
class OpContext:
    """What an op may know about the network and the run it sets up."""

    node: Node
    prunable: list[str]
    kinds: dict[str, str]
    example_shape: tuple[int, ...]
    num_classes: int
    steps_per_epoch: int
    _probe: Any = field(default=None, repr=False)

    def generator(self, *salt: int) -> torch.Generator:
        """A CPU generator for a branch's random draws, fixed by ``salt`` (stream 3: never a training stream)."""
        return generator(torch.device("cpu"), 3, *salt)

    def ones(self) -> State:
        """An all-ones mask over the prunable tensors."""
        shapes = dict(self.probe_state())
        return {k: torch.ones_like(shapes[k], dtype=torch.bool) for k in self.prunable}

    def probe_state(self) -> State:
        """A single network's state of the node's architecture (values meaningless: for names and shapes)."""
        if self._probe is None:
            from lth.models import build_model

            m = self.node.spec.model
            self._probe = build_model(m.model, 1, self.example_shape, self.num_classes, m.norm, m.width)
        return self._probe.member_state(0)

    def fresh_state(self) -> State:
        """A fresh initialisation of the node's network on its own data (the node's init seed), as the engine
        would draw it for a member that starts without a state."""
        from lth.models import build_model

        spec = self.node.spec
        m = spec.model
        model = build_model(m.model, 1, self.example_shape, self.num_classes, m.norm, m.width)
        seed = self.node.replicate if spec.train.init_seed is None else spec.train.init_seed
        model.init_member(0, m.init, generator(torch.device("cpu"), 0, seed))
        return model.member_state(0)


Op = Callable[..., Setup]
OPS: dict[str, Op] = {}


def op(name: str) -> Callable[[Op], Op]:
    """Register ``fn`` as the op ``name``."""
    def deco(fn: Op) -> Op:
        if name in OPS and OPS[name] is not fn:
            raise ValueError(f"op {name!r} is registered twice")
        OPS[name] = fn
        return fn
    return deco


@op("ticket")
def ticket(ctx: OpContext, state: State | None = None, mask: State | None = None) -> Setup:
    """A given start state and mask, unchanged (``state`` None: a fresh initialisation under ``mask``)."""
    return Setup(state, mask)


def load_ref(ref: Ref, ctx_for: Callable[[Node], OpContext]) -> State:
    """Load one reference: a stored state of a trained node, or the mask a node trains under."""
    if ref.what != MASK:
        return RunDir(ref.node.path).load_state(ref.state_name)
    run = RunDir(ref.node.path)
    if run.done is not None and run.has_mask():  # trained: the mask it trained under
        return run.load_mask()
    mask = resolve(ref.node, ctx_for(ref.node)).mask
    return mask if mask is not None else ctx_for(ref.node).ones()


def resolve(node: Node, ctx: OpContext, ctx_for: Callable[[Node], OpContext] | None = None) -> Setup:
    """The start state and mask of ``node`` (its parents must be trained)."""
    if node.setup is None:
        return Setup()
    ctx_for = ctx_for or (lambda n: OpContext(n, ctx.prunable, ctx.kinds, ctx.example_shape, ctx.num_classes,
                                              ctx.steps_per_epoch, ctx._probe))
    recipe: Recipe = node.setup
    if recipe.op not in OPS:
        raise KeyError(f"unknown op {recipe.op!r} in the recipe of {node.path} (registered: {', '.join(OPS)})")
    inputs = [load_ref(r, ctx_for) for r in recipe.refs]
    return OPS[recipe.op](ctx, *inputs, **recipe.opts)
