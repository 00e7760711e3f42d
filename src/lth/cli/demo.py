"""``lth demo``: a small lottery-ticket experiment end to end in 20-40 s on two CPU cores.

IMP with reset to init (the trunk) beside the ``reinit`` and ``random-mask`` branches at every level (Frankle &
Carbin, ICLR 2019, Section 2: a winning ticket beats the same mask re-initialised and a random mask of the same
per-layer density), then the report (:func:`lth.studies.recipe.run_demo`). On the bundled digits data by default;
with ``--data-dir`` holding MNIST, LeNet-300-100 on MNIST.
"""

from __future__ import annotations

import argparse
import os
import sys

from lth.cli.output import emit_json
from lth.progress import Progress
from lth.spec import TrainSpec
from lth.studies.recipe import DemoOptions, run_demo
from lth.studies.runtime import RuntimeOptions, default_root

HELP = "a small IMP experiment with the reinit and random-mask branches, and its report (20-40 s on a 2-core CPU)"


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth demo``."""
    p.add_argument("--root", default=default_root(), help="store directory")
    p.add_argument("--data-dir", default=None,
                   help="a data root holding MNIST: run LeNet-300-100 on MNIST instead of the bundled digits")
    p.add_argument("--levels", default=None, help="pruning levels (default: 12 on digits, 5 on MNIST)")
    p.add_argument("--replicates", default=None, help="replicates (default: 3 on digits, 1 on MNIST)")
    p.add_argument("--training-steps", default=None, help="training steps per level (default: 10ep digits, 1ep MNIST)")
    p.add_argument("--threads", default=None,
                   help="CPU threads for torch (default: 1 unless OMP_NUM_THREADS is set: the demo's small networks "
                        "gain nothing from more, and more are much slower on a machine busy with other work)")
    p.add_argument("--json", action="store_true", help="print the records and the report path as JSON")


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """Train the demo (what is missing), build the report, print its path and the sparsest level's accuracies."""
    threads = args.threads if args.threads is not None else (None if "OMP_NUM_THREADS" in os.environ else 1)
    sizes = DemoOptions.from_values({k: v for k, v in (("levels", args.levels), ("replicates", args.replicates),
                                                       ("training_steps", args.training_steps)) if v is not None})
    runtime = RuntimeOptions.from_values(root=args.root, data_dir=args.data_dir, threads=threads)
    with Progress() as progress:
        result = run_demo(sizes.levels, sizes.replicates, sizes.training_steps, runtime=runtime, progress=progress)
    doc = result.to_json()
    if args.json:
        emit_json(doc)
        return 0
    level, density = doc["level"], doc["density"]
    shown = "  ".join(f"{k} {'n/a' if v is None else f'{100 * v:.2f}%'}" for k, v in doc["accuracy"].items())
    where = f" (density {100 * density:.1f}%)" if density else ""
    reps = f"{result.replicates} replicate{'s' if result.replicates > 1 else ''}"
    split = f"the {result.dataset} test split, {result.test_examples:,} examples"
    print(f"sparsest level {level}{where}, mean test accuracy ({split}) over {reps}: {shown}", file=sys.stderr)
    print(f"done in {doc['seconds']:.0f} s; open the report:", file=sys.stderr)
    print(doc["report"])
    return 0
