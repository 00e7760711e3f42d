"""``weight-correlation``: Liu et al. (ICML 2021), "Lottery Ticket Preserves Weight Correlation: Is It Desirable or
Not?": R_p between the initial and the trained weights (:func:`lth.analysis.weights.rp_curve`) at a small (0.01) and
a large (0.1) learning rate, p = 0.1 ... 0.5 (their Fig. 4), and pruning & fine-tuning against the winning ticket
and random re-initialisation at both rates (their Fig. 6): the ``finetune`` branch (the dense network's trained
weights under the ticket's mask, fine-tuned for the trunk's schedule from step 0), the trunk's ticket and the
``reinit`` branch, all under the same mask at the sparsest level.

For the three sparse networks lth reports the accuracy and R_p(theta_0, trained) at p = 0.1: how much of the
dense initialisation's top-10% structure each final network keeps (the same mask for all three, so the comparison
is between starting points: theta_0 (ticket), theta_T (fine-tuning), theta'_0 (reinit)).

Length: Liu et al. pretrain for 150 epochs (seed 002, beside Fig. 4), so the full recipe trains every run for 150
epochs (the presets' 63K iterations are about 161); the R_p rows name the length they measured, and ``--quick`` or
``--training-steps`` record the substitution (table and JSON).

One-shot masks (Fig. 6c, and Fig. 7's one-shot bars): from each replicate's one dense run, the ``oneshot`` branch
with ``--oneshot-density`` at the density of every IMP level (0.8^l, l = 1..L), no IMP level trained for them,
three times per density: rewound to theta_0 (the one-shot "winning ticket"), from the trained weights (pruning &
fine-tuning) and from a fresh initialisation (random reinit), all under the one mask.

Paper numbers: the seed (002) gives Fig. 4 and Fig. 6 as curves, not numbers; its stated findings (R_p above p,
notably higher at the small rate; pruning & fine-tuning above the winning ticket, Fig. 6-7) are the verdicts, and
every measured value is in the table.
"""

from __future__ import annotations

from typing import Any

from lth.recipes.base import Context, Measured, Piece, Recipe, plan_lottery, sizes

PS = (0.1, 0.2, 0.3, 0.4, 0.5)
PAPER_LENGTH = "150ep"  # Liu et al.: "training epoch is 150" (seed 002, beside Fig. 4)
# Fig. 6c's three curves under a one-shot mask: what trains under it (``--oneshot-start``)
ONESHOT = {"pruning & fine-tuning": "trained", "ticket": "rewind", "random reinit": "reinit"}
FULL = {"presets": {0.01: "resnet20_low", 0.1: "resnet20"}, "levels": 8, "replicates": 2, "steps": None}
QUICK = {"presets": {0.01: "digits_mlp", 0.1: "digits_mlp"}, "levels": 4, "replicates": 2, "steps": "4ep"}
QUICK_LR = {0.01: 1e-3, 0.1: 3e-2}


class WeightCorrelationRecipe(Recipe):
    """Dense training and IMP with reinit at two learning rates; R_p of init vs trained weights."""

    name = "weight-correlation"
    paper = "Liu et al., ICML 2021: Lottery Ticket Preserves Weight Correlation"
    figures = ("R_p(init, trained) vs p at lr 0.01 and 0.1 (Fig. 4)",
               "pruning & fine-tuning vs ticket vs random reinit by density, iterative (Fig. 6a) and one-shot "
               "(Fig. 6c) masks; fine-tuning vs ticket per pruning method (Fig. 7)")
    data = ("cifar10",)

    def plan(self, ctx: Context) -> list[Piece]:
        """Per learning rate: one LotteryPlan with the reinit and finetune branches (iterative masks), and for each
        IMP level's density 0.8^l the one-shot masks of the same dense run with the three starts (Fig. 6c), each a
        ``oneshot`` branch at level 0 (no IMP level per density). Every run trains for the paper's 150 epochs at
        full scale."""
        cfg = QUICK if ctx.quick else FULL
        levels, reps, steps = sizes(ctx, FULL, QUICK)
        if ctx.quick:
            ctx.sub(f"ResNet-20 on CIFAR-10 (SGD 0.01 / 0.1, 150 epochs) -> digits_mlp (Adam {QUICK_LR[0.01]} / "
                    f"{QUICK_LR[0.1]}) on 8x8 digits")
        length = steps or (None if ctx.quick else PAPER_LENGTH)
        densities = [round(0.8 ** lv, 6) for lv in range(1, levels + 1)]
        pieces = []
        for lr, preset in cfg["presets"].items():
            over: dict[str, Any] = {"training_steps": length} if length else {}
            if ctx.quick:
                over["lr"] = QUICK_LR[lr]
            lp = plan_lottery(preset, levels, replicates=reps, branches=["reinit", "finetune"], root=ctx.root,
                              data_dir=ctx.data_dir, **over)
            pieces.append(Piece(f"lr {lr}", lp, meta={"lr": lr, "levels": levels}))
            for d in densities:
                for name, start in ONESHOT.items():
                    op = plan_lottery(preset, levels, replicates=reps, root=ctx.root, data_dir=ctx.data_dir,
                                      branches={"oneshot": {"oneshot_density": d, "oneshot_start": start}},
                                      branch_levels=[0], **over)
                    pieces.append(Piece(f"lr {lr} / one-shot {d} / {name}", op,
                                        meta={"lr": lr, "oneshot": d, "series": name}))
        return pieces

    def measure(self, ctx: Context, pieces: list[Piece], results: dict[str, Any], ex: Any) -> dict[str, Measured]:
        """R_p per lr and p over replicates (dense level 0: init vs final); accuracy and R_0.1(theta_0, final) of
        the fine-tuned network, the ticket and the reinit at the sparsest level."""
        import torch

        from lth.analysis.weights import rp_curve

        out: dict[str, Measured] = {}
        for p in pieces:
            if "oneshot" in p.meta:
                out.update(self._oneshot(p, results[p.label]))
                continue
            rec, lr, lv = results[p.label], p.meta["lr"], p.meta["levels"]
            curves = []
            for r in rec["runs"]:
                if r["level"] == 0 and r["status"] == "complete":
                    a = torch.load(r["states"]["init"], map_location="cpu")
                    b = torch.load(r["states"]["final"], map_location="cpu")
                    layers = [k for k, v in a.items() if k.endswith("weight") and v.dim() > 1]
                    curves.append(rp_curve(a, b, PS, layers))
            trained = str(p.plan.trunks[0].spec.train.training_steps)
            length = f"{trained} of training" + ("" if trained == PAPER_LENGTH else
                                                 f" (the paper's {PAPER_LENGTH}: a substitution)")
            for i, pp in enumerate(PS):
                out[f"R_p(init, trained), lr {lr}, p = {pp}"] = Measured([float(c["r_p"].iloc[i]) for c in curves],
                                                                        f"dense network, weight layers, {length}")
            inits = {r["replicate"]: r["states"]["init"] for r in rec["runs"]
                     if r["level"] == 0 and r["status"] == "complete"}
            sparse = {"pruning & fine-tuning": [r for r in rec["branches"] if r["branch"] == "finetune"],
                      "ticket": list(rec["runs"]),
                      "random reinit": [r for r in rec["branches"] if r["branch"] == "reinit"]}
            for name, runs in sparse.items():
                runs = [r for r in runs if r["level"] == lv and r.get("final_test_accuracy") is not None]
                out[f"{name} accuracy, lr {lr}, level {lv}"] = Measured([r["final_test_accuracy"] for r in runs])
                rps = []
                for r in runs:
                    a = torch.load(inits[r["replicate"]], map_location="cpu")
                    b = torch.load(r["states"]["final"], map_location="cpu")
                    layers = [k for k, v in a.items() if k.endswith("weight") and v.dim() > 1]
                    rps.append(float(rp_curve(a, b, (0.1,), layers)["r_p"].iloc[0]))
                out[f"{name}: R_0.1(theta_0, trained), lr {lr}, level {lv}"] = Measured(
                    rps, "theta_0: the dense network's initialisation; the same mask for all three")
        return out

    @staticmethod
    def _oneshot(piece: Piece, rec: dict[str, Any]) -> dict[str, Measured]:
        """One one-shot series at one density (Fig. 6c): the branch runs' accuracy, at the mask's measured
        density."""
        lr, d, name = piece.meta["lr"], piece.meta["oneshot"], piece.meta["series"]
        runs = [r for r in rec["branches"] if r.get("branch") == "oneshot" and r.get("final_test_accuracy") is not None]
        dens = [float(r["density"]) for r in runs if r.get("density") is not None]
        how = f"one-shot mask of the dense network at {d:g}" + (f", measured {sum(dens) / len(dens):.3f}" if dens
                                                                 else "")
        return {f"one-shot {name} accuracy, lr {lr}, density {d:g}": Measured(
            [r["final_test_accuracy"] for r in runs], how)}

    def extra_tables(self, ctx: Context, pieces: list[Piece], results: dict[str, Any]) -> dict[str, Any]:
        """Fig. 6 (a, c) as a table: accuracy by mask (iterative: IMP level l; one-shot at 0.8^l), series and
        density, mean and n over the replicates."""
        import pandas as pd

        rows = []
        for p in pieces:
            rec, lr = results[p.label], p.meta["lr"]
            if "oneshot" in p.meta:
                runs = [r for r in rec["branches"] if r.get("final_test_accuracy") is not None]
                rows.append(_row(lr, "one-shot", p.meta["series"], runs))
                continue
            for lv in range(1, p.meta["levels"] + 1):
                for name, runs in (("pruning & fine-tuning", [r for r in rec["branches"] if r["branch"] == "finetune"]),
                                   ("ticket", list(rec["runs"])),
                                   ("random reinit", [r for r in rec["branches"] if r["branch"] == "reinit"])):
                    rows.append(_row(lr, "iterative", name, [r for r in runs if r["level"] == lv and
                                                             r.get("final_test_accuracy") is not None]))
        df = pd.DataFrame(rows).sort_values(["lr", "pruning", "series", "density"], ascending=[True, True, True, False])
        return {"accuracy by mask, Fig. 6 (a: iterative, c: one-shot)": df.reset_index(drop=True)}

    verdict_basis = ("R_p (fraction of the top-p weights by magnitude shared by the initial and the trained "
                     "weights, over every weight matrix and convolution) at every p of the rows, mean over the "
                     "replicates, against p itself and across the two learning rates (Liu et al. ICML 2021, Fig. 4); "
                     "accuracies are final test accuracy (test split), mean over the replicates, of pruning & "
                     "fine-tuning, the ticket and random reinit at the rows' level (Fig. 6a) and, under one-shot "
                     "masks, at the sparsest one-shot density (Fig. 6c); every comparison strict, no margin")

    def verdicts(self, ctx: Context, measured: dict[str, Measured]) -> dict[str, Any]:
        """Liu et al.'s findings: R_p > p at the small rate, and higher than at the large rate, at every p (Fig. 4);
        pruning & fine-tuning above the winning ticket, and the ticket against random reinit, per rate (Fig. 6)."""
        out: dict[str, Any] = {}
        for key in [k for k in measured if k.startswith("pruning & fine-tuning accuracy")]:
            ft, ticket = measured[key].mean, measured[key.replace("pruning & fine-tuning", "ticket")].mean
            reinit = measured[key.replace("pruning & fine-tuning", "random reinit")].mean
            lr = key.split("lr ")[1].split(",")[0]
            if None not in (ft, ticket, reinit):
                out[f"fine-tuning beats the ticket, lr {lr}"] = bool(ft > ticket)  # type: ignore[operator]
                out[f"ticket beats reinit, lr {lr}"] = bool(ticket > reinit)  # type: ignore[operator]
        for key in [k for k in measured if k.startswith("one-shot pruning & fine-tuning accuracy")]:
            lr, d = key.split("lr ")[1].split(", density ")
            sparsest = min(float(k.split("density ")[1]) for k in measured
                           if k.startswith(f"one-shot pruning & fine-tuning accuracy, lr {lr},"))
            if float(d) != sparsest:
                continue
            ft, ticket = measured[key].mean, measured[key.replace("pruning & fine-tuning", "ticket")].mean
            reinit = measured[key.replace("pruning & fine-tuning", "random reinit")].mean
            if None not in (ft, ticket, reinit):
                out[f"one-shot: fine-tuning beats the ticket, lr {lr}"] = bool(ft > ticket)  # type: ignore[operator]
                out[f"one-shot: ticket beats reinit, lr {lr}"] = bool(ticket > reinit)  # type: ignore[operator]
        small = [measured[f"R_p(init, trained), lr 0.01, p = {p}"].mean for p in PS]
        large = [measured[f"R_p(init, trained), lr 0.1, p = {p}"].mean for p in PS]
        if None in small or None in large:
            return out
        return {"R_p above p at the small lr": all(s > p for s, p in zip(small, PS, strict=True)),  # type: ignore
                "R_p higher at the small lr than at the large": all(
                    s > g for s, g in zip(small, large, strict=True)), **out}  # type: ignore[operator]


def _row(lr: float, pruning: str, series: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row of the Fig. 6 table: mean accuracy and density of ``runs``."""
    acc = [float(r["final_test_accuracy"]) for r in runs]
    dens = [float(r["density"]) for r in runs if r.get("density") is not None]
    return {"lr": lr, "pruning": pruning, "series": series, "density": sum(dens) / len(dens) if dens else None,
            "accuracy": sum(acc) / len(acc) if acc else None, "n": len(acc)}


RECIPE = WeightCorrelationRecipe()
