"""The states a node keeps: those its run directory lacks (:func:`missing_states`), and the extra states one run
keeps so that it holds the steps other directories ask for (:func:`extra_keeps`), as deduplication and replay
use them."""

from __future__ import annotations

from lth.graph import Node
from lth.spec import Step
from lth.store import RunDir


def missing_states(node: Node) -> list[str]:
    """The states ``node`` asks to keep that its run directory does not hold."""
    have = RunDir(node.path).states()
    return [name for name, _ in node.keep if name not in have]


def extra_keeps(head: Node, wanted: list[tuple[str, Step]], spe: int) -> dict[int, tuple[str, Step]]:
    """The states ``head`` must also keep so that it holds every step of ``wanted`` (name, step), by iteration:
    steps it keeps already are left out; the others are named by their step (the ``--save-states`` convention:
    ``5it``), so names that collide across directories (``rewind`` at 5it and at 10it) never clash."""
    names = {name for name, _ in head.keep}
    covered = {step.iterations(spe) for _, step in head.keep}
    out: dict[int, tuple[str, Step]] = {}
    for _, step in wanted:
        it = step.iterations(spe)
        if it not in covered and it not in out:
            out[it] = (str(step) if str(step) not in names else f"{it}it", step)
    return out
