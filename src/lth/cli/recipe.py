"""``lth recipe``: a study lth serves, reproduced from one command beside the paper's own numbers
(``lth recipe list`` shows them; ``lth recipe NAME --quick`` runs one on a CPU in minutes)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from lth.cli.common import (
    DEFAULT_ROOT,
    Progress,
    add_runtime_flags,
    check_root,
    emit_json,
    executor_from_args,
    print_table,
    save_steps,
    step_flag,
    whole_number,
)
from lth.errors import UserError
from lth.spec import TrainSpec

HELP = "reproduce a paper's study (lth recipe list; lth recipe NAME [--quick]) with a paper-vs-lth table"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth recipe``."""
    p.add_argument("name", metavar="NAME", help="a recipe name, or 'list'")
    p.add_argument("--quick", action="store_true",
                   help="small scale on a CPU in minutes (digits / MNIST, fewer levels and steps); the report names "
                        "every substitution")
    p.add_argument("--levels", default=None, help="pruning levels instead of the recipe's")
    p.add_argument("--training-steps", default=None, metavar="STEP",
                   help="training steps per run instead of the recipe's (e.g. 200it, 2ep)")
    p.add_argument("--datasets", nargs="+", default=None, metavar="NAME",
                   help="run only the recipe's pieces that train on these datasets (e.g. --datasets mnist: the "
                        "MNIST part at paper scale without CIFAR-10); the report names what is left out")
    add_runtime_flags(p)
    # the recipe's own number unless --replicates is given; the store: --root, else a folder of its own under
    # $LTH_ROOT or ./runs (a recipe's report draws every run under its root, so recipes never share one)
    p.set_defaults(replicates=None, root=None)
    for a in p._actions:
        if a.dest == "root":
            a.help = "store directory (default: ./runs/NAME, or ./runs/NAME-quick with --quick; under $LTH_ROOT if set)"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def list_rows(device: str = "cpu") -> list[dict[str, Any]]:
    """One row per recipe: name, paper, figures, data (full and quick), runs and estimated seconds per mode."""
    from lth.recipes import RECIPES

    rows = []
    for name, r in RECIPES.items():
        full, quick = r.estimate(False, device), r.estimate(True, "cpu")
        rows.append({"recipe": name, "paper": r.paper, "figures": list(r.figures), "data": list(r.data),
                     "quick_data": list(r.quick_data), "runs": full["runs"], "seconds": full["seconds"],
                     "quick_runs": quick["runs"], "quick_seconds": quick["seconds"]})
    return rows


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """``list``: the table of recipes; NAME: run the recipe and write its report."""
    import torch

    from lth.recipes import RECIPES, Context, Scale, get_recipe
    from lth.recipes.report import write_recipe_report

    if args.name == "list":
        if args.datasets is not None:
            raise UserError(f"--datasets: bad value {' '.join(args.datasets)} with 'list'; allowed: with a recipe "
                            f"NAME ({', '.join(RECIPES)})")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        rows = list_rows(device)
        if args.json:
            emit_json({"recipes": rows})
        else:
            _print(rows, device)
        return 0
    recipe = get_recipe(args.name)
    if args.save_states:  # a recipe's studies keep the states they need; extra ones would be silently dropped
        save_steps(args)  # a step that does not parse: that error first
        raise UserError(f"--save-states {' '.join(args.save_states)}: lth recipe keeps the states its study needs; "
                        f"allowed: --save-states with lth train, lottery, branch, stability or landscape")
    levels = whole_number(args.levels, 1, "--levels") if args.levels is not None else None
    if args.training_steps is not None:
        step_flag(args.training_steps, "--training-steps")
    if recipe.telemetry and args.telemetry_every is None:
        args.telemetry_every = recipe.telemetry
    if args.root is None:
        folder = f"{recipe.name}-quick" if args.quick else recipe.name
        args.root = str(Path(os.environ.get("LTH_ROOT", DEFAULT_ROOT)) / folder)
        check_root(args.root)
    root = Path(args.root).expanduser().resolve()
    ctx = Context(quick=args.quick, root=root, data_dir=args.data_dir,
                  scale=Scale(levels=levels, replicates=args.replicates, steps=args.training_steps),
                  datasets=args.datasets)
    with Progress() as progress:
        ex = executor_from_args(args, progress)
        result = recipe.run(ctx, ex)
    index = write_recipe_report(recipe, result, root, args.quick)
    if args.json:
        emit_json({"recipe": recipe.name, "report": str(index), "verdicts": result.verdicts,
                   "verdict_basis": recipe.verdict_basis, "rows": result.rows,
                   "substitutions": result.substitutions, "seconds": result.seconds, "datasets": result.datasets})
    else:
        _print_rows(result.rows)
        print(f"report: {index}", file=sys.stderr)
    assert recipe.name in RECIPES
    return 0


def _print(rows: list[dict[str, Any]], device: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # a pipe or a log: one block per recipe, not a table folded to 80 columns
        for r in rows:
            console.print(f"{r['recipe']}: {r['paper']}\n  figures: {'; '.join(r['figures'])}\n  data: "
                          f"{', '.join(r['data'])} (--quick: {', '.join(r['quick_data'])})\n  runs / time ({device}): "
                          f"{r['runs']} / ~{_duration(r['seconds'])}; --quick: {r['quick_runs']} / "
                          f"~{_duration(r['quick_seconds'])} (cpu)", highlight=False, markup=False, soft_wrap=True)
        return
    t = Table("recipe", "paper", "figures", "data", f"runs / time ({device})", "--quick runs / time (cpu)")
    for r in rows:
        t.add_row(r["recipe"], r["paper"], "; ".join(r["figures"]), ", ".join(r["data"]),
                  f"{r['runs']} / ~{_duration(r['seconds'])}", f"{r['quick_runs']} / ~{_duration(r['quick_seconds'])}")
    console.print(t)


def _print_rows(rows: list[dict[str, Any]]) -> None:
    def f(v: Any) -> str:
        return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

    print_table(["quantity", "paper", "lth", "min", "max", "lth - paper", "source"],
                [[r["quantity"], f(r["paper"]), f(r["lth"]), f(r["lth_min"]), f(r["lth_max"]), f(r["difference"]),
                  r["source"]] for r in rows])
