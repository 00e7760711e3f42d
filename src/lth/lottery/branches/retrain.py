"""``retrain``: the ticket (mask and rewound weights) trained with other hyperparameters, e.g. another learning
rate (Ma et al. 2021's learning-rate sweep; ``--set lr=0.01``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lth.errors import UserError, ref
from lth.graph import Node, Recipe
from lth.lottery.branches.base import Branch, BranchContext, BranchOptions
from lth.spec import TrainSpec, help_field, replace_fields, validate_lengths

# fields that would change the network or the data: a ticket cannot be retrained under them
ARCHITECTURE_FIELDS = frozenset({"model", "norm", "width", "dataset", "synthetic_shape", "synthetic_classes",
                                 "rotation_task"})


@dataclass(frozen=True)
class RetrainOptions(BranchOptions):
    """Which training hyperparameters change."""

    set: tuple[str, ...] = help_field((), "retrain, oneshot, reinit, small-dense, dn-reinit, remask: training "
                                      "hyperparameters to change, as KEY=VALUE (e.g. lr=0.01)")


def set_values(items: Sequence[str]) -> dict[str, str]:
    """The ``--set KEY=VALUE`` items as ``{key: VALUE}`` (keys with ``_``, as the spec's fields); UserError for a
    malformed item or a field that changes the architecture or the data (the ticket would not fit)."""
    overrides = {}
    for item in items:
        if "=" not in item:
            raise UserError(f"{ref('set')} {item!r}: expected KEY=VALUE, e.g. lr=0.01", value=item,
                            allowed="KEY=VALUE")
        key, value = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key in ARCHITECTURE_FIELDS:
            allowed = "training and data-order hyperparameters (lr, optimizer, training_steps, ...)"
            raise UserError(f"{ref('set')} {item!r}: {key} changes the network or its data, so the ticket would not "
                            f"fit; allowed: {allowed}", value=item, allowed=allowed)
        overrides[key] = value.strip()
    return overrides


def check_set_lengths(nodes: Iterable[Node], data_dir: str | Path | None = None) -> None:
    """Before anything is written: every branch run retrained under ``--set`` has a batch that fits its training
    set and its given warmup and milestones inside its own training (``spec.validate_lengths``, as ``lth train``
    checks its flags); UserError naming ``--set KEY=VALUE``, the end of training and the steps allowed."""
    from lth.data.describe import describe

    seen: set[tuple[TrainSpec, tuple[str, ...]]] = set()
    for n in nodes:
        items = tuple((n.meta.get("branch_options") or {}).get("set") or ())
        if not items or (n.spec, items) in seen:
            continue
        seen.add((n.spec, items))
        values = set_values(items)
        validate_lengths(n.spec, describe(n.spec.data, data_dir).n_train, given=set(values), set_values=values)


def retrained_spec(spec: TrainSpec, items: tuple[str, ...]) -> TrainSpec:
    """``spec`` with the ``--set`` overrides; UserError for a malformed item or a field that changes the
    architecture or the data (the ticket would not fit)."""
    if not items:
        raise UserError(f"retrain needs {ref('set')} KEY=VALUE (e.g. {ref('set')} lr=0.01)")
    overrides = set_values(items)
    try:
        out = replace_fields(spec, overrides)
        out.validate()
    except UserError as e:  # name the field as the user gave it: --set lr=0 (set lr=0 in Python), not --lr
        aliases = {**e.aliases, **{key: f"{ref('set')} {key}={value}" for key, value in overrides.items()}}
        raise UserError(e.template, allowed=e.allowed, aliases=aliases,
                        **({"value": e.value} if e.has_value else {})) from None
    return out


def plan(ctx: BranchContext, r: int, level: int) -> list[Node]:
    """One node per replicate and level: the ticket, rewound, under the changed hyperparameters."""
    spec = retrained_spec(ctx.trunk.spec, ctx.options.set)
    return [ctx.node(r, level, Recipe.make("ticket", ctx.start(r, level), ctx.ticket(r, level)), spec=spec)]


BRANCH = Branch(RetrainOptions, plan, "the ticket trained with other hyperparameters (--set lr=...)")
