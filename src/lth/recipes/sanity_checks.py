"""``sanity-checks``: Ma et al. (NeurIPS 2021), "Sanity Checks for Lottery Tickets: Does Your Winning Ticket Really
Win the Jackpot?": pretraining at a small and a large learning rate, the IMP ticket trained at a sweep of
learning rates (``retrain`` with ``lr=...``), one-shot pruning (``oneshot``, with ``--set lr=...`` at the same
sweep), random reinitialisation (``reinit``) and a small dense network of the ticket's size (``small-dense``), both
at every rate of the sweep too, the dense network at every rate of the sweep (``retrain`` at level 0, whose mask
keeps every weight), one dense run twice as long at the pretraining rate, and the jackpot / secondary-prize verdict
of their rigorous definition (:func:`lth.analysis.verdicts.jackpot`) at every ticket rate.

Paper numbers: seed 002, Ma et al. Table 4 (ResNet-20 on CIFAR-10 at sparsity 0.914): pretraining accuracy at lr
0.01 (90.3%) and 0.1 (92.4%); IMP and OMP subnetwork accuracy at four ticket learning rates each (all 16 cells).

Table 2's Tiny-ImageNet row (full scale, wherever ``tiny-imagenet-200/`` is present under the data root; else left
out and said, and ``--datasets tiny_imagenet`` requires it): the ``resnet18_tiny_imagenet`` preset's IMP ticket at
the Table 4 level with its one-shot (OMP), reinit and small-dense controls and a dense run twice as long, all at
the preset's rate, graded by the same five conditions (:func:`tiny_verdict`) beside Table 3's observation for the
larger datasets (no clear jackpot, no clear secondary prize; the seed gives no numbers for this row).

Loss contours (their Figs. 4-5: training trajectories on the loss surface): two stability copies each of the IMP
ticket and of the OMP ticket (stability subnetworks ``imp`` and ``omp``: the same rewound start under IMP's mask
and under the one-shot mask of the trained dense network at IMP's density) per pretraining rate at the Table 4
level, with stored trajectories, and :func:`lth.stability.landscape.landscape` over the plane of each one's copy 0
trajectory's principal directions (``pca``), drawn with :func:`lth.report.stability.plot_contour` beside the
copies (``landscape_pca.png``): IMP's and OMP's contours side by side, as Fig. 4. Fig. 5's network without
residual connections is the ``resnet20_plain`` preset (``resnet_20_plain``): its own IMP trunk at the large rate
and the same IMP / OMP contours, beside the residual ResNet's (at full scale the lr 0.1 trunk above; quick: a
ResNet-8 x0.25 with and without residual connections on digits). Ma et al.'s guideline ("with residual
connections IMP > OMP, otherwise no advantage") is a verdict on the copies' accuracies. ``lth report`` shows the
contours too.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from lth.recipes.base import (
    Context,
    Measured,
    PaperNumber,
    Piece,
    Recipe,
    accuracies,
    level_at_density,
    plan_lottery,
    sizes,
)

T4 = "Ma et al. NeurIPS 2021, Table 4 (seed 002)"
DENSITY = 1.0 - 0.914  # Table 4: sparsity 0.914
# pretraining lr -> (pretraining accuracy, {ticket lr: (IMP accuracy, OMP accuracy)})
TABLE4 = {0.01: (.903, {0.001: (.875, .833), 0.005: (.897, .853), 0.01: (.894, .865), 0.05: (.879, .872)}),
          0.1: (.924, {0.01: (.853, .858), 0.05: (.866, .874), 0.1: (.873, .872), 0.15: (.867, .873)})}
FULL = {"presets": {0.01: "resnet20_low", 0.1: "resnet20"}, "levels": 11, "replicates": 2, "steps": None}
QUICK = {"presets": {0.01: "digits_mlp", 0.1: "digits_mlp"}, "levels": 4, "replicates": 2, "steps": "4ep"}
QUICK_LR = {0.01: 1e-3, 0.1: 1e-2}  # digits_mlp (Adam) stands-in for the paper's small and large rate
CONTOUR_GRID = {True: 11, False: 21}  # grid points per direction of the loss contours (quick, full)
CONTOUR_SUBNETWORKS = ("imp", "omp")  # Figs. 4-5: IMP's and OMP's trajectories side by side
# Fig. 5's network without residual connections beside the residual one (Fig. 4), both at the large rate ("when no
# residual connection, prefer larger lr"); full scale: ResNet-20 and resnet20_plain (the paper: ResNet-32 at 0.945)
ARCHS = {"with residual connections": "resnet20", "without residual connections": "resnet20_plain"}
QUICK_ARCH = {"dataset": "digits", "width": 0.25, "batch_size": 32, "milestones": (), "augment": False}
QUICK_ARCH_REPLICATES = 1  # quick: one replicate (two copies each of IMP and OMP) of the two small ResNets
QUICK_ARCH_MODEL = {"with residual connections": "resnet_8", "without residual connections": "resnet_8_plain"}
RESIDUAL = "IMP vs OMP, with and without residual connections (Figs. 4-5)"  # its verdicts' key
MARGIN = 0.005  # Ma et al.'s 0.5 points (lth.analysis.verdicts.jackpot's default margin)
LONGER = "dense trained twice as long at the pretraining lr"  # condition [1]'s longer run (measured key's tail)
# Table 2's Tiny-ImageNet row (ResNet-18, 64x64, 200 classes): at full scale, where the data is present (else left
# out and said, lth.recipes.base.Recipe.select): the IMP ticket at the Table 4 level with the one-shot (OMP), reinit
# and small-dense controls at the preset's rate. Table 3 gives observations only (no numbers): no clear jackpot,
# and no clear secondary prize on the larger datasets.
TINY = "Tiny-ImageNet ResNet-18"
TINY_PRESET = "resnet18_tiny_imagenet"
LONGER_TINY = "dense trained twice as long"


def _numbers() -> list[PaperNumber]:
    out = []
    for lr, (pre, sweep) in TABLE4.items():
        out.append(PaperNumber(f"pretraining accuracy, lr {lr}", pre, T4))
        for lt, (imp, omp) in sweep.items():
            out.append(PaperNumber(f"pretrain lr {lr}: IMP ticket at ticket lr {lt}", imp, T4))
            out.append(PaperNumber(f"pretrain lr {lr}: OMP ticket at ticket lr {lt}", omp, T4))
    return out


class SanityChecksRecipe(Recipe):
    """Two pretraining learning rates; per rate the IMP ticket at four ticket rates, OMP, reinit, small dense."""

    name = "sanity-checks"
    paper = "Ma et al., NeurIPS 2021: Sanity Checks for Lottery Tickets"
    figures = ("ticket accuracy vs ticket learning rate, IMP vs OMP (Table 4)", "jackpot / secondary-prize verdicts",
               "accuracy vs density with reinit and small dense",
               "loss contours with IMP's and OMP's trajectories, with and without residual connections (Figs. 4-5)")
    data = ("cifar10", "tiny_imagenet")
    paper_numbers = tuple(_numbers())

    def _lr(self, ctx: Context, lr: float) -> float:
        return QUICK_LR[lr] if ctx.quick else lr

    def plan(self, ctx: Context) -> list[Piece]:
        """Per pretraining lr (one IMP trunk at it) and per ticket lr ``lt`` of its sweep, one LotteryPlan at the
        Table 4 density's level with the ``retrain``, ``oneshot``, ``reinit`` and ``small-dense`` branches trained at
        ``lt`` (at ``lt`` = the pretraining lr the last three are the plain branches, the same runs as without
        ``--set``); for every other ``lt`` the dense network at ``lt`` (``retrain`` at level 0: level 0's mask keeps
        every weight, and it starts from the trunk's own initialisation); one dense run twice as long at the
        pretraining lr (condition [1]); then the stability copies of the IMP and OMP tickets whose trajectories the
        loss contours draw (Fig. 4), and the same for a ResNet without residual connections beside one with them
        (Fig. 5; at full scale the residual one is the lr 0.1 trunk's)."""
        from lth.stability import StabilityPlan

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

            def lottery(branches: dict[str, dict[str, Any]], at_levels: list[int], preset: str = cfg["presets"][lr],
                        over: dict[str, Any] = over) -> Any:
                return plan_lottery(preset, levels, replicates=reps, branches=branches, branch_levels=at_levels,
                                    root=ctx.root, data_dir=ctx.data_dir, **over)

            first = None
            for lt in sweep:
                at = (f"lr={lt * scale:g}",)
                # at the pretraining rate the plain branches (the same runs as without --set)
                same: dict[str, Any] = {} if lt == lr else {"set": at}
                lp = lottery({"retrain": {"set": at}, "oneshot": same, "reinit": same, "small-dense": same}, [level])
                first = first or lp
                pieces.append(Piece(f"lr {lr} / ticket lr {lt}", lp, meta={"lr": lr, "lt": lt, "level": level}))
                if lt != lr:  # the dense network at the ticket's rate (at the pretraining rate: the trunk's level 0)
                    pieces.append(Piece(f"lr {lr} / dense at ticket lr {lt}", lottery({"retrain": {"set": at}}, [0]),
                                        meta={"lr": lr, "lt": lt, "dense": True}))
            assert first is not None
            longer, stretch = twice_as_long(first)
            pieces.append(Piece(f"lr {lr} / dense twice as long",
                                lottery({"retrain": {"set": stretch}}, [0]),
                                meta={"lr": lr, "lt": lr, "longer": str(longer)}))
            sp = StabilityPlan(first.trunks, list(CONTOUR_SUBNETWORKS), [level], reps, 2, trajectory_points=8,
                               steps_per_epoch=first.spe)
            names = [f"pretrain lr {lr}"] + (["with residual connections"] if lr == 0.1 and not ctx.quick else [])
            pieces.append(Piece(f"lr {lr} / contours", sp, meta={"lr": lr, "level": level, "contours": True,
                                                                 "names": names}))
        pieces += self._archs(ctx, levels, reps, steps, level)
        if not ctx.quick:  # Table 2's Tiny-ImageNet row (run where the data is present), [1]'s longer run too
            over = {"training_steps": steps} if steps else {}
            lp = plan_lottery(TINY_PRESET, levels, replicates=reps, branches=("oneshot", "reinit", "small-dense"),
                              branch_levels=[level], root=ctx.root, data_dir=ctx.data_dir, **over)
            longer, stretch = twice_as_long(lp)
            dense = plan_lottery(TINY_PRESET, levels, replicates=reps, branches={"retrain": {"set": stretch}},
                                 branch_levels=[0], root=ctx.root, data_dir=ctx.data_dir, **over)
            pieces += [Piece(TINY, lp, meta={"tiny": True, "level": level}),
                       Piece(f"{TINY} / dense twice as long", dense, meta={"tiny_longer": str(longer)})]
        return pieces

    def _archs(self, ctx: Context, levels: int, reps: int, steps: str | None, level: int) -> list[Piece]:
        """Fig. 5 beside Fig. 4: IMP and OMP contours of a ResNet without residual connections (``resnet20_plain``)
        and with them (at full scale the lr 0.1 contours piece is that one; quick: ResNet-8 x0.25 on digits, both)."""
        from lth.stability import StabilityPlan

        if ctx.quick:
            reps = min(reps, QUICK_ARCH_REPLICATES)
            ctx.sub("Figs. 4-5: ResNet-32 (with and without residual connections) on CIFAR-10 at sparsity 0.945 -> "
                    f"ResNet-8 x0.25 (resnet_8 / resnet_8_plain, SGD lr 0.1, batch 32) on 8x8 digits at density "
                    f"{0.8 ** level:.3f}, {reps} replicate(s)")
        else:
            ctx.sub(f"Figs. 4-5: ResNet-32 at sparsity 0.945 -> ResNet-20 (resnet20 / resnet20_plain) at the Table 4 "
                    f"level {level}")
        out = []
        for name, preset in ARCHS.items():
            if name == "with residual connections" and not ctx.quick:
                continue  # the lr 0.1 contours piece: the same trunk and copies
            over: dict[str, Any] = {"training_steps": steps} if steps else {}
            if ctx.quick:
                over.update(QUICK_ARCH, model=QUICK_ARCH_MODEL[name])
            lp = plan_lottery(preset, levels, replicates=reps, root=ctx.root, data_dir=ctx.data_dir, **over)
            sp = StabilityPlan(lp.trunks, list(CONTOUR_SUBNETWORKS), [level], reps, 2, trajectory_points=8,
                               steps_per_epoch=lp.spe)
            out.append(Piece(f"{name} / contours", sp, meta={"lr": 0.1, "level": level, "contours": True,
                                                             "names": [name], "arch": name}))
        return out

    def measure(self, ctx: Context, pieces: list[Piece], results: dict[str, Any], ex: Any) -> dict[str, Measured]:
        """Table 4's cells, plus what the jackpot verdict needs at every ticket lr: the reinitialised ticket, the
        small dense network and the dense network at that lr, and the dense network trained twice as long at the
        pretraining lr."""
        out: dict[str, Measured] = {}
        for p in pieces:
            if p.meta.get("contours"):
                p.meta["records"] = results[p.label]
                out.update(self._contours(ctx, p, ex))
                continue
            if p.meta.get("tiny"):
                out.update(self._tiny(results[p.label], p.meta["level"]))
                continue
            if p.meta.get("tiny_longer"):
                out[f"{TINY}: {LONGER_TINY}"] = Measured(accuracies(results[p.label]["branches"], level=0,
                                                                    branch="retrain"),
                                                         f"{TINY_PRESET}, dense, {p.meta['tiny_longer']} of training")
                continue
            rec, lr, lt = results[p.label], p.meta["lr"], p.meta["lt"]
            rate = f"lr {lt * self._lr(ctx, lr) / lr:g}" if ctx.quick else ""
            if p.meta.get("longer"):
                out[f"pretrain lr {lr}: {LONGER}"] = Measured(
                    accuracies(rec["branches"], level=0, branch="retrain"),
                    ", ".join(x for x in (f"dense, {p.meta['longer']} of training", rate) if x))
                continue
            if p.meta.get("dense"):
                out[f"pretrain lr {lr}: dense at ticket lr {lt}"] = Measured(
                    accuracies(rec["branches"], level=0, branch="retrain"), ", ".join(x for x in ("dense", rate) if x))
                continue
            lv = p.meta["level"]
            dens = [float(r["density"]) for r in rec["branches"]
                    if r.get("level") == lv and r.get("branch") == "retrain" and r.get("density") is not None]
            if dens:  # the tickets' measured density (the output layer prunes at half rate: not 0.8^level)
                out.setdefault(f"pretrain lr {lr}: ticket density", Measured(dens, f"level {lv}, measured"))
            density = sum(dens) / len(dens) if dens else 0.8 ** lv
            how = f"level {lv}, density {density:.3f}" + (f", ticket {rate}" if rate else "")
            pre = accuracies(rec["runs"], level=0)
            trunk = "the trunk's level 0" + (f", lr {self._lr(ctx, lr):g}" if ctx.quick else "")
            out.setdefault(f"pretraining accuracy, lr {lr}", Measured(pre, trunk))
            if lt == lr:
                out[f"pretrain lr {lr}: dense at ticket lr {lt}"] = Measured(pre, trunk)
            for b, key in (("retrain", "IMP ticket"), ("oneshot", "OMP ticket"), ("reinit", "reinit"),
                           ("small-dense", "small dense")):
                out[f"pretrain lr {lr}: {key} at ticket lr {lt}"] = Measured(
                    accuracies(rec["branches"], level=lv, branch=b), how)
        return out

    @staticmethod
    def _tiny(rec: dict[str, Any], lv: int) -> dict[str, Measured]:
        """Table 2's Tiny-ImageNet row: the dense network, the IMP ticket (the trunk at level ``lv``), its one-shot
        (OMP), reinit and small-dense controls, at the preset's rate; and the tickets' measured density."""
        dens = [float(r["density"]) for r in rec["runs"] if r.get("level") == lv and r.get("density") is not None]
        how = f"{TINY_PRESET}, level {lv}, the preset's lr"
        out = {f"{TINY}: dense": Measured(accuracies(rec["runs"], level=0), f"{TINY_PRESET}, level 0"),
               f"{TINY}: IMP ticket": Measured(accuracies(rec["runs"], level=lv), how)}
        for b, key in (("oneshot", "OMP ticket"), ("reinit", "reinit"), ("small-dense", "small dense")):
            out[f"{TINY}: {key}"] = Measured(accuracies(rec["branches"], level=lv, branch=b), how)
        if dens:
            out[f"{TINY}: ticket density"] = Measured(dens, f"level {lv}, measured")
        return out

    def _contours(self, ctx: Context, piece: Piece, ex: Any) -> dict[str, Measured]:
        """The loss contours of one contours piece (Ma et al. Figs. 4-5): per subnetwork (IMP, OMP) and replicate,
        test error over the plane of the principal directions of its copy 0 trajectory, both copies' trajectories
        projected on it, drawn beside the copies. Measured per subnetwork: the smallest test error on the plane,
        and the copies' final test accuracy (IMP vs OMP)."""
        from lth.report.stability import plot_contour
        from lth.stability.landscape import landscape

        plan, lv = piece.plan, piece.meta["level"]
        data = ex.dataset(plan.trunks[0].spec.data)
        device = str(ex.options.torch_device()) if hasattr(ex, "options") else "cpu"
        lows: dict[str, list[float]] = {}
        accs: dict[str, list[float]] = {}
        figs = []
        done = {str(r["path"]): r for r in piece.meta.get("records", [])}
        model = plan.trunks[0].spec.model.model
        for exp, level in plan.cells():
            sub = exp.subnetwork.upper()
            for r in range(plan.replicates):
                doc = landscape(exp, level, r, data, plane="pca", steps=CONTOUR_GRID[ctx.quick], device=device)
                title = (f"{sub} ticket, {piece.meta['names'][0]} ({model}), level {level}, replicate {r}")
                figs += [{"subnetwork": sub, "replicate": r, "figure": str(f)} for f in plot_contour(
                    doc["xs"], doc["ys"], doc["test_error"], exp.level_dir(r, level), name="landscape_pca",
                    points=doc["points"], trajectories=doc["trajectories"], title=title) if f.suffix == ".png"]
                lows.setdefault(sub, []).append(min(min(row) for row in doc["test_error"]))
                for c in range(plan.copies):
                    rec = done.get(str(exp.copy_dir(r, level, c)))
                    if rec is not None and rec.get("final_test_accuracy") is not None:
                        accs.setdefault(sub, []).append(float(rec["final_test_accuracy"]))
        piece.meta["figures"] = figs
        how = f"level {lv}, pca plane of copy 0's trajectory, {CONTOUR_GRID[ctx.quick]}^2 grid, {model}"
        out = {}
        for name in piece.meta["names"]:
            for sub in lows:
                out[f"{name}: loss contour, smallest test error on the plane ({sub})"] = Measured(lows[sub], how)
                out[f"{name}: {sub} copies' accuracy (contour runs)"] = Measured(
                    accs.get(sub, []), f"level {lv}, the stability copies' final test accuracy, {model}")
        return out

    def extra_tables(self, ctx: Context, pieces: list[Piece], results: dict[str, Any]) -> dict[str, pd.DataFrame]:
        """The loss-contour figures (Ma et al. Figs. 4-5), one per contours piece, subnetwork (IMP, OMP) and
        replicate."""
        rows = [{"network": p.meta.get("arch", f"pretraining lr {p.meta['lr']}"), "level": p.meta["level"], **f}
                for p in pieces if p.meta.get("contours") for f in p.meta.get("figures", [])]
        return {"loss contours": pd.DataFrame(rows)} if rows else {}

    verdict_basis = ("final test accuracy (test split), mean over the replicates, of the IMP ticket at the level "
                     "nearest the paper's density and of the dense, small dense and reinitialised networks named in "
                     "the rows; Ma et al.'s five conditions with a 0.5-point margin where the paper asks for a clear "
                     "advantage (Ma et al. NeurIPS 2021, section 3, 'a rigorous definition'; "
                     "lth.analysis.verdicts.jackpot and docs/fidelity.md); IMP vs OMP with and without residual "
                     "connections: the final test accuracy of the contour runs (two stability copies per replicate "
                     "of each ticket at the Table 4 level, large rate), mean, strict comparisons (Ma et al., Figs. "
                     "4-5 and their 'IMP vs OMP' guideline)")

    def verdicts(self, ctx: Context, measured: dict[str, Measured]) -> dict[str, Any]:
        """Ma et al.'s grade (section 3, "a rigorous definition"; :func:`lth.analysis.verdicts.jackpot`) of the IMP
        ticket at every ticket lr ``lt`` of each pretraining rate's sweep:

        * [1] sufficient training, a property of the training length T ("a sufficient training epochs T"): the
          dense network twice as long at the pretraining lr against the dense network at that lr, within 0.5
          points; the outcome holds for every ``lt`` (lth's reading; *not checked* without the longer run);
        * [2] small dense: the small dense network is trained at every ``lt`` and the ticket must beat the *best* of
          them (the paper does not say at which lr the small network trains: lth's choice, the most stringent);
        * [3] reinit: the reinitialised ticket at *every* ``lt`` of the sweep (the ticket must beat all of them);
        * [4] dense at the same lr: the dense network trained at ``lt`` itself;
        * [5] well-trained dense: the best dense network of this recipe (both pretraining rates, every ``lt``, the
          longer runs).

        Per pretraining rate: ``grade`` is the best strict grade over the ticket rates (the ticket family wins a prize
        if its verdict at some lr does; every condition is checked at that one lr, at least as strict as reading
        each condition's "there exists a lr" apart), ``best ticket lr`` the rate that gives it (ties: the better
        provisional grade, then the higher accuracy) with its ``failed`` and ``unchecked`` conditions;
        ``provisional grade`` assumes the unchecked conditions hold (:class:`lth.analysis.verdicts.JackpotVerdict`),
        best over the rates, at ``provisional best ticket lr``; ``per ticket lr`` gives every rate's grades and
        conditions so a reader sees why. A rate whose runs are missing is graded None with the missing keys; and
        whether IMP's best ticket rate beats OMP's (their "IMP vs OMP" comparison, Table 4)."""
        level = min(ctx.scale.pick("levels", (QUICK if ctx.quick else FULL)["levels"]),
                    level_at_density(DENSITY, 0.2))

        def mean(key: str) -> float | None:
            m = measured.get(key)
            return None if m is None else m.mean

        dense_keys = [k for lr, (_, sweep) in TABLE4.items() for k in (
            f"pretraining accuracy, lr {lr}", f"pretrain lr {lr}: {LONGER}",
            *(f"pretrain lr {lr}: dense at ticket lr {lt}" for lt in sweep))]
        known = [v for v in map(mean, dense_keys) if v is not None]
        out: dict[str, Any] = {}
        for lr, (_, sweep) in TABLE4.items():
            at = {what: {lt: mean(f"pretrain lr {lr}: {what} at ticket lr {lt}") for lt in sweep}
                  for what in ("IMP ticket", "OMP ticket", "reinit", "small dense", "dense")}
            missing = [f"pretrain lr {lr}: {what} at ticket lr {lt}" for what in ("reinit", "small dense")
                       for lt, v in at[what].items() if v is None]
            if missing or not known:
                out[f"pretrain lr {lr}"] = {"grade": None, "missing": missing or ["dense accuracies"]}
                continue
            density = mean(f"pretrain lr {lr}: ticket density")  # measured; nominal 0.8^level only without it
            out[f"pretrain lr {lr}"] = grade_sweep(lr, at["IMP ticket"], at["dense"], at["reinit"], at["small dense"],
                                                   max(known), 0.8 ** level if density is None else density,
                                                   mean(f"pretrain lr {lr}: {LONGER}"))
            omp = {k: v for k, v in at["OMP ticket"].items() if v is not None}
            tickets = {k: v for k, v in at["IMP ticket"].items() if v is not None}
            out[f"pretrain lr {lr}"]["IMP beats OMP (best of each sweep)"] = (
                bool(max(tickets.values()) > max(omp.values())) if omp and tickets else None)
        out[RESIDUAL] = residual_verdicts({name: tuple(mean(f"{name}: {sub} copies' accuracy (contour runs)")
                                                       for sub in ("IMP", "OMP")) for name in ARCHS})
        if f"{TINY}: IMP ticket" in measured:
            out[TINY] = tiny_verdict({k: mean(f"{TINY}: {k}") for k in ("IMP ticket", "OMP ticket", "reinit",
                                                                         "small dense", "dense", "ticket density",
                                                                         LONGER_TINY)}, 0.8 ** level)
        return out


def tiny_verdict(acc: dict[str, float | None], nominal_density: float) -> dict[str, Any]:
    """Ma et al.'s grade (:func:`lth.analysis.verdicts.jackpot`) of the Tiny-ImageNet ticket, every network at the
    preset's one rate: the reinit at that rate only, the dense network is also the well-trained one, and [1]'s
    sufficient training is the dense network trained twice as long (``dense trained twice as long``; not checked
    without it). Beside it Table 3's observation for the larger datasets (no clear jackpot, no clear secondary
    prize): ``agrees with Table 3`` is whether the strict grade is "no prize" (None while [1] is unchecked: the
    strict grade would be "no prize" for want of a run). None where a run is missing."""
    from lth.analysis.verdicts import jackpot

    have = {k: float(v) for k, v in acc.items() if v is not None}
    missing = [k for k in ("IMP ticket", "reinit", "small dense", "dense") if k not in have]
    if missing:
        return {"grade": None, "missing": [f"{TINY}: {k}" for k in missing]}
    ticket, dense = have["IMP ticket"], have["dense"]
    v = jackpot(ticket, have.get("ticket density", nominal_density), {"preset lr": have["reinit"]}, dense, dense,
                have["small dense"], longer_dense_accuracy=have.get(LONGER_TINY))
    return {"grade": v.grade, "provisional grade": v.provisional_grade, "failed": v.failed, "unchecked": v.unchecked,
            "paper (Table 3)": "no clear jackpot; no clear secondary prize on the larger datasets",
            "agrees with Table 3": None if v.unchecked else v.grade == "no prize",
            "IMP beats OMP": None if "OMP ticket" not in have else ticket > have["OMP ticket"]}


def twice_as_long(plan: Any) -> tuple[Any, tuple[str, ...]]:
    """(the length, the ``--set`` fields) of a dense run twice as long as ``plan``'s trunks (condition [1]'s longer
    run): the same schedule stretched, learning-rate drops moving with the length (lth's reading; the paper's 78
    vs 160 epochs do not say), so the longer run is not just extra low-rate fine-tuning; a preset's drops past a
    shortened end stay out."""
    from lth.spec import Step

    train = plan.trunks[0].spec.train
    longer = Step(2 * train.training_steps.count, train.training_steps.unit)
    stretch = [f"training_steps={longer}"]
    end = train.training_steps.iterations(plan.spe)
    inside = [m for m in train.milestones if m.iterations(plan.spe) <= end]
    if inside:
        stretch.append("milestones=" + ",".join(str(Step(2 * m.count, m.unit)) for m in inside))
    return longer, tuple(stretch)


def residual_verdicts(acc: dict[str, tuple[float | None, float | None]]) -> dict[str, Any]:
    """Ma et al.'s guideline (seed 002, "IMP vs OMP": "when residual connections exist, IMP > OMP, otherwise no
    advantage") on the contour runs' accuracies ``{network: (IMP, OMP)}``, mean over the copies: IMP beats OMP with
    residual connections (strictly), and IMP's advantage is smaller without them (strictly); None where a
    network's runs are missing."""
    imp_r, omp_r = acc.get("with residual connections", (None, None))
    imp_p, omp_p = acc.get("without residual connections", (None, None))
    with_res = None if imp_r is None or omp_r is None else imp_r - omp_r
    without = None if imp_p is None or omp_p is None else imp_p - omp_p
    return {"IMP beats OMP with residual connections (Figs. 4-5)": None if with_res is None else bool(with_res > 0),
            "IMP's advantage over OMP is smaller without residual connections (Figs. 4-5)":
                None if with_res is None or without is None else bool(without < with_res),
            "IMP minus OMP (with, without residual connections)": [with_res, without]}


def grade_sweep(lr: float, tickets: dict[float, float | None], dense: dict[float, float | None],
                reinit: dict[float, float], small: dict[float, float], well_trained: float, density: float,
                longer: float | None) -> dict[str, Any]:
    """The jackpot grades of one pretraining rate's ticket sweep (Ma et al. section 3; see
    :meth:`SanityChecksRecipe.verdicts`): every ticket lr ``lt`` with a ticket and a dense accuracy at ``lt`` is
    graded by :func:`lth.analysis.verdicts.jackpot` against the reinit at every lr, the best small dense network,
    the dense network at ``lt`` and ``well_trained``. Condition [1]'s sufficient training is a property of the
    training length T (Ma et al. section 3: "a sufficient training epochs T"): it is checked once, the dense
    network trained ``longer`` against the dense network at the pretraining rate ``lr``, and that outcome holds
    for every ticket rate (lth's reading; not checked at any rate without a longer run).
    Returns the best grade over the rates with its rate and conditions, and every rate's under ``per ticket lr``."""
    from lth.analysis.verdicts import GRADES, jackpot

    per: dict[float, dict[str, Any]] = {}
    ranked = []
    base = dense.get(lr)
    sufficient = None if longer is None or base is None else longer - base <= MARGIN + 1e-12
    for lt, acc in tickets.items():
        if acc is None or dense.get(lt) is None:
            per[lt] = {"grade": None, "missing": [w for w, v in (("IMP ticket", acc), ("dense", dense.get(lt)))
                                                  if v is None]}
            continue
        v = jackpot(acc, density, {f"lr {k}": a for k, a in reinit.items()}, dense[lt],  # type: ignore[arg-type]
                    well_trained, max(small.values()), sufficient_training=sufficient)
        per[lt] = {"grade": v.grade, "provisional grade": v.provisional_grade, "failed": v.failed,
                   "unchecked": v.unchecked, "ticket": acc, "dense at the same lr": dense[lt]}
        ranked.append((GRADES.index(v.grade), GRADES.index(v.provisional_grade), -acc, lt))
    if not ranked:
        return {"grade": None, "missing": ["every ticket lr lacks a ticket or a dense accuracy"], "per ticket lr": per}
    best = min(ranked)[-1]
    prov = min(ranked, key=lambda r: (r[1], r[0], r[2]))[-1]
    return {"grade": per[best]["grade"], "best ticket lr": best, "failed": per[best]["failed"],
            "unchecked": per[best]["unchecked"], "provisional grade": per[prov]["provisional grade"],
            "provisional best ticket lr": prov, "per ticket lr": per}


RECIPE = SanityChecksRecipe()
