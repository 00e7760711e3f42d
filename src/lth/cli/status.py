"""``lth status``: the planned runs of a store that are not in it (missing, unfinished, failed, blocked, damaged,
running); exit 0 when every planned run is present, 1 otherwise (:func:`lth.studies.status.status`)."""

from __future__ import annotations

import argparse

from lth.cli.flags import add_options, options_values
from lth.cli.output import emit_json, print_table
from lth.spec import TrainSpec
from lth.studies.runtime import default_root
from lth.studies.status import StatusOptions, missing_text, status

HELP = "planned runs not in the store (exit 1 when any)"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth status``: :class:`StatusOptions`."""
    add_options(p, StatusOptions, None)
    p.add_argument("--json", action="store_true", help='print {"root", "planned", "present", "complete", "missing", '
                                                       '"shortfalls", "plans"} as JSON')


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """Print the planned runs that are not in the store (or JSON); exit 1 when there are any."""
    values = options_values(args, StatusOptions)
    values.setdefault("root", default_root())
    doc = status(StatusOptions.from_values(values)).to_json()
    if args.json:
        emit_json(doc)
    elif not doc["plans"]:
        print(f"{doc['root']}: no plans recorded (a store written before lth recorded what each command planned); "
              "nothing to compare", flush=True)
    elif doc["complete"]:
        print(f"{doc['root']}: all {doc['planned']} planned runs are present")
    else:
        print_table(["path", "what", "replicate", "status"],
                    [[r["path"], r["what"], str(r["replicate"]), r["status"] + (f": {r['error']}" if r.get("error")
                                                                               else "")] for r in doc["missing"]],
                    stderr=False)
        print(missing_text(doc, doc["root"]).split(": ", 1)[0] + "; the command that planned a run, run again, "
              "trains what is missing (the command of each: --json, \"command\")")
    return 0 if doc["complete"] else 1
