"""A lottery experiment as one graph: IMP trunks (one per rewind step) and any branches off their levels.

``LotteryPlan.nodes()`` is what an executor runs; ``LotteryPlan.records()`` reads the results back as the
CONTRACT's records. Because a branch at level l depends only on what the trunk's level l depends on (level
l-1 trained, level 0's states), the executor trains it in the same population as the trunk's level l: the
Frankle & Carbin figure (trunk, reinit, random-mask) costs little more than its trunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lth.data.describe import DataInfo, describe
from lth.graph import Node
from lth.lottery.branches import branch_record, plan_branch
from lth.lottery.trunk import Trunk, check_trunks, level_record
from lth.models import build_model
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

    def __post_init__(self) -> None:
        self.trunks = list({t.digest: t for t in self.trunks}.values())  # a rewind step given twice: one trunk
        spec = self.trunks[0].spec
        self.info = self.info or describe(spec.data, self.data_dir)
        m = spec.model
        model = build_model(m.model, 1, self.info.example_shape, self.info.num_classes, m.norm, m.width)
        self.prunable, self.kinds = model.prunable(), kinds_of(model)
        self.spe = max(1, self.info.steps_per_epoch(spec.data.batch_size))
        total = spec.train.training_steps.iterations(self.spe)
        check_trunks(self.trunks, total, self.spe, self.kinds)
        if self.branch_levels is None:
            self.branch_levels = list(range(1, self.levels + 1))

    def trunk_nodes(self) -> list[Node]:
        """Levels 0..levels of every trunk and replicate."""
        return [t.node(r, lv) for t in self.trunks for r in range(self.replicates) for lv in range(self.levels + 1)]

    def branch_nodes(self) -> list[Node]:
        """Every branch's nodes off every trunk."""
        return [n for t in self.trunks for name, opts in self.branches.items()
                for n in plan_branch(name, t, self.branch_levels or [], self.replicates, opts, self.prunable,
                                     self.kinds, self.info.example_shape, self.info.num_classes)]

    def nodes(self) -> list[Node]:
        """Trunk nodes, then branch nodes."""
        return self.trunk_nodes() + self.branch_nodes()

    def records(self, results: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
        """``{"runs": trunk records, "branches": branch records}`` from the executor's records of :meth:`nodes`."""
        trunk_nodes, branch_nodes = self.trunk_nodes(), self.branch_nodes()
        by_path = {r["path"]: r for r in results}
        trunk = [level_record(t, r, lv, t.rewind.iterations(self.spe), by_path.get(str(t.level_dir(r, lv))))
                 for t in self.trunks for r in range(self.replicates) for lv in range(self.levels + 1)]
        assert len(trunk) == len(trunk_nodes)
        branches = [branch_record(n, by_path[str(n.path)], self._rewind_it(n)) for n in branch_nodes]
        return {"runs": trunk, "branches": branches}

    def _rewind_it(self, node: Node) -> int:
        t = next(t for t in self.trunks if str(t.rewind) == node.meta["rewind"])
        return t.rewind.iterations(self.spe)
