"""The branch study: one ablation (``reinit``, ``random-mask``, ...) of an existing trunk's tickets at chosen levels
(``lth branch NAME``, ``lth.api.branch``). The trunk must be trained (``lth lottery``, :mod:`lth.studies.lottery`);
where it is not, the error says which trunks exist and how to train the one asked for. On a ticket held as tensors,
``ticket=(state, mask)`` (as :func:`lth.api.ticket` returns it), the branch runs on that ticket instead of a trunk's
level: it is stored as a given node (:mod:`lth.graph.given`) under ``<root>/ticket_<hash>/``, as the stability study
stores it, and the branch's run beside it (branches that need the trunk's dense network are refused)."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from lth.errors import UserError, ref, register_names
from lth.graph import Node
from lth.lottery import BRANCHES, Trunk
from lth.options import Options, option
from lth.progress import Progress
from lth.prune import PruneHparams
from lth.spec import Step, TrainSpec, to_dict
from lth.studies.base import StudyResult, Ticket, check_ticket, progress_of, ticket_node
from lth.studies.lottery import LotteryStudyPlan, make_branch_options, parse_level_set, unknown_branch
from lth.studies.runtime import RuntimeOptions, check_fits
from lth.studies.train import check_workers

# The branch's name is the command's positional NAME on the command line, the first argument in Python.
register_names("cli", {"branch_name": "lth branch NAME"})
register_names("api", {"branch_name": "name"})


@dataclass(frozen=True)
class BranchStudyOptions(Options):
    """Which branch, off which levels of which trunk (its rewind step), how many replicates, and the branch's own
    options (its options class, or a dict of its fields)."""

    PREFIX: ClassVar[str] = ""
    name: str = option(help=f"the branch ({' | '.join(BRANCHES)})")
    levels: tuple[int, ...] = option(help="trunk levels, a range like 0-15 or a list like 3,5,8", metavar="LEVELS",
                                     allowed="a range like 0-15 or a list like 3,5,8")
    replicates: int = option(1, "number of replicates", low=1)
    rewind: Step = option(Step(0, "it"), "the trunk's rewind step k (0it: reset to init)", metavar="STEP")
    options: Any = option(None, "the branch's own options", hidden=True)
    strict: bool = option(False, "exit 1 when any run diverged")

    @classmethod
    def from_values(cls, values: Mapping[str, Any] | None = None, *, base: Any = None,  # type: ignore[override]
                    **more: Any) -> BranchStudyOptions:
        """As :meth:`Options.from_values`, with ``levels`` as a range or list (``"0-3"``, ``[1, 2]``), one
        ``rewind`` step (a list of one is taken; several are refused: a branch hangs off one trunk) and ``options``
        built into the branch's options class (its fields' errors name them as ``lth branch`` flags and
        ``lth.api.branch`` keywords do)."""
        given = {**(values or {}), **more}
        if "name" in given and given["name"] not in BRANCHES:
            raise unknown_branch(str(given["name"]), "branch_name")
        if given.get("levels") is not None:
            given["levels"] = parse_level_set(given["levels"], "levels")
        rewind = given.get("rewind")
        if isinstance(rewind, list | tuple):
            if len(rewind) != 1:
                shown = " ".join(map(str, rewind))
                raise UserError(f"{ref('rewind')} {shown}: a branch hangs off one trunk; give one rewind step",
                                value=shown, allowed="one rewind step")
            given["rewind"] = rewind[0]
        if "name" in given:
            given["options"] = make_branch_options(given["name"], given.get("options"))
        return super().from_values(given, base=base)

    def check(self) -> None:
        """The branch's options belong to it."""
        if self.options is not None and not isinstance(self.options, BRANCHES[self.name].options):
            raise UserError(f"{ref('options')}: bad value {self.options!r}; allowed: the options of {self.name}")


@dataclass
class BranchPlan:
    """The branch's runs (``nodes``, in the order of its records), the same runs keeping the runtime's
    ``save_states`` (``kept``: what the executor trains), the lottery plan they belong to, and on a ticket given as
    tensors its given node, state and mask (written before the runs train)."""

    lottery: LotteryStudyPlan
    nodes: list[Node]
    kept: list[Node]
    options: BranchStudyOptions
    ticket: tuple[Node, dict[str, Any], dict[str, Any] | None] | None = None  # the given node to write, on a ticket

    @property
    def trunk(self) -> Trunk:
        """The trunk the branch hangs off."""
        return self.lottery.trunks[0]

    def records(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The CONTRACT's branch records of :attr:`nodes` from the executor's records of :attr:`kept`."""
        from lth.lottery.branches import branch_record

        by_path = {r["path"]: r for r in results}
        return [branch_record(n, by_path[str(n.path)], self.lottery._rewind_it(n)) for n in self.nodes]


def lottery_command(preset: str, given: Mapping[str, Any], pruning: PruneHparams, rewind: Step, root: Any,
                    levels: int) -> str:
    """The ``lth lottery`` command line that trains the trunk of these values up to ``levels`` (for an error that
    says how to make a missing trunk), quoted for a shell (a root with a space or ``#`` pastes as one word)."""
    from lth.presets import PRESETS
    from lth.prune import flag
    from lth.spec import to_json_value

    def shown(v: Any) -> list[str]:  # one word per value: lists are several words, as the flags take them
        v = to_json_value(list(v) if isinstance(v, tuple) else v)
        return [str(x) for x in v] if isinstance(v, list) else [str(v)]

    words = ["lth", "lottery", "--preset", preset]
    words += [w for k, v in given.items() for w in (f"--{k.replace('_', '-')}", *shown(v))]
    base = PruneHparams(**PRESETS[preset].pruning) if preset in PRESETS else PruneHparams()  # type: ignore[arg-type]
    mine, theirs = to_dict(pruning), to_dict(base)
    words += [w for k, v in mine.items() if v != theirs.get(k) for w in (flag(k), *shown(v))]
    if rewind.count:
        words += ["--rewind", str(rewind)]
    return shlex.join(words + ["--root", str(root), "--levels", str(levels)])  # pastes into a shell as is


def plan_branch(spec: TrainSpec, pruning: PruneHparams, opts: BranchStudyOptions, runtime: RuntimeOptions, *,
                preset: str = "custom", given: Mapping[str, Any] | None = None, command: str | None = None,
                hint: str | None = None, ticket: Ticket | None = None) -> BranchPlan:
    """The branch's runs off the trunk of ``spec``, ``pruning`` and ``opts.rewind``. Every check runs here, before
    anything is written: the runs fit (:func:`~lth.studies.runtime.check_fits`), the branch's options and ``set``
    schedule, the saved steps, the model reaches the workers, and every trunk level asked for is trained (else a
    UserError naming the trunks that exist and the fields that select them, or ``command``, the ``lth lottery``
    command that trains it, followed by ``hint``). ``ticket=(state, mask)``: the branch runs on that ticket instead
    (:func:`plan_ticket`), no trunk needed."""
    from lth.lottery.branches.retrain import check_set_lengths
    from lth.lottery.trunk import require_level

    check_workers(spec, runtime)
    if ticket is not None:
        return plan_ticket(spec, pruning, opts, runtime, ticket, preset=preset, given=given)
    trunk = Trunk(spec, pruning, opts.rewind, runtime.store, preset)
    check_fits(runtime, spec, opts.replicates * len(opts.levels), "replicates", opts.replicates, dict(given or {}))
    options = opts.options if opts.options is not None else make_branch_options(opts.name)
    lp = LotteryStudyPlan([trunk], max(opts.levels), opts.replicates, {opts.name: options}, list(opts.levels),
                          data_dir=runtime.data_dir, runtime=runtime)
    nodes = lp.branch_nodes()  # the branch's options are checked here, before the trunk is looked for
    check_set_lengths(nodes, runtime.data_dir)  # a --set schedule inside its training, as lth train checks its own
    kept = runtime.keep(nodes, spec, lp.spe)  # the branch's runs (its trunk is trained)
    command = command or lottery_command(preset, given or {}, pruning, opts.rewind, runtime.root, max(opts.levels))
    for r in range(opts.replicates):
        for level in opts.levels:
            require_level(trunk, r, level, command, hint)
    return BranchPlan(lp, nodes, kept, opts)


def plan_ticket(spec: TrainSpec, pruning: PruneHparams, opts: BranchStudyOptions, runtime: RuntimeOptions,
                ticket: Ticket, *, preset: str = "custom", given: Mapping[str, Any] | None = None) -> BranchPlan:
    """The branch's one run on ``ticket`` = ``(state, mask)`` (:func:`~lth.studies.base.check_ticket`; no mask:
    every weight kept), stored as a given node at ``<root>/ticket_<hash>/`` (:func:`~lth.studies.base.ticket_node`,
    as ``lth.api.stability(ticket=...)`` stores it) with the run beside it at ``branch_<name>_<hash>/level_0``.
    One replicate; ``opts.levels`` is not used; ``spec`` and ``pruning`` are those the branch trains with; the
    ticket's state is at ``opts.rewind``. Nothing is written."""
    import torch

    from lth.lottery.branches import plan_ticket_branch
    from lth.lottery.branches.retrain import check_set_lengths
    from lth.models import shape_model

    if opts.replicates != 1:
        raise UserError(f"{ref('replicates')} {opts.replicates}: a ticket is one network; allowed: 1",
                        value=opts.replicates, allowed="1")
    check_fits(runtime, spec, 1, "replicates", 1, dict(given or {}))
    trunk = Trunk(spec, pruning, opts.rewind, runtime.store, preset)
    options = opts.options if opts.options is not None else make_branch_options(opts.name)
    lp = LotteryStudyPlan([trunk], 0, 1, {}, [], data_dir=runtime.data_dir, runtime=runtime)
    assert lp.info is not None
    m = spec.model
    net = shape_model(m.model, lp.info.example_shape, lp.info.num_classes, m.norm, m.width)
    state, mask = check_ticket(ticket, net, m.model)
    if mask is None:  # a dense ticket: every prunable weight kept (a branch's ops read a mask)
        mask = {k: torch.ones(state[k].shape, dtype=torch.bool) for k in net.prunable()}
    node = ticket_node(spec, state, mask, runtime.store)
    pruned = sum(int((~v).sum()) for v in mask.values())
    nodes = plan_ticket_branch(opts.name, trunk, node, pruned, options, lp.prunable, lp.kinds, lp.info.example_shape,
                               lp.info.num_classes)
    check_set_lengths(nodes, runtime.data_dir)
    return BranchPlan(lp, nodes, runtime.keep(nodes, spec, lp.spe), opts, ticket=(node, state, mask))


def run_branch(plan: BranchPlan, progress: Progress | bool | None = None) -> StudyResult:
    """Train what is missing of the branch (``progress``: the CLI's :class:`~lth.progress.Progress`, True for a
    new one, False for none; on a ticket, its given node is written first); ``{"runs": [record, ...]}``, the
    document of ``lth branch NAME --json``."""
    from lth.graph import write_given

    runtime = plan.lottery.runtime or RuntimeOptions()
    with progress_of(progress) as p:
        ex = runtime.make_executor(p, "branch")
        if plan.ticket is not None:
            write_given(*plan.ticket)
        results = ex.run(plan.kept)
    return StudyResult({"runs": plan.records(results)})


__all__ = ["BranchPlan", "BranchStudyOptions", "lottery_command", "plan_branch", "plan_ticket", "run_branch"]
