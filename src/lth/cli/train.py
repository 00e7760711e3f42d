"""``lth train``: train a preset (replicates train together as one population)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lth.cli.common import (
    Progress,
    add_preset_flag,
    add_runtime_flags,
    add_spec_flags,
    check_fits,
    emit_json,
    executor_from_args,
    report_divergence,
    save_steps,
    spec_from_args,
)
from lth.spec import TrainSpec

HELP = "train a preset (replicates train together as one population)"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth train``."""
    add_preset_flag(p)
    add_spec_flags(p, base)
    add_runtime_flags(p)
    p.add_argument("--strict", action="store_true", help="exit 1 when any run diverged")


def plan(args: argparse.Namespace, base: TrainSpec) -> list[Any]:
    """One node per replicate under ``<root>/train_<hash>/``."""
    from lth.graph import Node
    from lth.spec import spec_hash
    from lth.store import run_path

    spec = spec_from_args(args, base)
    check_fits(args, spec, args.replicates)
    digest = spec_hash(spec)
    return [Node(spec, r, run_path(Path(args.root), "train", digest, r), keep=save_steps(args),
                 meta={"preset": args.preset, "kind": "train"}) for r in range(args.replicates)]


def run(args: argparse.Namespace, base: TrainSpec, argv: list[str]) -> int:
    """Train what is missing; print the records."""
    from lth.executor.base import missing_states
    from lth.store import RunDir

    nodes = plan(args, base)
    with Progress() as progress:
        ex = executor_from_args(args, progress)  # first: its flags' errors come alone, before any message
        telemetry = ex.options.telemetry_every is not None  # a finished run without it is replayed to record it
        if all(RunDir(n.path).done is not None and not missing_states(n)
               and not (telemetry and not RunDir(n.path).has_telemetry()) for n in nodes):
            progress.console.print(f"already trained: nothing to do; results in {nodes[0].path.parent}")
        records = ex.run(nodes)
        if progress.populations:
            sizes = ", ".join(map(str, progress.populations))
            n = len(progress.populations)
            progress.console.print(f"trained {n} population{'s' if n > 1 else ''} (sizes {sizes})")
    code = report_divergence(records, args.strict)
    if args.json:
        emit_json({"runs": records})
    else:
        for r in records:
            acc = r["final_test_accuracy"]
            print(f"replicate {r['replicate']}: {r['status']}, final test accuracy "
                  f"{'n/a' if acc is None else f'{acc:.4f}'}  {r['path']}", file=sys.stderr)
        print(f"results in {nodes[0].path.parent}", file=sys.stderr)
    return code
