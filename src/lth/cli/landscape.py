"""``lth landscape``: test error and loss over a plane through stability copies (their common start and two
trained copies, or the principal directions of a copy's trajectory), with the trajectories projected on it. Flags
-> options -> :func:`lth.studies.landscape.run_landscape` -> one line per landscape, or ``--json``."""

from __future__ import annotations

import argparse
import sys

from lth.cli.flags import add_options, options_values
from lth.cli.output import emit_json
from lth.cli.stability import add_arguments as add_stability_arguments
from lth.cli.stability import inputs_from_args
from lth.progress import Progress
from lth.spec import TrainSpec
from lth.studies.landscape import LandscapeOptions, run_landscape

HELP = "loss landscape: error and loss over a plane through stability copies, trajectories projected on it"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """The flags of ``lth stability`` (which copies) plus the plane and its grid."""
    add_stability_arguments(p, base, base_name)
    add_options(p, LandscapeOptions, "landscape")


def run(args: argparse.Namespace, base: TrainSpec, argv: list[str]) -> int:
    """Train the copies if missing, evaluate the grid of every cell and replicate, draw the contours."""
    land = LandscapeOptions.from_values(options_values(args, LandscapeOptions))
    spec, pruning, runtime, opts, path = inputs_from_args(args, base)
    with Progress() as progress:
        result = run_landscape(spec, pruning, opts, path, land, runtime, progress, preset=args.preset,
                               given=dict(vars(args)))
    if args.json:
        emit_json(result.to_json())
    else:
        for o in result["landscapes"]:
            print(f"{o['subnetwork']} k={o['rewind']} level {o['level']} replicate {o['replicate']}: "
                  f"{o['figures'][0]}", file=sys.stderr)
    return 0
