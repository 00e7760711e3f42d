"""The training loop: N jobs that share an architecture train together as one population.

Read top to bottom: a :class:`Job` says what to train and where to store it; :func:`train_population` builds
one wide model, places every member at its start (a fresh initialisation, another run's state at step k, or
its own checkpoint), and steps all members in lockstep on a shared iteration counter. A member that starts at
step k joins at iteration k with the schedule and data order an uninterrupted run would have there.

The step (batch gather + augmentation from per-epoch buffers, forward, backward, optimiser, mask) reads its
position and learning rate from device tensors and never reads a value back, so on CUDA it is captured once
as a CUDA graph and replayed. Losses (NaN or inf: divergence) accumulate on the device and are read only at
evaluation points. Events reach the caller through one callback signature: ``callback(event, info)``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from lth.data import Dataset
from lth.engine.batches import EpochBatches, generator
from lth.engine.optim import PopOptimizer, clock_key
from lth.errors import UserError
from lth.models import build_model
from lth.models.layers import PopConv2d
from lth.spec import Step, TrainSpec, to_dict
from lth.store import RunDir

Callback = Callable[[str, dict[str, Any]], None]


@dataclass
class Job:
    """One run to train: its spec, replicate, directory, starting point and mask."""

    spec: TrainSpec
    replicate: int
    run_dir: Path
    start_step: int = 0  # iteration at which training starts (k > 0: from another run's state at step k)
    start_state: dict[str, Tensor] | None = None  # model state at start_step; None: initialise from the seed
    mask: dict[str, Tensor] | None = None  # {prunable name: bool tensor}; masked weights stay exactly zero
    state_names: dict[int, str] = field(default_factory=dict)  # extra states to keep: iteration -> name
    state_steps: tuple[Step, ...] = ()  # more states to keep, named by their step ("500it", "2ep")
    meta: dict[str, Any] = field(default_factory=dict)  # written into spec.json beside the hyperparameters

    def seed(self, which: str) -> int:
        """The init / order / augment seed: the spec's, else the replicate number."""
        s = getattr(self.spec.train, f"{which}_seed")
        return self.replicate if s is None else s


@dataclass
class EngineOptions:
    """How to train (never what: nothing here changes a result, except the device's arithmetic)."""

    device: str = "auto"
    cuda_graph: str = "auto"  # auto | off
    channels_last: str = "auto"  # CUDA convnets: auto (inputs and weights in NHWC order) | input | off
    compile: bool = False  # torch.compile the training forward (inside the CUDA graph on GPU); costs compile time
    checkpoint_every: Step | None = Step(1, "ep")
    callback: Callback | None = None

    def torch_device(self) -> torch.device:
        """The device to train on."""
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)


def population_key(spec: TrainSpec) -> tuple:
    """Specs with equal keys can train in one population (members may differ in seeds, learning rate and
    schedule, weight decay, momentum, initialiser, start and mask)."""
    t = spec.train
    return (spec.data, spec.model.model, spec.model.norm, spec.model.width, t.optimizer, t.training_steps,
            t.eval_every, t.precision)


def check_jobs(jobs: list[Job], data: Dataset) -> None:
    """UserError for jobs that cannot train on ``data`` (called before anything is written)."""
    for j in jobs:
        bs, n_train = j.spec.data.batch_size, data.train_x.shape[0]
        spe = n_train // bs
        if spe == 0:
            raise UserError(f"--batch-size {bs} is larger than the training set ({n_train} examples)")
        total = j.spec.train.training_steps.iterations(spe)
        if j.start_step > total:
            raise UserError(f"start step {j.start_step}it is after the end of training "
                            f"(--training-steps {j.spec.train.training_steps} = {total}it)")
        for step in j.state_steps:
            if step.iterations(spe) > total:
                raise UserError(f"--save-states {step}: after the end of training "
                                f"(--training-steps {j.spec.train.training_steps} = {total}it)")


def _emit(opts: EngineOptions, event: str, **info: Any) -> None:
    if opts.callback is not None:
        opts.callback(event, info)


def train_population(jobs: list[Job], data: Dataset, opts: EngineOptions) -> list[dict[str, Any]]:
    """Train every job to its last step (resuming from checkpoints) and return one summary per job."""
    assert len({population_key(j.spec) for j in jobs}) == 1, "a population must share its population_key"
    device = opts.torch_device()
    spec = jobs[0].spec
    n, bs = len(jobs), spec.data.batch_size
    n_train = data.train_x.shape[0]
    check_jobs(jobs, data)
    spe = n_train // bs
    total = spec.train.training_steps.iterations(spe)
    eval_every = spec.train.eval_every.iterations(spe)
    ckpt_every = opts.checkpoint_every.iterations(spe) if opts.checkpoint_every else 0
    stores = [RunDir(j.run_dir) for j in jobs]
    names = [{**{s.iterations(spe): str(s) for s in j.state_steps}, **j.state_names} for j in jobs]

    model = build_model(spec.model.model, n, data.example_shape, data.num_classes, spec.model.norm,
                        spec.model.width).to(device)
    if device.type == "cuda" and opts.channels_last in ("auto", "input"):
        for m in model.modules():
            if isinstance(m, PopConv2d):
                m.channels_last = True
                if opts.channels_last == "auto":  # weights stored so cuDNN needs no per-step layout conversion
                    m.weight.data = m.weight.data.permute(0, 1, 3, 4, 2).contiguous().permute(0, 1, 4, 2, 3)
    params = list(model.parameters())

    # --- where each member starts: its checkpoint, another run's state at step k, or a fresh init
    ckpts = [s.load_tensors("checkpoint.pt") if (s.path / "checkpoint.pt").exists() else None for s in stores]
    starts = [int(c["iteration"]) if c else j.start_step for j, c in zip(jobs, ckpts, strict=True)]
    for j, s in zip(jobs, stores, strict=True):
        s.write_json("spec.json", {**to_dict(j.spec), "replicate": j.replicate, **j.meta})
        if j.mask is not None:
            s.save_tensors("mask.pt", {k: v.bool() for k, v in j.mask.items()})
    clocks: dict[tuple, list[int]] = {}
    for i, j in enumerate(jobs):
        key = (clock_key(j.spec.train, starts[i], spe), j.start_step)
        clocks.setdefault(key, []).append(i)
    opt = PopOptimizer(spec.train.optimizer, params, list(clocks.values()), [j.spec.train for j in jobs], total,
                       spe, starts)
    group_of = {i: gi for gi, g in enumerate(clocks.values()) for i in g}

    masked = model.prunable() if any(j.mask is not None for j in jobs) else []
    pdict = dict(model.named_parameters())
    masks = [torch.ones_like(pdict[k]) for k in masked]
    for mi, k in enumerate(masked):
        for i, j in enumerate(jobs):
            if j.mask is not None and k in j.mask:
                masks[mi][i].copy_(j.mask[k].to(masks[mi].dtype))
    masked_params = [pdict[k] for k in masked]

    x_train, y_train = data.train_x.to(device), data.train_y.to(device)
    hw = tuple(x_train.shape[-2:]) if x_train.dim() == 4 else (0, 0)
    batches = EpochBatches(n, n_train, bs, spec.data.augment, hw, device)
    order_seeds = [j.seed("order") for j in jobs]
    aug_seeds = [j.seed("augment") for j in jobs]
    evals = {"test": (data.test_x.to(device), data.test_y.to(device))}
    if data.val_x is not None:
        evals["val"] = (data.val_x.to(device), data.val_y.to(device))

    loss_sum = torch.zeros(n, device=device)  # NaN or inf here at an evaluation: the member diverged
    use_bf16 = spec.train.precision == "bf16"
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16, cache_enabled=False)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:  # denormal floats (Adam's second moments of tiny gradients) make x86 arithmetic 100x slower
        torch.set_flush_denormal(True)
    # A model may offer a hand-written backward (the MLPs do); on a CPU it beats autograd's overhead.
    manual = device.type == "cpu" and not use_bf16 and hasattr(model, "loss_and_grads") and not opts.compile
    forward = torch.compile(model) if opts.compile else model  # compiled during the eager warm-up steps

    def step(pos: Tensor | int, it: Tensor | int) -> None:
        """One training step of every member (capturable: no host reads, static shapes)."""
        opt.set_lr(it)
        xb, yb = batches.batch(x_train, y_train, pos)
        if manual:
            per_member = model.loss_and_grads(xb, yb)
        else:
            with autocast:
                logits = forward(xb)
            per_member = F.cross_entropy(logits.float().reshape(n * bs, -1), yb.reshape(-1),
                                         reduction="none").view(n, bs).mean(1)
            per_member.sum().backward()
        grads = [p.grad for p in params]
        with torch.no_grad():  # masks are enforced inside the step: gradients before, weights after the update
            if masked:
                torch._foreach_mul_([pdict[k].grad for k in masked], masks)
            opt.step(grads)
            if masked:
                torch._foreach_mul_(masked_params, masks)
        loss_sum.add_(per_member.detach())
        if isinstance(pos, Tensor):
            pos.add_(1)
            it.add_(1)

    @torch.no_grad()
    def evaluate(x: Tensor, y: Tensor) -> tuple[list[float], list[float]]:
        model.eval()
        budget = 1 << (25 if device.type == "cuda" else 22)  # input values per evaluation chunk
        chunk = max(1, min(x.shape[0], budget // max(1, n * x[0].numel())))
        loss = torch.zeros(n, device=device)
        correct = torch.zeros(n, device=device)
        for a in range(0, x.shape[0], chunk):
            xc, yc = x[a:a + chunk].unsqueeze(0), y[a:a + chunk]
            with autocast:
                logits = model(xc).float()
            loss += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yc.repeat(n), reduction="none") \
                .view(n, -1).sum(1)
            correct += (logits.argmax(-1) == yc).sum(1)
        model.train()
        return (loss / x.shape[0]).tolist(), (correct / x.shape[0]).tolist()

    # --- per-member bookkeeping
    rows: list[list[dict[str, Any]]] = [list(c["metrics"]) if c else [] for c in ckpts]
    status = ["running"] * n
    last_eval = list(starts)
    for i, c in enumerate(ckpts):
        if c:
            last_eval[i] = int(c["last_eval"])

    def lr_of(i: int, t: int) -> float:
        return float(opt.lr_table[min(t, total), group_of[i]])

    def record(t: int, active: list[int]) -> None:
        sums = loss_sum.tolist()
        began = time.perf_counter()
        results = {k: evaluate(*v) for k, v in evals.items()}
        eval_seconds = time.perf_counter() - began
        for i in active:
            if status[i] != "running":
                continue
            steps = t - last_eval[i]
            row = {"iteration": t, "step": f"{t}it", "lr": lr_of(i, t),
                   "train_loss": sums[i] / steps if steps else None,
                   "test_loss": results["test"][0][i], "test_accuracy": results["test"][1][i]}
            if "val" in results:
                row["val_loss"], row["val_accuracy"] = results["val"][0][i], results["val"][1][i]
            rows[i].append(row)
            last_eval[i] = t
            if not (math.isfinite(sums[i]) and math.isfinite(row["test_loss"])):
                status[i] = "diverged"
                _finish(i, t)
                _emit(opts, "diverged", job=jobs[i], iteration=t)
            else:
                stores[i].write_metrics(rows[i])
        loss_sum.index_fill_(0, torch.tensor(active, device=device), 0.0)
        _emit(opts, "eval", iteration=t, total=total, rows={i: rows[i][-1] for i in active if rows[i]},
              eval_seconds=eval_seconds)

    def _finish(i: int, t: int) -> None:
        s = stores[i]
        if status[i] == "running":
            status[i] = "complete"
            s.save_state("final", model.member_state(i), t)
        s.write_metrics(rows[i])
        last = rows[i][-1] if rows[i] else {}
        s.write_json("done.json", {"status": status[i], "iteration": t, "step": f"{t}it",
                                   "final_test_accuracy": last.get("test_accuracy"),
                                   "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}, durable=True)
        (s.path / "checkpoint.pt").unlink(missing_ok=True)

    def activate(i: int, t: int) -> None:
        j, c = jobs[i], ckpts[i]
        # the slot trained as a placeholder (learning rate 0) until now: its loss sum starts afresh here
        loss_sum[i] = c["loss_sum"] if c else 0.0
        if c:
            model.load_member(i, {k: v.to(device) for k, v in c["model"].items()})
            opt.load_member(i, c["optimizer"])
            return
        if j.start_state is not None:
            model.load_member(i, {k: v.to(device) for k, v in j.start_state.items()})
        else:
            model.init_member(i, j.spec.model.init, generator(torch.device("cpu"), 0, j.seed("init")))
        opt.load_member(i, None)
        with torch.no_grad():
            for mi in range(len(masked)):
                masked_params[mi][i].mul_(masks[mi][i])
        for name in {"init" if t == 0 else None, names[i].get(t)} - {None}:
            stores[i].save_state(name, model.member_state(i), t)

    def checkpoint(i: int, t: int) -> None:
        stores[i].save_tensors("checkpoint.pt", {
            "iteration": t, "model": {k: v.cpu() for k, v in model.member_state(i).items()},
            "optimizer": _cpu(opt.member_state(i)), "metrics": rows[i], "loss_sum": float(loss_sum[i]),
            "last_eval": last_eval[i]})

    # --- the loop: host work only at event iterations, the step itself is eager or a CUDA-graph replay
    t0 = min(starts)
    use_graph = device.type == "cuda" and opts.cuda_graph == "auto"
    pos_t = torch.zeros(1, dtype=torch.long, device=device)
    it_t = torch.zeros(1, dtype=torch.long, device=device)
    graph: torch.cuda.CUDAGraph | None = None
    eager_steps = 0
    model.train()
    events = set(starts) | {t0, total} | set(range(0, total + 1, spe)) | set(range(0, total + 1, eval_every))
    if ckpt_every:
        events |= set(range(0, total + 1, ckpt_every))
    for named in names:
        events |= {t for t in named if t <= total}
    t = t0
    for t in range(t0, total + 1):
        if t in events:
            joining = [i for i in range(n) if starts[i] == t]
            if t == t0 or t % spe == 0:
                batches.fill(t // spe, order_seeds, aug_seeds)
                pos_t.fill_(t % spe)
            for i in joining:
                activate(i, t)
            active = [i for i in range(n) if starts[i] <= t and status[i] == "running"]
            fresh = [i for i in joining if not ckpts[i]]
            if fresh:
                record(t, fresh)
            due = [i for i in active if i not in joining and (t % eval_every == 0 or t == total)]
            if due:
                record(t, due)
            for i in active:
                name = names[i].get(t)
                if name and t > starts[i] and status[i] == "running":
                    stores[i].save_state(name, model.member_state(i), t)
            if t == total or not any(s == "running" for s in status):
                break
            if ckpt_every and t % ckpt_every == 0 and t > t0:
                for i in active:
                    if status[i] == "running" and t > starts[i]:
                        checkpoint(i, t)
        # the step itself: eager, or (CUDA) three eager warm-up steps, one capture, then replays
        if not use_graph:
            step(t % spe, t)
            for p in params:
                p.grad = None
            continue
        if graph is None and eager_steps >= 3:
            it_t.fill_(t)
            for p in params:
                p.grad = None
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step(pos_t, it_t)
        if graph is None:
            it_t.fill_(t)
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                step(pos_t, it_t)
            torch.cuda.current_stream().wait_stream(side)
            eager_steps += 1
            for p in params:
                p.grad = None
        else:
            graph.replay()

    for i in range(n):
        if status[i] == "running":
            _finish(i, t)
    return [summary(j, stores[i]) for i, j in enumerate(jobs)]


def _cpu(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj


def summary(job: Job, store: RunDir) -> dict[str, Any]:
    """The JSON record of a finished run (the CONTRACT's run record)."""
    done = store.done or {}
    rec: dict[str, Any] = {"path": str(store.path), "replicate": job.replicate,
                           "final_test_accuracy": done.get("final_test_accuracy"),
                           "status": done.get("status", "missing"), "states": store.states()}
    if (store.path / "mask.pt").exists():
        rec["mask"] = str(store.path / "mask.pt")
    return rec
