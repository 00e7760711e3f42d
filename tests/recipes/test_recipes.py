"""Every recipe's quick mode at a reduced scale (tiny step counts on digits), its report with the paper-vs-lth
table, the registry, the comparison rows and the missing-data message."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from lth.cli import main
from lth.recipes import RECIPES, PaperNumber, compare
from lth.recipes.base import Measured

# the reduced scale of the tests: a few iterations per run, two levels, two replicates
TINY = ["--levels", "2", "--replicates", "2", "--training-steps", "30it"]


def run_quick(name: str, root: Path, capsys: pytest.CaptureFixture, extra: list[str] = ()) -> dict:
    """``lth recipe NAME --quick --json`` at the tests' scale; the JSON document, after checking the report."""
    code = main(["recipe", name, "--quick", "--json", "--root", str(root), *TINY, *extra])
    out = capsys.readouterr().out
    assert code == 0, out
    doc = json.loads(out)
    assert doc["recipe"] == name
    report = Path(doc["report"])
    assert report.is_absolute() and report == root.resolve() / "report" / "index.html" and report.is_file()
    table = pd.read_csv(report.parent / "paper_vs_lth.csv")
    assert {"quantity", "paper", "lth", "difference", "source"} <= set(table.columns)
    page = report.read_text()
    assert "Paper vs lth" in page and "Substitutions" in page
    for row in doc["rows"]:  # accuracies are fractions; the difference is lth - paper
        if row["unit"] == "fraction" and row["lth"] is not None:
            assert 0.0 <= row["lth_min"] <= row["lth"] <= row["lth_max"] <= 1.0
        if row["paper"] is not None and row["lth"] is not None:
            assert row["difference"] == pytest.approx(row["lth"] - row["paper"])
        assert row["comparable"] is False  # quick mode never claims comparability
    assert doc["substitutions"], "quick mode must name its substitutions"
    return doc


def test_every_recipe_has_a_test() -> None:
    names = {n.removeprefix("test_quick_").replace("_", "-") for n in globals() if n.startswith("test_quick_")}
    assert set(RECIPES) <= names, f"recipes without a quick test: {sorted(set(RECIPES) - names)}"


def test_every_recipe_cites_its_numbers() -> None:
    for r in RECIPES.values():
        assert r.name and r.paper and r.figures and r.data
        for pn in r.paper_numbers:
            assert "seed 00" in pn.source, (r.name, pn)
            if pn.unit == "fraction":
                assert 0.0 <= pn.value <= 1.0, (r.name, pn)


def test_compare_rows() -> None:
    rows = compare([PaperNumber("a", 0.9, "s")], {"a": Measured([0.8, 1.0]), "b": Measured([2.0], "x")}, False)
    assert rows[0]["lth"] == pytest.approx(0.9) and rows[0]["difference"] == pytest.approx(0.0)
    assert (rows[0]["lth_min"], rows[0]["lth_max"], rows[0]["n"], rows[0]["comparable"]) == (0.8, 1.0, 2, True)
    assert rows[1]["quantity"] == "b" and rows[1]["paper"] is None and rows[1]["difference"] is None
    missing = compare([PaperNumber("c", 0.5, "s")], {}, False)[0]
    assert missing["lth"] is None and missing["n"] == 0 and missing["comparable"] is False
    # a paper number from another setup than the runs compared: named, never comparable, even at full scale
    other = compare([PaperNumber("a", 0.9, "s", setup="24K iterations, not 50K")], {"a": Measured([0.9])}, False)[0]
    assert other["comparable"] is False and other["paper_setup"] == "24K iterations, not 50K"
    assert rows[0]["paper_setup"] == ""


def test_list(capsys: pytest.CaptureFixture) -> None:
    assert main(["recipe", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["recipes"]
    assert [r["recipe"] for r in rows] == list(RECIPES)
    for r in rows:
        assert r["runs"] >= r["quick_runs"] > 0 and r["seconds"] > r["quick_seconds"] > 0
    assert main(["recipe", "list"]) == 0  # not a terminal: one block per recipe, every recipe and its runs
    text = capsys.readouterr().out
    for r in rows:
        assert f"{r['recipe']}: {r['paper']}" in text and f"runs / time (cpu): {r['runs']} / ~" in text


def test_bad_name_and_missing_data(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["recipe", "nope"]) == 2
    assert "allowed: lottery" in capsys.readouterr().err
    empty = tmp_path / "data"
    empty.mkdir()
    assert main(["recipe", "lottery", "--data-dir", str(empty), "--root", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(empty) in err and "files not found" in err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("spec.json"))  # nothing trained


def test_quick_lottery(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    doc = run_quick("lottery", tmp_path / "r", capsys)
    rows = {r["quantity"]: r for r in doc["rows"]}
    assert rows["IMP ticket accuracy at 3.5% density"]["n"] == 2
    assert set(doc["verdicts"]) == {"ticket_beats_reinit", "ticket_beats_random_mask"}
    page = Path(doc["report"]).read_text()
    assert "What the verdicts compare: final test accuracy" in page and "Frankle &amp; Carbin ICLR 2019" in page
    # the density the substitution names is the one measured (the output layer prunes at half rate: not 0.8^L)
    level = rows["IMP ticket accuracy at 3.5% density"]["how"]
    assert level == "digits_mlp, level 2 (density 0.648)"  # TINY: 2 levels; 0.8 ** 2 would say 0.640
    assert "the sparsest level is level 2 (its measured density is in the rows" in page and "0.640" not in page
    # Table 2's numbers come from the LMC setup (24K iterations, global), not F&C's the recipe runs: said per row
    from lth.recipes.lottery import TABLE2_SETUP

    for key in ("dense accuracy (LeNet-300-100)", "IMP ticket accuracy at 3.5% density",
                "random pruning (random-mask) accuracy at 3.5% density",
                "random reinitialisation accuracy at 3.5% density"):
        assert rows[key]["paper_setup"] == TABLE2_SETUP and rows[key]["comparable"] is False
    assert "24K iterations" in TABLE2_SETUP and "50K iterations" in TABLE2_SETUP
    assert any("Table 2's LeNet numbers" in sub for sub in doc["substitutions"])
    table = pd.read_csv(Path(doc["report"]).parent / "paper_vs_lth.csv")
    assert (table[table["paper"].notna()]["paper_setup"] == TABLE2_SETUP).all()


def test_quick_ticket_distribution(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    doc = run_quick("ticket-distribution", tmp_path / "r", capsys)
    rows = {r["quantity"]: r for r in doc["rows"]}
    assert rows["FC-1 full: max average accuracy"]["paper"] == pytest.approx(0.9068)
    assert rows["FC-1 full: max average accuracy"]["n"] == 1  # the maximum of the average over replicates
    assert rows["FC-1 ticket level 2: min average training loss"]["lth"] > 0


def test_quick_mode_connectivity(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    doc = run_quick("mode-connectivity", tmp_path / "r", capsys)
    rows = {r["quantity"]: r for r in doc["rows"]}
    assert rows["LeNet: IMP"]["paper"] == pytest.approx(0.982) and rows["LeNet: IMP"]["n"] == 4  # 2 reps x 2 copies
    inst = [r for q, r in rows.items() if "test instability" in q]
    assert inst and all(r["lth_min"] >= -1e-9 for r in inst)  # the barrier is never below the end points' mean
    assert "LeNet: IMP matching at k=0" in doc["verdicts"]


def test_quick_sanity_checks(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    doc = run_quick("sanity-checks", tmp_path / "r", capsys)
    rows = {r["quantity"]: r for r in doc["rows"]}
    assert rows["pretrain lr 0.1: IMP ticket at ticket lr 0.15"]["paper"] == pytest.approx(0.867)
    for lr, lts in ((0.01, (0.001, 0.005, 0.01, 0.05)), (0.1, (0.01, 0.05, 0.1, 0.15))):
        for lt in lts:  # OMP at every ticket lr of Table 4, beside IMP
            omp = rows[f"pretrain lr {lr}: OMP ticket at ticket lr {lt}"]
            assert omp["n"] == 2 and omp["paper"] is not None
        for sub in ("IMP", "OMP"):  # Fig. 4: IMP's and OMP's contours side by side
            contour = rows[f"pretrain lr {lr}: loss contour, smallest test error on the plane ({sub})"]
            assert contour["n"] == 2 and 0.0 <= contour["lth_min"] <= 1.0
        for what in ("reinit", "small dense", "dense"):  # what the jackpot verdict compares at every ticket lr
            assert all(rows[f"pretrain lr {lr}: {what} at ticket lr {lt}"]["n"] == 2 for lt in lts), what
        assert rows[f"pretrain lr {lr}: dense trained twice as long at the pretraining lr"]["n"] == 2
    # the dense network at a ticket rate is retrain at level 0 from the trunk's init: at 0.01 it is the other
    # pretraining run (the quick presets are one network), bit for bit on CPU
    assert rows["pretrain lr 0.1: dense at ticket lr 0.01"]["lth"] == pytest.approx(
        rows["pretraining accuracy, lr 0.01"]["lth"], abs=1e-12)
    # the ticket's density is measured (layer-wise: the output layer prunes at half rate, so not 0.8^level) and is
    # what the rows name and jackpot's condition [1] reads
    dens = rows["pretrain lr 0.1: ticket density"]["lth"]
    how = rows["pretrain lr 0.1: IMP ticket at ticket lr 0.1"]["how"]
    level = int(how.split(",")[0].removeprefix("level "))
    assert dens > 0.8 ** level + 0.005 and how.startswith(f"level {level}, density {dens:.3f}"), how
    from lth.recipes.sanity_checks import RESIDUAL

    residual = doc["verdicts"].pop(RESIDUAL)  # Figs. 4-5: IMP vs OMP with and without residual connections
    assert residual["IMP beats OMP with residual connections (Figs. 4-5)"] in (True, False)
    assert all(x is not None for x in residual["IMP minus OMP (with, without residual connections)"])
    for v in doc["verdicts"].values():
        assert v["grade"] in ("jackpot", "secondary prize", "no prize")
        assert v["IMP beats OMP (best of each sweep)"] in (True, False)
        assert len(v["per ticket lr"]) == 4 and v["best ticket lr"] in {float(k) for k in v["per ticket lr"]}
    # OMP's runs at another rate than the pretraining one train at it; at the pretraining rate, the plain branch
    specs = [json.loads(p.read_text()) for p in (tmp_path / "r").rglob("branch_oneshot_*/level_*/spec.json")]
    # quick rates: Table 4's times 0.1 (digits_mlp's Adam 1e-3 / 1e-2 stand for 0.01 / 0.1)
    assert sorted({s["train"]["lr"] for s in specs}) == pytest.approx([1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 1.5e-2])
    assert len(specs) == 8 * 2  # 8 (pretraining, ticket) rates x 2 replicates, OMP at each
    contours = pd.read_csv(Path(doc["report"]).parent / "recipe_loss contours.csv")
    # IMP and OMP x (2 rates x 2 replicates + the two small ResNets' one replicate each)
    assert len(contours) == 2 * (2 * 2 + 2) and all(Path(f).is_file() for f in contours["figure"])
    assert set(contours["subnetwork"]) == {"IMP", "OMP"}
    for name in ("with residual connections", "without residual connections"):
        assert rows[f"{name}: OMP copies' accuracy (contour runs)"]["n"] == 2  # one replicate, two copies


def test_quick_normalization(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    doc = run_quick("normalization", tmp_path / "r", capsys)
    row = doc["rows"][0]
    assert row["paper"] == pytest.approx(0.015) and row["n"] == 2 * 3  # 2 rewinds x 3 levels (0..2)
    rows = {r["quantity"]: r for r in doc["rows"]}
    # WeightNorm beside BatchNorm and Fixup (at the BatchNorm recipe's SGD 0.1 a WeightNorm run can diverge: seen
    # once in two replicates at this scale, so its rows may hold fewer values)
    assert 1 <= rows["WeightNorm accuracy, k = 20it, level 2"]["n"] <= 2
    for norm in ("BatchNorm", "Fixup"):  # erratic: every run's spread, every (rewind, replicate) curve
        assert rows[f"{norm}: spread of test accuracy over the last 5 evaluations"]["n"] == 2 * 2 * 3
        assert rows[f"{norm}: level-to-level fluctuation of accuracy"]["n"] == 2 * 2
    assert 1 <= rows["WeightNorm: spread of test accuracy over the last 5 evaluations"]["n"] <= 2 * 2 * 3
    assert doc["verdicts"]["Fixup more erratic than BatchNorm (spread over the last evaluations)"] in (True, False)


def test_quick_early_phase(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # 60it: the quick sweep rewinds to 40it (the stand-in for k = 4000, past the saturation point)
    doc = run_quick("early-phase", tmp_path / "r", capsys, ["--training-steps", "60it"])
    assert not any("not yet" in s for s in doc["substitutions"])
    rows = {r["quantity"]: r for r in doc["rows"]}
    d = "level 2"  # the perturbation level at the tests' 2 levels; K = 10it
    plain = rows[f"ticket rewound to 10it, no pretraining, {d}"]
    # the measured density (digits_mlp prunes its output layer at half rate: 0.648 at level 2, not 0.8^2)
    assert plain["how"] == "density 0.648" and rows[f"pretrain blur for 320it: ticket, {d}"]["how"].startswith(
        "density 0.648; rewound to 10it; paper")
    for task in ("standard", "random-labels", "rotation", "blur", "rotation+blur"):
        e = "10it" if task == "standard" else "320it"  # the control pretrains for K, the others for E = 32 K
        t = rows[f"pretrain {task} for {e}: ticket, {d}"]
        assert t["n"] == 2 and 0.0 <= t["lth_min"] <= 1.0
        assert rows[f"pretrain {task} for {e}: accuracy on its own task"]["n"] == 2
        v = doc["verdicts"][f"pretrain {task}, {d}"]
        assert v["beats rewinding to 0"] in (True, False) and v["paper"]
    # the control: standard pretraining for K steps is the state at K itself (bit for bit on CPU)
    assert rows[f"pretrain standard for 10it: ticket, {d}"]["lth"] == pytest.approx(plain["lth"], abs=1e-12)
    assert doc["verdicts"][f"pretrain standard, {d}"]["equals rewinding to k (control)"] is True
    r = rows["Pearson r, effective std vs accuracy, k = 500"]
    assert r["lth"] is None or -1.0 <= r["lth"] <= 1.0
    # the sweep past the saturation point (20it stands for k = 2000): its gain and the verdict
    assert all(rows[f"ticket accuracy, k = {k}"]["n"] == 2 for k in ("0it", "10it", "20it", "40it"))
    gain = rows["gain of rewinding past k = 20it"]["lth"]
    assert gain == pytest.approx(rows["ticket accuracy, k = 40it"]["lth"] - rows["ticket accuracy, k = 20it"]["lth"])
    assert doc["verdicts"]["rewinding saturates by k = 20it"] is (gain <= 0.002)
    # Figs. 4-7: every perturbation at every level and both k, from the store (13 perturbations x 2 k x 2 levels x
    # 2 replicates), beside the unperturbed ticket
    curves = pd.read_csv(Path(doc["report"]).parent / "recipe_perturbation curves.csv")
    perturbed = curves[curves["branch"].notna()]
    assert len(perturbed) == 13 * 2 * 2 * 2 and perturbed["perturbation"].nunique() == 13
    assert set(perturbed["k"]) == {"10it", "20it"} and set(perturbed["level"]) == {1, 2}
    assert set(curves[curves["branch"].isna()]["perturbation"]) == {"none (the ticket)"}
    noise = perturbed[perturbed["branch"] == "noise"].groupby("perturbation")["effective_std"].mean()
    assert noise["noise noise_scale=3.0"] > noise["noise noise_scale=1.0"] > noise["noise noise_scale=0.5"] > 0
    for k, paper_k in (("10it", "500"), ("20it", "2000")):  # Fig. 8 at the 26.2% level: one row per perturbation
        assert rows[f"noise noise_scale=2.0: accuracy, k = {k}"]["n"] == 2
        fig8 = rows[f"Pearson r, effective std vs accuracy, k = {paper_k}"]
        assert fig8["lth"] is None or "13 perturbations" in fig8["how"]  # the perturbations only, not the ticket
    assert not any(q.startswith("none (the ticket)") for q in rows)


def test_early_phase_plan_holds_the_papers_runs(tmp_path: Path) -> None:
    """Full scale, planned only: the sweep's trunks at k = 0..4000 (past 2000); at k = 500 and 2000, every
    perturbation of Figs. 4-7 (3 sign swaps, 6 shuffles, noise at 4 n) at every level 1..6 and replicate; five
    pretraining tasks rewound to 500it, all but the control pretrained for 40 epochs."""
    from lth.recipes.base import Context
    from lth.recipes.early_phase import RECIPE

    pieces = RECIPE.plan(Context(quick=False, root=tmp_path))
    sweep = next(p for p in pieces if p.label == "rewinding sweep").plan
    assert sorted(str(t.rewind) for t in sweep.trunks) == sorted(["0it", "100it", "500it", "1000it", "2000it",
                                                                   "4000it"])
    have: dict[tuple, int] = {}
    for p in pieces:
        if "set" in p.meta:
            for n in p.plan.branch_nodes():
                name, o = n.meta["branch"], p.plan.branches[n.meta["branch"]]
                opts = tuple(sorted((f, getattr(o, f)) for f in ("signs_from", "magnitudes_from", "shuffle_within",
                                                                   "same_sign", "noise_scale") if hasattr(o, f)))
                key = (name, opts, n.meta["rewind"], n.meta["level"], n.replicate)
                have[key] = have.get(key, 0) + 1
    perturbations = {(k[0], k[1]) for k in have}
    assert len(perturbations) == 3 + 6 + 4 and all(v == 1 for v in have.values())
    assert {dict(o)["noise_scale"] for b, o in perturbations if b == "noise"} == {0.5, 1.0, 2.0, 3.0}
    assert {(dict(o)["shuffle_within"], dict(o)["same_sign"]) for b, o in perturbations if b == "shuffle"} == {
        (w, s) for w in ("layer", "unit", "network") for s in (False, True)}
    assert len(have) == 13 * 2 * 6 * 3  # perturbations x k x levels x replicates
    assert {k[2] for k in have} == {"500it", "2000it"} and {k[3] for k in have} == set(range(1, 7))
    pre = {p.meta["task"]: p.plan for p in pieces if "task" in p.meta}
    assert set(pre) == {"standard", "random-labels", "rotation", "blur", "rotation+blur"}
    for task, plan in pre.items():
        assert [str(t.rewind) for t in plan.trunks] == ["500it"]
        length = {str(n.spec.train.training_steps) for n in plan.pretrain_nodes() if n.meta["role"] == "pretrain"}
        assert length == {"500it" if task == "standard" else "40ep"}, task
    assert not any(tmp_path.iterdir())  # planning writes nothing


def test_quick_weight_correlation(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    doc = run_quick("weight-correlation", tmp_path / "r", capsys)
    rows = {r["quantity"]: r for r in doc["rows"]}
    r = rows["R_p(init, trained), lr 0.01, p = 0.1"]
    assert r["n"] == 2 and 0.0 <= r["lth_min"] <= r["lth_max"] <= 1.0
    for lr in (0.01, 0.1):  # Fig. 6: pruning & fine-tuning, the ticket and reinit at the sparsest level (2)
        for name in ("pruning & fine-tuning", "ticket", "random reinit"):
            assert rows[f"{name} accuracy, lr {lr}, level 2"]["n"] == 2
            rp = rows[f"{name}: R_0.1(theta_0, trained), lr {lr}, level 2"]
            assert rp["n"] == 2 and 0.0 <= rp["lth_min"] <= rp["lth_max"] <= 1.0
        assert doc["verdicts"][f"fine-tuning beats the ticket, lr {lr}"] in (True, False)
    # the ticket starts from theta_0 itself: more of its top 10% survives training than of a fresh draw's
    assert (rows["ticket: R_0.1(theta_0, trained), lr 0.01, level 2"]["lth"]
            > rows["random reinit: R_0.1(theta_0, trained), lr 0.01, level 2"]["lth"])
    # the R_p rows name the length they measured, and that it is not the paper's 150 epochs
    assert "30it of training (the paper's 150ep: a substitution)" in r["how"]
    # Fig. 6c: one-shot masks at each level's density (0.8, 0.64) with the three starts, beside the iterative ones
    for lr in (0.01, 0.1):
        for d in ("0.8", "0.64"):
            for name in ("pruning & fine-tuning", "ticket", "random reinit"):
                assert rows[f"one-shot {name} accuracy, lr {lr}, density {d}"]["n"] == 2
        assert doc["verdicts"][f"one-shot: fine-tuning beats the ticket, lr {lr}"] in (True, False)
    fig6 = pd.read_csv(Path(doc["report"]).parent / "recipe_accuracy by mask, Fig. 6 (a: iterative, c: one-shot).csv")
    assert set(fig6["pruning"]) == {"iterative", "one-shot"} and set(fig6["n"]) == {2}
    assert len(fig6) == 2 * 2 * 2 * 3  # rates x (iterative, one-shot) x densities x series


def test_quick_dynamics(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    doc = run_quick("dynamics", tmp_path / "r", capsys)
    rows = {r["quantity"]: r for r in doc["rows"]}
    fp = rows["unstructured, smallest: frame potential / rows, first layer, init"]
    assert fp["n"] == 2 and fp["lth_min"] >= 1.0  # FP >= n rows: at least 1 per row
    mask_d = rows["sparsest matching density (structured (neurons, L1))"]
    eff_d = rows["sparsest matching effective density (structured (neurons, L1))"]
    assert mask_d["n"] == eff_d["n"] and mask_d["n"] in (0, 1)
    if eff_d["n"]:  # removed neurons' outgoing weights stay in the mask: the effective density is not above it
        assert 0.0 < eff_d["lth"] <= mask_d["lth"] < 1.0
    # single-unit ablation of the dense network and the sparsest ticket: one drop per replicate and hidden layer
    for which in ("dense", "ticket, level 2"):
        for layer in ("layers.0", "layers.1"):
            mean = rows[f"single-unit ablation, {which}, {layer}: mean accuracy drop"]
            top = rows[f"single-unit ablation, {which}, {layer}: largest accuracy drop"]
            assert mean["n"] == top["n"] == 2 and top["lth_max"] >= mean["lth_max"] and top["lth_max"] <= 1.0
    # frame potential per layer over training: init, 8 kept steps, final, for each weight layer and replicate
    fp = pd.read_csv(Path(doc["report"]).parent / "recipe_frame potential per row, per layer over training (dense "
                     "network).csv")
    assert fp.groupby(["replicate", "layer"]).size().eq(10).all() and fp["layer"].nunique() == 3
    assert (fp["fp_per_row"] >= 1.0 - 1e-9).all()


def test_mode_connectivity_matching_verdict_reproduces_table2(tmp_path: Path) -> None:
    """Fed the paper's own Table 2 deltas, the verdict gives Table 2's "IMP Matching?" column (seed 002): a delta
    of exactly 0.2 points (VGG-16 Warmup) is matching, 2.8 / 3.2 points are not, a negative delta is."""
    from lth.recipes.base import Context
    from lth.recipes.mode_connectivity import RECIPE, TABLE2

    paper = {"LeNet": True, "ResNet-20": False, "ResNet-20 Low": True, "ResNet-20 Warmup": True, "VGG-16": False,
             "VGG-16 Low": True, "VGG-16 Warmup": True, "ResNet-50": False, "Inception-v3": False}
    measured = {f"{net}: delta (full - IMP)": Measured([row[2] - row[3]]) for net, row in TABLE2.items()}
    verdicts = RECIPE.verdicts(Context(quick=False, root=tmp_path), measured)
    assert {net: verdicts[f"{net}: IMP matching at k=0"] for net in TABLE2} == paper


def test_early_phase_fig8_correlation_is_over_perturbation_means() -> None:
    """Fig. 8 (Frankle, Schwab & Morcos): one point per perturbation, accuracy averaged over seeds. The runs below
    scatter (their own r is about -0.63) but the perturbations' means lie on a falling line: r = -1."""
    import numpy as np

    from lth.recipes.early_phase import fig8_correlation

    runs = [("a", 0.1, 0.9), ("a", 0.1, 0.7), ("b", 0.2, 0.8), ("b", 0.2, 0.6), ("c", 0.3, 0.7), ("c", 0.3, 0.5)]
    per_run = float(np.corrcoef([s for _, s, _ in runs], [a for _, _, a in runs])[0, 1])
    assert per_run > -0.7
    assert fig8_correlation(runs) == pytest.approx(-1.0)
    assert fig8_correlation(runs[:4]) is None  # two perturbations make no correlation


def _rec(level: int, acc: float, density: float, effective: float | None = None) -> dict:
    rec = {"level": level, "final_test_accuracy": acc, "density": density, "status": "complete"}
    if effective is not None:
        rec["effective_density"] = effective
    return rec


def test_dynamics_sparsest_matching_is_a_pruned_level_within_0_2_points() -> None:
    """Dense mean 0.96: level 1 (0.959, 0.2 points is 0.958) matches, level 2 (0.950) does not, level 3 (0.9585)
    matches again, so the sparsest matching level is 3 (mask density 0.512, effective 0.4). When no pruned level
    matches the answer is None, never the dense network's own density 1."""
    from lth.recipes.dynamics import sparsest_matching

    recs = [_rec(0, 0.95, 1.0), _rec(0, 0.97, 1.0), _rec(1, 0.959, 0.8, 0.7), _rec(1, 0.959, 0.8, 0.7),
            _rec(2, 0.95, 0.64, 0.5), _rec(3, 0.9585, 0.512, 0.4)]
    assert sparsest_matching(recs, 3) == pytest.approx(0.512)
    assert sparsest_matching(recs, 3, "effective_density") == pytest.approx(0.4)
    assert sparsest_matching(recs, 2) == pytest.approx(0.8)
    below = [_rec(0, 0.96, 1.0), _rec(1, 0.957, 0.8), _rec(2, 0.90, 0.64)]
    assert sparsest_matching(below, 2) is None


def test_normalization_verdicts_matching_at_k0_and_rewinding() -> None:
    """Siswanto, Frankle & Carbin (section 3): at k = 0 the sparsest ticket is not matching (more than 0.2 points
    under dense); a later rewinding point does better. BatchNorm here: dense 0.90, k = 0 ticket 0.85 (not
    matching), k = 20it 0.89 (helps). Fixup: dense 0.88, k = 0 ticket 0.878 (exactly 0.2 points under: matching,
    so the claim fails), k = 20it 0.87 (does not help)."""
    from lth.recipes.base import Context, Scale
    from lth.recipes.normalization import RECIPE, not_matching

    ctx = Context(quick=True, root=Path("."), scale=Scale(levels=2))
    vals = {("BatchNorm", "0it", 0): 0.90, ("BatchNorm", "0it", 2): 0.85, ("BatchNorm", "20it", 2): 0.89,
            ("Fixup", "0it", 0): 0.88, ("Fixup", "0it", 2): 0.878, ("Fixup", "20it", 2): 0.87}
    measured = {f"{n} accuracy, k = {k}, level {lv}": Measured([v]) for (n, k, lv), v in vals.items()}
    v = RECIPE.verdicts(ctx, measured)
    assert v["BatchNorm: no matching subnetwork at k = 0it at the sparsest level"] is True
    assert v["Fixup: no matching subnetwork at k = 0it at the sparsest level"] is False
    assert v["BatchNorm: later rewinding helps at the sparsest level"] is True
    assert v["Fixup: later rewinding helps at the sparsest level"] is False
    assert not_matching(0.8779, 0.88) and not not_matching(0.878, 0.88)
