"""A population: N jobs that share an architecture as one wide model, with every member's start, mask, optimiser
state, metrics and store files.

:class:`Population` is built once per :func:`~lth.engine.train.train_population` call; building it writes nothing
to the store (:meth:`Population.prepare_store` writes each member's spec and mask, before training). It places
each member at its start (its own checkpoint, another run's state at step k, or a fresh initialisation from its
seed) when the loop reaches that step (:meth:`Population.activate`), records evaluations
(:meth:`Population.record`), writes checkpoints and the completion marker. The step itself lives in
:mod:`lth.engine.step`, evaluation in :mod:`lth.engine.evaluate`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from lth.data import Dataset
from lth.data.images import is_lazy
from lth.engine.batches import EpochBatches, generator
from lth.engine.distributed import evaluate_sharded, reduce_loss, run_dir, sync_batchnorm
from lth.engine.evaluate import evaluate_population
from lth.engine.optim import PopOptimizer, clock_key
from lth.engine.stream import StreamBatches
from lth.models import build_model
from lth.models.layers import use_channels_last
from lth.spec import to_dict

METRICS_SECONDS = 10.0  # longest a live metrics.csv lags behind training


def _cpu(obj: Any) -> Any:
    if isinstance(obj, Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _cpu(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_cpu(v) for v in obj]
    return obj


def _on(x: Any, device: torch.device) -> Any:
    """``x`` on ``device``; images on disk stay there (evaluation decodes them chunk by chunk)."""
    return x if is_lazy(x) else x.to(device)


class Population:
    """The members of one population and everything kept per member (see the module docstring)."""

    def __init__(self, jobs: list[Any], data: Dataset, opts: Any, emit: Callable[..., None]) -> None:
        self.jobs, self.opts, self.emit = jobs, opts, emit
        self.device = device = opts.torch_device()
        spec = self.spec = jobs[0].spec
        self.dist = dist = getattr(opts, "dist", None)  # a rank of a distributed run (lth.engine.distributed)
        self.n = n = len(jobs)
        bs = spec.data.batch_size
        self.bs = bs // dist.world if dist is not None else bs  # the rows of each batch this process takes
        n_train = data.train_x.shape[0]
        self.spe = spe = n_train // bs
        self.total = spec.train.training_steps.iterations(spe)
        self.eval_every = spec.train.eval_every.iterations(spe)
        self.ckpt_every = opts.checkpoint_every.iterations(spe) if opts.checkpoint_every else 0
        self.stores = [run_dir(j.run_dir, dist) for j in jobs]  # rank 0 writes; the other ranks only read
        self.names = [{**{s.iterations(spe): str(s) for s in j.state_steps}, **j.state_names} for j in jobs]

        # --- the wide model (CUDA convnets: NHWC inputs and weights, so cuDNN converts nothing per step)
        self.model = model = build_model(spec.model.model, n, data.example_shape, data.num_classes,
                                         spec.model.norm, spec.model.width).to(device)
        if device.type == "cuda" and opts.channels_last in ("auto", "input"):
            use_channels_last(model, weights=opts.channels_last == "auto")
        self.sync_bn = sync_batchnorm(model, dist) if dist is not None else False
        self.params = list(model.parameters())
        self.pdict = dict(model.named_parameters())

        # --- where each member starts: its checkpoint, another run's state at step k, or a fresh init
        self.ckpts = [s.load_checkpoint()
                      for s in self.stores]
        self.starts = [int(c["iteration"]) if c else j.start_step for j, c in zip(jobs, self.ckpts, strict=True)]

        # --- optimiser: one fused call per clock group (members with the same schedule and start)
        clocks: dict[tuple, list[int]] = {}
        for i, j in enumerate(jobs):
            clocks.setdefault((clock_key(j.spec.train, self.starts[i], spe), j.start_step), []).append(i)
        self.opt = PopOptimizer(spec.train.optimizer, self.params, list(clocks.values()),
                                [j.spec.train for j in jobs], self.total, spe, self.starts)
        self.group_of = {i: gi for gi, g in enumerate(clocks.values()) for i in g}

        # --- masks, enforced inside the step
        self.masked = model.prunable() if any(j.mask is not None for j in jobs) else []
        self.masks = [torch.ones_like(self.pdict[k]) for k in self.masked]
        for mi, k in enumerate(self.masked):
            for i, j in enumerate(jobs):
                if j.mask is not None and k in j.mask:
                    self.masks[mi][i].copy_(j.mask[k].to(self.masks[mi].dtype))
        self.masked_params = [self.pdict[k] for k in self.masked]

        # --- data on the device, per-member order and augmentation streams
        self.order_seeds = [j.seed("order") for j in jobs]
        self.aug_seeds = [j.seed("augment") for j in jobs]
        self.batches: EpochBatches | StreamBatches
        shard = (dist.rank, dist.world) if dist is not None else (0, 1)  # a distributed run: this rank's rows
        if is_lazy(data.train_x):  # images on disk: decoded by DataLoader workers while training
            self.x_train, self.y_train = data.train_x, data.train_y
            self.batches = StreamBatches(n, data.train_x, data.train_y, bs, spec.data.augment, self.order_seeds,
                                         self.aug_seeds, device, workers=getattr(opts, "loader_workers", None),
                                         shard=shard, decoder=getattr(opts, "decoder", "auto"))
        else:
            self.x_train, self.y_train = data.train_x.to(device), data.train_y.to(device)
            hw = tuple(self.x_train.shape[-2:]) if self.x_train.dim() == 4 else (0, 0)
            self.batches = EpochBatches(n, n_train, bs, spec.data.augment, hw, device, shard=shard,
                                        rotate=spec.data.rotation_task)
        self.evals = {"test": (_on(data.test_x, device), data.test_y.to(device))}
        if data.val_x is not None:
            self.evals["val"] = (_on(data.val_x, device), data.val_y.to(device))

        # --- per-member bookkeeping
        self.loss_sum = torch.zeros(n, device=device)  # NaN or inf here at an evaluation: the member diverged
        self.rows: list[list[dict[str, Any]]] = [list(c["metrics"]) if c else [] for c in self.ckpts]
        self.status = ["running"] * n
        # metrics.csv is rewritten at most every METRICS_SECONDS while training (and at the end): each write is a
        # pause of the device between steps; the rows themselves are in every checkpoint
        self.unwritten: set[int] = set()
        self.metrics_written = time.perf_counter()
        self.last_eval = [int(c["last_eval"]) if c else s for c, s in zip(self.ckpts, self.starts, strict=True)]

        # --- weight telemetry (opts.telemetry_every): device tensors at its iterations, read back at evaluations
        self.tele_at = opts.telemetry_steps(spe, self.total) if hasattr(opts, "telemetry_steps") else set()
        self.tele: Any = None
        self.grad_sq: Tensor | None = None
        self.tele_rows: list[list[dict[str, Any]]] = [list(c.get("telemetry", [])) if c else [] for c in self.ckpts]
        self.tele_snaps: list[list[Tensor | None]] = [[None] * len(r) for r in self.tele_rows]
        self.tele_pending: list[tuple[int, list[int], dict[str, Tensor], Tensor]] = []
        if self.tele_at:
            from lth.analysis.telemetry import Telemetry

            layers = model.prunable()
            keep = {k: self.masks[mi].bool() for mi, k in enumerate(self.masked)} if self.masked else None
            self.tele = Telemetry(model, {k: self.pdict[k] for k in layers}, layers=layers, mask=keep)
            self.grad_sq = torch.zeros(n, device=device)

    # ------------------------------------------------------------------------------------------ store
    def prepare_store(self) -> None:
        """Write what each member's run directory holds before training: ``spec.json`` (hyperparameters, replicate
        and the job's meta) and the mask it trains under. The constructor reads the store (checkpoints) and writes
        nothing; the training loop calls this once, before the first step."""
        extra = {"distributed": self.dist.record(self.sync_bn)} if self.dist is not None else {}
        if isinstance(self.batches, StreamBatches):  # which library decoded the images (their pixels differ a little)
            extra["image_decoder"] = self.batches.decoder
        for j, s in zip(self.jobs, self.stores, strict=True):
            s.write_spec({**to_dict(j.spec), "replicate": j.replicate, **j.meta, **extra})
            if j.mask is not None:
                s.save_mask(j.mask)

    # ------------------------------------------------------------------------------------------ members
    def running(self, t: int) -> list[int]:
        """Members that have started by iteration ``t`` and are still training."""
        return [i for i in range(self.n) if self.starts[i] <= t and self.status[i] == "running"]

    def activate(self, i: int, t: int) -> None:
        """Place member ``i`` at its start (it trained as a placeholder at learning rate 0 until now)."""
        j, c, model = self.jobs[i], self.ckpts[i], self.model
        self.loss_sum[i] = c["loss_sum"] if c else 0.0
        if c:
            model.load_member(i, {k: v.to(self.device) for k, v in c["model"].items()})
            self.opt.load_member(i, c["optimizer"])
            start = "init" if j.start_step == 0 else self.names[i].get(j.start_step)
            if self.tele is not None and start and self.stores[i].has_state(start):
                self._telemetry_start(i, self.stores[i].load_state(start))
            return
        if j.start_state is not None:
            model.load_member(i, {k: v.to(self.device) for k, v in j.start_state.items()})
        else:
            model.init_member(i, j.spec.model.init, generator(torch.device("cpu"), 0, j.seed("init")))
        self.opt.load_member(i, None)
        with torch.no_grad():
            for mi in range(len(self.masked)):
                self.masked_params[mi][i].mul_(self.masks[mi][i])
        for name in {"init" if t == 0 else None, self.names[i].get(t)} - {None}:
            self.stores[i].save_state(name, model.member_state(i), t)
        if self.tele is not None:
            self._telemetry_start(i, {k: self.pdict[k][i] for k in self.tele.layers})

    # ------------------------------------------------------------------------------------------ telemetry
    def _telemetry_start(self, i: int, state: dict[str, Tensor]) -> None:
        """Member ``i``'s telemetry reference ("initial" weights): the state it started from."""
        with torch.no_grad():
            for li, k in enumerate(self.tele.layers):
                self.tele.init[li][i].copy_(state[k].to(self.device))

    def telemetry(self, t: int) -> None:
        """Weight telemetry of every running member at iteration ``t`` (device tensors; nothing read back)."""
        members = self.running(t)
        if not members:
            return
        snap = torch.cat([self.pdict[k].detach().reshape(self.n, -1) for k in self.tele.layers], 1).clone()
        self.tele_pending.append((t, members, self.tele(self.model), snap))

    def telemetry_grad(self) -> None:
        """The gradient norm of the step just taken, into the latest telemetry entry."""
        if self.tele_pending:
            self.tele_pending[-1][2]["grad_norm"] = self.grad_sq.sqrt().clone()

    def flush_telemetry(self) -> None:
        """Read the pending telemetry back into per-member rows (and weight snapshots for the final columns)."""
        names = self.tele.position_names if self.tele is not None else []
        for t, members, vals, snap in self.tele_pending:
            host = {k: v.detach().cpu() for k, v in vals.items()}
            snap = snap.cpu()
            for i in members:
                row: dict[str, Any] = {"iteration": t, "step": f"{t}it"}
                for k, v in host.items():
                    if k == "sampled_weights":
                        row.update({f"w[{name}]": float(x) for name, x in zip(names, v[i], strict=True)})
                    else:
                        row[k] = float(v[i])
                self.tele_rows[i].append(row)
                self.tele_snaps[i].append(snap[i])
        self.tele_pending.clear()

    def finish_telemetry(self, i: int) -> None:
        """Member ``i``'s telemetry.csv, with the distance and cosine to its final weights filled in."""
        self.flush_telemetry()
        if self.status[i] == "complete":
            import torch.nn.functional as F

            final = torch.cat([self.pdict[k][i].detach().reshape(-1) for k in self.tele.layers]).cpu()
            for row, w in zip(self.tele_rows[i], self.tele_snaps[i], strict=True):
                if w is not None:
                    row["l2_from_final"] = float((w - final).norm())
                    row["cosine_to_final"] = float(F.cosine_similarity(w, final, dim=0))
        self.stores[i].write_telemetry(self.tele_rows[i])

    def save_named_states(self, t: int) -> None:
        """States the members asked for at step ``t`` (besides init and final)."""
        for i in self.running(t):
            name = self.names[i].get(t)
            if name and t > self.starts[i]:
                self.stores[i].save_state(name, self.model.member_state(i), t)

    def checkpoint(self, t: int) -> None:
        """Every running member's checkpoint (model, optimiser, metrics and telemetry so far), and metrics.csv."""
        if self.tele is not None:
            self.flush_telemetry()
        self.write_metrics()
        sums = reduce_loss(self.loss_sum, self.dist)  # the mean over the ranks: what a resumed rank starts from
        for i in self.running(t):
            if t > self.starts[i]:
                self.stores[i].save_checkpoint({
                    "iteration": t, "model": {k: v.cpu() for k, v in self.model.member_state(i).items()},
                    "optimizer": _cpu(self.opt.member_state(i)), "metrics": self.rows[i],
                    "loss_sum": float(sums[i]), "last_eval": self.last_eval[i],
                    **({"telemetry": self.tele_rows[i]} if self.tele is not None else {})})

    def write_metrics(self) -> None:
        """Write the metrics.csv of every member with rows not yet written."""
        for i in sorted(self.unwritten):
            self.stores[i].write_metrics(self.rows[i])
        self.unwritten.clear()
        self.metrics_written = time.perf_counter()

    def finish(self, i: int, t: int) -> None:
        """Member ``i``'s final state (unless it diverged), metrics and completion marker."""
        s = self.stores[i]
        if self.status[i] == "running":
            self.status[i] = "complete"
            s.save_state("final", self.model.member_state(i), t)
        s.write_metrics(self.rows[i])
        self.unwritten.discard(i)
        if self.tele is not None:
            self.finish_telemetry(i)
        last = self.rows[i][-1] if self.rows[i] else {}
        s.write_done({"status": self.status[i], "iteration": t, "step": f"{t}it",
                      "final_test_accuracy": last.get("test_accuracy"),
                      "finished": time.strftime("%Y-%m-%dT%H:%M:%S")})
        s.drop_checkpoint()

    # ------------------------------------------------------------------------------------------ evaluation
    def lr_of(self, i: int, t: int) -> float:
        """Member ``i``'s learning rate at iteration ``t`` (as its schedule computes it, in float64)."""
        return float(self.opt.lr_table[min(t, self.total), self.group_of[i]])

    def record(self, t: int, members: list[int]) -> None:
        """Evaluate the population and append one metrics row to each of ``members``; a member whose loss is
        NaN or inf is marked diverged and finished."""
        sums = reduce_loss(self.loss_sum, self.dist).tolist()
        if self.tele is not None:
            self.flush_telemetry()
        began = time.perf_counter()
        precision = self.spec.train.precision
        results = {k: evaluate_population(self.model, x, y, precision) if self.dist is None
                   else evaluate_sharded(self.model, x, y, precision, self.dist) for k, (x, y) in self.evals.items()}
        self.model.train()
        eval_seconds = time.perf_counter() - began
        for i in members:
            if self.status[i] != "running":
                continue
            steps = t - self.last_eval[i]
            row = {"iteration": t, "step": f"{t}it", "lr": self.lr_of(i, t),
                   "train_loss": sums[i] / steps if steps else None,
                   "test_loss": float(results["test"]["loss"][i]),
                   "test_accuracy": float(results["test"]["accuracy"][i])}
            if "val" in results:
                row["val_loss"] = float(results["val"]["loss"][i])
                row["val_accuracy"] = float(results["val"]["accuracy"][i])
            self.rows[i].append(row)
            self.last_eval[i] = t
            if not (math.isfinite(sums[i]) and math.isfinite(row["test_loss"])):
                self.status[i] = "diverged"
                self.finish(i, t)
                self.emit("diverged", job=self.jobs[i], iteration=t)
            else:
                self.unwritten.add(i)
        if time.perf_counter() - self.metrics_written >= METRICS_SECONDS:
            self.write_metrics()
        self.loss_sum.index_fill_(0, torch.tensor(members, device=self.device), 0.0)
        self.emit("eval", iteration=t, total=self.total,
                  rows={i: self.rows[i][-1] for i in members if self.rows[i]}, eval_seconds=eval_seconds)
