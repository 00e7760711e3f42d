"""``early-phase``: Frankle, Schwab & Morcos (ICLR 2020), "The Early Phase of Neural Network Training": a rewinding
sweep; IMP subnetworks at the rewind step k with signs or magnitudes from step 0 (``signs``), weights shuffled
within layers, with or without keeping signs (``shuffle``), and Gaussian noise of n sigma (``noise``); the effective
standard deviation of each perturbation against accuracy (their Fig. 8); telemetry of the dense network (Fig. 3).

Paper numbers: seed 002, Fig. 8's caption: the correlation between the perturbations' effective standard deviation
and mean accuracy at sparsity 26.2% is r = -0.672 (k = 500) and r = -0.726 (k = 2000). lth computes Pearson's r
over its perturbation runs at each k (effective std: the standard deviation of the perturbed minus the unperturbed
starting weights, over the kept weights).

Pretraining the rewinding point (Section 5, "data dependence"): one trunk per task of :data:`PRETRAIN_VARIANTS`
(standard, random labels, rotation, blur, rotation+blur; :class:`lth.lottery.pretrain.Pretraining`, dense), each
rewound to K = the paper's k = 500 (quick: its stand-in), whose state at K is the pretrained one; their tickets'
accuracy at every level beside the plain ticket rewound to K (and to 0) at the same levels. The seed (002, the
slides on Section 5) gives findings, not numbers: random labels bring no improvement (10 epochs) and hurt with
more; self-supervised rotation helps but needs far longer pretraining (40 epochs against 1.25); blurring also
succeeds (40 against 1.25); rotation and blurring combined fail (too little information); sparse pretraining
brings no benefit. lth pretrains for K steps only (the trunk's rewind step: see docs/early_phase.md), so these are
the verdicts lth checks (:meth:`EarlyPhaseRecipe.verdicts`): each task's ticket against the ticket rewound to 0
and to K at the perturbation level, and ``standard`` reproducing rewinding to K (the control).
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
    density_of,
    level_at_density,
    plan_lottery,
    sizes,
)

F8 = "Frankle, Schwab & Morcos ICLR 2020, Fig. 8 caption (seed 002)"
S5 = "Frankle, Schwab & Morcos ICLR 2020, Section 5 (seed 002, 'Data-Dependence of Neural Networks')"
# the perturbation sets, one LotteryPlan each (a plan holds one options set per branch name)
PERTURBATIONS = (
    {"signs": {"signs_from": "0", "magnitudes_from": "k"}, "shuffle": {"shuffle_within": "layer"},
     "noise": {"noise_scale": 1.0}},
    {"signs": {"signs_from": "k", "magnitudes_from": "0"}, "shuffle": {"shuffle_within": "layer", "same_sign": True},
     "noise": {"noise_scale": 2.0}},
)
PRETRAIN_VARIANTS = ("standard", "random-labels", "rotation", "blur", "rotation+blur")  # Section 5 (standard: control)
# what the paper found for each task (seed 002's slides on Section 5), beside lth's verdicts
PAPER_FINDINGS = {"standard": "the control: the state at k itself",
                  "random-labels": "no improvement (10 epochs), hurts with more",
                  "rotation": "helps, but needs 40 epochs of pretraining against 1.25",
                  "blur": "succeeds, with 40 epochs against 1.25",
                  "rotation+blur": "fails: too little information"}
FULL = {"preset": "resnet20", "levels": 6, "replicates": 3, "steps": None,
        "rewinds": ("0it", "100it", "500it", "1000it", "2000it")}
QUICK = {"preset": "digits_mlp", "levels": 3, "replicates": 2, "steps": "4ep", "rewinds": ("0it", "10it", "20it")}


def _start_state(record: dict[str, Any]) -> str:
    """The path of the state a run started from: ``init`` at k = 0, ``rewind`` (its state at step k) after."""
    return record["states"].get("init") or record["states"]["rewind"]


def fig8_correlation(points: list[tuple[str, float, float]]) -> float | None:
    """Pearson's r between the effective standard deviation of each perturbation and its mean accuracy (Frankle,
    Schwab & Morcos, ICLR 2020, Fig. 8: one point per perturbation, its evaluation accuracy averaged over the
    seeds). ``points`` holds one ``(perturbation, effective std, accuracy)`` per run; each perturbation's runs are
    averaged (std and accuracy) into one point. None with fewer than 3 perturbations or no spread."""
    import numpy as np

    by: dict[str, list[tuple[float, float]]] = {}
    for name, std, acc in points:
        by.setdefault(name, []).append((std, acc))
    if len(by) < 3:
        return None
    mean = np.array([np.mean(v, axis=0) for v in by.values()])
    if np.std(mean[:, 0]) == 0 or np.std(mean[:, 1]) == 0:
        return None
    return float(np.corrcoef(mean[:, 0], mean[:, 1])[0, 1])


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
        cfg = QUICK if ctx.quick else FULL
        levels, reps, steps = sizes(ctx, FULL, QUICK)
        level = min(levels, level_at_density(0.262, 0.2))
        over: dict[str, Any] = {"training_steps": steps} if steps else {}
        if ctx.quick:
            ctx.sub(f"ResNet-20 on CIFAR-10 -> digits_mlp on 8x8 digits; rewinds {', '.join(cfg['rewinds'])} stand "
                    f"for {', '.join(FULL['rewinds'])} (k = 500 -> {cfg['rewinds'][1]}, k = 2000 -> "
                    f"{cfg['rewinds'][2]}); perturbations at level {level} (its measured density is in the rows' how)")
        k = cfg["rewinds"][1]  # the paper's k = 500 (quick: its stand-in)
        ctx.sub(f"pretraining for K = {k} steps (the rewind step), not the paper's up to 40 epochs; dense pretraining "
                "only (sparse pretraining: `lth lottery --pretrain-sparse`)")
        check_rewinds(ctx, cfg["preset"], cfg["rewinds"], **over)
        pieces = [Piece(f"perturbations {i}", plan_lottery(cfg["preset"], levels, replicates=reps,
                                                           rewind=cfg["rewinds"], branches=b, branch_levels=[level],
                                                           root=ctx.root, data_dir=ctx.data_dir, **over),
                        meta={"level": level, "rewinds": cfg["rewinds"]}) for i, b in enumerate(PERTURBATIONS)]
        pieces += [Piece(f"pretrain {task}", plan_lottery(cfg["preset"], levels, replicates=reps, pretrain_steps=k,
                                                          pretrain_task=task, root=ctx.root, data_dir=ctx.data_dir,
                                                          **over),
                         meta={"task": task, "k": k, "levels": levels, "level": level}) for task in PRETRAIN_VARIANTS]
        return pieces

    def measure(self, ctx: Context, pieces: list[Piece], results: dict[str, Any], ex: Any) -> dict[str, Measured]:
        """Ticket accuracy per k; each perturbation's accuracy per k; Pearson r of effective std vs accuracy."""
        import torch

        out: dict[str, Measured] = {}
        level, rewinds = pieces[0].meta["level"], pieces[0].meta["rewinds"]
        paper_k = dict(zip(rewinds[1:3], ("500", "2000"), strict=False)) if ctx.quick else {"500it": "500",
                                                                                             "2000it": "2000"}
        out.update(self._pretraining(pieces, results))
        for k in rewinds:
            trunk = results[pieces[0].label]["runs"]
            out[f"ticket accuracy, k = {k}"] = Measured(accuracies(trunk, level=level, rewind=k))
            start = {r["replicate"]: r for r in trunk if r["level"] == level and r["rewind"] == k}
            points: list[tuple[str, float, float]] = []
            for i, p in enumerate(pieces[:len(PERTURBATIONS)]):
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
                    points.append((name, float(d.std()), r["final_test_accuracy"]))
            r_k = fig8_correlation(points)
            if k in paper_k and r_k is not None:
                out[f"Pearson r, effective std vs accuracy, k = {paper_k[k]}"] = Measured(
                    [r_k], f"k = {k}, {len({n for n, _, _ in points})} perturbations (means over replicates)")
        return out

    def _pretraining(self, pieces: list[Piece], results: dict[str, Any]) -> dict[str, Measured]:
        """Per level 1..L: the plain ticket rewound to 0 and to K, and each pretraining task's ticket (rewound to
        its pretrained state at K); each task's accuracy on its own task after K steps."""
        out: dict[str, Measured] = {}
        plain = results[pieces[0].label]["runs"]
        for p in (q for q in pieces if "task" in q.meta):
            task, k, rec = p.meta["task"], p.meta["k"], results[p.label]
            for lv in range(1, p.meta["levels"] + 1):
                d, dens = f"level {lv}", density_of(plain, lv)  # the measured density (not 0.8^level: the
                at = f"density {dens:.3f}" if dens is not None else ""  # output layer prunes at half rate)
                out.setdefault(f"ticket rewound to 0, {d}", Measured(accuracies(plain, level=lv, rewind="0it"), at))
                out.setdefault(f"ticket rewound to {k}, no pretraining, {d}",
                               Measured(accuracies(plain, level=lv, rewind=k), at))
                out[f"pretrain {task} for {k}: ticket, {d}"] = Measured(
                    accuracies(rec["runs"], level=lv), f"{at}; paper ({S5}): {PAPER_FINDINGS[task]}")
            accs = [r["final_test_accuracy"] for r in rec.get("pretrain", []) if r["role"] == "pretrain"
                    and r.get("final_test_accuracy") is not None]
            out[f"pretrain {task} for {k}: accuracy on its own task"] = Measured(accs, "the pretraining run's test set")
        return out

    verdict_basis = ("final test accuracy (test split), mean over the replicates. 'rewinding past 0 helps': the "
                     "best mean over the rewinding points k > 0 against k = 0 of the perturbation pieces' ticket at "
                     "the rows' level. Per pretraining task, at the level nearest 26.2% density: its ticket against "
                     "the ticket rewound to 0 ('beats', strictly higher) and to the first k > 0 ('reaches', at least "
                     "as high); the control 'standard' must equal rewinding to k to 1e-9; no margins (Frankle, Schwab "
                     "& Morcos ICLR 2020, section 5; 'paper' quotes its finding)")

    def verdicts(self, ctx: Context, measured: dict[str, Measured]) -> dict[str, Any]:
        """Whether rewinding past 0 helps the ticket; per pretraining task at the perturbation level (26.2%):
        whether its ticket beats the ticket rewound to 0 and reaches the ticket rewound to K, beside the paper's
        finding (Section 5); whether ``standard`` pretraining reproduces rewinding to K (the control)."""
        cfg = QUICK if ctx.quick else FULL
        rewinds = cfg["rewinds"]
        a0 = measured[f"ticket accuracy, k = {rewinds[0]}"].mean
        best = max((measured[f"ticket accuracy, k = {k}"].mean or 0.0) for k in rewinds[1:])
        out: dict[str, Any] = {"rewinding past 0 helps": None if a0 is None else bool(best > a0)}
        levels = ctx.scale.pick("levels", cfg["levels"])
        lv, k = min(levels, level_at_density(0.262, 0.2)), rewinds[1]
        d = f"level {lv}"
        zero = measured.get(f"ticket rewound to 0, {d}")
        at_k = measured.get(f"ticket rewound to {k}, no pretraining, {d}")
        for task in PRETRAIN_VARIANTS:
            m = measured.get(f"pretrain {task} for {k}: ticket, {d}")
            if m is None or m.mean is None or zero is None or at_k is None or None in (zero.mean, at_k.mean):
                continue
            v: dict[str, Any] = {"beats rewinding to 0": bool(m.mean > zero.mean),  # type: ignore[operator]
                                 f"reaches rewinding to {k}": bool(m.mean >= at_k.mean),  # type: ignore[operator]
                                 "paper": PAPER_FINDINGS[task]}
            if task == "standard":
                v["equals rewinding to k (control)"] = bool(abs(m.mean - at_k.mean) < 1e-9)  # type: ignore[operator]
            out[f"pretrain {task}, {d}"] = v
        return out


RECIPE = EarlyPhaseRecipe()
