"""``early-phase``: Frankle, Schwab & Morcos (ICLR 2020), "The Early Phase of Neural Network Training": a rewinding
sweep from k = 0 to k = 4000 (past 2000, where the paper says the benefit of rewinding saturates); IMP subnetworks
rewound to k = 500 and k = 2000 and perturbed, at every level (the paper's curves over sparsity, Figs. 4-7): signs
and magnitudes from step 0 or k (``signs``), weights shuffled within a layer, a unit or the network, with and
without keeping signs (``shuffle``), Gaussian noise of n sigma for n = 0.5, 1, 2, 3 (``noise``); the effective
standard deviation of each perturbation against accuracy (their Fig. 8); telemetry of the dense network (Fig. 3).

Paper numbers: seed 002, Fig. 8's caption: the correlation between the perturbations' effective standard deviation
and mean accuracy at sparsity 26.2% is r = -0.672 (k = 500) and r = -0.726 (k = 2000). lth computes Pearson's r
over its perturbation runs at each k at the level nearest 26.2% (effective std: the standard deviation of the
perturbed minus the unperturbed starting weights, over the kept weights; one point per perturbation, averaged over
the replicates). Every perturbation run at every level is in the ``perturbation curves`` table.

Pretraining the rewinding point (Section 5, "data dependence"): one trunk per task of :data:`PRETRAIN_VARIANTS`
(standard, random labels, rotation, blur, rotation+blur; :class:`lth.lottery.pretrain.Pretraining`, dense), each
rewound to K = the paper's k = 500 (quick: its stand-in), whose state at K is the pretrained one; their tickets'
accuracy at every level beside the plain ticket rewound to K (and to 0) at the same levels. The seed (002, the
slides on Section 5) gives findings, not numbers: random labels bring no improvement (10 epochs) and hurt with
more; self-supervised rotation helps but needs far longer pretraining (40 epochs against 1.25); blurring also
succeeds (40 against 1.25); rotation and blurring combined fail (too little information); sparse pretraining
brings no benefit. Every task but the control pretrains for E = 40 epochs (quick: 32 K), apart from K; the control
``standard`` pretrains for K, which re-creates the state at K. The verdicts (:meth:`EarlyPhaseRecipe.verdicts`):
each task's ticket against the ticket rewound to 0 and to K at the perturbation level, and ``standard``
reproducing rewinding to K.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from lth.prune.perturb import SHUFFLE_WITHIN
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
# Figs. 4-7's perturbations, each a curve over the sparsity levels at k = 500 and k = 2000 (Frankle, Schwab & Morcos
# ICLR 2020, Section 4): magnitudes and signs from step 0 or k (the fourth combination, both from k, is the
# ticket itself); shuffles within a layer, a unit (output neuron / filter) or the network, with and without
# keeping signs; Gaussian noise of n sigma. The seed lists no n: lth takes 0.5, 1, 2 and 3.
SIGNS = ({"signs_from": "0", "magnitudes_from": "k"}, {"signs_from": "k", "magnitudes_from": "0"},
         {"signs_from": "0", "magnitudes_from": "0"})
SHUFFLES = tuple({"shuffle_within": w, "same_sign": same} for same in (False, True) for w in SHUFFLE_WITHIN)
NOISE_SCALES = (0.5, 1.0, 2.0, 3.0)
NOISES = tuple({"noise_scale": n} for n in NOISE_SCALES)
_BY_BRANCH = (("signs", SIGNS), ("shuffle", SHUFFLES), ("noise", NOISES))
# the perturbation sets, one LotteryPlan each (a plan holds one options set per branch name)
PERTURBATIONS = tuple({name: opts[i] for name, opts in _BY_BRANCH if i < len(opts)}
                      for i in range(max(len(opts) for _, opts in _BY_BRANCH)))
PRETRAIN_VARIANTS = ("standard", "random-labels", "rotation", "blur", "rotation+blur")  # Section 5 (standard: control)
# what the paper found for each task (seed 002's slides on Section 5), beside lth's verdicts
PAPER_FINDINGS = {"standard": "the control: the state at k itself",
                  "random-labels": "no improvement (10 epochs), hurts with more",
                  "rotation": "helps, but needs 40 epochs of pretraining against 1.25",
                  "blur": "succeeds, with 40 epochs against 1.25",
                  "rotation+blur": "fails: too little information"}
# rewinds: the sweep (k = 4000, 10 epochs, tests the paper's "no further improvement past k = 2000"); perturb: the
# two k of Figs. 4-8; pretrain_length: E, the pretraining run's length for every task but the control ``standard``
# (which trains K = perturb[0] steps): the paper's 40 epochs, at which rotation and blurring succeed (quick: 32 K,
# the paper's 40 : 1.25 epochs)
FULL = {"preset": "resnet20", "levels": 6, "replicates": 3, "steps": None,
        "rewinds": ("0it", "100it", "500it", "1000it", "2000it", "4000it"), "perturb": ("500it", "2000it"),
        "pretrain_length": "40ep"}
QUICK = {"preset": "digits_mlp", "levels": 3, "replicates": 2, "steps": "4ep",
         "rewinds": ("0it", "10it", "20it", "40it"), "perturb": ("10it", "20it"), "pretrain_length": "320it"}
SATURATION = ("2000it", "20it")  # the paper's saturation point k = 2000 (full, quick)
SATURATION_MARGIN = 0.002  # 0.2 points: lth's reading of "no further improvement" (Frankle et al.'s matching margin)


def perturbation_name(branch: str, options: dict[str, Any]) -> str:
    """How the rows, tables and Fig. 8 name one perturbation: the branch and its options."""
    return f"{branch} {','.join(f'{a}={b}' for a, b in options.items())}"


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
    """A rewinding sweep past k = 2000; the sign, shuffle and noise perturbations at every level at k = 500 and
    k = 2000; pretraining the rewinding point on five tasks."""

    name = "early-phase"
    paper = "Frankle, Schwab & Morcos, ICLR 2020: The Early Phase of Neural Network Training"
    figures = ("accuracy vs rewind step", "signs / magnitudes swaps (Fig. 4)", "shuffles (Fig. 5-6)",
               "noise (Fig. 7)", "effective std vs accuracy (Fig. 8)", "telemetry panels (Fig. 3)")
    data = ("cifar10",)
    paper_numbers = (PaperNumber("Pearson r, effective std vs accuracy, k = 500", -0.672, F8, "correlation"),
                     PaperNumber("Pearson r, effective std vs accuracy, k = 2000", -0.726, F8, "correlation"))
    telemetry = "10it"

    def plan(self, ctx: Context) -> list[Piece]:
        """The rewinding sweep (one trunk per k, no branches); one LotteryPlan per perturbation set, rewound to the
        two k of Figs. 4-8, its branches at every level (the paper's curves over sparsity); one pretraining trunk
        per task, rewound to K = the first of those k."""
        cfg = QUICK if ctx.quick else FULL
        levels, reps, steps = sizes(ctx, FULL, QUICK)
        level = min(levels, level_at_density(0.262, 0.2))
        over: dict[str, Any] = {"training_steps": steps} if steps else {}
        if ctx.quick:
            ctx.sub(f"ResNet-20 on CIFAR-10 -> digits_mlp on 8x8 digits; rewinds {', '.join(cfg['rewinds'])} stand "
                    f"for {', '.join(r for r in FULL['rewinds'] if r not in ('100it', '1000it'))} (k = 500 -> "
                    f"{cfg['perturb'][0]}, k = 2000 -> {cfg['perturb'][1]}); Fig. 8 at level {level} (its measured "
                    "density is in the rows' how)")
        k, e = cfg["perturb"][0], cfg["pretrain_length"]
        ctx.sub(f"pretraining for E = {e} (the paper's longest, 40 epochs" + (", scaled as 32 K" if ctx.quick else "")
                + f") for every task but standard (the control: K = {k} steps); the paper sweeps E; dense "
                "pretraining only (sparse pretraining: `lth lottery --pretrain-sparse`)")
        check_rewinds(ctx, cfg["preset"], cfg["rewinds"], **over)
        common = {"replicates": reps, "root": ctx.root, "data_dir": ctx.data_dir, **over}
        pieces = [Piece("rewinding sweep", plan_lottery(cfg["preset"], levels, rewind=cfg["rewinds"], **common),
                        meta={"level": level, "rewinds": cfg["rewinds"]})]
        pieces += [Piece(f"perturbations {i}", plan_lottery(cfg["preset"], levels, rewind=cfg["perturb"], branches=b,
                                                           **common),
                         meta={"level": level, "set": i}) for i, b in enumerate(PERTURBATIONS)]
        pieces += [Piece(f"pretrain {task}", plan_lottery(cfg["preset"], levels, pretrain_steps=k, pretrain_task=task,
                                                          pretrain_length=None if task == "standard" else e,
                                                          **common),
                         meta={"task": task, "k": k, "length": k if task == "standard" else e, "levels": levels,
                               "level": level}) for task in PRETRAIN_VARIANTS]
        return pieces

    def measure(self, ctx: Context, pieces: list[Piece], results: dict[str, Any], ex: Any) -> dict[str, Measured]:
        """Ticket accuracy per k of the sweep and the gain past the saturation point; at k = 500 and 2000, each
        perturbation's accuracy at the Fig. 8 level (26.2%) and Pearson r of effective std vs accuracy there."""
        out: dict[str, Measured] = {}
        sweep = next(p for p in pieces if p.label == "rewinding sweep")
        level, rewinds = sweep.meta["level"], sweep.meta["rewinds"]
        cfg = QUICK if ctx.quick else FULL
        paper_k = dict(zip(cfg["perturb"], ("500", "2000"), strict=True))
        trunk = results[sweep.label]["runs"]
        for k in rewinds:
            out[f"ticket accuracy, k = {k}"] = Measured(accuracies(trunk, level=level, rewind=k))
        sat = SATURATION[1] if ctx.quick else SATURATION[0]
        later = [out[f"ticket accuracy, k = {k}"].mean for k in rewinds if _it(k) > _it(sat)]
        at = out[f"ticket accuracy, k = {sat}"].mean
        if at is not None and later and None not in later:
            out[f"gain of rewinding past k = {sat}"] = Measured(
                [max(later) - at], f"best mean over k > {sat} minus the mean at k = {sat}, level {level}")
        out.update(self._pretraining(pieces, results))
        frame = self.curves(pieces, results)
        for k in cfg["perturb"]:
            here = frame[(frame["k"] == k) & (frame["level"] == level) & (frame["branch"] != "")]  # perturbed
            for name, rows in here.groupby("perturbation", sort=False):
                out[f"{name}: accuracy, k = {k}"] = Measured(rows["accuracy"].tolist())
            points = [(r.perturbation, r.effective_std, r.accuracy) for r in here.itertuples()]
            r_k = fig8_correlation(points)
            if r_k is not None:
                out[f"Pearson r, effective std vs accuracy, k = {paper_k[k]}"] = Measured(
                    [r_k], f"k = {k}, level {level}, {here['perturbation'].nunique()} perturbations (means over "
                    "replicates)")
        return out

    @staticmethod
    def curves(pieces: list[Piece], results: dict[str, Any]) -> pd.DataFrame:
        """Figs. 4-7 as a table: one row per perturbation run (perturbation, branch, k, level, density, replicate,
        final test accuracy, effective std of the perturbation), beside the unperturbed ticket's runs at the same
        k and levels (perturbation ``none (the ticket)``, effective std 0)."""
        rows: list[dict[str, Any]] = []
        for p in (q for q in pieces if "set" in q.meta):
            rec = results[p.label]
            density = {(r["rewind"], r["level"], r["replicate"]): r.get("density") for r in rec["runs"]}
            for r in rec["branches"]:
                if r.get("final_test_accuracy") is None:
                    continue
                opts = PERTURBATIONS[p.meta["set"]][r["branch"]]
                rows.append({"perturbation": perturbation_name(r["branch"], opts), "branch": r["branch"],
                             "k": r["rewind"], "level": r["level"],
                             "density": density.get((r["rewind"], r["level"], r["replicate"])),
                             "replicate": r["replicate"], "accuracy": r["final_test_accuracy"],
                             "effective_std": r.get("effective_std")})
            if p.meta["set"] == 0:
                rows += [{"perturbation": "none (the ticket)", "branch": "", "k": r["rewind"], "level": r["level"],
                          "density": r.get("density"), "replicate": r["replicate"],
                          "accuracy": r["final_test_accuracy"], "effective_std": 0.0}
                         for r in rec["runs"] if r["level"] >= 1 and r.get("final_test_accuracy") is not None]
        return pd.DataFrame(rows, columns=["perturbation", "branch", "k", "level", "density", "replicate", "accuracy",
                                           "effective_std"])

    def extra_tables(self, ctx: Context, pieces: list[Piece], results: dict[str, Any]) -> dict[str, pd.DataFrame]:
        """The perturbation curves (Figs. 4-7) over every level, at k = 500 and 2000."""
        frame = self.curves(pieces, results)
        return {"perturbation curves": frame} if len(frame) else {}

    def _pretraining(self, pieces: list[Piece], results: dict[str, Any]) -> dict[str, Measured]:
        """Per level 1..L: the plain ticket rewound to 0 and to K, and each pretraining task's ticket (rewound to
        its pretrained state at K); each task's accuracy on its own task after its pretraining."""
        out: dict[str, Measured] = {}
        plain = results["rewinding sweep"]["runs"]
        for p in (q for q in pieces if "task" in q.meta):
            task, k, length, rec = p.meta["task"], p.meta["k"], p.meta["length"], results[p.label]
            for lv in range(1, p.meta["levels"] + 1):
                d, dens = f"level {lv}", density_of(plain, lv)  # the measured density (not 0.8^level: the
                at = f"density {dens:.3f}" if dens is not None else ""  # output layer prunes at half rate)
                out.setdefault(f"ticket rewound to 0, {d}", Measured(accuracies(plain, level=lv, rewind="0it"), at))
                out.setdefault(f"ticket rewound to {k}, no pretraining, {d}",
                               Measured(accuracies(plain, level=lv, rewind=k), at))
                out[f"pretrain {task} for {length}: ticket, {d}"] = Measured(
                    accuracies(rec["runs"], level=lv), f"{at}; rewound to {k}; paper ({S5}): {PAPER_FINDINGS[task]}")
            accs = [r["final_test_accuracy"] for r in rec.get("pretrain", []) if r["role"] == "pretrain"
                    and r.get("final_test_accuracy") is not None]
            out[f"pretrain {task} for {length}: accuracy on its own task"] = Measured(
                accs, "the pretraining run's test set")
        return out

    verdict_basis = ("final test accuracy (test split), mean over the replicates. 'rewinding past 0 helps': the "
                     "best mean over the rewinding points k > 0 against k = 0 at the Fig. 8 level (26.2%). "
                     "'rewinding saturates by k = 2000': no k past 2000 (quick: its stand-in) beats k = 2000 by more "
                     "than 0.2 points (the seed: 'k > 2000, no further improvement observed'; the margin is lth's, "
                     "Frankle et al. ICML 2020's matching margin). Per pretraining task, at the level nearest 26.2% "
                     "density: its ticket against the ticket rewound to 0 ('beats', strictly higher) and to K "
                     "('reaches', at least as high); the control 'standard' (pretrained for K) must equal rewinding "
                     "to K to 1e-9; no margins (Frankle, Schwab & Morcos ICLR 2020, section 5; 'paper' quotes its "
                     "finding)")

    def verdicts(self, ctx: Context, measured: dict[str, Measured]) -> dict[str, Any]:
        """Whether rewinding past 0 helps the ticket and whether it saturates by k = 2000; per pretraining task at
        the perturbation level (26.2%): whether its ticket beats the ticket rewound to 0 and reaches the ticket
        rewound to K, beside the paper's finding (Section 5); whether ``standard`` pretraining reproduces
        rewinding to K (the control)."""
        cfg = QUICK if ctx.quick else FULL
        rewinds = cfg["rewinds"]
        a0 = measured[f"ticket accuracy, k = {rewinds[0]}"].mean
        best = max((measured[f"ticket accuracy, k = {k}"].mean or 0.0) for k in rewinds[1:])
        out: dict[str, Any] = {"rewinding past 0 helps": None if a0 is None else bool(best > a0)}
        sat = SATURATION[1] if ctx.quick else SATURATION[0]
        gain = measured.get(f"gain of rewinding past k = {sat}")
        out[f"rewinding saturates by k = {sat}"] = (None if gain is None or gain.mean is None
                                                    else bool(gain.mean <= SATURATION_MARGIN))
        levels = ctx.scale.pick("levels", cfg["levels"])
        lv, k, e = min(levels, level_at_density(0.262, 0.2)), cfg["perturb"][0], cfg["pretrain_length"]
        d = f"level {lv}"
        zero = measured.get(f"ticket rewound to 0, {d}")
        at_k = measured.get(f"ticket rewound to {k}, no pretraining, {d}")
        for task in PRETRAIN_VARIANTS:
            m = measured.get(f"pretrain {task} for {k if task == 'standard' else e}: ticket, {d}")
            if m is None or m.mean is None or zero is None or at_k is None or None in (zero.mean, at_k.mean):
                continue
            v: dict[str, Any] = {"beats rewinding to 0": bool(m.mean > zero.mean),  # type: ignore[operator]
                                 f"reaches rewinding to {k}": bool(m.mean >= at_k.mean),  # type: ignore[operator]
                                 "paper": PAPER_FINDINGS[task]}
            if task == "standard":
                v["equals rewinding to k (control)"] = bool(abs(m.mean - at_k.mean) < 1e-9)  # type: ignore[operator]
            out[f"pretrain {task}, {d}"] = v
        return out


def _it(step: str) -> int:
    """A rewind step's iteration count (the recipe's rewinds are in iterations)."""
    from lth.spec import Step

    s = Step.parse(step)
    if s.unit != "it":
        raise ValueError(f"the recipe's rewinds are in iterations, got {step}")
    return s.count


RECIPE = EarlyPhaseRecipe()
