"""Loss landscapes of stability copies: loss and error over a plane of weight space, evaluated as populations,
with the copies' training trajectories projected onto it (Li et al., NeurIPS 2018; Ma et al.'s trajectory
contours, Figs. 4-5 of the sanity-check paper in seed 002).

Planes: ``copies``, the plane through the copies' common start state (step k) and two trained copies
(:func:`lth.analysis.landscape.plane_through`); ``pca``, the first two principal directions of copy 0's stored
trajectory (:func:`lth.analysis.landscape.pca_plane`). The result is written atomically to
``<level dir>/landscape_<plane>.json`` beside the copies (read back by ``lth report``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lth.analysis.landscape import grid_states, pca_plane, plane_through, span
from lth.data import Dataset
from lth.engine.evaluate import evaluate_states
from lth.errors import UserError, ref
from lth.stability.analysis import BN_BATCH_SIZE, BN_BATCHES, train_subset
from lth.stability.plan import Stability
from lth.store import RunDir

PLANES = ("copies", "pca")


def trajectory(run: Path) -> list[dict[str, Tensor]]:
    """A copy's stored states in training order (start, kept steps, final)."""
    store = RunDir(run)
    index = store.state_iterations()
    rank = {"start": 0, "final": 2}
    names = sorted((n for n in index if not (n == "init" and "start" in index)),
                   key=lambda n: (index[n], rank.get(n, 1)))
    return [store.load_state(n) for n in names]


def landscape(exp: Stability, level: int, replicate: int, data: Dataset, *, plane: str = "copies",
              steps: int = 21, margin: float = 0.25, device: str = "cpu", max_population: int = 64,
              train_examples: int = 10_000) -> dict[str, Any]:
    """Evaluate the grid (``steps`` x ``steps``) of ``plane`` around the copies of one cell; store and return
    ``{"plane", "xs", "ys", "test_error", "test_loss" ([len(ys)][len(xs)]), "points", "trajectories", "file"}``.
    Needs copies 0 and 1 complete."""
    if plane not in PLANES:
        raise UserError(f"{ref('plane')} {plane!r}: unknown value; allowed: {', '.join(PLANES)}", value=plane,
                        allowed=", ".join(PLANES))
    runs = [exp.copy_dir(replicate, level, c) for c in (0, 1)]
    missing = [str(p) for p in runs if not RunDir(p).complete()]
    if missing:
        raise UserError(f"landscape: copy {missing[0]} is not trained; run `lth stability` with the same flags")
    trajs = [trajectory(p) for p in runs]
    start = trajs[0][0]
    if plane == "copies":
        pl = plane_through(start, trajs[0][-1], trajs[1][-1])
    else:
        pl = pca_plane(trajs[0])
    proj = {f"copy {c}": pl.project_all(t) for c, t in enumerate(trajs)}
    points = {"start (step k)": pl.project(start), "copy 0": pl.project(trajs[0][-1]),
              "copy 1": pl.project(trajs[1][-1])}
    xs, ys = span(torch.cat(list(proj.values())), steps, margin)
    states = grid_states(pl, xs, ys)
    tx, _ = train_subset(data, train_examples)
    res = evaluate_states(exp.trunk.spec.model, states, data.test_x, data.test_y, example_shape=data.example_shape,
                          num_classes=data.num_classes, device=device, bn_data=tx, bn_batches=BN_BATCHES,
                          bn_batch_size=BN_BATCH_SIZE, max_population=max_population)
    shape = (len(ys), len(xs))
    doc = {"plane": plane, "xs": xs.tolist(), "ys": ys.tolist(),
           "test_error": res["error"].view(shape).tolist(), "test_loss": res["loss"].view(shape).tolist(),
           "points": {k: list(v) for k, v in points.items()},
           "trajectories": {k: v.tolist() for k, v in proj.items()},
           "explained": list(pl.explained) if pl.explained else None,
           "subnetwork": exp.subnetwork, "rewind": str(exp.k), "level": level, "replicate": replicate,
           "runs": [str(p) for p in runs]}
    name = f"landscape_{plane}.json"
    RunDir(exp.level_dir(replicate, level)).write_json(name, doc)
    doc["file"] = str(exp.level_dir(replicate, level) / name)
    return doc
