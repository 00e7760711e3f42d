"""Progress of a study on stderr, for the command line and for notebooks alike.

On a terminal: one rich view of the whole command (runs done of total, elapsed time and ETA) and the current
population's iterations. Anywhere else (a pipe, a log file, a Jupyter notebook): plain lines without escape codes,
naming each population's runs and every evaluation's accuracy. Every study takes a :class:`Progress` (the CLI's
and the Python API's are the same class); ``Progress(quiet=True)`` prints only what a population trains.
"""

from __future__ import annotations

import time
from typing import Any


def names_list(names: list[str], most: int = 4) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


def duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's kernel app is running)."""
    import sys

    shell = sys.modules.get("IPython")
    try:
        return bool(shell and shell.get_ipython() is not None
                    and type(shell.get_ipython()).__name__ == "ZMQInteractiveShell")
    except Exception:  # noqa: BLE001 - an IPython without a shell: not a notebook
        return False


class Progress:
    """Progress on stderr. On a terminal: one rich view of the command (runs done of total, elapsed, ETA) and the
    current population's iterations with its mean test accuracy. Otherwise plain lines: what the graph holds,
    each population (size and run names, e.g. ``lottery_x/replicate_0/level_3``), each evaluation (iteration
    of total, test accuracy mean/min/max) and runs done of total with elapsed time and ETA after each wave."""

    def __init__(self, quiet: bool = False) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        # plain lines in a notebook: a kernel's stream may say it is a terminal, but it shows no escape codes
        notebook = in_notebook()
        self.console = Console(stderr=True, force_jupyter=False, force_terminal=False if notebook else None,
                               no_color=notebook or None)
        self.tty = self.console.is_terminal and not quiet
        self.quiet = quiet
        self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True,
                                disable=not self.tty)
        self.task: Any = None
        self.runs_task: Any = None
        self.populations: list[int] = []
        self.started = time.perf_counter()
        self._first_done: int | None = None
        self._queued: list[list[str]] = []  # run names of the populations of the current wave, in order

    def __enter__(self) -> Progress:
        self.bar.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.bar.__exit__(*exc)

    def _line(self, text: str) -> None:
        if not self.tty and not self.quiet:
            self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def population(self, size: int) -> None:
        """A population starts training."""
        self.populations.append(size)
        names = self._queued.pop(0) if self._queued else []
        if len(names) != size:  # another process trained some members meanwhile: the names no longer match
            names = []
        self.console.print(f"training a population of {size} run{'s' if size > 1 else ''}"
                           + (f": {names_list(names)}" if names else ""), highlight=False, soft_wrap=True)
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = None

    def eta(self, done: int, total: int) -> float | None:
        """Seconds left at the pace of the runs this command trained so far (None before the first)."""
        if self._first_done is None or done <= self._first_done:
            return None
        return (time.perf_counter() - self.started) / (done - self._first_done) * (total - done)

    def graph_event(self, event: str, info: dict[str, Any]) -> None:
        """Progress over the whole graph (the executor's ``on_event``)."""
        if event == "graph":
            done, total = info["done"], info["total"]
            if self._first_done is None:
                self._first_done = done
                if done < total:
                    dup = int(info.get("duplicates") or 0)  # same digest as another run: filled, never trained
                    same = (f" ({dup} of the runs {'is' if dup == 1 else 'are'} the same run as another, filled "
                            "from it, not trained again)") if dup else ""
                    self._line(f"{total} run{'s' if total > 1 else ''} in this command: {done} already trained, "
                               f"{total - done} to train{same}")
            elif done < total:
                eta = self.eta(done, total)
                self._line(f"runs done: {done} of {total}; elapsed {duration(time.perf_counter() - self.started)}"
                           + (f", about {duration(eta)} left" if eta is not None else ""))
            if self.runs_task is None:
                self.runs_task = self.bar.add_task("runs", total=total)
            self.bar.update(self.runs_task, completed=done, total=total)
        elif event == "wave":
            names = info.get("names") or []
            self._queued = [list(g) for g in names]
        elif event == "skipped" and self._queued and self._queued[0] == list(info.get("names") or []):
            self._queued.pop(0)  # a population of the wave that another process trains

    def callback(self, event: str, info: dict[str, Any]) -> None:
        """Engine events: evaluations and divergence."""
        if event == "eval":
            accs = [r["test_accuracy"] for r in info["rows"].values() if r.get("test_accuracy") is not None]
            mean = f"{sum(accs) / len(accs):.4f}" if accs else "n/a"
            if self.task is None:
                self.task = self.bar.add_task("iterations", total=info["total"])
            self.bar.update(self.task, completed=info["iteration"], description=f"iterations (test acc {mean})")
            spread = f" (min {min(accs):.4f}, max {max(accs):.4f})" if len(accs) > 1 else ""
            self._line(f"  iteration {info['iteration']} of {info['total']}: test accuracy {mean}{spread}"
                       + (f" [{len(accs)} runs]" if len(accs) > 1 else ""))
        elif event == "resumed":
            its = sorted(set(info["iterations"]))
            at = f"iteration {its[0]}" if len(its) == 1 else f"iterations {its[0]} to {its[-1]}"
            runs = len(info["runs"])
            if not self.quiet:
                self.console.print(f"  resuming {runs} run{'s' if runs > 1 else ''} from "
                                   f"{'their checkpoints' if runs > 1 else 'its checkpoint'} at {at} of "
                                   f"{info['total']}", highlight=False, markup=False, soft_wrap=True)
        elif event == "diverged":
            self.console.print(f"[red]diverged[/red] at iteration {info['iteration']}: {info['job'].run_dir}")
