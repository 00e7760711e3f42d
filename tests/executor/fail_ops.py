"""A test-only op that fails: every attempt appends the node's path to ``log``, then raises."""

from __future__ import annotations

from lth.graph import OpContext, Setup, op


@op("test_fail")
def fail(ctx: OpContext, *parents: dict, log: str) -> Setup:
    """Log the attempt and raise (an injected failure: the node can never train)."""
    with open(log, "a") as f:
        f.write(f"{ctx.node.path}\n")
    raise RuntimeError(f"injected failure in {ctx.node.path.name}")
