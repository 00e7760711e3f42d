"""Recipe.select (``--datasets``): which pieces of a full-scale plan it keeps, its errors, the substitution it
records, and that the data check and the measurement see only the kept pieces. Full-scale plans only build nodes
(nothing trains here); the executor is a stand-in that trains nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lth.errors import UserError
from lth.recipes import RECIPES, Context, Piece, Scale, compare


def full_ctx(tmp_path: Path, datasets: list[str] | None = None, quick: bool = False, small: bool = False) -> Context:
    """A full-scale context (``small``: 2 levels, 1 replicate; the same pieces and datasets, fewer nodes)."""
    return Context(quick=quick, root=tmp_path / "r", datasets=datasets,
                   scale=Scale(levels=2, replicates=1) if small else Scale())


@pytest.fixture(scope="module")
def full_plans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[Piece], list[list[str]]]]:
    """Each spanning recipe's full plan, once, and each piece's datasets. Listing a plan's nodes takes seconds, so
    each piece is listed once here and kept as its node list (the interface select reads: Piece.all_nodes)."""
    out = {}
    for name in ("lottery", "mode-connectivity"):
        recipe = RECIPES[name]
        planned = recipe.plan(full_ctx(tmp_path_factory.mktemp(name)))
        pieces = [Piece(p.label, nodes=p.all_nodes(), meta=p.meta) for p in planned]
        out[name] = (pieces, [sorted({n.spec.data.dataset for n in p.all_nodes()}) for p in pieces])
    return out


@pytest.mark.parametrize(("name", "mnist_labels"), [("lottery", ["lenet_300_100"]), ("mode-connectivity", ["LeNet"])])
def test_select_keeps_exactly_the_mnist_pieces(tmp_path: Path, full_plans: dict, name: str,
                                               mnist_labels: list[str]) -> None:
    recipe = RECIPES[name]
    pieces, per = full_plans[name]
    assert [p.label for p, ds in zip(pieces, per, strict=True) if ds == ["mnist"]] == mnist_labels
    assert len(pieces) > len(mnist_labels)  # the full plan spans CIFAR-10 too
    ctx = full_ctx(tmp_path, ["mnist"])
    kept = recipe.select(ctx, pieces)
    assert [p.label for p in kept] == mnist_labels
    assert all(n.spec.data.dataset == "mnist" for p in kept for n in p.all_nodes())
    left = [p.label for p in pieces if p.label not in mnist_labels]
    others = sorted({d for ds in per for d in ds} - {"mnist"})  # cifar10 (and imagenet: LMC's ImageNet rows)
    assert ctx.substitutions == [f"pieces {', '.join(left)} ({', '.join(others)}) left out (--datasets mnist)"]
    # the complement: --datasets with every other dataset keeps every other piece; all names keep all, say nothing
    assert [p.label for p in recipe.select(full_ctx(tmp_path, others), pieces)] == left
    both = full_ctx(tmp_path, [*others, "mnist"])
    assert recipe.select(both, pieces) == pieces and both.substitutions == []


def test_select_without_datasets_keeps_all(tmp_path: Path, full_plans: dict) -> None:
    pieces, _ = full_plans["lottery"]
    ctx = full_ctx(tmp_path)
    assert RECIPES["lottery"].select(ctx, pieces) == pieces and ctx.substitutions == []


def test_select_errors_name_the_flag_the_value_and_the_allowed(tmp_path: Path, full_plans: dict) -> None:
    recipe = RECIPES["lottery"]
    with pytest.raises(UserError) as e:
        recipe.select(full_ctx(tmp_path, ["mnist", "cifar100"]), full_plans["lottery"][0])
    msg = str(e.value)
    assert msg.startswith("--datasets: bad value cifar100;") and "allowed: cifar10, mnist" in msg
    assert "full scale" in msg and "\n" not in msg
    q = full_ctx(tmp_path, ["mnist"], quick=True)  # quick mode trains on digits only
    with pytest.raises(UserError) as e:
        recipe.select(q, recipe.plan(q))
    assert "bad value mnist;" in str(e.value) and "allowed: digits" in str(e.value) and "--quick" in str(e.value)


def test_select_that_leaves_no_piece(tmp_path: Path, full_plans: dict) -> None:
    """A piece that spans two datasets is kept only when both are named."""
    recipe = RECIPES["lottery"]
    pieces, _ = full_plans["lottery"]
    mixed = [Piece("both", nodes=pieces[0].all_nodes()[:1] + pieces[1].all_nodes()[:1])]
    with pytest.raises(UserError) as e:
        recipe.select(full_ctx(tmp_path, ["mnist"]), mixed)
    msg = str(e.value)
    assert msg.startswith("--datasets: bad value mnist (leaves no piece") and "both (cifar10 + mnist)" in msg
    assert recipe.select(full_ctx(tmp_path, ["mnist", "cifar10"]), mixed) == mixed


def test_estimate_counts_only_the_kept_pieces(full_plans: dict) -> None:
    recipe = RECIPES["lottery"]
    mnist, cifar = (recipe.estimate(False, datasets=d) for d in (["mnist"], ["cifar10"]))
    pieces, _ = full_plans["lottery"]
    assert mnist["runs"] == len(pieces[0].all_nodes()) and mnist["runs"] + cifar["runs"] == len(recipe.nodes(pieces))
    assert 0 < mnist["seconds"] < cifar["seconds"]  # one MLP against three conv nets


class NoTraining:
    """An executor stand-in: records what it is asked to run and trains nothing (``stop``: then raises Stop)."""

    def __init__(self, stop: bool = False) -> None:
        self.nodes: list[Any] = []
        self.stop = stop

    def run(self, nodes: list[Any]) -> list[dict[str, Any]]:
        self.nodes = list(nodes)
        if self.stop:
            raise Stop
        return [{"path": str(n.path), "status": "missing"} for n in nodes]


class Stop(Exception):
    """Raised by NoTraining(stop=True) once it has the nodes."""


def test_run_checks_only_the_kept_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lth.data.datasets as ds

    checked: list[str] = []
    monkeypatch.setattr(ds, "locate", lambda name, data_dir=None, download=True: checked.append(name))
    recipe, ex = RECIPES["lottery"], NoTraining(stop=True)
    ctx = full_ctx(tmp_path, ["mnist"], small=True)
    with pytest.raises(Stop):
        recipe.run(ctx, ex)
    assert checked == ["mnist"]  # no request for cifar10
    assert ex.nodes and {n.spec.data.dataset for n in ex.nodes} == {"mnist"}
    assert "pieces conv2, conv4, conv6 (cifar10) left out (--datasets mnist)" in ctx.substitutions


def test_lottery_without_its_lenet_piece_measures_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--datasets cifar10 leaves LeNet-300-100 out: Table 2's LeNet numbers show as not measured (n = 0), not as
    Conv-2's numbers, and the verdicts are None."""
    import lth.data.datasets as ds

    monkeypatch.setattr(ds, "locate", lambda *a, **k: None)
    recipe = RECIPES["lottery"]
    result = recipe.run(full_ctx(tmp_path, ["cifar10"], small=True), NoTraining())
    assert result.datasets == ["cifar10"]
    rows = {r["quantity"]: r for r in result.rows}
    for pn in recipe.paper_numbers:
        assert rows[pn.key]["n"] == 0 and rows[pn.key]["lth"] is None
    assert result.verdicts == {"ticket_beats_reinit": None, "ticket_beats_random_mask": None}


def test_mode_connectivity_measure_tolerates_missing_pieces(tmp_path: Path) -> None:
    recipe = RECIPES["mode-connectivity"]
    ctx = full_ctx(tmp_path)
    measured = recipe.measure(ctx, [], {}, NoTraining())
    rows = compare(recipe.paper_numbers, measured, False)
    assert rows and all(r["n"] == 0 for r in rows)
    assert recipe.verdicts(ctx, measured) == {}


def test_python_api_takes_datasets(tmp_path: Path) -> None:
    """``run_recipe(..., datasets=...)`` filters as ``--datasets`` does and says which datasets it kept."""
    from lth.errors import UserError
    from lth.recipes import Scale, run_recipe

    out = run_recipe("lottery", quick=True, root=tmp_path, datasets=["digits"],
                     scale=Scale(levels=1, replicates=1, steps="10it"))
    assert out["datasets"] == ["digits"] and Path(out["report"]).exists()
    with pytest.raises(UserError, match="--datasets"):
        run_recipe("lottery", quick=True, root=tmp_path / "b", datasets=["mnist"],
                   scale=Scale(levels=1, replicates=1, steps="10it"))


def test_estimate_counts_ancestors_and_forward_operations() -> None:
    """The estimate counts every run of the graph (a stability copy's trunk too: the 324 runs the CPU log of
    mode-connectivity --datasets mnist showed), and prices a step by the forward's counted operations."""
    from lth.recipes.base import GPU_FLOPS, GPU_OVERHEAD, forward_flops

    assert forward_flops("lenet_300_100", "batchnorm", 1.0, (1, 28, 28), 10) == 2 * (784 * 300 + 300 * 100 + 100 * 10)
    # 3 copies (9 paths) per cell, every level 0-15 (Fig. 9): 324 runs when only levels 0 and 15 had copies
    assert RECIPES["mode-connectivity"].estimate(False, datasets=["mnist"])["runs"] == 1836
    lottery = RECIPES["lottery"].estimate(False, "cuda", datasets=["mnist"])
    step = max(GPU_OVERHEAD, 3 * 2 * (784 * 300 + 300 * 100 + 100 * 10) * 60 / GPU_FLOPS)
    assert lottery["runs"] == 230 and abs(lottery["seconds"] - 230 * 50000 * step) < 1e-6
    # on the CPU a command's start and report and each run's evaluations and files count too (fitted to the quick
    # recipes' measured 8.5-16 s; the step model alone said 1.8-6.2 s)
    from lth.recipes.base import CPU_PER_RUN, CPU_START

    quick = RECIPES["lottery"].estimate(True, "cpu")
    assert quick["runs"] == 48 and quick["seconds"] > CPU_START + 48 * CPU_PER_RUN


def test_a_cpu_step_costs_at_least_its_layers() -> None:
    """On the CPU a step's floor grows with the layers (ResNet-20 x0.25 on 8x8 digits took 8.7-10 ms a network-step
    here, not the 0.3 ms of a 3-layer MLP): CPU_LAYER_OVERHEAD per prunable layer by kind, counted by hand."""
    from lth.recipes.base import CPU_LAYER_OVERHEAD, step_overhead

    convs = 1 + 3 * 3 * 2 + 2  # ResNet-20: the stem, 9 blocks of two 3x3 convs, two 1x1 shortcuts
    assert step_overhead("resnet_20", "batchnorm", 0.25, (1, 8, 8), 10) == pytest.approx(
        convs * CPU_LAYER_OVERHEAD["conv"] + CPU_LAYER_OVERHEAD["output"])
    assert step_overhead("fc_64_32", "none", 1.0, (1, 8, 8), 10) == pytest.approx(
        2 * CPU_LAYER_OVERHEAD["fc"] + CPU_LAYER_OVERHEAD["output"])
    normalization = RECIPES["normalization"].estimate(True, "cpu")["seconds"]
    assert normalization > 30  # 61-79 s measured one thread on a busy machine; 9 s by the flat 0.3 ms floor


def test_mode_connectivity_names_its_level_substitutions_per_network(tmp_path: Path) -> None:
    """Quick mode names LeNet's level and density once (no generic "4 pruning levels instead of 0"); at full scale
    --levels names the network's level against Table 1's density."""
    from lth.recipes.base import Context, Scale

    recipe = RECIPES["mode-connectivity"]
    quick = Context(quick=True, root=tmp_path, data_dir=None, scale=Scale())
    recipe.plan(quick)
    assert not any("pruning levels instead of" in s for s in quick.substitutions)
    assert any("to level 4 (density 0.410, not 0.035)" in s for s in quick.substitutions)
    full = Context(quick=False, root=tmp_path, data_dir=None, scale=Scale(levels=3))
    pieces = recipe.plan(full)
    assert pieces[0].meta["level"] == 3
    assert any(s.startswith("LeNet: level 3 (density 0.512) instead of level 15") for s in full.substitutions)


@pytest.mark.parametrize("name", list(RECIPES))
def test_every_recipe_says_what_its_verdicts_compare(name: str) -> None:
    """The report prints ``verdict_basis`` beside the verdicts: it names the data split, the runs and the rule with
    the paper's section, figure or table it follows."""
    basis = RECIPES[name].verdict_basis
    assert "test" in basis  # the split every recipe's verdicts are measured on
    assert "replicates" in basis or "pairs" in basis
    assert any(w in basis for w in ("strictly", "margin", "points", "< 0.02"))
    assert any(w in basis for w in ("section", "Fig", "Table"))


@pytest.mark.parametrize("name", ["normalization", "early-phase", "mode-connectivity"])
def test_training_steps_shorter_than_a_rewinding_step_names_training_steps(name: str, tmp_path: Path) -> None:
    """At full scale these recipes rewind to 2000it or 4000it (ResNet-20: 390 it an epoch, so 3ep = 1170it): a short
    --training-steps is refused naming it, the rewinding step and what is allowed (never the --rewind the user
    did not type), before anything is written; with --quick the recipe's own rewinds (20it / 10it) count."""
    from conftest import lth

    code, out, err = lth("recipe", name, "--training-steps", "3ep", "--root", str(tmp_path / "r"))
    assert code == 2 and out == ""
    latest = "4000it" if name == "early-phase" else "2000it"  # early-phase sweeps past 2000 (saturation)
    assert err.strip() == (f"lth: error: --training-steps 3ep: shorter than the recipe's rewinding step {latest}; "
                           f"allowed: at least {latest} (or --quick)")
    code, _, err = lth("recipe", name, "--quick", "--training-steps", "5it", "--root", str(tmp_path / "r"))
    assert code == 2 and err.strip().startswith("lth: error: --training-steps 5it: shorter than the recipe's "
                                                "rewinding step ")
    assert err.strip().endswith("it") and "--rewind" not in err
    assert not (tmp_path / "r").exists()


def test_pieces_on_image_data_run_where_the_data_is_present(tmp_path: Path) -> None:
    """A recipe's ImageNet / Tiny-ImageNet pieces are left out (said) where the data is absent, kept where it is
    present, and required (a one-line error naming the folder) when --datasets names them."""
    from lth.graph import Node
    from lth.recipes.base import Context, Piece, Recipe
    from lth.spec import DataHparams, TrainSpec
    from tests.data.image_files import write_tiny_imagenet

    def piece(label: str, dataset: str) -> Piece:
        return Piece(label, nodes=[Node(TrainSpec(DataHparams(dataset=dataset)), 0, tmp_path / label)])

    class Two(Recipe):
        name = "two"

        def plan(self, ctx: Context) -> list[Piece]:
            return [piece("small", "digits"), piece("tiny", "tiny_imagenet")]

    r = Two()
    absent = Context(quick=False, root=tmp_path, data_dir=tmp_path / "empty")
    kept = r.select(absent, r.plan(absent))
    assert [p.label for p in kept] == ["small"]
    assert len(absent.substitutions) == 1 and "pieces tiny left out: no tiny_imagenet data" in absent.substitutions[0]
    required = Context(quick=False, root=tmp_path, data_dir=tmp_path / "empty", datasets=["tiny_imagenet"])
    with pytest.raises(UserError, match=r"recipe two: tiny_imagenet: wnids.txt not found in .*empty"):
        r.check_data(r.select(required, r.plan(required)), required.data_dir)
    write_tiny_imagenet(tmp_path / "data", count=40)
    present = Context(quick=False, root=tmp_path, data_dir=tmp_path / "data")
    assert [p.label for p in r.select(present, r.plan(present))] == ["small", "tiny"]
    assert present.substitutions == []
