"""``normalization``: Siswanto, Frankle & Carbin, "The role of normalization in the lottery ticket hypothesis"
(seed 000): ResNet-20 on CIFAR-10 with BatchNorm and with Fixup, IMP at several rewinding points, subnetwork
accuracy by pruning level side by side (their Figure 1).

Paper numbers: the seed publishes one number, in Section 3 ("Fixup behavior"): Fixup's accuracy is below
BatchNorm's by roughly 1-2 points overall (lth compares the midpoint, 0.015, with the mean over levels and rewind
points of BatchNorm minus Fixup). Its qualitative claims (no matching subnetwork at k = 0 at extreme sparsity;
later rewinding points help both) are the verdicts.
"""

from __future__ import annotations

from typing import Any

from lth.recipes.base import (
    Context,
    Measured,
    PaperNumber,
    Piece,
    Recipe,
    accuracies,
    check_rewinds,
    plan_lottery,
    sizes,
)

MATCHING_TOLERANCE = 0.002  # 0.2 points: Frankle et al. ICML 2020 (seed 002), Fig. 9 and Table 2
S3 = "Siswanto, Frankle & Carbin, Section 3 'Fixup behavior': roughly 1-2% lower (seed 000)"
FULL = {"presets": ("resnet20", "resnet20_fixup"), "levels": 10, "replicates": 2, "steps": None,
        "rewinds": ("0it", "500it", "2000it")}
QUICK = {"presets": ("resnet20", "resnet20_fixup"), "levels": 3, "replicates": 2, "steps": "3ep",
         "rewinds": ("0it", "20it")}
QUICK_OVERRIDES = {"dataset": "digits", "width": 0.25, "batch_size": 32, "milestones": (), "augment": False}


class NormalizationRecipe(Recipe):
    """IMP on ResNet-20 with BatchNorm and with Fixup at a sweep of rewinding points."""

    name = "normalization"
    paper = "Siswanto, Frankle & Carbin: the role of normalization in the lottery ticket hypothesis"
    figures = ("accuracy by pruning level at each rewinding point, BatchNorm and Fixup side by side",)
    data = ("cifar10",)
    paper_numbers = (PaperNumber("BatchNorm minus Fixup accuracy (mean over levels and rewinds)", 0.015, S3,
                                 "difference"),)

    def plan(self, ctx: Context) -> list[Piece]:
        """One LotteryPlan (all rewind points) per normalisation."""
        cfg = QUICK if ctx.quick else FULL
        levels, reps, steps = sizes(ctx, FULL, QUICK)
        over: dict[str, Any] = {"training_steps": steps} if steps else {}
        if ctx.quick:
            over.update(QUICK_OVERRIDES)
            ctx.sub("CIFAR-10 -> 8x8 digits; ResNet-20 at width 0.25, batch 32, no learning-rate drops, no "
                    f"augmentation; rewinds {', '.join(cfg['rewinds'])} instead of {', '.join(FULL['rewinds'])}")
        for p in cfg["presets"]:
            check_rewinds(ctx, p, cfg["rewinds"], **over)
        return [Piece(p, plan_lottery(p, levels, replicates=reps, rewind=cfg["rewinds"], root=ctx.root,
                                      data_dir=ctx.data_dir, **over),
                      meta={"levels": levels, "rewinds": cfg["rewinds"]})
                for p in cfg["presets"]]

    def measure(self, ctx: Context, pieces: list[Piece], results: dict[str, Any], ex: Any) -> dict[str, Measured]:
        """Accuracy per norm, rewind and level; the BatchNorm - Fixup difference per (rewind, level)."""
        out: dict[str, Measured] = {}
        bn, fx = (results[p.label]["runs"] for p in pieces)
        levels, rewinds = pieces[0].meta["levels"], pieces[0].meta["rewinds"]
        diffs = []
        for k in rewinds:
            for lv in range(levels + 1):
                a, b = accuracies(bn, level=lv, rewind=k), accuracies(fx, level=lv, rewind=k)
                out[f"BatchNorm accuracy, k = {k}, level {lv}"] = Measured(a)
                out[f"Fixup accuracy, k = {k}, level {lv}"] = Measured(b)
                if a and b:
                    diffs.append(sum(a) / len(a) - sum(b) / len(b))
        out["BatchNorm minus Fixup accuracy (mean over levels and rewinds)"] = Measured(
            diffs, f"one value per (rewind, level): {len(diffs)}")
        return out

    verdict_basis = ("final test accuracy (test split) of the IMP ticket at the sparsest level, mean over the "
                     "replicates, per normalisation. 'Later rewinding helps': a strictly higher mean at the last "
                     "rewinding point than at the first, no margin (Siswanto, Frankle & Carbin, section 3 and Figure "
                     "1: accuracy improves as the rewinding point moves later, for BatchNorm and for Fixup). 'No "
                     "matching subnetwork at k = 0': the k = 0 ticket's mean is more than 0.2 points below the dense "
                     "network's (level 0), the matching threshold of Frankle et al. ICML 2020, Fig. 9 and Table 2 "
                     "(Siswanto, Frankle & Carbin, sections 1 and 3: neither network finds matching subnetworks at "
                     "initialisation at extreme sparsities)")

    def verdicts(self, ctx: Context, measured: dict[str, Measured]) -> dict[str, Any]:
        """Per norm: does the sparsest level's accuracy rise from k = 0 to the latest rewinding point, and is the
        k = 0 ticket at the sparsest level short of matching the dense network?"""
        cfg = QUICK if ctx.quick else FULL
        lv = ctx.scale.pick("levels", cfg["levels"])
        first_k, last_k = cfg["rewinds"][0], cfg["rewinds"][-1]
        out = {}
        for norm in ("BatchNorm", "Fixup"):
            first = measured[f"{norm} accuracy, k = {first_k}, level {lv}"].mean
            last = measured[f"{norm} accuracy, k = {last_k}, level {lv}"].mean
            out[f"{norm}: later rewinding helps at the sparsest level"] = \
                None if first is None or last is None else bool(last > first)
            dense = measured[f"{norm} accuracy, k = {first_k}, level 0"].mean
            out[f"{norm}: no matching subnetwork at k = {first_k} at the sparsest level"] = \
                None if first is None or dense is None else not_matching(first, dense)
        return out


def not_matching(accuracy: float, dense: float, tolerance: float = MATCHING_TOLERANCE) -> bool:
    """True when ``accuracy`` is more than ``tolerance`` below ``dense`` (fractions): the subnetwork is not
    *matching* in Frankle et al.'s sense (ICML 2020, Fig. 9 and Table 2: within 0.2 points of the full network;
    :func:`lth.analysis.verdicts.matching` marks the same levels). The edge itself matches."""
    return bool(accuracy < dense - tolerance - 1e-12)


RECIPE = NormalizationRecipe()
