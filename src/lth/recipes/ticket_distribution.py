"""``ticket-distribution``: the mask-topology / weight-distribution study (seed 004): FC-1 on MNIST and LeNet-5 on
CIFAR-10, pruned with 20% of every layer per round to 26.2% (6 rounds) and 10.7% (10 rounds), trained as the
ticket, re-initialised from the ticket's nonzero initial weights D_n (``dn-reinit``), and with a fresh mask of the
same per-layer counts filled from D_n (``remask``); five trials each; D_n histograms.

Paper numbers: seed 004, the summary tables of FC-1 (captioned "Figure 1") and LeNet5 ("Figure 3"): per model
the maximum of the accuracy averaged over five trials, its epoch, the minimum averaged training loss and its
epoch.
"""

from __future__ import annotations

from typing import Any

from lth.recipes.base import (
    Context,
    Measured,
    PaperNumber,
    Piece,
    Recipe,
    average_curve_extremes,
    plan_lottery,
    run_metrics,
    sizes,
)

FC = "seed 004, FC-1 summary table (its 'Figure 1')"
LN = "seed 004, LeNet5 summary table (its 'Figure 3')"
# model -> (max average accuracy, epoch, min average training loss, epoch)
FC1 = {"full": (.9068, 96, 0.656e-3, 95), "ticket 26.2%": (.9055, 91, 1.707e-3, 91),
       "ticket 10.7%": (.9043, 75, 3.915e-3, 96), "dn-reinit 26.2%": (.9045, 100, 2.395e-3, 100),
       "dn-reinit 10.7%": (.9036, 67, 4.471e-3, 100), "remask 26.2%": (.9028, 95, 2.964e-3, 96),
       "remask 10.7%": (.8983, 100, 10.04e-3, 100)}
LENET5 = {"full": (.5861, 89, .2341, 300), "ticket 26.2%": (.5689, 298, .8001, 298),
          "ticket 10.7%": (.5218, 300, 1.121, 297), "dn-reinit 26.2%": (.5499, 292, .8902, 300),
          "dn-reinit 10.7%": (.5167, 300, 1.156, 299), "remask 26.2%": (.5478, 269, .8884, 298),
          "remask 10.7%": (.5089, 291, 1.183, 298)}
QUANTITIES = (("max average accuracy", "fraction"), ("epoch of max accuracy", "epoch"),
              ("min average training loss", "loss"), ("epoch of min loss", "epoch"))
LEVELS = {6: "26.2%", 10: "10.7%"}  # seed 004, section 4.1: n = 6 and 10 rounds of s = 20%

FULL = {"presets": ("fc_dn", "lenet5_dn"), "levels": 10, "replicates": 5, "steps": None}
QUICK = {"presets": ("digits_mlp",), "levels": 10, "replicates": 3, "steps": "10ep"}


def _numbers(net: str, table: dict[str, tuple[float, ...]], source: str) -> list[PaperNumber]:
    return [PaperNumber(f"{net} {model}: {q}", v, source, unit) for model, vals in table.items()
            for (q, unit), v in zip(QUANTITIES, vals, strict=True)]


class TicketDistributionRecipe(Recipe):
    """IMP with 20% of every layer per round; the dn-reinit and remask branches at 26.2% and 10.7%."""

    name = "ticket-distribution"
    paper = "Mask topology and weight distribution of lottery tickets (seed 004)"
    figures = ("test accuracy and training loss per epoch with min-max bars", "summary table (best average "
               "accuracy / lowest average loss and their epochs)", "D_n histograms at 26.2% and 10.7%, per replicate "
               "(Fig. 5)")
    data = ("mnist", "cifar10")
    paper_numbers = tuple(_numbers("FC-1", FC1, FC) + _numbers("LeNet5", LENET5, LN))

    def plan(self, ctx: Context) -> list[Piece]:
        """One LotteryPlan per network with the dn-reinit and remask branches at levels 6 and 10."""
        from lth.presets import get_preset

        levels, reps, steps = sizes(ctx, FULL, QUICK)
        branch_levels = [lv for lv in LEVELS if lv <= levels] or [levels]
        pieces = []
        for p in (QUICK if ctx.quick else FULL)["presets"]:
            over: dict[str, Any] = {"training_steps": steps} if steps else {}
            pruning = None
            if ctx.quick:
                ctx.sub("FC-1 on MNIST and LeNet-5 on CIFAR-10 -> digits_mlp (64-32 MLP on 8x8 digits) with the "
                        "study's recipe: Adam, weight decay 1e-4, Xavier init, 20% of every layer per round")
                over.update(weight_decay=1e-4, init="xavier_uniform")
                pruning = dict(get_preset("fc_dn").pruning)
            pieces.append(Piece(p, plan_lottery(p, levels, replicates=reps, branches=["dn-reinit", "remask"],
                                                branch_levels=branch_levels, root=ctx.root, data_dir=ctx.data_dir,
                                                pruning=pruning, **over),
                                meta={"net": "FC-1" if p in ("fc_dn", "digits_mlp") else "LeNet5"}))
        return pieces

    def measure(self, ctx: Context, pieces: list[Piece], results: dict[str, Any], ex: Any) -> dict[str, Measured]:
        """Per network and model: the study's four summary numbers from the averaged curves."""
        out: dict[str, Measured] = {}
        for piece in pieces:
            rec = results[piece.label]
            spe = piece.plan.spe
            groups: dict[str, list[str]] = {"full": [r["path"] for r in rec["runs"] if r["level"] == 0]}
            for lv in piece.plan.branch_levels:
                name = LEVELS.get(lv, f"level {lv}")
                groups[f"ticket {name}"] = [r["path"] for r in rec["runs"] if r["level"] == lv]
                for b in ("dn-reinit", "remask"):
                    groups[f"{b} {name}"] = [r["path"] for r in rec["branches"] if r["level"] == lv
                                             and r["branch"] == b]
            for model, paths in groups.items():
                ext = average_curve_extremes(run_metrics(ctx.root, paths), spe)
                for (q, _), k in zip(QUANTITIES, ("max_accuracy", "max_accuracy_epoch", "min_loss",
                                                 "min_loss_epoch"), strict=True):
                    if k in ext:
                        out[f"{piece.meta['net']} {model}: {q}"] = Measured(
                            [ext[k]], f"{piece.label}, mean of {len(paths)} runs")
        return out

    verdict_basis = ("seed 004's 'max average accuracy': the test accuracy (test split) averaged over the "
                     "replicates at each evaluation, then its maximum over training (the rows' n is 1: one averaged "
                     "curve), for the ticket, dn-reinit and remask at 26.2% and 10.7% density; 'beats' is a strictly "
                     "higher value, no margin (seed 004, section 5 and its FC-1 / LeNet5 summary tables)")

    def verdicts(self, ctx: Context, measured: dict[str, Measured]) -> dict[str, Any]:
        """The study's finding: the ticket's best average accuracy is above dn-reinit's and remask's."""
        out = {}
        for net in ("FC-1", "LeNet5"):
            for d in LEVELS.values():
                t = measured.get(f"{net} ticket {d}: max average accuracy")
                for b in ("dn-reinit", "remask"):
                    m = measured.get(f"{net} {b} {d}: max average accuracy")
                    if t and m and t.mean is not None and m.mean is not None:
                        out[f"{net} ticket beats {b} at {d}"] = bool(t.mean > m.mean)
        return out


RECIPE = TicketDistributionRecipe()
