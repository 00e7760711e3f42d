"""What every branch shares: its options base class, the planning context, and the registry entry type.

A branch is one file in this package: an options dataclass (subclass of :class:`BranchOptions`), the op(s)
that make its start and mask from the trunk's references (registered with :func:`lth.graph.op`), and a plan
function ``plan(ctx, replicate, level) -> list[Node]``; one line in :data:`lth.lottery.branches.BRANCHES`
registers it. Its runs live beside the trunk at ``lottery_<hash>/replicate_<r>/branch_<name>_<hash>/level_<l>``, or,
on a ticket given as tensors (:class:`TicketContext`), beside it at ``ticket_<hash>/branch_<name>_<hash>/level_0``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lth.errors import UserError, ref
from lth.graph import Node, Recipe, Ref
from lth.lottery.trunk import Trunk
from lth.spec import Step, TrainSpec, help_field, spec_hash, to_dict
from lth.store import run_path

# Distinct seed ranges, so a branch's fresh draws never coincide with a trunk's replicate seeds.
REINIT_SEED_BASE = 1_000_000


@dataclass(frozen=True)
class BranchOptions:
    """Options every branch has. A branch's own options subclass this (only non-defaults count in its hash)."""

    branch_seed: int = help_field(0, "seed of the branch's random draws (new initialisation, mask, D_n samples)")

    def validate(self) -> None:
        """UserError (one line naming the flag) for a value outside a field's choices."""
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                v = getattr(self, f.name)
                raise UserError(f"{ref(f.name)} {v!r}: unknown value; allowed: {', '.join(choices)}", value=v,
                                allowed=", ".join(choices))


@dataclass
class BranchContext:
    """What a branch's plan function knows: the trunk, its options and the network's names and shapes."""

    trunk: Trunk
    name: str
    options: Any
    prunable: list[str]
    kinds: dict[str, str]
    example_shape: tuple[int, ...]
    num_classes: int

    @property
    def digest(self) -> str:
        """The hash of the branch's options (its directory is ``branch_<name>_<digest>``). Only non-default
        options count, except those an options class lists in ``ALWAYS_HASHED`` (a default that changed: runs
        made under the old default must not be mistaken for new ones)."""
        always = {n: getattr(self.options, n) for n in getattr(self.options, "ALWAYS_HASHED", ())}
        return spec_hash(self.options, always) if always else spec_hash(self.options)

    def run_dir(self, replicate: int, level: int) -> Path:
        """``.../replicate_<r>/branch_<name>_<hash>/level_<l>``."""
        return run_path(self.trunk.root, "lottery", self.trunk.digest, replicate, level,
                        branch=f"{self.name}_{self.digest}")

    def ticket(self, replicate: int, level: int) -> Ref:
        """The mask of the trunk's level (all ones at level 0)."""
        return Ref(self.trunk.node(replicate, level), "mask")

    def start(self, replicate: int, level: int) -> Ref:
        """Where a branch at ``level`` starts: level 0's state at the rewind step, or the pretrained state (with
        ``--pretrain-sparse``: the one pretrained under ``level``'s mask, as the trunk's level starts there)."""
        pre = self.trunk.pretrain
        if pre is not None and pre.sparse and level < 1:
            raise UserError(f"branch {self.name} at level 0 with {ref('pretrain_sparse')}: sparse pretraining is per "
                            "pruned level (1, 2, ...); level 0 has none to start from")
        return self.trunk.start_ref(replicate, level)

    def dense(self, replicate: int, name: str = "final") -> Ref:
        """A state of the trunk's dense level 0."""
        return Ref(self.trunk.node(replicate, 0), f"state:{name}")

    def meta(self, replicate: int, level: int) -> dict[str, Any]:
        """What the branch's spec.json records of where it hangs off: the trunk level's record."""
        return self.trunk.meta(replicate, level)

    def node(self, replicate: int, level: int, setup: Recipe | None, spec: TrainSpec | None = None,
             rewound: bool = True) -> Node:
        """A node in this branch's directory, recording the branch in spec.json. ``rewound``: it starts at the
        trunk's rewind step k (and keeps the state there), else at step 0."""
        meta = {**self.meta(replicate, level), "kind": "branch", "branch": self.name,
                "branch_options": to_dict(self.options)}
        start = self.trunk.rewind if rewound else Step(0, "it")
        keep = self.trunk.keep if rewound else ()
        return Node(spec or self.trunk.spec, replicate, self.run_dir(replicate, level), start_step=start,
                    setup=setup, keep=keep, meta=meta)


@dataclass
class TicketContext(BranchContext):
    """A branch on a ticket given as tensors (``lth.api.branch(name, preset, ticket=(state, mask))``) instead of a
    trunk's level: its mask is the given node's (:mod:`lth.graph.given`), its start the given state (the tensors
    are m * theta_0, at the trunk's rewind step), its runs live under the given node's directory at
    ``ticket_<hash>/branch_<name>_<hash>/level_0``; level 0, replicate 0. ``trunk`` still carries the spec, the
    pruning and the rewind step the branch trains with; no trunk node is referenced. ``pruned``: how many weights
    the ticket's mask removes (small-dense's width)."""

    given: Node | None = None
    pruned: int = 0

    def run_dir(self, replicate: int, level: int) -> Path:
        """``ticket_<hash>/branch_<name>_<hash>/level_<l>``."""
        assert self.given is not None
        return Path(self.given.path) / f"branch_{self.name}_{self.digest}" / f"level_{level}"

    def ticket(self, replicate: int, level: int) -> Ref:
        """The given mask."""
        return Ref(self.given, "mask")

    def start(self, replicate: int, level: int) -> Ref:
        """The given state."""
        return Ref(self.given, "state:init")

    def dense(self, replicate: int, name: str = "final") -> Ref:
        """A bare ticket has no trained dense network: a UserError naming ``ticket`` and the branches that run on
        one."""
        from lth.lottery.branches import BRANCHES

        can = [n for n, b in BRANCHES.items() if not b.dense]
        raise UserError(f"{ref('ticket')}: branch {self.name} needs the trunk's dense network ({name} state), which "
                        f"a ticket given as tensors does not have; allowed: {', '.join(can)}", value=self.name,
                        allowed=", ".join(can))

    def meta(self, replicate: int, level: int) -> dict[str, Any]:
        """The preset, the level (0), the rewind step and the ticket's directory, instead of a trunk's record."""
        assert self.given is not None
        return {"kind": "ticket", "preset": self.trunk.preset, "level": level, "rewind": str(self.trunk.rewind),
                "ticket": str(self.given.path)}


Plan = Callable[[BranchContext, int, int], list[Node]]


@dataclass(frozen=True)
class Branch:
    """A registry entry: the branch's options class, its plan function and a one-line summary."""

    options: type
    plan: Plan
    summary: str
    dense: bool = False  # its plan references the trunk's dense network (ctx.dense): it cannot run on a bare ticket
