"""``lth hessian``: the top-k eigenvalues of the training-loss Hessian of stored runs at chosen states
(:mod:`lth.studies.hessian`); writes ``hessian.csv`` into each run directory and prints one JSON document."""

from __future__ import annotations

import argparse

from lth.cli.flags import add_options, options_values, runtime_from_args
from lth.cli.output import emit_json
from lth.spec import TrainSpec
from lth.studies.hessian import RUNTIME_FIELDS, HessianOptions, print_warning, run_hessian
from lth.studies.runtime import RuntimeOptions

HELP = "top-k Hessian eigenvalues of stored runs at chosen states (Lanczos)"


def _other_runtime_fields(cls: type = RuntimeOptions) -> tuple[str, ...]:
    """The runtime fields (its parts' too) that ``lth hessian`` does not take."""
    out: list[str] = []
    for f in cls.option_fields():  # type: ignore[attr-defined]
        if isinstance(f.type, type) and hasattr(f.type, "option_fields"):
            out += _other_runtime_fields(f.type)
        elif f.name not in RUNTIME_FIELDS:
            out.append(f.name)
    return tuple(out)


def add_arguments(p: argparse.ArgumentParser, base: TrainSpec | None, base_name: str | None) -> None:
    """Flags of ``lth hessian``: :class:`HessianOptions` (``--steps`` required) and the store, data, device and
    threads of :class:`RuntimeOptions`."""
    add_options(p, HessianOptions, "hessian", required=("steps",))  # Python's default (final) is not the CLI's
    add_options(p, RuntimeOptions, "runtime", skip=_other_runtime_fields())
    p.add_argument("--json", action="store_true", help="print the rows as JSON (always on)")


def run(args: argparse.Namespace, base: TrainSpec | None, argv: list[str]) -> int:
    """Options from the flags, the study, its rows as JSON."""
    options = HessianOptions.from_values(options_values(args, HessianOptions))
    result = run_hessian(options, runtime_from_args(args), warn=print_warning("cli"))
    emit_json(result.to_json())
    return 0
