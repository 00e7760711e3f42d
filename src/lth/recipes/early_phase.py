"""``early-phase``: Frankle, Schwab & Morcos (ICLR 2020), "The Early Phase of Neural Network Training": a rewinding
sweep; IMP subnetworks at the rewind step k with signs or magnitudes from step 0 (``signs``), weights shuffled
within layers, with or without keeping signs (``shuffle``), and Gaussian noise of n sigma (``noise``); the effective
standard deviation of each perturbation against accuracy (their Fig. 8); telemetry of the dense network (Fig. 3).

Paper numbers: seed 002, Fig. 8's caption: the correlation between the perturbations' effective standard deviation
and mean accuracy at sparsity 26.2% is r = -0.672 (k = 500) and r = -0.726 (k = 2000). lth computes Pearson's r
over its perturbation runs at each k (effective std: the standard deviation of the perturbed minus the unperturbed
starting weights, over the kept weights).

Pretraining the rewind point on random labels, rotation, blur and both (Section 5) is added when
:class:`lth.lottery.trunk.Trunk` supports pretraining (:data:`PRETRAIN_VARIANTS`, detected by
:func:`pretraining_available`); until then the report says "pretraining: not yet available".
"""

from __future__ import annotations

from typing import Any

from lth.recipes.base import Context, Measured, PaperNumber, Piece, Recipe, accuracies, level_at_density, sizes

F8 = "Frankle, Schwab & Morcos ICLR 2020, Fig. 8 caption (seed 002)"
# the perturbation sets, one LotteryPlan each (a plan holds one options set per branch name)
PERTURBATIONS = (
    {"signs": {"signs_from": "0", "magnitudes_from": "k"}, "shuffle": {"shuffle_within": "layer"},
     "noise": {"noise_scale": 1.0}},
    {"signs": {"signs_from": "k", "magnitudes_from": "0"}, "shuffle": {"shuffle_within": "layer", "same_sign": True},
     "noise": {"noise_scale": 2.0}},
)
PRETRAIN_VARIANTS = ("random-labels", "rotation", "blur", "rotation+blur")  # Section 5; see pretraining_available
FULL = {"preset": "resnet20", "levels": 6, "replicates": 3, "steps": None,
        "rewinds": ("0it", "100it", "500it", "1000it", "2000it")}
QUICK = {"preset": "digits_mlp", "levels": 3, "replicates": 2, "steps": "4ep", "rewinds": ("0it", "10it", "20it")}


def pretraining_available() -> bool:
    """Whether the trunk can pretrain its rewind point (another task builds this; detected by attribute)."""
    from lth.lottery.trunk import Trunk

    return any(hasattr(Trunk, a) or a in getattr(Trunk, "__dataclass_fields__", {})
               for a in ("pretrain", "pretrain_task"))


def _start_state(record: dict[str, Any]) -> str:
    """The path of the state a run started from: ``init`` at k = 0, ``rewind`` (its state at step k) after."""
    return record["states"].get("init") or record["states"]["rewind"]


class EarlyPhaseRecipe(Recipe):
    """A rewinding sweep with the sign, shuffle and noise perturbations at the 26.2% level."""

    name = "early-phase"
    paper = "Frankle, Schwab & Morcos, ICLR 2020: The Early Phase of Neural Network Training"
    figures = ("accuracy vs rewind step", "signs / magnitudes swaps (Fig. 4)", "shuffles (Fig. 5-6)",
               "noise (Fig. 7)", "effective std vs accuracy (Fig. 8)", "telemetry panels (Fig. 3)")
    data = ("cifar10",)
    paper_numbers = (PaperNumber("Pearson r, effective std vs accuracy, k = 500", -0.672, F8, "correlation"),
                     PaperNumber("Pearson r, effective std vs accuracy, k = 2000", -0.726, F8, "correlation"))
    telemetry = "10it"

    def plan(self, ctx: Context) -> list[Piece]:
        """One LotteryPlan (all rewinds) per perturbation set, branches at the 26.2% level."""
        import lth.api as api

        cfg = QUICK if ctx.quick else FULL
        levels, reps, steps = sizes(ctx, FULL, QUICK)
        level = min(levels, level_at_density(0.262, 0.2))
        over: dict[str, Any] = {"training_steps": steps} if steps else {}
        if ctx.quick:
            ctx.sub(f"ResNet-20 on CIFAR-10 -> digits_mlp on 8x8 digits; rewinds {', '.join(cfg['rewinds'])} stand "
                    f"for {', '.join(FULL['rewinds'])} (k = 500 -> {cfg['rewinds'][1]}, k = 2000 -> "
                    f"{cfg['rewinds'][2]}); perturbations at level {level} (density {0.8 ** level:.3f})")
        if not pretraining_available():
            ctx.sub("pretraining (random labels, rotation, blur, both): not yet available")
        return [Piece(f"perturbations {i}", api.lottery(cfg["preset"], levels, replicates=reps, rewind=cfg["rewinds"],
                                                        branches=b, branch_levels=[level], root=ctx.root,
                                                        data_dir=ctx.data_dir, **over),
                      meta={"level": level, "rewinds": cfg["rewinds"]}) for i, b in enumerate(PERTURBATIONS)]

    def measure(self, ctx: Context, pieces: list[Piece], results: dict[str, Any], ex: Any) -> dict[str, Measured]:
        """Ticket accuracy per k; each perturbation's accuracy per k; Pearson r of effective std vs accuracy."""
        import numpy as np
        import torch

        out: dict[str, Measured] = {}
        level, rewinds = pieces[0].meta["level"], pieces[0].meta["rewinds"]
        paper_k = dict(zip(rewinds[1:3], ("500", "2000"), strict=False)) if ctx.quick else {"500it": "500",
                                                                                             "2000it": "2000"}
        for k in rewinds:
            trunk = results[pieces[0].label]["runs"]
            out[f"ticket accuracy, k = {k}"] = Measured(accuracies(trunk, level=level, rewind=k))
            start = {r["replicate"]: r for r in trunk if r["level"] == level and r["rewind"] == k}
            stds, accs = [], []
            for i, p in enumerate(pieces):
                for r in results[p.label]["branches"]:
                    if r["rewind"] != k or r.get("final_test_accuracy") is None or r["replicate"] not in start:
                        continue
                    opts = PERTURBATIONS[i][r["branch"]]
                    name = f"{r['branch']} {','.join(f'{a}={b}' for a, b in opts.items())}"
                    out.setdefault(f"{name}: accuracy, k = {k}", Measured([])).values.append(
                        r["final_test_accuracy"])
                    a = torch.load(_start_state(r), map_location="cpu")
                    b = torch.load(_start_state(start[r["replicate"]]), map_location="cpu")
                    m = torch.load(r["mask"], map_location="cpu")
                    d = torch.cat([(a[n] - b[n])[m[n].bool()].flatten() for n in m])
                    stds.append(float(d.std()))
                    accs.append(r["final_test_accuracy"])
            if k in paper_k and len(stds) > 2 and np.std(stds) > 0 and np.std(accs) > 0:
                out[f"Pearson r, effective std vs accuracy, k = {paper_k[k]}"] = Measured(
                    [float(np.corrcoef(stds, accs)[0, 1])], f"k = {k}, {len(stds)} perturbation runs")
        return out

    def verdicts(self, ctx: Context, measured: dict[str, Measured]) -> dict[str, Any]:
        """Whether rewinding past 0 helps the ticket, and whether pretraining could be run."""
        rewinds = (QUICK if ctx.quick else FULL)["rewinds"]
        a0 = measured[f"ticket accuracy, k = {rewinds[0]}"].mean
        best = max((measured[f"ticket accuracy, k = {k}"].mean or 0.0) for k in rewinds[1:])
        return {"rewinding past 0 helps": None if a0 is None else bool(best > a0),
                "pretraining": "available" if pretraining_available() else "not yet available"}


RECIPE = EarlyPhaseRecipe()
