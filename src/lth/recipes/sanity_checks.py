"""``sanity-checks``: Ma et al. (NeurIPS 2021), "Sanity Checks for Lottery Tickets: Does Your Winning Ticket Really
Win the Jackpot?": pretraining at a small and a large learning rate, the IMP ticket trained at a sweep of
learning rates (``retrain`` with ``lr=...``), one-shot pruning (``oneshot``), random reinitialisation, a small
dense network of the ticket's size (``small-dense``), and the jackpot / secondary-prize verdict of their
rigorous definition (:func:`lth.analysis.verdicts.jackpot`).

Paper numbers: seed 002, Ma et al. Table 4 (ResNet-20 on CIFAR-10 at sparsity 0.914): pretraining accuracy at lr
0.01 (90.3%) and 0.1 (92.4%); IMP and OMP subnetwork accuracy at four ticket learning rates each. lth's OMP
(the ``oneshot`` branch) trains at the pretraining learning rate only, so OMP is compared at that rate.
Loss contours (their Fig. 4-5) are ``lth landscape``'s, not this recipe's.
"""

from __future__ import annotations

from typing import Any

from lth.recipes.base import Context, Measured, PaperNumber, Piece, Recipe, accuracies, level_at_density, sizes

T4 = "Ma et al. NeurIPS 2021, Table 4 (seed 002)"
DENSITY = 1.0 - 0.914  # Table 4: sparsity 0.914
# pretraining lr -> (pretraining accuracy, {ticket lr: (IMP accuracy, OMP accuracy)})
TABLE4 = {0.01: (.903, {0.001: (.875, .833), 0.005: (.897, .853), 0.01: (.894, .865), 0.05: (.879, .872)}),
          0.1: (.924, {0.01: (.853, .858), 0.05: (.866, .874), 0.1: (.873, .872), 0.15: (.867, .873)})}
FULL = {"presets": {0.01: "resnet20_low", 0.1: "resnet20"}, "levels": 11, "replicates": 2, "steps": None}
QUICK = {"presets": {0.01: "digits_mlp", 0.1: "digits_mlp"}, "levels": 4, "replicates": 2, "steps": "4ep"}
QUICK_LR = {0.01: 1e-3, 0.1: 1e-2}  # digits_mlp (Adam) stands-in for the paper's small and large rate


def _numbers() -> list[PaperNumber]:
    out = []
    for lr, (pre, sweep) in TABLE4.items():
        out.append(PaperNumber(f"pretraining accuracy, lr {lr}", pre, T4))
        for lt, (imp, omp) in sweep.items():
            out.append(PaperNumber(f"pretrain lr {lr}: IMP ticket at ticket lr {lt}", imp, T4))
            if lt == lr:
                out.append(PaperNumber(f"pretrain lr {lr}: OMP ticket at ticket lr {lt}", omp, T4))
    return out


class SanityChecksRecipe(Recipe):
    """Two pretraining learning rates; per rate the IMP ticket at four ticket rates, OMP, reinit, small dense."""

    name = "sanity-checks"
    paper = "Ma et al., NeurIPS 2021: Sanity Checks for Lottery Tickets"
    figures = ("ticket accuracy vs ticket learning rate, IMP vs OMP (Table 4)", "jackpot / secondary-prize verdicts",
               "accuracy vs density with reinit and small dense")
    data = ("cifar10",)
    paper_numbers = tuple(_numbers())

    def _lr(self, ctx: Context, lr: float) -> float:
        return QUICK_LR[lr] if ctx.quick else lr

    def plan(self, ctx: Context) -> list[Piece]:
        """Per pretraining lr, one LotteryPlan per ticket lr (the ``retrain`` branch), the first with ``oneshot``,
        ``reinit`` and ``small-dense`` at the Table 4 density's level."""
        import lth.api as api

        cfg = QUICK if ctx.quick else FULL
        levels, reps, steps = sizes(ctx, FULL, QUICK)
        level = min(levels, level_at_density(DENSITY, 0.2))
        if ctx.quick:
            ctx.sub("ResNet-20 on CIFAR-10 (SGD) -> digits_mlp (Adam) on 8x8 digits; learning rates 0.01 / 0.1 -> "
                    f"{QUICK_LR[0.01]} / {QUICK_LR[0.1]}, ticket rates scaled alike; density {0.8 ** level:.3f} "
                    f"instead of {DENSITY:.3f}")
        pieces = []
        for lr, (_, sweep) in TABLE4.items():
            scale = self._lr(ctx, lr) / lr
            over: dict[str, Any] = {"training_steps": steps} if steps else {}
            if ctx.quick:
                over["lr"] = self._lr(ctx, lr)
            for i, lt in enumerate(sweep):
                branches: dict[str, dict[str, Any]] = {"retrain": {"set": (f"lr={lt * scale:g}",)}}
                if i == 0:
                    branches.update({"oneshot": {}, "reinit": {}, "small-dense": {}})
                pieces.append(Piece(f"lr {lr} / ticket lr {lt}", api.lottery(
                    cfg["presets"][lr], levels, replicates=reps, branches=branches, branch_levels=[level],
                    root=ctx.root, data_dir=ctx.data_dir, **over), meta={"lr": lr, "lt": lt, "level": level}))
        return pieces

    def measure(self, ctx: Context, pieces: list[Piece], results: dict[str, Any], ex: Any) -> dict[str, Measured]:
        """Table 4's cells, plus the dense, reinit and small-dense accuracies the jackpot verdict needs."""
        out: dict[str, Measured] = {}
        for p in pieces:
            rec, lr, lt, lv = results[p.label], p.meta["lr"], p.meta["lt"], p.meta["level"]
            how = f"level {lv}, density {0.8 ** lv:.3f}" + (f", ticket lr {lt * self._lr(ctx, lr) / lr:g}"
                                                               if ctx.quick else "")
            out.setdefault(f"pretraining accuracy, lr {lr}", Measured(accuracies(rec["runs"], level=0), how))
            out[f"pretrain lr {lr}: IMP ticket at ticket lr {lt}"] = Measured(
                accuracies(rec["branches"], level=lv, branch="retrain"), how)
            for b, key in (("oneshot", "OMP ticket"), ("reinit", "reinit"), ("small-dense", "small dense")):
                vals = accuracies(rec["branches"], level=lv, branch=b)
                if vals:
                    out[f"pretrain lr {lr}: {key} at ticket lr {lr}"] = Measured(vals, how)
        return out

    def verdicts(self, ctx: Context, measured: dict[str, Measured]) -> dict[str, Any]:
        """Ma et al.'s grade per pretraining rate: the best ticket rate's ticket against reinit, the dense network
        at the same rate, the best dense network and the small dense network."""
        from lth.analysis.verdicts import jackpot

        level = min(ctx.scale.pick("levels", (QUICK if ctx.quick else FULL)["levels"]),
                    level_at_density(DENSITY, 0.2))
        dense = {lr: measured[f"pretraining accuracy, lr {lr}"].mean for lr in TABLE4}
        out: dict[str, Any] = {}
        for lr, (_, sweep) in TABLE4.items():
            tickets = {lt: measured[f"pretrain lr {lr}: IMP ticket at ticket lr {lt}"].mean for lt in sweep}
            tickets = {k: v for k, v in tickets.items() if v is not None}
            reinit = measured.get(f"pretrain lr {lr}: reinit at ticket lr {lr}")
            small = measured.get(f"pretrain lr {lr}: small dense at ticket lr {lr}")
            if not tickets or reinit is None or small is None or None in dense.values():
                continue
            best = max(tickets, key=lambda k: tickets[k])
            v = jackpot(tickets[best], 0.8 ** level, reinit.mean, dense[lr], max(dense.values()),  # type: ignore
                        small.mean)  # type: ignore[arg-type]
            out[f"pretrain lr {lr}"] = {"grade": v.grade, "best ticket lr": best, "failed": v.failed}
        return out


RECIPE = SanityChecksRecipe()
