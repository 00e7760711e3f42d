"""What every study shares: its result object (a DataFrame and the CLI's JSON document from one place), the
progress it reports to, and the spec it trains (a preset's, or a :class:`~lth.spec.TrainSpec` given as is)."""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lth.errors import UserError, ref
from lth.progress import Progress
from lth.spec import TrainSpec

Ticket = tuple[Mapping[str, Any], Mapping[str, Any] | None]  # (state, mask) as lth.api.ticket returns them

if TYPE_CHECKING:  # pandas is imported when a frame is asked for: the command line starts without it
    import pandas as pd

    from lth.graph import Node


@dataclass
class StudyResult:
    """A study's result: ``document`` is the JSON document ``lth <command> --json`` prints (absolute paths,
    fractions, steps beside their iterations), ``table`` the name of its list of rows that :meth:`frame` turns
    into a DataFrame."""

    document: dict[str, Any] = field(default_factory=dict)
    table: str = "runs"

    def to_json(self) -> dict[str, Any]:
        """The JSON document of the CLI's ``--json``."""
        return self.document

    def frame(self, name: str | None = None) -> pd.DataFrame:
        """The rows of ``name`` (default: the study's main table) as a DataFrame."""
        import pandas as pd

        key = name or self.table
        if key not in self.document:
            raise UserError(f"table: bad value {key!r}; allowed: {', '.join(self.document)}")
        rows = self.document[key]
        return pd.DataFrame(rows if isinstance(rows, list) else [rows])

    def __getitem__(self, key: str) -> Any:
        return self.document[key]

    def __contains__(self, key: object) -> bool:
        return key in self.document


@contextlib.contextmanager
def progress_of(progress: Progress | bool | None) -> Iterator[Progress]:
    """The progress a study reports to: the one given (the CLI's), a new one (``True`` or None: plain lines on
    stderr in a notebook or a pipe, the rich view on a terminal), or a quiet one (``False``: only populations)."""
    if isinstance(progress, Progress):
        yield progress
        return
    with Progress(quiet=progress is False) as p:
        yield p


def resolve_spec(preset: str | TrainSpec, overrides: Mapping[str, Any] | None = None,
                 own: tuple[str, ...] = ()) -> tuple[TrainSpec, str]:
    """(spec, preset name) of a preset name or a TrainSpec given as is, with field ``overrides`` (``lr=0.01``,
    parsed as the CLI parses its flags; ``model`` may be a model class or factory: :func:`model_name`) applied and
    validated. A TrainSpec's preset name is ``"custom"``.
    ``own``: the study's other keywords, listed beside the hyperparameters when a keyword is neither."""
    from lth.options import unknown_name
    from lth.presets import PRESETS, get_preset
    from lth.spec import GROUPS, hparam_fields, replace_fields

    if isinstance(preset, TrainSpec):
        base, name = preset, "custom"
    elif isinstance(preset, str):
        base, name = get_preset(preset).spec, preset
    else:
        raise UserError(f"preset: bad value {preset!r}; allowed: a TrainSpec or a preset name: {', '.join(PRESETS)}")
    known = sorted({n for g in GROUPS for n, _, _ in hparam_fields(type(getattr(base, g)))})
    values = dict(overrides or {})
    for key in values:
        if key not in known:
            raise unknown_name(key, [*own, *known], extra="")
    if "model" in values and not isinstance(values["model"], str):  # a model class or factory: registered
        values["model"] = model_name(values["model"])
    spec = default_crop(replace_fields(base, values))
    spec.validate()
    return spec, name


def default_crop(spec: TrainSpec) -> TrainSpec:
    """``spec`` with an image dataset's crop side written as 0 where it is the dataset's default (``--image-size
    224`` on ImageNet is the run ``--image-size`` left out trains: one identity, not two)."""
    from lth.data.images import DEFAULT_SIZE

    d = spec.data
    if d.image_size and DEFAULT_SIZE.get(d.dataset) == d.image_size:
        return replace(spec, data=replace(d, image_size=0))
    return spec


def model_name(model: Any) -> str:
    """The name a model is recorded under in a spec: a name as it is; a model class or factory (``MyNet``,
    ``lambda: MyNet(32)``, ``functools.partial(MyNet, 32)``) registered with :func:`lth.models.register_module`
    under a stable name made of its module and qualified name (``my_models.mynet``; a lambda, a nested function or a
    partial also gets a digest of its code and arguments, so two of them in one module never share a name), and
    offered to the worker processes of the cluster executors (:func:`lth.executor.work.ship_model`)."""
    from lth.executor.work import ship_model
    from lth.models import register_module

    if isinstance(model, str):
        return model
    if not callable(model):
        raise UserError(f"{ref('model')}: bad value {model!r}; allowed: a model name, or a model class or factory "
                        f"(a torch.nn.Module subclass, or a function returning a module)", value=model,
                        allowed="a model name, class or factory")
    name = generated_name(model)
    register_module(name, model)
    ship_model(name, model)
    return name


def generated_name(model: Callable[..., Any]) -> str:
    """The stable model name of a class or factory: ``<module>.<qualname>`` lowercased into the characters a model
    name allows (letters, digits, ``_ . -``), with a digest of the code and arguments where the qualified name alone
    does not say which function it is (a lambda, a function defined inside another, a ``functools.partial``)."""
    import functools

    inner, extra = model, ""
    if isinstance(model, functools.partial):
        inner = model.func
        extra = repr((model.args, sorted(model.keywords.items())))
    module = (getattr(inner, "__module__", None) or "").strip("_") or "python"  # __main__: main
    qualname = getattr(inner, "__qualname__", None) or type(inner).__name__
    if extra or "<" in qualname:
        code = getattr(inner, "__code__", None)
        cells = [c.cell_contents for c in getattr(inner, "__closure__", None) or () if _plain(c)]
        parts = (code.co_code, repr(code.co_consts), repr(code.co_names)) if code is not None else ()
        text = repr((qualname, parts, repr(cells), extra))
        qualname += "-" + hashlib.md5(text.encode()).hexdigest()[:8]
    key = re.sub(r"[^a-z0-9_.-]+", "_", f"{module}.{qualname}".lower()).lstrip("_.-")
    return key or "model"


def _plain(cell: Any) -> bool:
    """A closure cell whose value reads the same in every session (numbers, strings, tuples of them)."""
    try:
        value = cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return isinstance(value, int | float | str | bool | tuple | type(None))


# ------------------------------------------------------------------------------------------------ tickets
def check_ticket(ticket: Any, net: Any, model: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``ticket`` = ``(state, mask)`` checked against ``net`` (one network of the study's architecture ``model``):
    the state holds exactly the network's tensors with their shapes and finite values, the mask (or None: dense)
    only prunable weights, with their shapes, of 0/1 values. Returns them on the CPU, the state in the network's
    dtypes, the mask as bools. UserError naming ``ticket`` otherwise."""
    import torch

    how = ("(state, mask): a dict of the model's tensors and a dict of bool tensors over its prunable weights, as "
           "lth.api.ticket(run) returns")
    if not isinstance(ticket, tuple | list) or len(ticket) != 2:
        raise UserError(f"{ref('ticket')}: bad value of type {type(ticket).__name__}; allowed: {how}", allowed=how)
    state, mask = ticket
    own = net.member_state(0)
    for what, d in (("state", state), ("mask", mask)):
        if d is not None and (not isinstance(d, Mapping) or not all(isinstance(v, torch.Tensor) for v in d.values())):
            raise UserError(f"{ref('ticket')}: the {what} is a {type(d).__name__}, not a dict of tensors; allowed: "
                            f"{how}", allowed=how)
    if state is None:
        raise UserError(f"{ref('ticket')}: no state given; allowed: {how}", allowed=how)
    extra = [k for k in state if k not in own]
    if extra:
        raise UserError(f"{ref('ticket')}: the state names {extra[0]!r}, not a tensor of {model}; allowed: "
                        f"{', '.join(own)}", value=extra[0], allowed=", ".join(own))
    missing = [k for k in own if k not in state]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise UserError(f"{ref('ticket')}: the state lacks {missing[0]!r}{more}; allowed: every tensor of {model}: "
                        f"{', '.join(own)}", value=missing[0], allowed=", ".join(own))
    for name, kind in (("state", state), ("mask", mask or {})):
        for k, v in kind.items():
            want = own.get(k)
            if want is not None and tuple(v.shape) != tuple(want.shape):
                raise UserError(f"{ref('ticket')}: {name}[{k!r}] has shape {tuple(v.shape)}; {model}'s is "
                                f"{tuple(want.shape)}", value=tuple(v.shape), allowed=str(tuple(want.shape)))
    for k, v in state.items():
        if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all()):
            raise UserError(f"{ref('ticket')}: state[{k!r}] holds NaN or infinite values; allowed: finite weights")
    state = {k: state[k].detach().to("cpu", own[k].dtype).contiguous().clone() for k in own}
    if mask is None:
        return state, None
    prunable = list(net.prunable())
    wrong = [k for k in mask if k not in prunable]
    if wrong:
        raise UserError(f"{ref('ticket')}: the mask names {wrong[0]!r}, not a prunable weight of {model}; allowed: "
                        f"{', '.join(prunable)}", value=wrong[0], allowed=", ".join(prunable))
    for k, v in mask.items():
        if v.dtype != torch.bool and not bool(((v == 0) | (v == 1)).all()):
            raise UserError(f"{ref('ticket')}: mask[{k!r}] holds values other than 0 and 1; allowed: bool tensors "
                            "(True: kept)")
    return state, {k: mask[k].detach().to("cpu").bool().contiguous().clone() for k in prunable if k in mask}


def ticket_node(spec: TrainSpec, state: Mapping[str, Any], mask: Mapping[str, Any] | None,
                root: Path | str) -> Node:
    """The given node (:func:`lth.graph.given_node`) of a checked ticket for ``spec``'s network and data, at
    ``<root>/ticket_<hash>``: the hash covers the tensors' bytes and the network and data they are given for, so
    two different tickets never share a directory and the same one is found again."""
    from lth.graph import given_node, given_spec, tensors_hash
    from lth.spec import non_default
    from lth.store.paths import experiment_dir

    own = given_spec(spec)
    where = tensors_hash(state, mask, salt=non_default(own))[:12]
    return given_node(own, experiment_dir(Path(root), "ticket", where), tensors_hash(state, mask),
                      meta={"kind": "ticket", "mask": mask is not None})
