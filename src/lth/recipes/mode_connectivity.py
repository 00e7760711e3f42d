"""``mode-connectivity``: Frankle, Dziugaite, Roy & Carbin (ICML 2020), "Linear mode connectivity and the lottery
ticket hypothesis": instability (the error barrier between two copies trained with different SGD noise) at
initialisation and during training, for the dense network and for IMP, randomly pruned and randomly
re-initialised subnetworks at the sparsity of the paper's Table 1; Table 2 (accuracy at k = 0) and the first
rewinding step at which the subnetworks become stable, and stable and matching (Fig. 9's question).

Paper numbers: seed 002, Table 2 ("Accuracy of IMP and random subnetworks when rewinding to k = 0 at the
sparsities in Table 1"), every row lth has a preset for (LeNet, ResNet-20 standard / low / warmup, VGG-16 standard
/ low / warmup, ResNet-50 and Inception-v3 on ImageNet); densities from Table 1. The ImageNet rows (one-shot pruning
to 30%: one level of 70%) run only where ImageNet is present (else they are left out, said in the report) and only
at k = 0 (Table 2; each run is 90 or 171 ImageNet epochs). Fig. 9's medians are drawn, not tabulated: lth reports
its own.
"""

from __future__ import annotations

from typing import Any

from lth.recipes.base import (
    Context,
    Measured,
    PaperNumber,
    Piece,
    Recipe,
    check_rewinds,
    level_at_density,
    sizes,
)

T2 = "Frankle et al. ICML 2020, Table 2 (seed 002)"
# network -> (preset, Table 1 density, full, IMP, random prune, random reinit, delta) (Table 2, percent -> fraction)
TABLE2 = {
    "LeNet": ("lenet_300_100_lmc", 0.035, .983, .982, .967, .975, .001),
    "ResNet-20": ("resnet20", 0.168, .917, .885, .886, .888, .032),
    "ResNet-20 Low": ("resnet20_low", 0.086, .888, .890, .857, .847, -.002),
    "ResNet-20 Warmup": ("resnet20_warmup", 0.086, .897, .896, .857, .856, .001),
    "VGG-16": ("vgg16", 0.015, .937, .909, .894, .910, .028),
    "VGG-16 Low": ("vgg16_low", 0.055, .917, .916, .901, .902, .001),
    "VGG-16 Warmup": ("vgg16_warmup", 0.015, .934, .932, .901, .907, .002),
    # ImageNet (Table 1: one-shot pruning to 30%; the presets prune 70% in one level): run where ImageNet is present
    "ResNet-50": ("resnet50_imagenet", 0.30, .761, .737, .731, .734, .024),
    "Inception-v3": ("inception_v3_imagenet", 0.30, .781, .757, .752, .755, .024),
}
# ImageNet rows: Table 2 only (k = 0), no rewinding sweep: each run is 90 (171) ImageNet epochs
TABLE2_ONLY = ("ResNet-50", "Inception-v3")
COLUMNS = ("full", "IMP", "random pruning", "random reinit", "delta (full - IMP)")
SUBNETWORKS = ("dense", "imp", "random-prune", "random-reinit")
# The paper's samples (Sec. 2, Figs. 2-3: "three initializations and three data orders (nine samples total)"):
# 3 replicates x 3 copies, every pair of copies a path: 9 paths per cell. Quick: 2 replicates x 2 copies.
FULL = {"networks": tuple(TABLE2), "levels": None, "replicates": 3, "steps": None, "copies": 3,
        "rewinds": ("0it", "100it", "500it", "2000it")}
QUICK = {"networks": ("LeNet",), "levels": 4, "replicates": 2, "steps": "4ep", "copies": 2, "rewinds": ("0it", "10it")}
QUICK_ALPHAS = 11  # points on each path in quick mode (the paper: 30)


class ModeConnectivityRecipe(Recipe):
    """Stability of dense and IMP / random subnetworks over a sweep of k, and Table 2 at k = 0."""

    name = "mode-connectivity"
    paper = "Frankle, Dziugaite, Roy & Carbin, ICML 2020: Linear mode connectivity and the lottery ticket hypothesis"
    figures = ("error along the linear path (Fig. 2, 5)", "instability vs k (Fig. 3, 6)", "Table 2",
               "test error vs k per sparsity (Fig. 7)", "median first stable and first stable-and-matching k against "
               "sparsity, every level (Fig. 9)")
    data = ("mnist", "cifar10", "imagenet")
    paper_numbers = tuple(PaperNumber(f"{net}: {col}", v, T2, "difference" if col.startswith("delta") else "fraction")
                          for net, row in TABLE2.items() for col, v in zip(COLUMNS, row[2:], strict=True))

    def plan(self, ctx: Context) -> list[Piece]:
        """Per network: the trunks (one per k) and the stability copies of every subnetwork at every level up to
        the Table 1 density's (Fig. 9 draws them all; Table 2 reads the last)."""
        from lth.presets import get_preset
        from lth.recipes.base import plan_lottery
        from lth.stability import StabilityPlan

        cfg = QUICK if ctx.quick else FULL
        _, reps, steps = sizes(ctx, FULL, {**QUICK, "levels": None})  # levels: per network, named below
        pieces = []
        for net in cfg["networks"]:
            preset, density = TABLE2[net][0], TABLE2[net][1]
            over: dict[str, Any] = {"training_steps": steps} if steps else {}
            if ctx.quick:
                level = ctx.scale.pick("levels", QUICK["levels"])
                ctx.sub(f"{net} ({preset}) -> digits_mlp with global pruning 20% per level to level {level} (density "
                        f"{0.8 ** level:.3f}, not {density}); rewinds {', '.join(QUICK['rewinds'])}; "
                        f"{QUICK['copies']} copies per replicate (one path) instead of 3 (three paths); "
                        f"{QUICK_ALPHAS} points per path instead of 30")
                check_rewinds(ctx, "digits_mlp", QUICK["rewinds"], **over)
                lp = plan_lottery("digits_mlp", level, replicates=reps, rewind=QUICK["rewinds"], root=ctx.root,
                                  data_dir=ctx.data_dir, pruning=dict(get_preset(preset).pruning), **over)
            else:
                fraction = float(get_preset(preset).pruning.get("fraction", 0.2))  # ImageNet rows: 0.7, one shot
                natural = level_at_density(density, fraction)
                level = ctx.scale.pick("levels", natural)
                if level != natural:
                    ctx.sub(f"{net}: level {level} (density {(1 - fraction) ** level:.3f}) instead of level "
                            f"{natural} (Table 1's {density})")
                rewinds = ("0it",) if net in TABLE2_ONLY else cfg["rewinds"]
                check_rewinds(ctx, preset, rewinds, **over)
                lp = plan_lottery(preset, level, replicates=reps, rewind=rewinds, root=ctx.root,
                                  data_dir=ctx.data_dir, **over)
            # every level of the trunk, so Fig. 9 (the first stable / stable-and-matching k against sparsity) has a
            # point per level; Table 2 reads the Table 1 density's level
            sp = StabilityPlan(lp.trunks, list(SUBNETWORKS), list(range(level + 1)), reps, cfg["copies"],
                               trajectory_points=0, steps_per_epoch=lp.spe)
            pieces.append(Piece(net, sp, meta={"level": level, "lottery": lp}))
        return pieces

    def measure(self, ctx: Context, pieces: list[Piece], results: dict[str, Any], ex: Any) -> dict[str, Measured]:
        """Evaluate every path; Table 2's columns from the copies at k = 0, instability per subnetwork, and the
        first stable (and matching) k per subnetwork."""
        from lth.presets import get_preset
        from lth.stability.analysis import end_accuracies
        from lth.studies.stability import PathOptions, evaluate_stability

        out: dict[str, Measured] = {}
        self._summary: list[dict[str, Any]] = []
        path = PathOptions.from_values(alphas=QUICK_ALPHAS if ctx.quick else 30)
        for piece in pieces:
            sp, level = piece.plan, piece.meta["level"]
            # lth stability's evaluation; matching compares to the dense copies at k = 0 only (Table 2's "full")
            tables = evaluate_stability(sp, ex.dataset(sp.trunks[0].spec.data), path,
                                        device=str(ex.options.torch_device()), trunk_fallback=False)
            recs = tables.records

            def acc(sub: str, lv: int, k: str = "0it", recs: list = recs) -> list[float]:
                return list(end_accuracies([r for r in recs if r["subnetwork"] == sub and r["level"] == lv
                                            and r["rewind"] == k]).values())

            net = piece.label
            fraction = float(get_preset(TABLE2[net][0]).pruning.get("fraction", 0.2)) if not ctx.quick else 0.2
            how = f"level {level} (density {(1 - fraction) ** level:.3f}), k = 0, end points of the copies"
            full, imp = acc("dense", 0), acc("imp", level)
            for col, vals in zip(COLUMNS[:4], (full, imp, acc("random-prune", level), acc("random-reinit", level)),
                                 strict=True):
                out[f"{net}: {col}"] = Measured(vals, how)
            if full and imp:
                out[f"{net}: delta (full - IMP)"] = Measured([sum(full) / len(full) - sum(imp) / len(imp)], how)
            for r in recs:
                if r["test_instability"] is not None:
                    key = f"{net}: test instability, {r['subnetwork']} level {r['level']}, k = {r['rewind']}"
                    out.setdefault(key, Measured([], "error barrier on the test set"))
                    out[key].values.append(r["test_instability"])
            for s in tables.summary:  # matching against the same copies as `full` above
                self._summary.append({"network": net, **s})
        return out

    verdict_basis = ("'IMP matching at k=0': full - IMP <= 0.2 points (the edge matches, as Table 2 marks VGG-16 "
                     "Warmup), full and IMP being the mean end-point test accuracy (test split) of the copies over "
                     "every pair of copies of every replicate (Frankle et al. ICML 2020, Table 2; Fig. 9 caption). "
                     "'first stable k': the first rewinding point whose mean test instability over those pairs is "
                     "< 0.02 (section 2, '< 2%'); 'first stable and matching k': also a mean end-point test accuracy "
                     ">= full - 0.002, full being the dense copies made at k = 0 as above (Fig. 9); null: no k "
                     "reaches it (docs/stability.md)")

    def verdicts(self, ctx: Context, measured: dict[str, Measured]) -> dict[str, Any]:
        """Matching at k = 0 (full - IMP at most 0.2 points: Table 2's last column marks VGG-16 Warmup's delta of
        exactly 0.2 as matching; the edge matches as in :func:`lth.analysis.stability.first_stable_and_matching`)
        and the first stable k's."""
        from lth.analysis.stability import MATCHING_TOLERANCE

        out: dict[str, Any] = {}
        for net in TABLE2:
            d = measured.get(f"{net}: delta (full - IMP)")
            if d is not None and d.mean is not None:
                out[f"{net}: IMP matching at k=0"] = bool(d.mean <= MATCHING_TOLERANCE + 1e-12)
        for s in getattr(self, "_summary", []):
            out[f"{s['network']}: {s['subnetwork']} level {s['level']} first stable k"] = s["first_stable"]
            out[f"{s['network']}: {s['subnetwork']} level {s['level']} first stable and matching k"] = \
                s["first_stable_and_matching"]
        return out


RECIPE = ModeConnectivityRecipe()
