"""The landscape study: test error and loss over a plane through stability copies (their common start and two
trained copies, or the principal directions of a copy's trajectory), with the trajectories projected on it (Li et
al., NeurIPS 2018). The copies are :mod:`lth.studies.stability`'s (the same options, the same directories, trained
when missing); :func:`run_landscape` evaluates the grid of every cell and replicate, draws its contours and returns
what ``lth landscape --json`` prints."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from lth.errors import UserError, ref
from lth.options import Options, option
from lth.progress import Progress
from lth.spec import TrainSpec
from lth.stability.landscape import PLANES
from lth.studies.base import StudyResult, progress_of
from lth.studies.runtime import RuntimeOptions
from lth.studies.stability import PathOptions, StabilityOptions, Ticket, plan_stability, train_copies


@dataclass(frozen=True)
class LandscapeOptions(Options):
    """The plane and its grid."""

    PREFIX: ClassVar[str] = ""
    plane: str = option("copies", f"the plane ({' | '.join(PLANES)})", choices=PLANES)
    grid: int = option(21, "grid points along each direction", low=2)
    margin: float = option(0.25, "grid margin around the projected states, times their extent", low=0,
                           allowed="a number >= 0, e.g. 0.25")

    def validate(self) -> None:
        """The plane named as ever (``--plane 'diagonal': unknown value``), then the per-field checks."""
        if self.plane not in PLANES:
            raise UserError(f"{ref('plane')} {self.plane!r}: unknown value; allowed: {', '.join(PLANES)}",
                            value=self.plane, allowed=", ".join(PLANES))
        super().validate()


def run_landscape(spec: TrainSpec, pruning: Any, opts: StabilityOptions, path: PathOptions, land: LandscapeOptions,
                  runtime: RuntimeOptions, progress: Progress | bool | None = None, *, preset: str = "custom",
                  given: Mapping[str, Any] | set[str] | frozenset[str] = frozenset(),
                  ticket: Ticket | None = None) -> StudyResult:
    """Train the copies of ``opts`` if missing (as :func:`~lth.studies.stability.run_stability` plans them; the
    hidden ``same_noise`` check is not used: identical copies span no plane), evaluate the grid of every cell and
    replicate (``<level dir>/landscape_<plane>.json``), draw its contours; ``{"landscapes": one row per cell and
    replicate}`` (its grid file, figures and minimum test error). ``path``: its ``train_examples`` are the
    BatchNorm statistics' batches."""
    from lth.report.stability import plot_contour
    from lth.stability.landscape import landscape

    planned = plan_stability(spec, pruning, dataclasses.replace(opts, same_noise=False), runtime, preset=preset,
                             given=given, ticket=ticket)
    plan = planned.plan
    out: list[dict[str, Any]] = []
    with progress_of(progress) as p:
        ex, _ = train_copies(planned, runtime, p, "landscape")
        data = ex.dataset(spec.data)
        for exp, lv in plan.cells():
            for r in range(plan.replicates):
                p.console.print(f"landscape: {exp.subnetwork}, k = {exp.k}, level {lv}, replicate {r}")
                doc = landscape(exp, lv, r, data, plane=land.plane, steps=land.grid, margin=land.margin,
                                device=str(ex.options.torch_device()), max_population=runtime.max_population or 64,
                                train_examples=path.train_examples)
                figs = plot_contour(doc["xs"], doc["ys"], doc["test_error"], exp.level_dir(r, lv),
                                    name=f"landscape_{land.plane}", points=doc["points"],
                                    trajectories=doc["trajectories"],
                                    title=f"{exp.subnetwork}, k = {exp.k}, level {lv}")
                out.append({"file": doc["file"], "figures": [str(f) for f in figs], "subnetwork": exp.subnetwork,
                            "rewind": str(exp.k), "rewind_iteration": exp.k.iterations(plan.steps_per_epoch),
                            "level": lv, "replicate": r, "plane": land.plane,
                            "min_test_error": min(min(row) for row in doc["test_error"])})
    return StudyResult({"landscapes": out}, "landscapes")


__all__ = ["LandscapeOptions", "run_landscape"]
