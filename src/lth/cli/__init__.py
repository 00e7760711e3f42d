"""The ``lth`` command: a registry of command modules. Progress and errors go to stderr; with ``--json`` stdout
holds one JSON document.

Each command is one module in this package with ``HELP``, ``add_arguments(parser, preset_spec, preset_name)``
and ``run(args, preset_spec, argv) -> exit code``; one line in :data:`COMMANDS` registers it. Every
hyperparameter field is a flag named after it (``--lr``, ``--batch-size``), made by one walk over the options
dataclasses (:mod:`lth.cli.flags`); a preset supplies the starting values. A command is flags -> options ->
study (:mod:`lth.studies`) -> print.
"""

from __future__ import annotations

import functools
import signal
import sys
import traceback
from types import ModuleType

from lth.cli import (
    branch,
    demo,
    hessian,
    landscape,
    lottery,
    presets,
    recipe,
    report,
    results,
    stability,
    status,
    train,
)
from lth.cli.parser import Parser
from lth.errors import UserError, write_error_log
from lth.spec import TrainSpec

COMMANDS: dict[str, ModuleType] = {
    "train": train,
    "lottery": lottery,
    "branch": branch,
    "presets": presets,
    "results": results,
    "report": report,
    "status": status,
    "stability": stability,
    "landscape": landscape,
    "hessian": hessian,
    "demo": demo,
    "recipe": recipe,
}


def build_parser(base: TrainSpec | None, base_name: str | None = None) -> Parser:
    """The full parser; ``base`` (the preset's spec) feeds the help text of the spec flags."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("lth")
    except PackageNotFoundError:
        ver = "unknown"
    p = Parser(prog="lth", description="Lottery-ticket experiments from one command.")
    p.add_argument("--version", action="version", version=f"lth {ver}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for name, module in COMMANDS.items():
        help_text = module.HELP or (module.__doc__ or "").split("\n")[0]
        c = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(c, base, base_name)
    return p


def _preset_name(argv: list[str]) -> str | None:
    """The value of the last ``--preset`` (argparse keeps the last one too)."""
    name = None
    for i, a in enumerate(argv):
        if a == "--preset" and i + 1 < len(argv):
            name = argv[i + 1]
        elif a.startswith("--preset="):
            name = a.split("=", 1)[1]
    return name


def _plugin_names(argv: list[str]) -> list[str]:
    """The values of every ``--plugin`` (loaded before presets and model names are looked up)."""
    out = []
    for i, a in enumerate(argv):
        if a == "--plugin" and i + 1 < len(argv):
            out.append(argv[i + 1])
        elif a.startswith("--plugin="):
            out.append(a.split("=", 1)[1])
    return out


def _join_negative_values(argv: list[str]) -> list[str]:
    """``--training-steps -3it`` as ``--training-steps=-3it``, so the value reaches its own check (argparse
    would take ``-3it`` for a flag and say only "expected one argument")."""
    out: list[str] = []
    for a in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and len(a) > 1 and a[0] == "-" \
                and (a[1].isdigit() or a[1] == "."):
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


class Terminated(KeyboardInterrupt):
    """SIGTERM (what Slurm sends a driver at its time limit, what ``kill`` sends), raised as Ctrl-C is: the same
    clean-up (jobs in flight cancelled, a Ray instance started for the command stopped) and the same message."""


_SIGTERM_SEEN: list[bool] = [False]  # set by the handler: an error raised while stopping is still a SIGTERM


def _terminated(console: bool, signum: int, frame: object) -> None:
    _SIGTERM_SEEN[0] = True
    if console:  # from here on the process is stopping: see _quiet_exit
        _quiet_exit()
    raise Terminated()


def _stopped_by_sigterm(e: BaseException) -> bool:
    """Whether an error is what a SIGTERM to the whole process group (Slurm's time limit, ``timeout``) leaves
    behind: the handler ran, or a DataLoader worker it killed first was reported by torch."""
    return _SIGTERM_SEEN[0] or "killed by signal: Terminated" in str(e)


def _interrupted(code: int, console: bool) -> int:
    """Say the command was interrupted and how to resume; ``code``. In the ``lth`` process itself (``console``),
    the threads the interruption cuts short (multiprocessing's resource sharer, which passes the DataLoader workers'
    batches) end without printing tracebacks after that line: the process is on its way out."""
    if console:
        _quiet_exit()
    print("lth: interrupted; run the same command again to resume", file=sys.stderr)
    return code


def _quiet_exit() -> None:
    """What stopping cuts short ends without a traceback: threads (sys.excepthook, what multiprocessing's resource
    sharer calls; threading.excepthook), and clean-ups that fail as the process unwinds (sys.unraisablehook: a
    DataLoader's ``__del__`` finding its workers dead of the same SIGTERM)."""
    import threading

    sys.excepthook = lambda *_: None
    threading.excepthook = lambda _: None
    sys.unraisablehook = lambda _: None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``lth`` command."""
    import threading

    if threading.current_thread() is threading.main_thread():  # signal handlers can only be set there
        _SIGTERM_SEEN[0] = False
        previous = signal.signal(signal.SIGTERM, functools.partial(_terminated, argv is None))
        try:
            return _main(argv)
        finally:
            signal.signal(signal.SIGTERM, previous)
    return _main(argv)


def _main(argv: list[str] | None) -> int:
    from lth.plugins import load_entry_points, load_plugins
    from lth.presets import get_preset

    console = argv is None  # the lth process itself, not a call from Python
    argv = _join_negative_values(list(sys.argv[1:] if argv is None else argv))
    try:
        load_entry_points()
        load_plugins(_plugin_names(argv))
        name = _preset_name(argv)
        base = None if name is None else get_preset(name).spec
        args = build_parser(base, name).parse_args(argv)
        return COMMANDS[args.command].run(args, base, argv)
    except UserError as e:  # rendered with flags, named as typed (--strategy)
        from lth.cli.flags import typed_aliases

        text = e.render("cli", aliases=typed_aliases(argv))
        print(f"lth: error: {text.splitlines()[0] if text else 'bad input'}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:  # Ctrl-C (exit 130) or SIGTERM (exit 143): jobs in flight were cancelled
        return _interrupted(128 + signal.SIGTERM if isinstance(e, Terminated) else 130, console)
    except Exception as e:  # one line, the traceback goes to a log file
        if _stopped_by_sigterm(e):  # the workers got the group's SIGTERM first: an interruption, not a failure
            return _interrupted(128 + signal.SIGTERM, console)
        log = write_error_log(traceback.format_exc())
        print(f"lth: failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
              f"(log: {log if log else 'not written'})", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
