"""``lth stability``: instability analysis (Frankle, Dziugaite, Roy & Carbin, ICML 2020): copies of a network or
subnetwork at step k trained with different SGD noise, and the error along the straight line between them. Flags
-> options -> :func:`lth.studies.stability.run_stability` -> the table, or ``--json``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lth.cli.flags import (
    add_options,
    add_preset_flag,
    add_pruning_flags,
    add_runtime_flags,
    add_spec_flags,
    options_values,
    pruning_from_args,
    runtime_from_args,
    spec_flags,
)
from lth.cli.output import emit_json, print_table, report_divergence
from lth.progress import Progress
from lth.spec import TrainSpec
from lth.studies.base import resolve_spec
from lth.studies.stability import PathOptions, StabilityOptions, run_stability

HELP = "instability analysis: copies at step k trained with different SGD noise, error along the path between them"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth stability`` (``lth landscape`` takes them too): which copies, how each path is evaluated,
    the trunks' pruning, the spec, the runtime."""
    add_preset_flag(p)
    add_options(p, StabilityOptions, "stability", skip=("replicates",))  # --align etc.: switches (no value)
    add_options(p, PathOptions, "path evaluation")
    add_pruning_flags(p, base_name)
    add_spec_flags(p, base)
    add_runtime_flags(p)
    p.add_argument("--strict", action="store_true", help="exit 1 when any run diverged")


def inputs_from_args(args: argparse.Namespace, base: TrainSpec) -> tuple[Any, ...]:
    """(spec, pruning, runtime, stability options, path options) of the flags given."""
    opts = StabilityOptions.from_values({**options_values(args, StabilityOptions), "replicates": args.replicates})
    return (resolve_spec(args.preset, spec_flags(args))[0], pruning_from_args(args), runtime_from_args(args), opts,
            PathOptions.from_values(options_values(args, PathOptions)))


def run(args: argparse.Namespace, base: TrainSpec, argv: list[str]) -> int:
    """Plan the copies (and the trunks they hang off), train what is missing, evaluate every path, print."""
    spec, pruning, runtime, opts, path = inputs_from_args(args, base)
    with Progress() as progress:
        result = run_stability(spec, pruning, opts, path, runtime, progress, preset=args.preset,
                               given=dict(vars(args)))
    code = report_divergence(result.runs, args.strict)
    records = result["results"]
    if args.json:
        emit_json(result.to_json())
    else:
        _print(records, result["summary"], result.threshold, result.basis)
        print(f"results in {Path(records[0]['runs'][0]).parents[3]}" if records else "no paths", file=sys.stderr)
    return code


def _print(records: list[dict[str, Any]], summ: list[dict[str, Any]], threshold: float = 0.02,
           basis: str = "") -> None:
    from rich.console import Console

    # the subnetwork's name is never cut: random-prune and random-reinit would both read "random-…" in 80 columns
    rows = []
    for r in records:
        ti, tr = r["test_instability"], r["train_instability"]
        rows.append([r["subnetwork"], r["rewind"], str(r["level"]), str(r["replicate"]),
                     "-".join(map(str, r["copies"])), "n/a" if ti is None else f"{ti:.4f}",
                     "n/a" if tr is None else f"{tr:.4f}", str(r["stable"])])
    print_table(["subnetwork", "rewind", "level", "replicate", "copies", "test instability", "train instability",
                 "stable"], rows)
    console = Console(stderr=True)
    for s in summ:
        console.print(f"{s['subnetwork']} level {s['level']}: first stable k = {s['first_stable']}; "
                      f"first stable and matching k = {s['first_stable_and_matching']}")
    if summ:
        full = summ[0]["dense_accuracy"]
        console.print(f"stable: mean test instability (test split) < {threshold:g}; matching: mean end-point test "
                      f"accuracy >= full - 0.002 (full = {'n/a' if full is None else f'{full:.4f}'}, {basis}); "
                      "means over the replicates' pairs of copies at each k (Frankle et al. ICML 2020, Sec. 2, "
                      "Fig. 9)")
