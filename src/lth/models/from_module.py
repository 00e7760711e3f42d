"""Bring your own network: any ``torch.nn.Module`` becomes a population of N independent copies.

:func:`from_module` turns a factory of ordinary modules into a builder for the model registry
(``builder(n, example_shape, num_classes, *, norm, width) -> PopModel``). Two ways to run N copies as one:

- ``fx`` (preferred, as fast as lth's own models): the module is traced with ``torch.fx`` and rewritten onto
  population layers: ``nn.Linear`` -> batched matmuls, ``nn.Conv2d`` -> one grouped convolution over
  ``[B, N*C, H, W]``, ``nn.BatchNorm2d`` -> BatchNorm over ``N*C`` channels (statistics per member); ReLU-like
  activations, dropout, 2-d pooling, flatten / view / reshape that keep the batch dimension, spatial means and
  sums, concatenations along a non-batch dimension, and elementwise ``+ - * /`` between activations are kept.
  The rewritten network is checked against the original on a sample before it is used.
- ``vmap`` (any module ``torch.func`` can run): the members' parameters and buffers are stacked and the
  original module runs under ``torch.func.vmap(functional_call(...))``; BatchNorm running statistics are
  stacked buffers updated per member.

``path="auto"`` takes ``fx`` where every layer is supported and ``vmap`` otherwise. Either way the population's
parameter and buffer names are the module's own (``layer1.0.conv1.weight``), so states and masks are keyed by
the user's names and a member's state loads into ``factory()`` with ``load_state_dict``.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import inspect
import operator
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, fx, nn
from torch.func import functional_call, vmap
from torch.fx.passes.shape_prop import ShapeProp

from lth.errors import UserError, ref
from lth.models.base import INITIALIZERS, PopModel, init_weight
from lth.models.fc import FC
from lth.models.layers import PopBatchNorm2d, PopConv2d, PopLinear, to_conv

INITS = ("module", "spec", *INITIALIZERS)
PATHS = ("auto", "fx", "vmap")
PRUNABLE_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_SAMPLE_BATCHES = (2, 3)  # two batch sizes, so a tensor's batch dimension is told apart from the others


class Unsupported(Exception):
    """The fx rewrite cannot handle a node; the message names the layer."""


# ----------------------------------------------------------------------------------------------- population layers
class FromLinear(PopLinear):
    """``nn.Linear`` for N members on member-first activations ``[N|1, B, ..., F]`` (a shared ``[1, ...]``
    input is broadcast)."""

    def __init__(self, n: int, m: nn.Linear) -> None:
        nn.Module.__init__(self)
        self.n, self.in_features, self.out_features = n, m.in_features, m.out_features
        self.weight = nn.Parameter(m.weight.detach().unsqueeze(0).repeat(n, 1, 1))
        self.bias = None if m.bias is None else nn.Parameter(m.bias.detach().unsqueeze(0).repeat(n, 1))

    def forward(self, x: Tensor) -> Tensor:
        lead = x.shape[1:-1]
        x3 = x.reshape(x.shape[0], -1, self.in_features)
        if x3.shape[0] != self.n:
            x3 = x3.expand(self.n, -1, -1)
        return super().forward(x3).reshape(self.n, *lead, self.out_features)


class FromConv2d(PopConv2d):
    """``nn.Conv2d`` (any kernel, stride, padding, dilation, groups; zero padding) for N members: one grouped
    convolution over ``[B, N*C, H, W]``. Also reads the member-first model input ``[N|1, B, C, H, W]``: a shared
    input is convolved once with the N members' stacked kernels."""

    def __init__(self, n: int, m: nn.Conv2d) -> None:
        nn.Module.__init__(self)
        self.n, self.in_channels, self.out_channels = n, m.in_channels, m.out_channels
        self.kernel_size, self.stride, self.padding = m.kernel_size, m.stride, m.padding
        self.dilation, self.groups = m.dilation, m.groups
        self.weight = nn.Parameter(m.weight.detach().unsqueeze(0).repeat(n, 1, 1, 1, 1))
        self.bias = None if m.bias is None else nn.Parameter(m.bias.detach().unsqueeze(0).repeat(n, 1))

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.reshape(self.n * self.out_channels, *self.weight.shape[2:])
        b = None if self.bias is None else self.bias.reshape(-1)
        groups = self.n * self.groups
        if x.dim() == 5:  # the model input, member-first
            if x.shape[0] != self.n and self.groups == 1:
                xs = x[0].contiguous(memory_format=torch.channels_last) if self.channels_last else x[0]
                return F.conv2d(xs, w, b, self.stride, self.padding, self.dilation, 1)
            x = to_conv(x.expand(self.n, *x.shape[1:]))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
        return F.conv2d(x, w, b, self.stride, self.padding, self.dilation, groups)


class FromBatchNorm2d(PopBatchNorm2d):
    """``nn.BatchNorm2d`` for N members over ``[B, N*C, H, W]``: running statistics per member, and the
    module's ``num_batches_tracked`` so member states load into the original module."""

    def __init__(self, n: int, m: nn.BatchNorm2d) -> None:
        super().__init__(n, m.num_features, m.momentum, m.eps)
        with torch.no_grad():
            self.weight.copy_(m.weight.detach().expand(n, -1))
            self.bias.copy_(m.bias.detach().expand(n, -1))
            self.running_mean.copy_(m.running_mean.expand(n, -1))
            self.running_var.copy_(m.running_var.expand(n, -1))
        self.register_buffer("num_batches_tracked", torch.zeros(n, dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        return super().forward(x)


# ------------------------------------------------------------------------------- layout conversions (fx graph calls)
def _in_to_mf(x: Tensor, n: int) -> Tensor:
    return x if x.shape[0] == n else x.expand(n, *x.shape[1:])


def _in_to_conv(x: Tensor, n: int) -> Tensor:
    return to_conv(_in_to_mf(x, n))


def _conv_to_mf(x: Tensor, n: int) -> Tensor:
    """``[B, N*C, ...]`` -> ``[N, B, C, ...]``."""
    return x.reshape(x.shape[0], n, x.shape[1] // n, *x.shape[2:]).transpose(0, 1)


def _conv_reshape(x: Tensor, n: int, tail: tuple[int, ...]) -> Tensor:
    """A batch-keeping reshape of ``[B, N*C, H, W]`` to per-member ``tail``, member-first."""
    return x.reshape(x.shape[0], n, *tail).transpose(0, 1)


def _mf_reshape(x: Tensor, n: int, tail: tuple[int, ...]) -> Tensor:
    return x.reshape(n, x.shape[1], *tail)


_ACT_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh, nn.Hardswish,
                nn.Hardsigmoid, nn.Hardtanh, nn.Mish, nn.Softplus, nn.Dropout, nn.Identity)
_POOL_MODULES = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_ACT_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.gelu, F.silu, F.elu, F.leaky_relu, F.hardswish, F.hardtanh,
                  F.sigmoid, torch.sigmoid, torch.tanh, F.tanh, F.dropout, F.mish, F.softplus, operator.neg}
_ACT_METHODS = {"relu", "relu_", "sigmoid", "tanh", "exp", "neg", "abs", "clamp", "contiguous"}
_POOL_FUNCTIONS = {F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
_BINARY = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.isub,
           operator.imul, torch.add, torch.sub, torch.mul}
_BINARY_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_"}
_RESHAPE_FUNCTIONS = {torch.flatten, torch.reshape}
_RESHAPE_METHODS = {"flatten", "view", "reshape"}
_REDUCE_FUNCTIONS = {torch.mean, torch.sum, torch.amax}
_REDUCE_METHODS = {"mean", "sum", "amax"}


def _describe(node: fx.Node, root: nn.Module) -> str:
    if node.op == "call_module":
        return f"layer {node.target!r} ({type(root.get_submodule(str(node.target))).__name__})"
    target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    return f"operation {target!r} ({node.op} {node.name})"


def _tails(module: nn.Module, gm: fx.GraphModule, example_shape: tuple[int, ...]) -> dict[str, Any]:
    """Per node: the per-example shape (``None`` for non-tensors), from two sample batch sizes; raises
    :class:`Unsupported` for a tensor whose first dimension is not the batch."""
    seen: list[dict[str, Any]] = []
    for b in _SAMPLE_BATCHES:
        ShapeProp(gm).propagate(torch.randn(b, *example_shape))
        seen.append({nd.name: nd.meta.get("tensor_meta") for nd in gm.graph.nodes})
    tails: dict[str, Any] = {}
    for nd in gm.graph.nodes:
        a, c = seen[0][nd.name], seen[1][nd.name]
        if not hasattr(a, "shape") or not hasattr(c, "shape"):
            tails[nd.name] = None
            continue
        if (len(a.shape) == 0 or a.shape[0] != _SAMPLE_BATCHES[0] or c.shape[0] != _SAMPLE_BATCHES[1]
                or tuple(a.shape[1:]) != tuple(c.shape[1:])):
            raise Unsupported(f"{_describe(nd, module)} gives a tensor whose first dimension is not the batch")
        tails[nd.name] = tuple(a.shape[1:])
    return tails


def _dims(args: tuple, kwargs: dict) -> tuple[Any, bool]:
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    keep = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    return dim, bool(keep)


def fx_rewrite(module: nn.Module, n: int, example_shape: tuple[int, ...]) -> tuple[dict[str, nn.Module], fx.Graph]:
    """The population layers (by the module's qualified names) and the rewritten graph of ``module``, or
    :class:`Unsupported` naming the first layer the rewrite cannot handle."""
    try:
        gm = fx.symbolic_trace(module)
    except Exception as e:  # noqa: BLE001 - any tracing failure means: use the general path
        raise Unsupported(f"torch.fx cannot trace it ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
    was = module.training
    module.eval()
    try:
        tails = _tails(module, gm, example_shape)
    finally:
        module.train(was)
    layers: dict[str, nn.Module] = {}
    g = fx.Graph()
    env: dict[str, tuple[Any, str | None]] = {}  # old node name -> (new node or constant, layout)
    placeholders = 0

    def val(a: Any) -> tuple[Any, str | None]:
        return env[a.name] if isinstance(a, fx.Node) else (a, None)

    def as_layout(a: Any, want: str) -> Any:
        v, lay = val(a)
        if lay is None or lay == want:
            return v
        fn = {("in", "mf"): _in_to_mf, ("in", "conv"): _in_to_conv, ("conv", "mf"): _conv_to_mf,
              ("mf", "conv"): _mf_to_conv}[(lay, want)]
        return g.call_function(fn, (v,) if fn is _mf_to_conv else (v, n))

    def natural(tail: tuple[int, ...]) -> str:
        return "conv" if len(tail) == 3 else "mf"

    for nd in gm.graph.nodes:
        tail = tails.get(nd.name)
        tensors = [a for a in (*nd.args, *nd.kwargs.values()) if isinstance(a, fx.Node) and tails.get(a.name)]
        if nd.op == "placeholder":
            placeholders += 1
            if placeholders > 1:
                raise Unsupported(f"forward takes more than one input ({nd.name})")
            env[nd.name] = (g.placeholder(nd.name), "in")
        elif nd.op == "output":
            g.output(as_layout(nd.args[0], "mf") if isinstance(nd.args[0], fx.Node) else nd.args[0])
        elif tail is None:
            # shapes and sizes may only feed the reshapes rewritten below, which do not read them
            if not all(u.op in ("call_function", "call_method") and (u.target in _RESHAPE_FUNCTIONS
                       or u.target in _RESHAPE_METHODS or tails.get(u.name) is None) for u in nd.users):
                raise Unsupported(f"{_describe(nd, module)} computes a non-tensor value the network uses")
            env[nd.name] = (None, None)
        elif nd.op == "call_module":
            m = gm.get_submodule(str(nd.target))
            name = str(nd.target)
            if type(m) is nn.Linear:
                layers[name] = FromLinear(n, m)
                env[nd.name] = (g.call_module(name, (as_layout(nd.args[0], "mf"),)), "mf")
            elif type(m) is nn.Conv2d and m.padding_mode == "zeros":
                layers[name] = FromConv2d(n, m)
                v, lay = val(nd.args[0])
                x = v if lay == "in" else as_layout(nd.args[0], "conv")
                env[nd.name] = (g.call_module(name, (x,)), "conv")
            elif (type(m) is nn.BatchNorm2d and m.affine and m.track_running_stats and m.momentum is not None):
                layers[name] = FromBatchNorm2d(n, m)
                env[nd.name] = (g.call_module(name, (as_layout(nd.args[0], "conv"),)), "conv")
            elif type(m) in _ACT_MODULES and len(tensors) == 1:
                layers[name] = copy.deepcopy(m)
                v, lay = val(nd.args[0])
                env[nd.name] = (g.call_module(name, (v,)), lay)
            elif type(m) in _POOL_MODULES and len(tail) == 3 and not getattr(m, "return_indices", False):
                layers[name] = copy.deepcopy(m)
                env[nd.name] = (g.call_module(name, (as_layout(nd.args[0], "conv"),)), "conv")
            elif type(m) is nn.Flatten:
                env[nd.name] = _reshape(g, nd, val, as_layout, n, tail)
            else:
                raise Unsupported(f"{_describe(nd, module)} has no population equivalent")
        elif nd.op in ("call_function", "call_method"):
            t = nd.target
            rest = [a for a in (*nd.args[1:], *nd.kwargs.values())]
            if (t in _ACT_FUNCTIONS or t in _ACT_METHODS) and len(tensors) == 1 and nd.args[0] in tensors:
                v, lay = val(nd.args[0])
                args = (v, *[val(a)[0] for a in nd.args[1:]])
                env[nd.name] = (g.create_node(nd.op, t, args, dict(nd.kwargs)), lay)
            elif (t in _POOL_FUNCTIONS and len(tensors) == 1 and len(tail) == 3
                  and not nd.kwargs.get("return_indices", False)):
                args = (as_layout(nd.args[0], "conv"), *[val(a)[0] for a in nd.args[1:]])
                env[nd.name] = (g.create_node(nd.op, t, args, dict(nd.kwargs)), "conv")
            elif t in _BINARY or t in _BINARY_METHODS:
                if len(nd.args) != 2 or nd.kwargs:
                    raise Unsupported(f"{_describe(nd, module)}: only two-operand arithmetic is supported")
                if len(tensors) == 2:
                    ta, tb = (tails[a.name] for a in nd.args)
                    if ta != tb:
                        raise Unsupported(f"{_describe(nd, module)} broadcasts activations of shapes {ta} and {tb}")
                    lays = {val(a)[1] for a in nd.args}
                    want = "conv" if "conv" in lays else "mf" if "mf" in lays else "in"
                    args = tuple(val(a)[0] if want == "in" else as_layout(a, want) for a in nd.args)
                    env[nd.name] = (g.create_node(nd.op, t, args), want)
                elif len(tensors) == 1 and all(not isinstance(a, fx.Node) for a in nd.args if a not in tensors):
                    args = tuple(val(a)[0] for a in nd.args)
                    env[nd.name] = (g.create_node(nd.op, t, args), val(tensors[0])[1])
                else:
                    raise Unsupported(f"{_describe(nd, module)} combines an activation with a non-activation tensor")
            elif t in _RESHAPE_FUNCTIONS or t in _RESHAPE_METHODS:
                env[nd.name] = _reshape(g, nd, val, as_layout, n, tail)
            elif t is torch.cat:  # concatenated activations (Inception's branches): member-first, one dim further
                seq = nd.args[0]
                dim = nd.args[1] if len(nd.args) > 1 else nd.kwargs.get("dim", 0)
                if (not isinstance(seq, list | tuple) or not isinstance(dim, int)
                        or not all(isinstance(a, fx.Node) and tails.get(a.name) for a in seq)):
                    raise Unsupported(f"{_describe(nd, module)}: only a list of activations along a given dimension")
                if dim % (len(tail) + 1) == 0:
                    raise Unsupported(f"{_describe(nd, module)} concatenates along the batch")
                parts = [as_layout(a, "mf") for a in seq]
                env[nd.name] = (g.call_function(torch.cat, (parts,), {"dim": dim % (len(tail) + 1) + 1}), "mf")
            elif (t in _REDUCE_FUNCTIONS or t in _REDUCE_METHODS) and len(tensors) == 1 and nd.args[0] in tensors:
                dim, keep = _dims(nd.args, nd.kwargs)
                src_tail = tails[nd.args[0].name]
                if dim is None or any(isinstance(a, fx.Node) for a in rest):
                    raise Unsupported(f"{_describe(nd, module)}: only reductions over given dimensions")
                dims = [dim] if isinstance(dim, int) else list(dim)
                rank = len(src_tail) + 1
                dims = [d % rank for d in dims]
                if 0 in dims:
                    raise Unsupported(f"{_describe(nd, module)} reduces over the batch")
                fn = t if nd.op == "call_function" else None
                if len(src_tail) == 3 and 1 not in dims:  # spatial reduction in the conv layout
                    x = as_layout(nd.args[0], "conv")
                    out = _reduce(g, fn, t, x, dims, keep)
                    env[nd.name] = (out, "conv") if keep else (g.call_function(_conv_to_mf, (out, n)), "mf")
                else:
                    x = as_layout(nd.args[0], "mf")
                    env[nd.name] = (_reduce(g, fn, t, x, [d + 1 for d in dims], keep), "mf")
            else:
                raise Unsupported(f"{_describe(nd, module)} has no population equivalent")
        else:
            raise Unsupported(f"{_describe(nd, module)} reads a parameter or buffer directly")
        if tail is not None and nd.op != "output" and env[nd.name][1] in ("conv", "mf"):
            lay = env[nd.name][1]
            if lay == "conv" and len(tail) != 3:
                raise Unsupported(f"{_describe(nd, module)}: unexpected layout")
    return layers, g


def _mf_to_conv(x: Tensor) -> Tensor:
    return to_conv(x)


def _reduce(g: fx.Graph, fn: Any, method: Any, x: Any, dims: list[int], keep: bool) -> fx.Node:
    if fn is not None:
        return g.call_function(fn, (x, tuple(dims), keep))
    return g.call_method(method, (x, tuple(dims), keep))


def _reshape(g: fx.Graph, nd: fx.Node, val: Callable, as_layout: Callable, n: int,
             tail: tuple[int, ...]) -> tuple[fx.Node, str]:
    src = nd.args[0]
    v, lay = val(src)
    if lay == "conv":
        out = g.call_function(_conv_reshape, (v, n, tuple(tail)))
    else:
        out = g.call_function(_mf_reshape, (as_layout(src, "mf"), n, tuple(tail)))
    if len(tail) == 3:
        return g.call_function(_mf_to_conv, (out,)), "conv"
    return out, "mf"


# ------------------------------------------------------------------------------------------------------- the model
def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    *path, leaf = name.split(".")
    parent = root
    for p in path:
        if not hasattr(parent, p):
            parent.add_module(p, nn.Module())
        parent = getattr(parent, p)
    parent.add_module(leaf, module)


class ModuleModel(PopModel):
    """A population of N copies of a user's ``nn.Module`` (built by :func:`from_module`).

    ``path`` says how it runs (``fx`` or ``vmap``); ``fallback_reason`` why the fx rewrite was not used.
    ``prunable()`` are the weights of the module's Linear / Conv layers (after include / exclude), by the
    module's own names; ``output_layer`` is the output layer's weight."""

    def __init__(self, n: int, reference: nn.Module, make: Callable[[], nn.Module], init: str,
                 prunable: list[str], kinds: dict[str, str], output_layer: str) -> None:
        super().__init__(n)
        self._make = make
        self.init_mode = init
        self._prunable = prunable
        self._kinds = kinds
        self.output_layer = output_layer
        self.module_name = type(reference).__name__
        self.path = ""
        self.fallback_reason = ""

    def prunable(self) -> list[str]:
        """Names of the prunable weights (the module's own names)."""
        return list(self._prunable)

    def prunable_kinds(self) -> dict[str, str]:
        """``{prunable name: fc | conv | output}`` by layer type (Conv1d/2d/3d are ``conv``)."""
        return dict(self._kinds)

    @torch.no_grad()
    def init_member(self, i: int, init: str, generator: torch.Generator) -> None:
        """(Re)initialise member ``i``. ``init_mode`` ``module``: the module's own initialisation, from a
        factory call under a CPU RNG seeded from ``generator`` (member i depends only on its seed; the spec's
        initialiser name is not used); ``spec``: lth's initialiser named ``init`` for every Linear / Conv weight,
        biases zero, norm layers identity, other tensors as the module initialises them; an initialiser name:
        that one, whatever the spec says."""
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            ref = self._make()
        if self.init_mode != "module":
            name = init if self.init_mode == "spec" else self.init_mode
            for m in ref.modules():
                if isinstance(m, PRUNABLE_TYPES):
                    init_weight(m.weight, name, generator)
                    if m.bias is not None:
                        m.bias.zero_()
                elif isinstance(m, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm):
                    if getattr(m, "weight", None) is not None:
                        m.weight.fill_(1.0)
                    if getattr(m, "bias", None) is not None:
                        m.bias.zero_()
        state = ref.state_dict()
        own = self.state_dict()
        self.load_member(i, {k: state[k].to(own[k].device, own[k].dtype) for k in own})

    def member_module(self, i: int) -> nn.Module:
        """Member ``i`` as an ordinary module (a fresh ``factory()`` with member ``i``'s state)."""
        m = self._make()
        m.load_state_dict(self.member_state(i))
        return m


class FxModel(ModuleModel):
    """The fx path: the module's graph rewritten onto population layers."""

    def __init__(self, n: int, reference: nn.Module, layers: dict[str, nn.Module], graph: fx.Graph,
                 frozen: Iterable[str] = (), **kw: Any) -> None:
        super().__init__(n, reference, **kw)
        self.path = "fx"
        for name, layer in layers.items():
            _set_submodule(self, name, layer)
        _freeze(self, frozen)
        self.__dict__["_gm"] = fx.GraphModule(self, graph)  # not a child: shares this model's layers
        chain = _mlp_chain(self, graph)
        if chain is not None:  # a plain MLP: the engine's CPU path may use FC's hand-written backward
            mlp = SimpleNamespace(n=n, layers=chain)
            mlp._member_loss_and_grads = functools.partial(FC._member_loss_and_grads, mlp)
            self.loss_and_grads = functools.partial(FC.loss_and_grads, mlp)

    def forward(self, x: Tensor) -> Tensor:
        return self._gm(x)


def _mlp_chain(model: nn.Module, graph: fx.Graph) -> list[FromLinear] | None:
    """The Linear layers of a graph that is exactly (flatten) Linear, ReLU, ..., Linear with biases, else None."""
    ops = [nd for nd in graph.nodes if nd.op not in ("placeholder", "output")]
    while ops and ops[0].op == "call_function" and (ops[0].target is _in_to_mf or (
            ops[0].target is _mf_reshape and len(ops[0].args[2]) == 1)):
        ops = ops[1:]  # flattening the input: FC's backward flattens it too
    layers: list[FromLinear] = []
    for k, nd in enumerate(ops):
        want_linear = k % 2 == 0
        if want_linear:
            m = model.get_submodule(str(nd.target)) if nd.op == "call_module" else None
            if not isinstance(m, FromLinear) or not isinstance(m.bias, nn.Parameter) \
                    or not isinstance(m.weight, nn.Parameter):  # FC's backward trains both
                return None
            layers.append(m)
        elif not ((nd.op == "call_module" and type(model.get_submodule(str(nd.target))) is nn.ReLU
                   and not model.get_submodule(str(nd.target)).inplace)
                  or (nd.op == "call_function" and nd.target in (F.relu, torch.relu) and not nd.kwargs.get("inplace"))
                  or (nd.op == "call_method" and nd.target == "relu")):
            return None
    return layers if ops and len(ops) % 2 == 1 else None


class StackedBatchNorm:
    """A vmap-path BatchNorm as :func:`lth.engine.evaluate.recompute_batchnorm` needs it: the module's ``momentum``
    (read by the module's forward under vmap) and the population's stacked running statistics ``[N, C]``."""

    def __init__(self, module: nn.Module, running_mean: Tensor, running_var: Tensor) -> None:
        self.module, self.running_mean, self.running_var = module, running_mean, running_var

    @property
    def momentum(self) -> float | None:
        """The module's momentum (None: a cumulative average)."""
        return self.module.momentum

    @momentum.setter
    def momentum(self, value: float | None) -> None:
        self.module.momentum = value


class VmapModel(ModuleModel):
    """The vmap path: stacked parameters and buffers, the original module under ``vmap(functional_call)``."""

    def __init__(self, n: int, reference: nn.Module, frozen: Iterable[str] = (), **kw: Any) -> None:
        super().__init__(n, reference, **kw)
        self.path = "vmap"
        self.__dict__["_skeleton"] = copy.deepcopy(reference).to("meta")
        persistent = set(reference.state_dict())
        for k, p in reference.named_parameters():
            self._register(k, nn.Parameter(p.detach().unsqueeze(0).repeat(n, *[1] * p.dim())), True, True)
        for k, b in reference.named_buffers():
            self._register(k, b.detach().unsqueeze(0).repeat(n, *[1] * b.dim()), False, k in persistent)
        self.__dict__["_tied"] = _aliases(reference)  # {second name: first name}
        for alias, first in self._tied.items():  # one stacked Parameter under both names, as in the module
            self._register(alias, self.get_parameter(first), True, True)
        _freeze(self, frozen)
        # every name, tied ones too: the meta skeleton no longer ties them (``.to("meta")`` makes new Parameters)
        self._pnames = [k for k, _ in self.named_parameters(remove_duplicate=False)]
        self._bnames = [k for k, _ in self.named_buffers(remove_duplicate=False)]

    def load_member(self, i: int, state: dict[str, Tensor]) -> None:
        """As :meth:`PopModel.load_member`; a tied weight takes the value under its first name (the one pruned and
        transformed by perturbations), whatever its other name holds."""
        if self._tied:
            state = {**state, **{a: state[f] for a, f in self._tied.items() if f in state}}
        super().load_member(i, state)

    def _register(self, name: str, t: Tensor, param: bool, persistent: bool) -> None:
        mod, _, leaf = name.rpartition(".")
        owner: nn.Module = self
        for p in mod.split(".") if mod else []:
            if not hasattr(owner, p):
                owner.add_module(p, nn.Module())
            owner = getattr(owner, p)
        if param:
            owner.register_parameter(leaf, t)  # type: ignore[arg-type]
        else:
            owner.register_buffer(leaf, t, persistent=persistent)

    def batchnorms(self) -> list[StackedBatchNorm]:
        """The module's BatchNorm layers (any dimension) that keep running statistics, so that they are recomputed
        for interpolated or perturbed states like lth's own BatchNorm layers."""
        return [StackedBatchNorm(m, self.get_buffer(f"{k}.running_mean"), self.get_buffer(f"{k}.running_var"))
                for k, m in self._skeleton.named_modules()
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]

    def train(self, mode: bool = True) -> VmapModel:
        super().train(mode)
        self._skeleton.train(mode)
        return self

    def forward(self, x: Tensor) -> Tensor:
        params = {k: self.get_parameter(k) for k in self._pnames}
        buffers = {k: self.get_buffer(k) for k in self._bnames}
        skeleton = self._skeleton

        def one(p: dict[str, Tensor], b: dict[str, Tensor], xi: Tensor) -> Tensor:
            return functional_call(skeleton, (p, b), (xi,))

        shared = x.shape[0] != self.n
        return vmap(one, in_dims=(0, 0, None if shared else 0), randomness="different")(
            params, buffers, x[0] if shared else x)


# ------------------------------------------------------------------------------------------------------ the builder
def _short(v: Any) -> str:
    """``repr(v)`` on one line, at most 80 characters (a module's repr spans many lines)."""
    text = " ".join(repr(v).split())
    return text if len(text) <= 80 else text[:77] + "..."


def _call_factory(factory: Callable[..., nn.Module], label: str, example_shape: tuple[int, ...], num_classes: int,
                  norm: str, width: float) -> nn.Module:
    try:
        accepted = set(inspect.signature(factory).parameters)
    except (TypeError, ValueError):
        accepted = set()
    given = {"example_shape": tuple(example_shape), "num_classes": num_classes, "norm": norm, "width": width}
    kwargs = {k: v for k, v in given.items() if k in accepted}
    if "width" not in kwargs and width != 1.0:
        raise UserError(f"{ref('width')} {width}: model {label} has no width parameter; allowed: 1.0", value=width,
                        allowed="1.0")
    if "norm" not in kwargs and norm != "batchnorm":
        raise UserError(f"{ref('norm')} {norm}: model {label} keeps its own normalisation layers; allowed: "
                        "batchnorm (the default)", value=norm, allowed="batchnorm (the default)")
    try:
        m = factory(**kwargs)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - the user's constructor failed: one line naming the model
        hint = ("; a factory takes no arguments or only example_shape, num_classes, norm, width: pass constructor "
                "arguments with a lambda or functools.partial") if isinstance(e, TypeError) else ""
        raise UserError(f"model {label}: the factory failed with {type(e).__name__}: "
                        f"{(str(e).splitlines() or [''])[0][:200]}{hint}") from e
    if not isinstance(m, nn.Module):
        raise UserError(f"model {label}: the factory returned {type(m).__name__}, not a torch.nn.Module")
    return m


def _aliases(module: nn.Module) -> dict[str, str]:
    """``{second name: first name}`` for every Parameter that ``module`` holds under more than one name (weight
    tying: ``self.b.weight = self.a.weight``)."""
    first: dict[int, str] = {}
    out: dict[str, str] = {}
    for k, p in module.named_parameters(remove_duplicate=False):
        if id(p) in first:
            out[k] = first[id(p)]
        else:
            first[id(p)] = k
    return out


def _freeze(model: nn.Module, names: Iterable[str]) -> None:
    """The parameters ``names`` of ``model`` become (persistent) buffers: kept in every state under the same name,
    never updated by the optimiser (the module's ``requires_grad=False``)."""
    for k in names:
        owner_name, _, leaf = k.rpartition(".")
        owner = model.get_submodule(owner_name)
        if leaf in owner._parameters:
            t = owner._parameters.pop(leaf)
            owner.register_buffer(leaf, None if t is None else t.detach())


def _matches(patterns: Iterable[str], module_name: str) -> bool:
    return any(fnmatch.fnmatchcase(module_name, p) or fnmatch.fnmatchcase(f"{module_name}.weight", p)
               for p in patterns)


def _layer_at_fault(exc: BaseException, module: nn.Module) -> str:
    """The deepest submodule of ``module`` whose ``forward`` is on the traceback of ``exc`` ("" if none)."""
    names = {id(m): k for k, m in module.named_modules()}
    found = ""
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if owner is not None and id(owner) in names:
            found = names[id(owner)] or found
        tb = tb.tb_next
    return found


def from_module(factory: Callable[..., nn.Module], *, include: Iterable[str] | None = None,
                exclude: Iterable[str] | None = None, output: str | None = None, init: str = "module",
                path: str = "auto", name: str | None = None) -> Callable[..., PopModel]:
    """A model-registry builder ``(n, example_shape, num_classes, *, norm, width) -> PopModel`` that trains N
    copies of ``factory()``'s module as one population.

    ``factory`` returns a fresh ``nn.Module`` mapping ``[B, *example_shape]`` to logits ``[B, num_classes]``; it
    may take any of the keyword arguments ``example_shape``, ``num_classes``, ``norm``, ``width`` (then
    ``--width`` / ``--norm`` reach it; otherwise only their defaults are accepted). ``include`` / ``exclude``:
    glob patterns over layer names (``"layer1.*"``, ``"fc"`` or ``"fc.weight"``) selecting which Linear / Conv
    weights are prunable (default: all). ``output``: the output layer's name; by default the Linear / Conv layer
    whose result the module returns (a model returning anything else must name it, so the output layer is never
    pruned at the fc rate by mistake). ``init``: ``module`` (the module's own initialisation, each member from
    its own seeded factory call), ``spec`` (lth's initialiser named by ``--init``) or an initialiser name.
    ``path``: ``auto`` (``fx`` where every layer is supported, else ``vmap``), ``fx`` or ``vmap``."""
    if isinstance(factory, nn.Module) or not callable(factory):
        raise UserError(f"factory: bad value {_short(factory)}; allowed: a callable that returns a fresh nn.Module "
                        f"(the class itself, or e.g. lambda: MyNet(32), functools.partial(MyNet, 32))")
    for arg, v in (("include", include), ("exclude", exclude)):
        if v is not None and not (isinstance(v, str) or (isinstance(v, Iterable) and not isinstance(v, bytes | dict)
                                                         and all(isinstance(x, str) for x in v))):
            raise UserError(f"{arg}: bad value {v!r}; allowed: a glob pattern or a list of them, e.g. ['layer4.*']")
    if output is not None and not isinstance(output, str):
        raise UserError(f"output: bad value {output!r}; allowed: a layer name (str), e.g. 'fc'")
    if init not in INITS:
        raise UserError(f"init: bad value {init!r}; allowed: {', '.join(INITS)}")
    if path not in PATHS:
        raise UserError(f"path: bad value {path!r}; allowed: {', '.join(PATHS)}")
    inc = [include] if isinstance(include, str) else list(include or [])
    exc = [exclude] if isinstance(exclude, str) else list(exclude or [])
    label = name or getattr(factory, "__name__", type(factory).__name__)
    checked: set[tuple] = set()  # builds already checked against the module (the same every time)

    def build(n: int, example_shape: tuple[int, ...], num_classes: int, *, norm: str = "batchnorm",
              width: float = 1.0) -> PopModel:
        shape = tuple(int(s) for s in example_shape)

        def make() -> nn.Module:
            return _call_factory(factory, label, shape, num_classes, norm, width)

        reference = make()
        # built on the meta device (lth.models.shape_model: shapes for planning): no values to check or draw
        meta = any(t.is_meta for t in reference.parameters())
        what = f"model {label} ({type(reference).__name__})"
        layers = {k: m for k, m in reference.named_modules() if isinstance(m, PRUNABLE_TYPES)}
        if not layers:
            raise UserError(f"{what} has no Linear or Conv layers to prune")
        for pats, flag in ((inc, "include"), (exc, "exclude")):
            for p in pats:
                if not _matches([p], "") and not any(_matches([p], k) for k in layers):
                    raise UserError(f"{flag}: bad value {p!r} for {what}; no layer matches; layers: "
                                    f"{', '.join(layers)}")
        aliases = _aliases(reference)  # tied weights: pruned and trained once, under their first name
        frozen = [k for k, p in reference.named_parameters(remove_duplicate=False) if not p.requires_grad]
        selected = [k for k in layers if (not inc or _matches(inc, k)) and not _matches(exc, k)
                    and f"{k}.weight" not in aliases and f"{k}.weight" not in frozen]
        # the reference run: output shape, the output layer (the layer whose result is returned)
        outs: dict[str, Any] = {}
        hooks = [m.register_forward_hook(lambda _m, _a, out, k=k: outs.__setitem__(k, out))
                 for k, m in layers.items()]
        reference.eval()
        try:
            with torch.no_grad():
                y = reference(torch.randn(_SAMPLE_BATCHES[0], *shape))
        except Exception as e:  # noqa: BLE001 - reported to the user with the layer at fault
            layer = _layer_at_fault(e, reference)
            where = f" at layer {layer!r} ({type(reference.get_submodule(layer)).__name__})" if layer else ""
            raise UserError(f"{what} cannot run on inputs of shape {list(shape)}{where}: "
                            f"{type(e).__name__}: {str(e).splitlines()[0][:200]}") from e
        finally:
            for h in hooks:
                h.remove()
        if not isinstance(y, Tensor) or tuple(y.shape) != (_SAMPLE_BATCHES[0], num_classes):
            got = list(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise UserError(f"{what} must return logits [batch, {num_classes}]; got {got}")
        if output is None:
            out_layers = [k for k, o in outs.items() if o is y]
            if not out_layers:
                raise UserError(f"{what}: cannot tell which layer is the output layer (the module does not return "
                                f"a Linear / Conv result directly); name it with output=; layers: "
                                f"{', '.join(layers)}")
            out_name = out_layers[0]
        else:
            out_name = output.removesuffix(".weight")
            if out_name not in layers:
                raise UserError(f"output: bad value {output!r} for {what}; allowed: {', '.join(layers)}")
        output_weight = f"{out_name}.weight"
        prunable = [f"{k}.weight" for k in selected]
        kinds = {f"{k}.weight": "output" if k == out_name else "fc" if isinstance(layers[k], nn.Linear) else "conv"
                 for k in selected}
        kw = {"make": make, "init": init, "prunable": prunable, "kinds": kinds, "output_layer": output_weight}
        model: ModuleModel | None = None
        reason = ""
        key = (n, shape, num_classes, norm, width)
        if path in ("auto", "fx"):
            try:
                if aliases:
                    tied, to = next(iter(aliases.items()))
                    raise Unsupported(f"parameter {tied!r} is tied to {to!r} (one Parameter used twice); the "
                                      f"rewrite would untie it")
                rewritten, graph = fx_rewrite(reference, n, shape)
                model = FxModel(n, reference, rewritten, graph, frozen=frozen, **kw)
                if (key, "fx") not in checked and not meta:
                    _check_against(model, reference, shape)
                    checked.add((key, "fx"))
            except Exception as e:  # noqa: BLE001 - Unsupported, or a rewrite that fails on this module
                reason, model = str(e).splitlines()[0][:300] if str(e) else type(e).__name__, None
                if path == "fx":
                    raise UserError(f"{what} cannot be rewritten onto population layers: {reason}; "
                                    f"use path='vmap' or 'auto'") from e
        if model is None:
            model = VmapModel(n, reference, frozen=frozen, **kw)
            try:
                if (key, "vmap") not in checked and not meta:
                    _check_against(model, reference, shape)
                    checked.add((key, "vmap"))
            except Exception as e:  # noqa: BLE001
                layer = _layer_at_fault(e, model._skeleton)
                where = f" at layer {layer!r} ({type(reference.get_submodule(layer)).__name__})" if layer else ""
                raise UserError(f"{what} cannot train as a population{where}: torch.func.vmap fails with "
                                f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                                + (f"; the fx rewrite: {reason}" if reason else "")) from e
            model.fallback_reason = reason
        for i in range(n if not meta else 0):  # every member a fresh draw until the engine initialises it
            model.init_member(i, "kaiming_normal", torch.Generator().manual_seed(i))
        return model

    build.__name__ = f"from_module_{label}"
    build.factory = factory  # type: ignore[attr-defined]
    return build


@torch.no_grad()
def _check_against(model: ModuleModel, reference: nn.Module, shape: tuple[int, ...]) -> None:
    """The population's member 0 (same state as ``reference``) computes what ``reference`` computes, on a shared
    and a member-first input, in eval mode; raises :class:`Unsupported` if not."""
    reference.eval()
    model.eval()
    try:
        state = reference.state_dict()
        model.load_member(0, {k: state[k] for k in model.state_dict()})
        x = torch.randn(_SAMPLE_BATCHES[1], *shape)
        want = reference(x)
        for inp in (x.unsqueeze(0), x.unsqueeze(0).expand(model.n, *x.shape)):
            got = model(inp)
            tol = 1e-5 * max(1.0, want.abs().max().item())
            if tuple(got.shape) != (model.n, *want.shape) or not torch.allclose(got[0], want, rtol=1e-4, atol=tol):
                raise Unsupported("the rewritten network does not compute what the module computes")
    finally:
        model.train()
        reference.train()


__all__ = ["FromBatchNorm2d", "FromConv2d", "FromLinear", "FxModel", "INITS", "ModuleModel", "PATHS",
           "PRUNABLE_TYPES", "StackedBatchNorm", "Unsupported", "VmapModel", "from_module", "fx_rewrite"]
