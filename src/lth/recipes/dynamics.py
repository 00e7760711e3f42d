"""``dynamics``: pruning as a probe of training dynamics (seed 003): IMP with structured against unstructured
pruning and with the smallest against the largest weights removed, weight telemetry over training, the frame
potential of every layer's rows (:func:`lth.analysis.weights.frame_potential`, the alignment of weight vectors of
the study's Section 2.3) over training (the dense network keeps its state at :data:`FP_POINTS` evenly spaced steps
besides init and final), and single-unit ablation (:func:`lth.analysis.ablation.unit_ablation`: each hidden unit
of the trained dense network, and of the IMP ticket at the sparsest level, removed in turn with no retraining, the
test-accuracy drop per unit; the study's Introduction).

Paper numbers: the study (seed 003) is a plan with no results; the one number it cites is Frankle & Carbin's
(its Section 2.2): tickets keep or beat the dense accuracy when up to 96% of the weights are pruned. lth's
sparsest level at which IMP (unstructured, smallest) still matches is compared with that density, 0.04.
"""

from __future__ import annotations

from typing import Any

from lth.recipes.base import Context, Measured, PaperNumber, Piece, Recipe, accuracies, density_of, plan_lottery, sizes

S22 = "seed 003, Section 2.2, citing Frankle & Carbin 2019 (up to 96% pruned)"
VARIANTS = {"unstructured, smallest": {}, "unstructured, largest": {"criterion": "largest"},
            "structured (neurons, L1)": {"strategy": "structured"}}
FULL = {"preset": "lenet_300_100", "levels": 15, "replicates": 3, "steps": None}
QUICK = {"preset": "digits_mlp", "levels": 5, "replicates": 2, "steps": "4ep"}
FP_POINTS = 8  # states kept over the dense network's training for the frame potential (besides init and final)
ABLATED = "unstructured, smallest"  # the variant whose dense network and sparsest ticket are ablated unit by unit


class DynamicsRecipe(Recipe):
    """IMP under three pruning variants; telemetry and frame potential over training."""

    name = "dynamics"
    paper = "Understanding neural network training dynamics via pruning (seed 003)"
    figures = ("accuracy vs density per pruning variant", "weight telemetry over training",
               "frame potential per layer over training", "single-unit ablation: accuracy drop per unit")
    data = ("mnist",)
    paper_numbers = (PaperNumber("sparsest matching density (IMP, unstructured, smallest)", 0.04, S22, "density"),)
    telemetry = "10it"

    def plan(self, ctx: Context) -> list[Piece]:
        """One LotteryPlan per pruning variant; the first variant's dense network (level 0) also keeps its state at
        :data:`FP_POINTS` evenly spaced steps (the frame potential over training)."""
        from lth.stability.plan import trajectory_steps
        from lth.studies.runtime import keep_states

        cfg = QUICK if ctx.quick else FULL
        levels, reps, steps = sizes(ctx, FULL, QUICK)
        over: dict[str, Any] = {"training_steps": steps} if steps else {}
        if ctx.quick:
            ctx.sub("LeNet-300-100 on MNIST -> digits_mlp on 8x8 digits")
        pieces = []
        for name, pr in VARIANTS.items():
            lp = plan_lottery(cfg["preset"], levels, replicates=reps, root=ctx.root, data_dir=ctx.data_dir,
                              pruning=pr, **over)
            meta = {"levels": levels, "structured": pr.get("strategy") == "structured"}
            nodes = None
            if not pieces:  # the dense network keeps states over training (first in the graph: these copies win)
                dense = [n for n in lp.nodes() if n.meta.get("level") == 0 and n.meta.get("kind") != "branch"]
                total = dense[0].spec.train.training_steps.iterations(lp.spe)
                nodes = [*keep_states(dense, trajectory_steps(0, total, FP_POINTS), dense[0].spec, lp.spe),
                         *lp.nodes()]
                meta["over training"] = True
            pieces.append(Piece(name, lp, nodes=nodes, meta=meta))
        return pieces

    def measure(self, ctx: Context, pieces: list[Piece], results: dict[str, Any], ex: Any) -> dict[str, Measured]:
        """Per variant: accuracy at every level, the sparsest pruned density still within 0.2 points of dense (by
        mask density, and for the structured variant also by effective density), and the first layer's frame
        potential at init and at the end of training (dense network)."""
        import torch

        from lth.analysis.weights import frame_potential

        out: dict[str, Measured] = {}
        for p in pieces:
            if p.meta.get("over training"):
                out.update(self._frame_potential(p, results[p.label]["runs"]))
            if p.label == ABLATED:
                out.update(self._ablation(ctx, p, results[p.label]["runs"], ex))
            runs, levels = results[p.label]["runs"], p.meta["levels"]
            for lv in range(levels + 1):
                out[f"{p.label}: accuracy at level {lv}"] = Measured(accuracies(runs, level=lv),
                                                                     f"density {density_of(runs, lv):.3f}")
            key = "sparsest matching density (IMP, unstructured, smallest)" if p.label == "unstructured, smallest" \
                else f"sparsest matching density ({p.label})"
            matching = sparsest_matching(runs, levels)
            out[key] = Measured([] if matching is None else [matching],
                                "mask density of the sparsest pruned level whose mean is within 0.2 points of dense")
            if p.meta.get("structured"):
                eff = sparsest_matching(runs, levels, "effective_density")
                out[f"sparsest matching effective density ({p.label})"] = Measured(
                    [] if eff is None else [eff], "effective density (lth.prune.effective_density: the outgoing "
                    "weights of removed neurons discounted) of the same level")
            for state in ("init", "final"):
                fps = []
                for r in runs:
                    if r["level"] == 0 and r["status"] == "complete":
                        s = torch.load(r["states"][state], map_location="cpu")
                        w = next(v for k, v in s.items() if k.endswith("weight") and v.dim() > 1)
                        fps.append(frame_potential(w) / w.shape[0])
                out[f"{p.label}: frame potential / rows, first layer, {state}"] = Measured(fps, "dense network")
        return out

    @staticmethod
    def _frame_potential(piece: Piece, runs: list[dict[str, Any]]) -> dict[str, Measured]:
        """Frame potential / rows of every weight layer of the dense network at every stored state, per replicate;
        kept as ``piece.meta["frame potential"]`` (a table) and measured at init and at the end per layer."""
        import pandas as pd
        import torch

        from lth.analysis.weights import frame_potential
        from lth.store import RunDir

        rows = []
        for r in runs:
            if r["level"] != 0 or r["status"] != "complete":
                continue
            store = RunDir(r["path"])
            for name, it in sorted(store.state_iterations().items(), key=lambda kv: kv[1]):
                state = store.load_state(name)
                for layer, w in state.items():
                    if layer.endswith("weight") and w.dim() > 1:
                        rows.append({"replicate": r["replicate"], "iteration": int(it), "state": name,
                                     "layer": layer, "rows": w.shape[0],
                                     "fp_per_row": frame_potential(w.to(torch.float64)) / w.shape[0]})
        df = pd.DataFrame(rows)
        piece.meta["frame potential"] = df
        out = {}
        if df.empty:
            return out
        for layer, d in df.groupby("layer", sort=False):
            for which, it in (("init", d["iteration"].min()), ("end", d["iteration"].max())):
                out[f"frame potential / rows, {layer}, {which} (dense)"] = Measured(
                    d.loc[d["iteration"] == it, "fp_per_row"].tolist(), f"dense network, iteration {it}")
        return out

    @staticmethod
    def _ablation(ctx: Context, piece: Piece, runs: list[dict[str, Any]], ex: Any) -> dict[str, Measured]:
        """Single-unit ablation of the dense network and of the ticket at the sparsest level (per replicate, on the
        test split): per layer the mean and the largest accuracy drop; the per-unit table in ``piece.meta``."""
        import pandas as pd

        from lth.analysis.ablation import ablation_summary, unit_ablation
        from lth.store import RunDir

        spec = piece.plan.trunks[0].spec
        data = ex.dataset(spec.data)
        device = str(ex.options.torch_device()) if hasattr(ex, "options") else "cpu"
        levels = piece.meta["levels"]
        frames, out = [], {}
        for which, lv in (("dense", 0), (f"ticket, level {levels}", levels)):
            summaries = []
            for r in runs:
                if r["level"] != lv or r["status"] != "complete":
                    continue
                state = RunDir(r["path"]).load_state("final")
                df = unit_ablation(spec.model, state, data.test_x, data.test_y, example_shape=data.example_shape,
                                   num_classes=data.num_classes, device=device)
                frames.append(df.assign(network=which, replicate=r["replicate"], density=r.get("density")))
                summaries.append(ablation_summary(df))
            if not summaries:
                continue
            both = pd.concat(summaries)
            for layer, d in both.groupby("layer", sort=False):
                out[f"single-unit ablation, {which}, {layer}: mean accuracy drop"] = Measured(
                    d["mean_drop"].tolist(), "test split, each hidden unit removed in turn, no retraining")
                out[f"single-unit ablation, {which}, {layer}: largest accuracy drop"] = Measured(
                    d["max_drop"].tolist(), "test split, the unit whose removal costs most")
        piece.meta["ablation"] = pd.concat(frames) if frames else pd.DataFrame()
        return out

    def extra_tables(self, ctx: Context, pieces: list[Piece], results: dict[str, Any]) -> dict[str, Any]:
        """The frame potential per layer over training (dense network) and the single-unit ablation summary per
        network, layer and replicate."""
        from lth.analysis.ablation import ablation_summary

        out = {}
        for p in pieces:
            fp = p.meta.get("frame potential")
            if fp is not None and not fp.empty:
                out["frame potential per row, per layer over training (dense network)"] = fp
            ab = p.meta.get("ablation")
            if ab is not None and not ab.empty:
                import pandas as pd

                out["single-unit ablation per layer (accuracy drop, test split)"] = pd.concat(
                    [ablation_summary(d).assign(network=net, replicate=rep)
                     for (net, rep), d in ab.groupby(["network", "replicate"], sort=False)], ignore_index=True)
        return out

    verdict_basis = ("final test accuracy (test split) at the sparsest level, mean over the replicates, of "
                     "unstructured smallest-magnitude against largest-magnitude pruning; 'beats' is a strictly higher "
                     "mean, no margin (seed 003, section 2.1: pruning the highest-magnitude components 'can lead to "
                     "better test accuracy' after retraining; the verdict says which order holds here)")

    def verdicts(self, ctx: Context, measured: dict[str, Measured]) -> dict[str, Any]:
        """Smallest-magnitude pruning keeps accuracy at the sparsest level better than largest-magnitude."""
        lv = ctx.scale.pick("levels", (QUICK if ctx.quick else FULL)["levels"])
        s = measured[f"unstructured, smallest: accuracy at level {lv}"].mean
        g = measured[f"unstructured, largest: accuracy at level {lv}"].mean
        return {"smallest beats largest at the sparsest level": None if s is None or g is None else bool(s > g)}


def sparsest_matching(records: list[dict[str, Any]], levels: int, density: str = "density") -> float | None:
    """The ``density`` (a record field: ``density`` or ``effective_density``) of the sparsest *pruned* level whose
    mean final test accuracy is within 0.2 points of the dense network's (level 0), or None when no pruned level
    matches. *Matching* is Frankle et al.'s (ICML 2020, Fig. 9 and Table 2: within 0.2 points of the full
    network), computed by :func:`lth.analysis.verdicts.matching`; the dense network itself (density 1) never
    counts. Levels are placed at the mean of their records' ``density``."""
    import pandas as pd

    from lth.analysis.verdicts import matching

    rows = []
    for lv in range(levels + 1):
        acc = accuracies(records, level=lv)
        ds = [r[density] for r in records if r.get("level") == lv and r.get(density) is not None]
        if lv == 0 and not ds:
            ds = [1.0]
        if acc and ds:
            rows.append({"level": lv, "mean": sum(acc) / len(acc), "density": sum(ds) / len(ds)})
    table = pd.DataFrame(rows, columns=["level", "mean", "density"])
    if table.empty or not (table["level"] == 0).any():
        return None
    _, best = matching(table)
    return None if best is None else best["density"]


RECIPE = DynamicsRecipe()
