"""The report's sections, in page order: :data:`SECTIONS` for the store, :data:`STUDY_SECTIONS` for each study
(drawn in turn by the ``studies`` section). A section draws onto the page from a context
(:class:`~lth.report.context.ReportContext` or :class:`~lth.report.context.Study`); it skips itself when the
store holds nothing for it. The registries are looked up when the page is built, so a section added to (or
replaced in) one is drawn there.
"""

from __future__ import annotations

from collections.abc import Callable

from lth.report.context import ReportContext, Study
from lth.report.sections.accuracy import accuracy_vs_density
from lth.report.sections.curves import accuracy_curves
from lth.report.sections.early_stopping import early_stopping
from lth.report.sections.heading import heading
from lth.report.sections.overview import overview
from lth.report.sections.perturbations import effective_std
from lth.report.sections.recipes import recipes
from lth.report.sections.stability import stability
from lth.report.sections.telemetry import study_telemetry, telemetry
from lth.report.sections.training import training
from lth.report.sections.verdicts import verdicts
from lth.report.sections.weights import weights

Section = Callable[[ReportContext], None]
StudySection = Callable[[Study], None]


def studies(ctx: ReportContext) -> None:
    """Each study of the store: every section of :data:`STUDY_SECTIONS`, in order."""
    for study in ctx.studies:
        for section in STUDY_SECTIONS.values():
            section(study)


STUDY_SECTIONS: dict[str, StudySection] = {
    "heading": heading,
    "accuracy_vs_density": accuracy_vs_density,
    "accuracy_curves": accuracy_curves,
    "telemetry": study_telemetry,
    "early_stopping": early_stopping,
    "verdicts": verdicts,
    "weights": weights,
    "effective_std": effective_std,
}

SECTIONS: dict[str, Section] = {
    "recipes": recipes,  # what each recipe run into the store measured against its paper (first)
    "overview": overview,
    "studies": studies,
    "training": training,
    "telemetry": telemetry,
    "stability": stability,
}

__all__ = ["SECTIONS", "STUDY_SECTIONS", "Section", "StudySection"]
