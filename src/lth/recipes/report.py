"""The recipe's report: its result kept in the store (``ROOT/recipes/NAME.json``,
:func:`lth.report.sections.recipes.save_result`) and lth's store report (:func:`lth.report.build_report`), whose
first section draws every recipe result of the store (:mod:`lth.report.sections.recipes`): the paper, every
substitution, the paper-vs-lth table (``paper_vs_lth.csv``), a figure of the paper's values beside lth's, the
verdicts and the recipe's own tables. A later ``lth report`` draws them again."""

from __future__ import annotations

from pathlib import Path

from lth.recipes.base import Recipe, RecipeResult


def write_recipe_report(recipe: Recipe, result: RecipeResult, root: Path, quick: bool) -> Path:
    """Keep the recipe's result in the store at ``root`` and build its report under ``root/report``; returns the
    path of ``index.html`` (absolute)."""
    from lth.report import build_report
    from lth.report.sections.recipes import save_result

    root = Path(root).resolve()
    save_result(root, {"recipe": recipe.name, "paper": recipe.paper, "figures": list(recipe.figures),
                       "quick": quick, "substitutions": list(result.substitutions), "rows": result.rows,
                       "verdicts": result.verdicts, "verdict_basis": recipe.verdict_basis,
                       "seconds": result.seconds, "datasets": list(result.datasets),
                       "extra_tables": {name: table.to_dict(orient="records")
                                        for name, table in result.extra_tables.items()}})
    return build_report(root, root / "report").index
