"""One unit of work, the same in every executor: train one population of ready nodes.

:func:`train_group` runs wherever the executor puts it (this process, a Ray task, a Slurm array element): it
locks the members' run directories, drops those another process finished meanwhile, resolves each node's
recipe into tensors (the only place a node's references are loaded) and hands the jobs to the engine.
"""

from __future__ import annotations

import contextlib
import glob
import platform
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lth.data import Dataset
from lth.engine.train import EngineOptions, Job, check_jobs, summary, train_population
from lth.errors import UserError, ref
from lth.graph import Node, OpContext, resolve
from lth.prune import kinds_of
from lth.store import RunDir, paths
from lth.store.run import Busy

# A population pays on a GPU (one wide network fills it); on 2 CPU cores it pays only for tiny networks,
# where per-step overhead dominates. Measured in bench/population.py; see bench/RESULTS.md.
CPU_POPULATION_MAX_PARAMS = 20_000


def probe(node: Node, data: Dataset) -> Any:
    """A single network of the node's architecture (names, kinds and counts)."""
    from lth.models import build_model

    m = node.spec.model
    return build_model(m.model, 1, data.example_shape, data.num_classes, m.norm, m.width)


def context(node: Node, data: Dataset, data_hp: Any = None) -> OpContext:
    """What the node's ops may know: prunable names, layer kinds, shapes, iterations per epoch. ``data`` is the
    dataset loaded for ``data_hp`` (by default the node's own); a node referenced by another one may train on
    other data (a ticket transferred across datasets, a pretraining task): its shapes then come from a
    description of its own data, never from the loaded one."""
    from lth.data.describe import describe
    from lth.models import build_model

    if data_hp is None or node.spec.data == data_hp:
        shape, classes, n_train = data.example_shape, data.num_classes, data.train_x.shape[0]
    else:
        info = describe(node.spec.data)
        shape, classes, n_train = info.example_shape, info.num_classes, info.n_train
    m = node.spec.model
    model = build_model(m.model, 1, shape, classes, m.norm, m.width)
    spe = n_train // node.spec.data.batch_size
    return OpContext(node, model.prunable(), kinds_of(model), shape, classes, spe, model)


def to_job(node: Node, data: Dataset) -> Job:
    """The engine's job for ``node``: its recipe resolved into a start state and a mask."""
    ctx = context(node, data)
    contexts: dict[Any, OpContext] = {}

    def ctx_for(n: Node) -> OpContext:
        if n.path not in contexts:
            contexts[n.path] = ctx if n.path == node.path else context(n, data, node.spec.data)
        return contexts[n.path]

    setup = resolve(node, ctx, ctx_for)
    spe = ctx.steps_per_epoch
    return Job(node.spec, node.replicate, node.path, start_step=node.start_step.iterations(spe),
               start_state=setup.state, mask=setup.mask,
               state_names={step.iterations(spe): name for name, step in node.keep},
               meta={**node.meta, "node": node.digest, "data_source": getattr(data, "source", None),
                     **(setup.info or {})})


def check_nodes(nodes: list[Node], data: Dataset) -> None:
    """UserError for nodes that cannot train on ``data`` (before anything is written)."""
    spe_nodes = []
    for n in nodes:
        spe = max(1, data.train_x.shape[0] // n.spec.data.batch_size)
        spe_nodes.append(Job(n.spec, n.replicate, n.path, start_step=n.start_step.iterations(spe),
                             state_steps=tuple(step for _, step in n.keep)))
    check_jobs(spe_nodes, data)


def population_record(jobs: list[Job], device: torch.device, tf32: bool = False) -> dict[str, Any]:
    """What a population's members record about what they were trained beside (reproducibility), and how the
    device rounded (``tf32``: TF32 matrix products on CUDA)."""
    out = {"size": len(jobs), "device": str(device),
           "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor(),
           "torch": torch.__version__, "members": [str(j.run_dir) for j in jobs]}
    if device.type == "cuda":
        out["tf32_matmul"] = bool(tf32)
    return out


# The files a run's training writes, always under the run's lock (the engine, fill_duplicate, a replay's copies,
# the removal of scaffold states); every file in ``states/`` is one of them. ``hessian.csv`` (lth hessian) and
# ``scaffold.json`` (Executor.deduplicate) are written into a finished run without it.
_LOCKED_WRITES = (paths.SPEC, paths.MASK, paths.CHECKPOINT, paths.METRICS, paths.TELEMETRY, paths.DONE)


def discard_strays(run: RunDir) -> None:
    """Remove the temporary files (``.<name>.XXXX.tmp``) of writes a kill cut short, never renamed into place,
    among the files the run's training writes (:data:`_LOCKED_WRITES` and ``states/``). Call it only while
    holding the run's lock (:func:`train_group`): then no live write of those files is in flight; the temporary
    files of other writers (``hessian.csv``, ``scaffold.json``, any other file) are left alone."""
    mine = [p for name in _LOCKED_WRITES for p in run.path.glob(f".{glob.escape(name)}.*.tmp")]
    for stray in [*mine, *run.path.glob(f"{paths.STATES}/.*.tmp")]:
        stray.unlink(missing_ok=True)


def discard_damaged(run: RunDir) -> None:
    """Before a run is trained again: remove its files that cannot be read (named on stderr), and a completion
    marker that no longer holds (so the run restarts cleanly instead of failing on them). A damaged
    ``scaffold.json`` (bookkeeping: extra states a representative keeps for its duplicates, no result) is only
    removed: the run stays finished, the states it named stay. Temporary files are left alone (this runs without
    the run's lock too: see :func:`discard_strays`)."""
    bad, scaffold = run.damaged(), str(run.path / paths.SCAFFOLD)
    for p in bad:
        if p == scaffold:
            print(f"lth: warning: {p} is damaged: removed (the run is kept)", file=sys.stderr)
        else:
            print(f"lth: {p} is damaged: training {run.path} again", file=sys.stderr)
        Path(p).unlink(missing_ok=True)
    if set(bad) - {scaffold}:
        run.drop_done()
        run.drop_checkpoint()


def train_group(nodes: list[Node], data: Dataset, options: EngineOptions,
                on_population: Callable[[int], None] | None = None,
                wait: bool = True) -> list[dict[str, Any]] | None:
    """Train the nodes not yet finished as one population (their parents must be finished); their records.
    While another process holds a member's lock: wait for it, or (``wait=False``) train nothing and return
    None, so that the caller goes on with other work."""
    with contextlib.ExitStack() as stack:
        try:
            for n in sorted(nodes, key=lambda n: str(n.path)):
                stack.enter_context(RunDir(n.path).lock(wait))
        except Busy:
            return None
        todo = [n for n in nodes if not RunDir(n.path).finished()]  # another process may have won
        for n in todo:  # we hold their locks: no write of their training is in flight
            discard_strays(RunDir(n.path))
            discard_damaged(RunDir(n.path))
        if todo:
            jobs = [to_job(n, data) for n in todo]
            pop = population_record(jobs, options.torch_device(), options.tf32)
            for j in jobs:
                j.meta["population"] = pop
            if on_population:
                on_population(len(jobs))
            train_population(jobs, data, options)
            for n in todo:  # still under their locks
                link_aliases(n, data.train_x.shape[0] // n.spec.data.batch_size)
    return [summary(Job(n.spec, n.replicate, n.path), RunDir(n.path)) for n in nodes]


def link_aliases(node: Node, spe: int) -> None:
    """Each state ``node`` keeps under another name at an iteration it already keeps (``--save-states 1ep 46it``
    at 46 iterations an epoch; the engine saves one state per iteration, :func:`to_job`): that state's file
    linked under the other name too (a hard link, else a copy: :meth:`RunDir.link_state`), with its own entry in
    ``states/index.json``, so that every name asked for is there and the next identical command replays nothing.
    ``spe``: iterations per epoch. A state the run never reached (it diverged first) stays absent."""
    run = RunDir(node.path)
    have = run.states()
    for name, step in node.keep:
        held = None if name in have else run.state_at(step.iterations(spe))
        if held is not None:
            run.link_state(run, held, name)


def fill_duplicate(node: Node, rep: Node, spe: int) -> bool:
    """Fill ``node``'s directory from ``rep``'s finished run without training: both have one digest (one run),
    in two directories (e.g. level 0 of IMP trunks that differ only in their rewind step).

    Under ``node``'s lock: its own ``spec.json`` (its meta, its digest, ``"trained_as": rep's path``), ``rep``'s
    metrics, mask and telemetry, states ``init`` and ``final``, and each of ``node.keep`` (name, step) from
    ``rep``'s state at that step (found by iteration in ``rep``'s ``states/index.json``; ``spe`` turns epochs
    into iterations) under ``node``'s own name, each a hard link or a copy (:meth:`RunDir.link_file`); then
    ``rep``'s completion marker, written last. A diverged ``rep`` makes ``node`` diverged too (the states it
    never reached are absent). False when ``node`` was finished already (left as it is); RuntimeError when a
    complete ``rep`` lacks a state ``node`` keeps."""
    from lth.spec import to_dict

    src, dst = RunDir(rep.path), RunDir(node.path)
    with dst.lock():
        if dst.finished():
            return False
        done = src.done
        if not isinstance(done, dict):
            raise RuntimeError(f"{rep.path} is not finished: nothing to fill {node.path} from")
        wanted: list[tuple[str, str]] = []
        for name, step in node.keep:
            it = step.iterations(spe)
            have = src.state_at(it, prefer=name)
            if have is None:
                if done.get("status") == "complete":
                    raise RuntimeError(f"{rep.path} holds no state at {step} ({it}it) for {node.path}; run the "
                                       f"command again to replay it")
                continue  # diverged before that step
            wanted.append((have, name))
        stored = src.spec or {}
        own = {k: v for k, v in stored.items() if k not in rep.meta}  # the run's facts, not rep's labels
        dst.write_spec({**own, **to_dict(node.spec), "replicate": node.replicate, **node.meta, "node": node.digest,
                        "trained_as": str(src.path)})
        dst.link_results(src)
        for name in ("init", "final"):
            dst.link_state(src, name)
        for have, name in wanted:
            dst.link_state(src, have, name)
        dst.drop_checkpoint()
        dst.write_done(done)
    return True


# ------------------------------------------------------------------------------------------------ remote workers
_WORKER_DATA: dict[tuple[Any, str, str], Dataset] = {}  # one worker process trains many populations

# Models given as Python objects (lth.studies.train.model_name): name -> (factory, register_module options), sent
# pickled to the worker processes of the cluster executors, which register them before they train.
_SHIPPED: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {}


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker process needs before it can train a population: the modules to import
    (:func:`worker_modules`) and the models given as Python objects, cloudpickled (:func:`shipped_models`)."""

    modules: tuple[tuple[str, str | None], ...] = ()
    models: bytes = b""


def ship_model(name: str, factory: Callable[..., Any], **opts: Any) -> None:
    """Offer the model ``name`` (registered in this process from ``factory``) to the cluster executors' workers."""
    _SHIPPED[name] = (factory, dict(opts))


def _user_module(name: str) -> Any:
    """The module ``name`` when it is the user's own code (not lth, the standard library or an installed package):
    what a worker process may not be able to import, so its classes and functions are pickled by value."""
    import sysconfig

    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    if module is None or file is None or name == "__main__" or name.split(".")[0] in ("lth", *sys.stdlib_module_names):
        return None
    installed = {Path(sysconfig.get_paths()[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    path = Path(file).resolve()
    if any(part in ("site-packages", "dist-packages") for part in path.parts) or any(p in path.parents
                                                                                   for p in installed):
        return None
    return module


def shipped_models(names: Iterable[str], executor: str = "cluster") -> bytes:
    """The models of ``names`` given as Python objects, cloudpickled for the workers (empty when there are none);
    the user's own modules are pickled by value, so a worker need not import them. A one-line UserError naming
    ``model`` where one cannot be pickled (a factory closing over a lock, an open file)."""
    import functools

    wanted = {n: _SHIPPED[n] for n in dict.fromkeys(names) if n in _SHIPPED}
    if not wanted:
        return b""
    try:
        import cloudpickle
    except ImportError:
        raise UserError(f"{ref('model')}: a model given as a Python object needs cloudpickle to reach the "
                        f"{executor} executor's workers: pip install cloudpickle") from None
    out: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {}
    for name, (factory, opts) in wanted.items():
        inner = factory.func if isinstance(factory, functools.partial) else factory
        module = _user_module(getattr(inner, "__module__", "") or "")
        if module is not None:
            cloudpickle.register_pickle_by_value(module)
        try:
            cloudpickle.dumps((factory, opts))
        except Exception as e:  # noqa: BLE001  (whatever the object holds that cannot leave this process)
            why = (str(e).strip().splitlines() or [""])[0][:200]
            raise UserError(f"{ref('model')}: {name} cannot be sent to the worker processes of the {executor} "
                            f"executor: it does not pickle ({type(e).__name__}: {why}); allowed: a model class or "
                            f"factory that pickles (nothing like a lock or an open file in what it refers to), or "
                            f"the local executor", value=name, allowed="a picklable model factory") from None
        finally:
            if module is not None:
                cloudpickle.unregister_pickle_by_value(module)
        out[name] = (factory, opts)
    modules = {m for f, _ in out.values() if (m := _user_module(getattr(getattr(f, "func", f), "__module__", "")))}
    for m in modules:
        cloudpickle.register_pickle_by_value(m)
    try:
        return cloudpickle.dumps(out)
    finally:
        for m in modules:
            cloudpickle.unregister_pickle_by_value(m)


def register_shipped(models: bytes) -> None:
    """In a worker: register the models :func:`shipped_models` sent (those not registered in this process yet)."""
    import pickle

    from lth.models import MODELS, register_module

    if not models:
        return
    for name, (factory, opts) in pickle.loads(models).items():
        if name not in MODELS:
            register_module(name, factory, **opts)
            _SHIPPED[name] = (factory, opts)


def worker_setup(plugins: list[str] | tuple[str, ...], nodes: Iterable[Node], executor: str = "cluster") -> WorkerSetup:
    """The :class:`WorkerSetup` of a population's workers: :func:`worker_modules` and the models of ``nodes`` (and
    of the nodes they reference) given as Python objects."""
    from lth.graph import closure

    names = [n.spec.model.model for n in closure(list(nodes))] if _SHIPPED else []
    return WorkerSetup(tuple(worker_modules(plugins)), shipped_models(names, executor))


def worker_modules(plugins: list[str] | tuple[str, ...] = ()) -> list[tuple[str, str | None]]:
    """What a worker process must import before it can train: the ``--plugin`` modules (as given), and every
    module outside lth that registered an op, a model or a dataset in this process (name, file), so that a
    recipe's op or a spec's model means the same on every node of a cluster."""
    from lth.data import DATASETS
    from lth.graph.ops import OPS
    from lth.models import MODELS

    out: dict[str, str | None] = {p: None for p in plugins}
    for fn in [*OPS.values(), *MODELS.values(), *DATASETS.values()]:
        name = getattr(fn, "__module__", None) or ""
        if name.split(".")[0] in ("lth", "__main__", "") or name in out:
            continue
        out[name] = getattr(sys.modules.get(name), "__file__", None)
    return list(out.items())


def import_modules(modules: list[tuple[str, str | None]] | WorkerSetup) -> None:
    """In a worker: import lth's own ops, then each module of :func:`worker_modules` not yet imported (by name,
    or from its file where the name is not on this worker's path); given a :class:`WorkerSetup`, also register
    the models it carries."""
    import importlib
    import importlib.util

    if isinstance(modules, WorkerSetup):
        import_modules(list(modules.modules))
        register_shipped(modules.models)
        return

    import lth.lottery  # noqa: F401  (registers the trunk's and the branches' ops)
    from lth.plugins import load_entry_points, load_plugin

    load_entry_points()
    for name, file in modules:
        if name in sys.modules:
            continue
        if file is None:  # a --plugin as the user gave it (dotted name or .py path)
            load_plugin(name)
            continue
        try:
            importlib.import_module(name)
        except ImportError:
            spec = importlib.util.spec_from_file_location(name, file)
            if spec is None or spec.loader is None:
                raise
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)


def train_remote(nodes: list[Node], data_dir: str | None, options: EngineOptions,
                 modules: list[tuple[str, str | None]] | WorkerSetup) -> list[dict[str, Any]]:
    """The unit of work as a cluster runs it (a Ray task, a Slurm array element): import what the graph needs,
    load the dataset on this worker's device (once per worker process), :func:`train_group`."""
    from lth.data import load_dataset

    import_modules(modules)
    if options.threads:  # the reduction order of CPU kernels follows the thread count
        torch.set_num_threads(options.threads)
    device = options.torch_device()
    hp = nodes[0].spec.data
    key = (hp, str(data_dir), str(device))
    if key not in _WORKER_DATA:
        _WORKER_DATA[key] = load_dataset(hp, data_dir, device)
    return train_group(nodes, _WORKER_DATA[key], options)


def error_line(e: BaseException) -> str:
    """An exception as one line: ``Type: first line of its message`` (a long line ends after the sentence that
    reaches :data:`LINE_CHARS` characters: never mid-sentence)."""
    return f"{type(e).__name__}: {whole_sentences((str(e).strip().splitlines() or [''])[0])}"


LINE_CHARS = 300


def whole_sentences(text: str, limit: int = LINE_CHARS) -> str:
    """``text`` up to the end of the sentence that reaches ``limit`` characters (``. `` ends a sentence), with
    `` ...`` where more followed; all of it where it is shorter or has no later sentence end."""
    if len(text) <= limit:
        return text
    end = text.find(". ", limit)
    return text if end < 0 else text[:end + 1] + " ..."
