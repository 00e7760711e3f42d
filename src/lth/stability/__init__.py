"""Instability analysis and loss landscapes on the run graph (Frankle, Dziugaite, Roy & Carbin, ICML 2020).

:mod:`lth.stability.plan` makes the copies as graph nodes; :mod:`lth.stability.analysis` evaluates the linear
paths between trained copies (as populations) and stores the results; :mod:`lth.stability.landscape`
evaluates a plane of states through them. See docs/stability.md.
"""

from lth.stability.plan import (
    COPY_SEED_BASE,
    SUBNETWORKS,
    TICKET,
    Stability,
    StabilityPlan,
    copy_seed,
    trajectory_steps,
)

__all__ = ["COPY_SEED_BASE", "SUBNETWORKS", "TICKET", "Stability", "StabilityPlan", "copy_seed", "trajectory_steps"]
