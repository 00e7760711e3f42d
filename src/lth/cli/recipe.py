"""``lth recipe``: a study lth serves, reproduced from one command beside the paper's own numbers
(``lth recipe list`` shows them; ``lth recipe NAME --quick`` runs one on a CPU in minutes;
:mod:`lth.studies.recipe`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lth.cli.flags import add_options, options_values
from lth.cli.output import emit_json, print_table
from lth.progress import Progress
from lth.spec import TrainSpec
from lth.studies.recipe import RecipeOptions, recipe_root, run_recipe
from lth.studies.runtime import RuntimeOptions

HELP = "reproduce a paper's study (lth recipe list; lth recipe NAME [--quick]) with a paper-vs-lth table"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth recipe``: NAME, :class:`RecipeOptions` (``--quick`` a switch) and :class:`RuntimeOptions`."""
    helps = {f.name: f.help for f in RecipeOptions.option_fields()}
    p.add_argument("name", metavar="NAME", help=helps["name"])
    add_options(p, RecipeOptions, "recipe", skip=("name",))  # --quick a switch: `lth recipe --quick NAME` parses
    add_options(p, RuntimeOptions, "runtime")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    for a in p._actions:
        if a.dest == "root":  # the store: a folder of its own under $LTH_ROOT or ./runs (recipes never share one)
            a.help = "store directory (default: ./runs/NAME, or ./runs/NAME-quick with --quick; under $LTH_ROOT if set)"


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """``list``: the table of recipes; NAME: run the recipe and write its report."""
    options = RecipeOptions.from_values(options_values(args, RecipeOptions))
    if options.name == "list":
        result = run_recipe(options)
    else:
        values = options_values(args, RuntimeOptions)
        values.setdefault("root", recipe_root(options))
        with Progress() as progress:
            result = run_recipe(options, RuntimeOptions.from_values(values), progress)
    if args.json:
        emit_json(result.to_json())
    elif options.name == "list":
        _print(result["recipes"])
    else:
        _print_rows(result["rows"])
        print(f"report: {result['report']}", file=sys.stderr)
    return 0


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def _print(rows: list[dict[str, Any]]) -> None:
    import torch
    from rich.console import Console
    from rich.table import Table

    device = "cuda" if torch.cuda.is_available() else "cpu"
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

    print_table(["quantity", "paper", "lth", "min", "max", "lth - paper", "comparable", "source"],
                [[r["quantity"], f(r["paper"]), f(r["lth"]), f(r["lth_min"]), f(r["lth_max"]), f(r["difference"]),
                  "yes" if r.get("comparable") else "no", r["source"]] for r in rows])
    if any(not r.get("comparable") for r in rows):
        print("comparable no: lth's runs differ from the paper's setup (--quick's stand-in, --levels or "
              "--training-steps, or the paper's own setup differs); the runs each row measured are its 'how', in "
              "paper_vs_lth.csv beside 'paper_setup'", file=sys.stderr)
