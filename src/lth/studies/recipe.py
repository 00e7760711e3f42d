"""The recipe study: a paper's study reproduced beside the paper's own numbers (:mod:`lth.recipes`), the list of
recipes with their cost, and the demo (a small IMP experiment with the reinit and random-mask branches).

    from lth.studies.recipe import RecipeOptions, run_recipe
    from lth.studies.runtime import RuntimeOptions
    result = run_recipe(RecipeOptions.from_values(name="lottery", quick=True), RuntimeOptions(root="runs/lottery"))
    result.to_json()        # `lth recipe lottery --quick --json`'s document; result.frame(): the paper-vs-lth rows
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from lth.errors import UserError, ref
from lth.options import Options, option, unknown_name
from lth.progress import Progress
from lth.spec import Step
from lth.studies.base import StudyResult, progress_of
from lth.studies.runtime import RUNTIME_KEYWORDS, RuntimeOptions, check_root, default_root, runtime_from_keywords


@dataclass(frozen=True)
class RecipeOptions(Options):
    """Which recipe, at which scale: ``quick`` (a CPU in minutes), and the user's overrides of its levels,
    replicates and training steps, and the datasets whose pieces run."""

    PREFIX: ClassVar[str] = ""
    name: str = option(help="a recipe name, or 'list'", metavar="NAME")
    quick: bool = option(False, "small scale on a CPU in minutes (digits / MNIST, fewer levels and steps); the report "
                                "names every substitution", switch=True)
    levels: int | None = option(None, "pruning levels instead of the recipe's", low=1)
    replicates: int | None = option(None, "replicates instead of the recipe's", low=1)
    training_steps: Step | None = option(None, "training steps per run instead of the recipe's (e.g. 200it, 2ep)",
                                         metavar="STEP")
    datasets: tuple[str, ...] | None = option(None, "run only the recipe's pieces that train on these datasets (e.g. "
                                                    "--datasets mnist: the MNIST part at paper scale without "
                                                    "CIFAR-10); the report names what is left out", metavar="NAME")

    def check(self) -> None:
        """A known recipe name (or ``list``, which takes no datasets)."""
        from lth.recipes import RECIPES, get_recipe

        if self.name == "list":
            if self.datasets is not None:
                raise UserError(f"{ref('datasets')}: bad value {' '.join(self.datasets)} with 'list'; allowed: with a "
                                f"recipe NAME ({', '.join(RECIPES)})", value=list(self.datasets),
                                allowed="a recipe NAME")
        else:
            get_recipe(self.name)

    def scale(self) -> Any:
        """The user's overrides as the recipes' :class:`~lth.recipes.Scale`."""
        from lth.recipes import Scale

        steps = None if self.training_steps is None else str(self.training_steps)
        return Scale(levels=self.levels, replicates=self.replicates, steps=steps)


def recipe_root(options: RecipeOptions) -> str:
    """The store of a recipe when none is named: a folder of its own (``NAME``, or ``NAME-quick``) under ``$LTH_ROOT``
    or ``./runs``; a recipe's report draws every run under its root, so recipes never share one."""
    folder = f"{options.name}-quick" if options.quick else options.name
    return str(Path(default_root()) / folder)


def list_rows(device: str = "cpu") -> list[dict[str, Any]]:
    """One row per recipe: name, paper, figures, data (full and quick), runs and estimated seconds per mode
    (full on ``device``, quick on the CPU)."""
    from lth.recipes import RECIPES

    rows = []
    for name, r in RECIPES.items():
        full, quick = r.estimate(False, device), r.estimate(True, "cpu")
        rows.append({"recipe": name, "paper": r.paper, "figures": list(r.figures), "data": list(r.data),
                     "quick_data": list(r.quick_data), "runs": full["runs"], "seconds": full["seconds"],
                     "quick_runs": quick["runs"], "quick_seconds": quick["seconds"]})
    return rows


def recipe_list(device: str | None = None) -> StudyResult:
    """``lth recipe list --json``'s document, ``{"recipes": rows}`` (:func:`list_rows`; ``device``: where the
    full recipes' time is estimated, default CUDA where a GPU is visible, else the CPU)."""
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return StudyResult({"recipes": list_rows(device)}, table="recipes")


def run_recipe(options: RecipeOptions, runtime: RuntimeOptions | None = None,
               progress: Progress | bool | None = None) -> StudyResult:
    """Run the recipe ``options.name`` (what is missing: a finished run is never trained again) at its scale and
    write its report to ``ROOT/report/index.html``; ``list``: the recipes (:func:`recipe_list`). ``runtime``: where
    and how it trains (default: :func:`recipe_root`, a local executor); its ``save_states`` is refused (a recipe
    keeps the states its study needs), its telemetry defaults to the recipe's. The result's document is ``lth recipe
    NAME --json``'s: ``{"recipe", "report", "verdicts", "verdict_basis", "rows", "substitutions", "seconds",
    "datasets"}``; :meth:`StudyResult.frame` gives the paper-vs-lth rows."""
    from lth.recipes import get_recipe
    from lth.recipes import run_recipe as run

    if options.name == "list":
        return recipe_list()
    recipe = get_recipe(options.name)
    runtime = runtime or RuntimeOptions.from_values(root=recipe_root(options))
    if runtime.save_states:  # a recipe's studies keep the states they need; extra ones would be silently dropped
        raise UserError(f"{ref('save_states')} {' '.join(map(str, runtime.save_states))}: lth recipe keeps the states "
                        f"its study needs; allowed: {ref('save_states')} with lth train, lottery, branch, stability "
                        f"or landscape", value=[str(s) for s in runtime.save_states])
    if recipe.telemetry and runtime.telemetry_every is None:
        runtime = runtime.replace(telemetry_every=recipe.telemetry)
    check_root(runtime.root)
    root = Path(runtime.root).expanduser().resolve()
    datasets = None if options.datasets is None else list(options.datasets)
    with progress_of(progress) as p:
        ex = runtime.make_executor(p, f"recipe-{recipe.name}")
        doc = run(recipe.name, quick=options.quick, root=root, data_dir=runtime.data_dir, ex=ex,
                  scale=options.scale(), datasets=datasets)
    return StudyResult(doc, table="rows")


def recipe(name: str, *, progress: Progress | bool | None = None, **keywords: Any) -> StudyResult:
    """:func:`run_recipe` with keywords: :class:`RecipeOptions`' fields (``quick=True``, ``levels=1``) and the
    runtime's (``root``, ``data_dir``, ``device``, ``threads``, ``executor``, ...: ``RUNTIME_KEYWORDS``); None
    gives the default, the store defaults to :func:`recipe_root`. A misspelt keyword is a UserError suggesting the
    nearest."""
    own = [f.name for f in RecipeOptions.option_fields() if f.name != "name"]
    runtime_names = RUNTIME_KEYWORDS
    known = sorted({*own, *runtime_names})
    for key in keywords:
        if key not in known:
            e = unknown_name(key, known)
            raise UserError(f"recipe: {e.template}", value=key, allowed=e.allowed)
    keywords = {k: v for k, v in keywords.items() if v is not None}  # None: the default (as a flag left out)
    options = RecipeOptions.from_values({"name": name, **{k: v for k, v in keywords.items() if k in own}})
    if name == "list":
        return recipe_list()
    rest = {k: (str(v) if isinstance(v, Path) else v) for k, v in keywords.items() if k not in own}
    rest.setdefault("root", recipe_root(options))
    return run_recipe(options, runtime_from_keywords(rest), progress)


# ------------------------------------------------------------------------------------------------ demo
DEMO_BRANCHES = ("reinit", "random-mask")
# preset, levels, replicates, training steps: sized for 20-40 s on 2 CPU cores (timed in the README)
DEMO_DIGITS = ("digits_mlp", 12, 3, "10ep")
DEMO_MNIST = ("lenet_300_100", 5, 1, "1ep")


@dataclass
class DemoResult(StudyResult):
    """The demo's result: its document (``lth demo --json``'s) and what its summary line names."""

    preset: str = ""
    replicates: int = 1
    steps: str = ""
    dataset: str = ""
    test_examples: int = 0


def sparsest(records: dict[str, list[dict[str, Any]]], level: int) -> dict[str, float | None]:
    """Mean final test accuracy (a fraction) of the ticket and of each demo branch at ``level``."""
    out: dict[str, float | None] = {}
    groups = {"ticket": [r for r in records["runs"] if r["level"] == level]}
    for name in DEMO_BRANCHES:
        groups[name] = [r for r in records["branches"] if r["level"] == level and r.get("branch") == name]
    for name, rs in groups.items():
        accs = [r["final_test_accuracy"] for r in rs if r.get("final_test_accuracy") is not None]
        out[name] = sum(accs) / len(accs) if accs else None
    return out


@dataclass(frozen=True)
class DemoOptions(Options):
    """The demo's sizes (None: the demo's own, by dataset)."""

    PREFIX: ClassVar[str] = ""
    levels: int | None = option(None, "pruning levels (default: 12 on digits, 5 on MNIST)", low=1)
    replicates: int | None = option(None, "replicates (default: 3 on digits, 1 on MNIST)", low=1)
    training_steps: Step | None = option(None, "training steps per level (default: 10ep digits, 1ep MNIST)")


def run_demo(levels: int | str | None = None, replicates: int | str | None = None,
             training_steps: str | Step | None = None, *, runtime: RuntimeOptions | None = None,
             progress: Progress | bool | None = None) -> DemoResult:
    """IMP with reset to init beside the reinit and random-mask branches at every level, then the report (Frankle
    & Carbin, ICLR 2019, Section 2): on the bundled digits by default, LeNet-300-100 on MNIST where
    ``runtime.data_dir`` holds it; ``levels``, ``replicates``, ``training_steps`` override the demo's sizes. Trains
    what is missing; the document is ``lth demo --json``'s (``report``, ``level``, ``density``, ``accuracy``,
    ``seconds``, the lottery records)."""
    from lth.recipes.base import plan_lottery
    from lth.report import build_report

    sizes = DemoOptions.from_values({k: v for k, v in (("levels", levels), ("replicates", replicates),
                                                       ("training_steps", training_steps)) if v is not None})
    levels, replicates = sizes.levels, sizes.replicates
    training_steps = None if sizes.training_steps is None else str(sizes.training_steps)
    runtime = runtime or RuntimeOptions()
    data_dir = runtime.data_dir
    preset, default_levels, default_replicates, steps = DEMO_MNIST if data_dir else DEMO_DIGITS
    if data_dir and not Path(data_dir).expanduser().is_dir():
        raise UserError(f"{ref('data_dir')} {data_dir!r}: no such directory (it should hold MNIST/raw/)",
                        value=data_dir, allowed="a directory holding MNIST/raw/")
    levels = default_levels if levels is None else levels
    replicates = default_replicates if replicates is None else replicates
    steps = steps if training_steps is None else training_steps
    check_root(runtime.root)
    started = time.perf_counter()
    plan = plan_lottery(preset, levels, replicates=replicates, branches=list(DEMO_BRANCHES), root=runtime.root,
                        data_dir=data_dir, training_steps=steps)
    with progress_of(progress) as p:
        ex = runtime.make_executor(p, "demo")
        data = ex.dataset(plan.trunks[0].spec.data)  # a missing data file is the one line said, before anything
        print(f"lth demo: {preset}, IMP to level {levels} with the {' and '.join(DEMO_BRANCHES)} branches, "
              f"{replicates} replicate{'s' if replicates > 1 else ''}, {steps} per level, in "
              f"{Path(runtime.root).resolve()}", file=sys.stderr)
        records = plan.records(ex.run(plan.nodes()))
    report = build_report(Path(runtime.root))
    seconds = time.perf_counter() - started
    density = next((r["density"] for r in records["runs"] if r["level"] == levels and r.get("density")), None)
    doc = {"report": str(report.index), "level": levels, "density": density, "accuracy": sparsest(records, levels),
           "seconds": seconds, **records}
    return DemoResult(doc, "runs", preset=preset, replicates=replicates, steps=str(steps),
                      dataset=plan.trunks[0].spec.data.dataset, test_examples=int(data.test_x.shape[0]))


__all__ = ["DEMO_BRANCHES", "DemoOptions", "DemoResult", "RecipeOptions", "list_rows", "recipe", "recipe_list",
           "recipe_root", "run_demo", "run_recipe", "sparsest"]
