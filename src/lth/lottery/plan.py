"""A lottery experiment as one graph: IMP trunks (one per rewind step) and any branches off their levels.

``LotteryPlan.nodes()`` is what an executor runs; ``LotteryPlan.records()`` reads the results back as the
CONTRACT's records. Because a branch at level l depends only on what the trunk's level l depends on (level
l-1 trained, level 0's states), the executor trains it in the same population as the trunk's level l: the
Frankle & Carbin figure (trunk, reinit, random-mask) costs little more than its trunk.

A trunk with pretraining (``Trunk.pretrain``) adds its pretraining nodes (ancestors of its levels 1..L); every
branch rewound to k starts from the pretrained state too (it *is* the rewinding point). Sparse pretraining has
one pretrained start per level, which branches cannot yet ask for (``BranchContext.start`` takes no level): a
plan with both is refused.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lth.data.describe import DataInfo, describe
from lth.graph import Node
from lth.lottery.branches import branch_record, plan_branch
from lth.lottery.trunk import Trunk, check_trunks, level_record
from lth.models import MODELS, resolve, shape_model
from lth.prune import kinds_of


@dataclass
class LotteryPlan:
    """Trunks, levels, replicates and branches ``{name: options}`` at ``branch_levels`` (default 1..levels)."""

    trunks: list[Trunk]
    levels: int
    replicates: int = 1
    branches: dict[str, Any] = field(default_factory=dict)
    branch_levels: list[int] | None = None
    data_dir: str | Path | None = None
    info: DataInfo | None = None
    _branch_nodes: list[Node] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.trunks = list({t.digest: t for t in self.trunks}.values())  # a rewind step given twice: one trunk
        spec = self.trunks[0].spec
        self.info = self.info or describe(spec.data, self.data_dir)
        m = spec.model
        prunable, kinds = layout(m.model, self.info.example_shape, self.info.num_classes, m.norm, m.width)
        self.prunable, self.kinds = list(prunable), dict(kinds)
        self.spe = max(1, self.info.steps_per_epoch(spec.data.batch_size))
        total = spec.train.training_steps.iterations(self.spe)
        check_trunks(self.trunks, total, self.spe, self.kinds)
        if self.branch_levels is None:
            self.branch_levels = list(range(1, self.levels + 1))

    def trunk_nodes(self) -> list[Node]:
        """Levels 0..levels of every trunk and replicate."""
        return [t.node(r, lv) for t in self.trunks for r in range(self.replicates) for lv in range(self.levels + 1)]

    def branch_nodes(self) -> list[Node]:
        """Every branch's nodes off every trunk (planned once: ``nodes`` and ``records`` both ask)."""
        if self._branch_nodes is None:
            self._branch_nodes = [n for t in self.trunks for name, opts in self.branches.items()
                                  for n in plan_branch(name, t, self.branch_levels or [], self.replicates, opts,
                                                       self.prunable, self.kinds, self.info.example_shape,
                                                       self.info.num_classes)]
        return self._branch_nodes

    def pretrain_nodes(self) -> list[Node]:
        """The pretraining nodes of every trunk that has pretraining (they are also ancestors of the levels)."""
        return [n for t in self.trunks for r in range(self.replicates) for n in t.pretrain_nodes(r, self.levels)]

    def nodes(self) -> list[Node]:
        """Trunk nodes, then branch nodes (pretraining nodes come in as ancestors of the trunk's levels)."""
        return self.trunk_nodes() + self.branch_nodes()

    def records(self, results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """``{"runs": trunk records, "branches": branch records}`` from the executor's records of :meth:`nodes`."""
        by_path = {r["path"]: r for r in results}
        trunk = [level_record(t, r, lv, t.rewind.iterations(self.spe), by_path.get(str(t.level_dir(r, lv))))
                 for t in self.trunks for r in range(self.replicates) for lv in range(self.levels + 1)]
        branches = [branch_record(n, by_path[str(n.path)], self._rewind_it(n)) for n in self.branch_nodes()]
        out: dict[str, list[dict[str, Any]]] = {"runs": trunk, "branches": branches}
        pre = self.pretrain_nodes()
        if pre:
            out["pretrain"] = [pretrain_record(n, by_path.get(str(n.path))) for n in pre]
        return out

    def _rewind_it(self, node: Node) -> int:
        t = next(t for t in self.trunks if str(t.rewind) == node.meta["rewind"])
        return t.rewind.iterations(self.spe)


def pretrain_record(node: Node, result: dict[str, Any] | None) -> dict[str, Any]:
    """A pretraining node's record: path, replicate, level (None: dense pretraining), task, role (``pretrain``, or
    ``head`` for the node that replaces the rotation head), status and final test accuracy (on the task's data)."""
    from lth.store import RunDir

    done = RunDir(node.path).done or {}
    rec = {"path": str(node.path), "replicate": node.replicate, "level": node.meta.get("level"),
           "task": node.meta.get("task"), "role": node.meta.get("role"), "rewind": node.meta.get("rewind"),
           "status": done.get("status", (result or {}).get("status", "missing")),
           "final_test_accuracy": done.get("final_test_accuracy")}
    if result and "error" in result:
        rec["error"] = result["error"]
    return rec


def layout(model: str, example_shape: tuple[int, ...], num_classes: int, norm: str,
           width: float) -> tuple[tuple[str, ...], dict[str, str]]:
    """(prunable tensor names, ``{name: kind}``) of a network, from its shape-only build
    (:func:`lth.models.shape_model`), cached per builder: a study plans many trunks of one network."""
    family, _ = resolve(model)
    return _layout(MODELS[family], model, tuple(example_shape), num_classes, norm, width)


@functools.lru_cache(maxsize=256)
def _layout(builder: Callable[..., Any], model: str, example_shape: tuple[int, ...], num_classes: int, norm: str,
            width: float) -> tuple[tuple[str, ...], dict[str, str]]:
    del builder  # part of the cache key only: a name registered again builds another network
    net = shape_model(model, example_shape, num_classes, norm, width)
    return tuple(net.prunable()), kinds_of(net)
