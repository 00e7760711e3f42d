"""The ``lth`` command. Progress and errors go to stderr; with ``--json`` stdout holds one JSON document.

Every hyperparameter field is a flag named after it (``--lr``, ``--batch-size``, ``--training-steps``), made
by one walk over the spec's dataclasses; a preset supplies the starting values.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any, NoReturn

from lth.errors import UserError
from lth.spec import GROUPS, Step, TrainSpec, hparam_fields, replace_fields, to_json_value

DEFAULT_ROOT = "runs"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit code 2 (the CONTRACT's bad-input promise)."""

    def error(self, message: str) -> NoReturn:
        raise UserError(message)


# ------------------------------------------------------------------------------------------------ flags
def add_spec_flags(p: argparse.ArgumentParser, base: TrainSpec | None) -> None:
    """One flag per spec field; help shows the preset's value when a preset is given."""
    for g in GROUPS:
        group = p.add_argument_group(f"{g} hyperparameters")
        hp = getattr(base, g) if base is not None else None
        for name, f, tp in hparam_fields(type(getattr(TrainSpec(), g))):
            help_text = f.metadata.get("help", "")
            if f.metadata.get("choices"):
                help_text += f" ({' | '.join(f.metadata['choices'])})"
            if hp is not None:
                help_text += f" [preset: {_show(getattr(hp, name))}]"
            kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": name}
            if str(tp).startswith("tuple"):
                kwargs["nargs"] = "*"
            elif tp is bool:
                kwargs.update(nargs="?", const="true")
            group.add_argument(f"--{name.replace('_', '-')}", **kwargs)


def add_dataclass_flags(p: argparse.ArgumentParser, cls: type, title: str, flag_of: Any, dest_prefix: str,
                        base: Any = None, aliases: dict[str, str] | None = None) -> None:
    """One flag per field of a flat hyperparameter dataclass (pruning, branch options)."""
    group = p.add_argument_group(title)
    for name, f, tp in hparam_fields(cls):
        help_text = f.metadata.get("help", "")
        if f.metadata.get("choices"):
            help_text += f" ({' | '.join(f.metadata['choices'])})"
        if base is not None:
            help_text += f" [preset: {_show(getattr(base, name))}]"
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "help": help_text, "dest": f"{dest_prefix}{name}",
                                  "metavar": name.upper()}
        if str(tp).startswith("tuple"):
            kwargs["nargs"] = "*"
        elif tp is bool:
            kwargs.update(nargs="?", const="true")
        flags = [flag_of(name)] + ([aliases[name]] if aliases and name in aliases else [])
        group.add_argument(*flags, **kwargs)


def dataclass_from_args(args: argparse.Namespace, cls: type, dest_prefix: str, base: Any) -> Any:
    """``base`` with the flags the user gave (``dest_prefix<field>``) applied and parsed to their types."""
    from lth.spec import parse_value

    types = {n: t for n, _, t in hparam_fields(cls)}
    changes = {n: parse_value(types[n], v, n) for k, v in vars(args).items() if k.startswith(dest_prefix)
               for n in [k[len(dest_prefix):]]}
    return dataclasses.replace(base, **changes)


def _show(v: Any) -> str:
    v = to_json_value(v)
    return " ".join(map(str, v)) if isinstance(v, list) else str(v)


def spec_from_args(args: argparse.Namespace, base: TrainSpec) -> TrainSpec:
    """The preset's spec with every flag the user gave applied, validated."""
    names = {n for g in GROUPS for n, _, _ in hparam_fields(type(getattr(base, g)))}
    overrides = {k: v for k, v in vars(args).items() if k in names}
    spec = replace_fields(base, overrides)
    spec.validate()
    return spec


def add_runtime_flags(p: argparse.ArgumentParser) -> None:
    """Flags that say how and where to train, never what."""
    r = p.add_argument_group("runtime")
    r.add_argument("--root", default=os.environ.get("LTH_ROOT", DEFAULT_ROOT),
                   help="store directory (default: $LTH_ROOT or ./runs)")
    r.add_argument("--data-dir", default=None, help="data root (default: $LTH_DATA or ~/.cache/lth)")
    r.add_argument("--replicates", type=_positive_int, default=1, help="number of replicates")
    r.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    r.add_argument("--cuda-graph", default="auto", choices=("auto", "off"),
                   help="capture the training step as a CUDA graph (auto: on for CUDA)")
    r.add_argument("--max-population", type=_positive_int, default=None,
                   help="most runs trained together as one population (default: from the device)")
    r.add_argument("--checkpoint-every", default="1ep", help="checkpoint interval (a step, or 'never')")
    r.add_argument("--compile", action="store_true",
                   help="torch.compile the training forward (GPU: inside the CUDA graph; adds compile time)")
    r.add_argument("--save-states", nargs="*", default=[], metavar="STEP",
                   help="also keep the weights at these steps (e.g. 500it 2ep), besides init and final")
    r.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def _whole_number(text: str, minimum: int, flag: str = "") -> int:
    """``text`` as an int >= ``minimum``; UserError naming the flag and the value otherwise."""
    try:
        v = int(text)
    except ValueError:
        v = minimum - 1
    if v < minimum:
        raise UserError(f"{flag + ' ' if flag else ''}{text!r}: expected a whole number >= {minimum}")
    return v


def _positive_int(text: str) -> int:
    return _whole_number(text, 1)


def executor_from_args(args: argparse.Namespace, progress: Any) -> Any:
    """An Executor configured by the runtime flags."""
    from lth.engine.train import EngineOptions
    from lth.executor import Executor

    ckpt = None if args.checkpoint_every == "never" else Step.parse(args.checkpoint_every)
    opts = EngineOptions(device=args.device, cuda_graph=args.cuda_graph, checkpoint_every=ckpt,
                         callback=progress.callback, compile=args.compile)
    return Executor(data_dir=args.data_dir, options=opts, max_population=args.max_population,
                    on_population=progress.population)


class Progress:
    """A rich progress bar on stderr, fed by the engine's events."""

    def __init__(self, quiet: bool = False) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.console = Console(stderr=True)
        self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), console=self.console, transient=True,
                                disable=quiet or not self.console.is_terminal)
        self.task: Any = None
        self.populations: list[int] = []

    def __enter__(self) -> Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def population(self, size: int) -> None:
        self.populations.append(size)
        self.console.print(f"training a population of {size} run{'s' if size > 1 else ''}")
        self.task = None

    def callback(self, event: str, info: dict[str, Any]) -> None:
        if event == "eval":
            if self.task is None:
                self.task = self.bar.add_task("iterations", total=info["total"])
            accs = [r["test_accuracy"] for r in info["rows"].values()]
            desc = f"iterations (test acc {sum(accs) / len(accs):.4f})" if accs else "iterations"
            self.bar.update(self.task, completed=info["iteration"], description=desc)
        elif event == "diverged":
            self.console.print(f"[red]diverged[/red] at iteration {info['iteration']}: {info['job'].run_dir}")


def emit_json(obj: Any) -> None:
    """The one JSON document on stdout."""
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


# ------------------------------------------------------------------------------------------------ commands
def cmd_presets(args: argparse.Namespace) -> int:
    from lth.presets import PRESETS
    from lth.spec import to_dict

    if args.json:
        emit_json({"presets": {k: {"note": p.note, "spec": to_dict(p.spec)} for k, p in PRESETS.items()}})
        return 0
    width = max(map(len, PRESETS))
    for name, p in PRESETS.items():
        print(f"{name:<{width}}  {p.note}")
    return 0


def cmd_train(args: argparse.Namespace, base: TrainSpec) -> int:
    from lth.engine.train import Job
    from lth.spec import spec_hash
    from lth.store import RunDir, run_path

    spec = spec_from_args(args, base)
    digest = spec_hash(spec)
    saves = tuple(Step.parse(s) for s in args.save_states)
    jobs = [Job(spec, r, run_path(Path(args.root), "train", digest, r), meta={"preset": args.preset},
                state_steps=saves) for r in range(args.replicates)]
    finished = [j for j in jobs if RunDir(j.run_dir).done is not None]
    with Progress(quiet=False) as progress:
        if len(finished) == len(jobs):
            progress.console.print(f"already trained: nothing to do; results in {jobs[0].run_dir.parent}")
        records = executor_from_args(args, progress).run(jobs)
        if progress.populations:
            sizes = ", ".join(map(str, progress.populations))
            n = len(progress.populations)
            progress.console.print(f"trained {n} population{'s' if n > 1 else ''} (sizes {sizes})")
    for r in records:
        if r["status"] == "diverged":
            print(f"run diverged: {r['path']}", file=sys.stderr)
    if args.json:
        emit_json({"runs": records})
    else:
        for r in records:
            acc = r["final_test_accuracy"]
            print(f"replicate {r['replicate']}: {r['status']}, final test accuracy "
                  f"{'n/a' if acc is None else f'{acc:.4f}'}  {r['path']}", file=sys.stderr)
        print(f"results in {jobs[0].run_dir.parent}", file=sys.stderr)
    return 0


def _pruning(args: argparse.Namespace) -> Any:
    from lth.presets import get_preset
    from lth.prune import PruneHparams

    base = PruneHparams(**get_preset(args.preset).pruning)  # type: ignore[arg-type]
    hp = dataclass_from_args(args, PruneHparams, "prune__", base)
    hp.validate()
    return hp


def cmd_lottery(args: argparse.Namespace, base: TrainSpec) -> int:
    from lth.lottery import Trunk, run_trunks

    spec = spec_from_args(args, base)
    pruning = _pruning(args)
    rewinds = [Step.parse(k) for k in args.rewind]
    trunks = [Trunk(spec, pruning, k, Path(args.root), args.preset) for k in rewinds]
    with Progress() as progress:
        levels = _whole_number(args.levels, 0, "--levels")
        records = run_trunks(trunks, levels, args.replicates, executor_from_args(args, progress))
    if args.json:
        emit_json({"runs": records})
    else:
        _print_levels(records)
        print(f"results in {Path(records[0]['path']).parent.parent.parent}", file=sys.stderr)
    return 0


def _print_levels(records: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("rewind", "level", "density", "replicate", "test accuracy", "status")
    for r in records:
        acc = r["final_test_accuracy"]
        density = "n/a" if r["density"] is None else f"{r['density']:.4f}"
        table.add_row(r["rewind"], str(r["level"]), density, str(r["replicate"]),
                      "n/a" if acc is None else f"{acc:.4f}", r["status"])
    Console(stderr=True).print(table)


def _trunk_command(argv: list[str]) -> str:
    """The `lth lottery` command that makes the trunk a `lth branch` command points at."""
    out, skip_values = ["lth", "lottery"], False
    i = 2  # drop "branch NAME"
    while i < len(argv):
        a = argv[i]
        if a in ("--levels", "--branch-seed", "--mask-mode"):
            i += 2
            continue
        if a in ("--set",):
            skip_values = True
            i += 1
            continue
        if a.startswith("--"):
            skip_values = False
        if not skip_values and a != "--json":
            out.append(a)
        i += 1
    return " ".join(out + ["--levels", "<highest level>"])


def cmd_branch(args: argparse.Namespace, base: TrainSpec, argv: list[str]) -> int:
    from lth.lottery import BranchOptions, Trunk, parse_levels, run_branch

    spec = spec_from_args(args, base)
    pruning = _pruning(args)
    if len(args.rewind) != 1:
        raise UserError(f"--rewind {' '.join(args.rewind)}: a branch hangs off one trunk; give one rewind step")
    trunk = Trunk(spec, pruning, Step.parse(args.rewind[0]), Path(args.root), args.preset)
    options = dataclass_from_args(args, BranchOptions, "branch__", BranchOptions())
    levels = parse_levels(args.levels)
    with Progress() as progress:
        records = run_branch(args.name, trunk, levels, args.replicates, options,
                             executor_from_args(args, progress), _trunk_command(argv))
    if args.json:
        emit_json({"runs": records})
    else:
        _print_levels(records)
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from lth.analysis import metrics_frame

    df = metrics_frame(Path(args.root))
    if args.json:
        emit_json({"rows": json.loads(df.to_json(orient="records"))})
    else:  # --csv, the default
        sys.stdout.write(df.to_csv(index=False))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from lth.report import build_report

    report = build_report(Path(args.root), Path(args.out) if args.out else None)
    if args.json:
        emit_json(report.to_json())
    else:
        print(report.index)
    return 0


# ------------------------------------------------------------------------------------------------ main
def build_parser(base: TrainSpec | None, base_name: str | None = None) -> argparse.ArgumentParser:
    """The full parser; ``base`` (the preset's spec) feeds the help text of the spec flags."""
    p = _Parser(prog="lth", description="Lottery-ticket experiments from one command.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    t = sub.add_parser("train", help="train a preset (replicates train together as one population)")
    t.add_argument("--preset", required=True, help="a preset name (see `lth presets`)")
    add_spec_flags(t, base)
    add_runtime_flags(t)
    from lth.lottery import BRANCHES, BranchOptions
    from lth.presets import PRESETS
    from lth.prune import PruneHparams, flag

    prune_base = PruneHparams(**PRESETS[base_name].pruning) if base_name in PRESETS else None  # type: ignore[arg-type]
    for cmd in ("lottery", "branch"):
        help_text = ("iterative magnitude pruning with rewinding (the trunk)" if cmd == "lottery"
                     else f"an ablation of a trunk's tickets: {', '.join(BRANCHES)}")
        c = sub.add_parser(cmd, help=help_text)
        if cmd == "branch":
            c.add_argument("name", help=f"the branch ({' | '.join(BRANCHES)})")
            c.add_argument("--levels", required=True, help="trunk levels, a range like 0-15 or a list like 3,5,8")
            add_dataclass_flags(c, BranchOptions, "branch options", lambda n: f"--{n.replace('_', '-')}",
                                "branch__")
        else:
            c.add_argument("--levels", required=True, help="pruning levels after the dense level 0")
        c.add_argument("--preset", required=True, help="a preset name (see `lth presets`)")
        c.add_argument("--rewind", nargs="+", default=["0it"],
                       help="rewind step k (0it: the original lottery ticket); lottery takes several (a sweep)")
        add_dataclass_flags(c, PruneHparams, "pruning", flag, "prune__", prune_base,
                            aliases={"strategy": "--strategy"})
        add_spec_flags(c, base)
        add_runtime_flags(c)
    ps = sub.add_parser("presets", help="list the presets")
    ps.add_argument("--json", action="store_true")
    r = sub.add_parser("results", help="one tidy row per run per evaluation")
    r.add_argument("--root", default=os.environ.get("LTH_ROOT", DEFAULT_ROOT))
    fmt = r.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    rep = sub.add_parser("report", help="figures (PNG + SVG), tables (CSV) and an index.html of a store")
    rep.add_argument("--root", default=os.environ.get("LTH_ROOT", DEFAULT_ROOT), help="the store to report on")
    rep.add_argument("-o", "--out", default=None, help="output folder (default: ROOT/report)")
    rep.add_argument("--json", action="store_true", help='print {"report", "figures", "tables"} as JSON')
    return p


def _preset_from_argv(argv: list[str]) -> TrainSpec | None:
    from lth.presets import get_preset

    name = _preset_name(argv)
    return None if name is None else get_preset(name).spec


def _preset_name(argv: list[str]) -> str | None:
    """The value of the last ``--preset`` (argparse keeps the last one too)."""
    name = None
    for i, a in enumerate(argv):
        if a == "--preset" and i + 1 < len(argv):
            name = argv[i + 1]
        elif a.startswith("--preset="):
            name = a.split("=", 1)[1]
    return name


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lth`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        base = _preset_from_argv(argv)
        args = build_parser(base, _preset_name(argv)).parse_args(argv)
        if args.command == "train":
            return cmd_train(args, base)  # type: ignore[arg-type]
        if args.command == "lottery":
            return cmd_lottery(args, base)  # type: ignore[arg-type]
        if args.command == "branch":
            return cmd_branch(args, base, argv)  # type: ignore[arg-type]
        if args.command == "presets":
            return cmd_presets(args)
        if args.command == "results":
            return cmd_results(args)
        if args.command == "report":
            return cmd_report(args)
        raise UserError(f"unknown command {args.command!r}")
    except UserError as e:
        print(f"lth: error: {str(e).splitlines()[0] if str(e) else e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lth: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as e:  # one line, the traceback goes to a log file
        log = Path(os.environ.get("LTH_LOG", Path.home() / ".cache" / "lth" / "error.log"))
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
        print(f"lth: failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} (log: {log})",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
