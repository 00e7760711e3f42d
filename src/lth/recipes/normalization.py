"""``normalization``: Siswanto, Frankle & Carbin, "The role of normalization in the lottery ticket hypothesis"
(seed 000): ResNet-20 on CIFAR-10 with BatchNorm and with Fixup, IMP at several rewinding points, subnetwork
accuracy by pruning level side by side (their Figure 1), and with weight normalisation (``resnet20_weightnorm``),
the alternative their Section 4 names for future work (GroupNorm and no normalisation are the presets
``resnet20_groupnorm`` / ``resnet20_nonorm``, not run here).

"Erratic" (Section 3: Fixup's accuracy "fluctuates somewhat erratically" beside BatchNorm's) is measured two ways,
per normalisation: the spread (standard deviation, ddof 0) of a run's test accuracy over its last
:data:`LAST_EVALS` evaluations, mean over every run (each level, rewind point and replicate), and the level-to-level
fluctuation of the final accuracy, the mean |second difference| over the levels of each (rewind, replicate) curve
(a straight curve scores 0). The paper gives no number for either; the verdicts compare Fixup with BatchNorm.

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
NORMS = {"resnet20": "BatchNorm", "resnet20_fixup": "Fixup", "resnet20_weightnorm": "WeightNorm"}
FULL = {"presets": tuple(NORMS), "levels": 10, "replicates": 2, "steps": None,
        "rewinds": ("0it", "500it", "2000it")}
QUICK = {"presets": tuple(NORMS), "levels": 3, "replicates": 2, "steps": "3ep",
         "rewinds": ("0it", "20it")}
# eval every 10it in quick mode: 3 epochs of digits give ~13 evaluations, enough for a spread over the last ones
QUICK_OVERRIDES = {"dataset": "digits", "width": 0.25, "batch_size": 32, "milestones": (), "augment": False,
                   "eval_every": "10it"}
LAST_EVALS = 5  # evaluations at the end of each run whose test accuracy's spread measures "erratic"


class NormalizationRecipe(Recipe):
    """IMP on ResNet-20 with BatchNorm and with Fixup at a sweep of rewinding points."""

    name = "normalization"
    paper = "Siswanto, Frankle & Carbin: the role of normalization in the lottery ticket hypothesis"
    figures = ("accuracy by pruning level at each rewinding point, BatchNorm, Fixup and WeightNorm side by side",
               "how erratic each normalisation's accuracy is: spread over the last evaluations, level-to-level")
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
                    f"augmentation, evaluation every 10it; rewinds {', '.join(cfg['rewinds'])} instead of "
                    f"{', '.join(FULL['rewinds'])}")
        for p in cfg["presets"]:
            check_rewinds(ctx, p, cfg["rewinds"], **over)
        return [Piece(p, plan_lottery(p, levels, replicates=reps, rewind=cfg["rewinds"], root=ctx.root,
                                      data_dir=ctx.data_dir, **over),
                      meta={"levels": levels, "rewinds": cfg["rewinds"]})
                for p in cfg["presets"]]

    def measure(self, ctx: Context, pieces: list[Piece], results: dict[str, Any], ex: Any) -> dict[str, Measured]:
        """Accuracy per norm, rewind and level; the BatchNorm - Fixup difference per (rewind, level); how erratic
        each norm's accuracy is (the spread over the last evaluations, the level-to-level fluctuation)."""
        out: dict[str, Measured] = {}
        runs = {NORMS[p.label]: results[p.label]["runs"] for p in pieces}
        levels, rewinds = pieces[0].meta["levels"], pieces[0].meta["rewinds"]
        diffs = []
        for k in rewinds:
            for lv in range(levels + 1):
                for norm, recs in runs.items():
                    out[f"{norm} accuracy, k = {k}, level {lv}"] = Measured(accuracies(recs, level=lv, rewind=k))
                a, b = out[f"BatchNorm accuracy, k = {k}, level {lv}"].values, \
                    out[f"Fixup accuracy, k = {k}, level {lv}"].values
                if a and b:
                    diffs.append(sum(a) / len(a) - sum(b) / len(b))
        out["BatchNorm minus Fixup accuracy (mean over levels and rewinds)"] = Measured(
            diffs, f"one value per (rewind, level): {len(diffs)}")
        for norm, recs in runs.items():
            spreads = [s for s in (last_spread(r["path"]) for r in recs if r.get("status") == "complete")
                       if s is not None]
            out[f"{norm}: spread of test accuracy over the last {LAST_EVALS} evaluations"] = Measured(
                spreads, "standard deviation per run (every level, rewind and replicate), mean over the runs")
            out[f"{norm}: level-to-level fluctuation of accuracy"] = Measured(
                level_fluctuation(recs, rewinds, levels), "mean |second difference| of final accuracy over the "
                "levels, one value per (rewind, replicate)")
        return out

    verdict_basis = ("final test accuracy (test split) of the IMP ticket at the sparsest level, mean over the "
                     "replicates, per normalisation. 'Later rewinding helps': a strictly higher mean at the last "
                     "rewinding point than at the first, no margin (Siswanto, Frankle & Carbin, section 3 and Figure "
                     "1: accuracy improves as the rewinding point moves later, for BatchNorm and for Fixup). 'No "
                     "matching subnetwork at k = 0': the k = 0 ticket's mean is more than 0.2 points below the dense "
                     "network's (level 0), the matching threshold of Frankle et al. ICML 2020, Fig. 9 and Table 2 "
                     "(Siswanto, Frankle & Carbin, sections 1 and 3: neither network finds matching subnetworks at "
                     "initialisation at extreme sparsities). 'More erratic': a strictly larger mean spread of test "
                     "accuracy over each run's last evaluations (and, apart, level-to-level fluctuation) than "
                     "BatchNorm's (section 3: Fixup's accuracy 'fluctuates somewhat erratically')")

    def verdicts(self, ctx: Context, measured: dict[str, Measured]) -> dict[str, Any]:
        """Per norm: does the sparsest level's accuracy rise from k = 0 to the latest rewinding point, and is the
        k = 0 ticket at the sparsest level short of matching the dense network?"""
        cfg = QUICK if ctx.quick else FULL
        lv = ctx.scale.pick("levels", cfg["levels"])
        first_k, last_k = cfg["rewinds"][0], cfg["rewinds"][-1]
        out: dict[str, Any] = {}
        for norm in [n for n in NORMS.values() if f"{n} accuracy, k = {first_k}, level {lv}" in measured]:
            first = measured[f"{norm} accuracy, k = {first_k}, level {lv}"].mean
            last = measured[f"{norm} accuracy, k = {last_k}, level {lv}"].mean
            out[f"{norm}: later rewinding helps at the sparsest level"] = \
                None if first is None or last is None else bool(last > first)
            dense = measured[f"{norm} accuracy, k = {first_k}, level 0"].mean
            out[f"{norm}: no matching subnetwork at k = {first_k} at the sparsest level"] = \
                None if first is None or dense is None else not_matching(first, dense)
        for what, key in (("spread over the last evaluations", f"spread of test accuracy over the last {LAST_EVALS} "
                           "evaluations"), ("level-to-level fluctuation", "level-to-level fluctuation of accuracy")):
            bn, fx = (measured.get(f"{n}: {key}") for n in ("BatchNorm", "Fixup"))
            out[f"Fixup more erratic than BatchNorm ({what})"] = (
                None if bn is None or fx is None or bn.mean is None or fx.mean is None else bool(fx.mean > bn.mean))
        return out


def last_spread(path: str, last: int = LAST_EVALS) -> float | None:
    """The standard deviation (ddof 0) of the run's test accuracy over its last ``last`` evaluations (its
    ``metrics.csv``), or None with fewer than two."""
    import statistics

    from lth.store import RunDir

    acc = [float(r["test_accuracy"]) for r in RunDir(path).read_metrics() if r.get("test_accuracy") not in (None, "")]
    tail = acc[-last:]
    return statistics.pstdev(tail) if len(tail) >= 2 else None


def level_fluctuation(records: list[dict[str, Any]], rewinds: Any, levels: int) -> list[float]:
    """Per (rewind, replicate): the mean |a[l+1] - 2 a[l] + a[l-1]| of the final test accuracy ``a`` over the levels
    0..``levels`` (how far the curve over pruning iterations zigzags; 0 for a straight line). Curves with a missing
    level or fewer than three levels are left out."""
    out = []
    for k in rewinds:
        for rep in sorted({r["replicate"] for r in records}):
            by = {r["level"]: r.get("final_test_accuracy") for r in records
                  if r.get("rewind") == k and r["replicate"] == rep}
            a = [by.get(lv) for lv in range(levels + 1)]
            if len(a) < 3 or any(v is None for v in a):
                continue
            out.append(sum(abs(a[i + 1] - 2 * a[i] + a[i - 1]) for i in range(1, len(a) - 1)) / (len(a) - 2))
    return out


def not_matching(accuracy: float, dense: float, tolerance: float = MATCHING_TOLERANCE) -> bool:
    """True when ``accuracy`` is more than ``tolerance`` below ``dense`` (fractions): the subnetwork is not
    *matching* in Frankle et al.'s sense (ICML 2020, Fig. 9 and Table 2: within 0.2 points of the full network;
    :func:`lth.analysis.verdicts.matching` marks the same levels). The edge itself matches."""
    return bool(accuracy < dense - tolerance - 1e-12)


RECIPE = NormalizationRecipe()
