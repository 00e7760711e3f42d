"""The recipe study (``lth.studies.recipe``) and the recipes' lottery plans built by the library
(``lth.recipes.base.plan_lottery``): typed options from strings and Python values, errors named per face, the
Python face's document equal to ``lth recipe NAME --json``'s, and every recipe's planned nodes (paths and
digests) pinned to those planned through ``lth.api.lottery`` before the recipes stopped importing the API."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import lth

import lth.api as api
from lth.errors import UserError
from lth.graph import closure
from lth.recipes import RECIPES, Context, Scale
from lth.recipes.base import plan_lottery
from lth.spec import Step
from lth.studies.recipe import (
    RecipeOptions,
    recipe,
    recipe_root,
    run_demo,
    run_recipe,
)
from lth.studies.runtime import RUNTIME_KEYWORDS, RuntimeOptions, runtime_from_keywords


def digest(nodes: list) -> str:
    """16 hex digits of every node's path and digest, ancestors included, in plan order."""
    rows = [[n.path.as_posix(), n.digest] for n in closure(nodes)]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


# (recipe, quick) -> (nodes, digest) at the recipe's own scale under root /R: computed on main before this change,
# where every recipe planned its lotteries through lth.api.lottery
RECIPE_PLANS = {
    ("lottery", True): (48, "f7e9316fbcae2849"), ("lottery", False): (920, "12fa42702f96eda2"),
    # normalization: WeightNorm beside BatchNorm and Fixup (#33)
    ("normalization", True): (48, "3977b109fe2b5d68"), ("normalization", False): (198, "95fa92352ea732d2"),
    # early-phase: re-pinned for #33 (the sweep to 4000it, 13 perturbations at every level, pretraining for E)
    ("early-phase", True): (338, "847e042984d5e19e"), ("early-phase", False): (972, "1d1296f40e4f0265"),
    # mode-connectivity: copies at every level (Fig. 9, #33) and LMC Table 2's ImageNet rows at k = 0 (#30)
    ("mode-connectivity", True): (120, "3deba8b2d9e8592f"), ("mode-connectivity", False): (11850, "adc3adbb16ecb711"),
    # re-pinned for #33: sanity-checks' OMP contours and residual pair, weight-correlation's one-shot densities at
    # 150 epochs, dynamics' states for the frame potential over training
    # sanity-checks full: + Table 2's Tiny-ImageNet row (#30; its 554 CIFAR nodes unchanged: 08789e56753b8a45)
    ("sanity-checks", True): (288, "5983ca04cfd30df6"), ("sanity-checks", False): (610, "9be70805fe38982f"),
    ("weight-correlation", True): (340, "b49a6c30805caef6"), ("weight-correlation", False): (1060, "6e0194b15f2f02c4"),
    ("ticket-distribution", True): (45, "772a8ce532509bda"), ("ticket-distribution", False): (150, "e8eb53fefd42b25e"),
    ("dynamics", True): (36, "4a03440235e6877e"), ("dynamics", False): (144, "c3cc39cb1f8271a9"),
}


@pytest.mark.parametrize(("name", "quick"), list(RECIPE_PLANS), ids=[f"{n}-{'quick' if q else 'full'}"
                                                                      for n, q in RECIPE_PLANS])
def test_every_recipe_plans_the_nodes_it_planned_through_the_api(name: str, quick: bool) -> None:
    ctx = Context(quick=quick, root=Path("/R"), data_dir=None, scale=Scale())
    rows = [[n.path.as_posix(), n.digest] for p in RECIPES[name].plan(ctx) for n in closure(p.all_nodes())]
    assert len(rows) == RECIPE_PLANS[name, quick][0]
    assert hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16] == RECIPE_PLANS[name, quick][1]


# plan_lottery keyword sets -> (nodes, digest): equal to lth.api.lottery's plans of the same keywords on main
LOTTERIES = [
    (("digits_mlp", 2), {"replicates": 2, "branches": ["reinit", "random-mask"], "training_steps": "10it"},
     (14, "13fffad4ccd18b97")),
    (("digits_mlp", 1), {"rewind": ["0it", "5it"], "training_steps": "20it",
                         "pruning": {"fraction": "0.3", "ignore": ["layers.0.weight"], "strategy": "global"}},
     (4, "5c43834923359e7a")),
    # re-pinned for #33: rotation trunks record their per-presentation rotations (was b648a45c6f7369bd)
    (("digits_mlp", 2), {"pretrain_steps": "5it", "pretrain_task": "rotation", "training_steps": "20it"},
     (5, "749d84647176af45")),
    (("digits_mlp", 2), {"branches": {"retrain": {"set": ["lr=0.05"]}, "reinit": {}}, "branch_levels": [2],
                         "training_steps": "1ep"}, (5, "1f56db97daf4d28b")),
    (("lenet_300_100", 3), {"branches": ["dn-reinit", "remask"], "branch_levels": [1, 3]}, (8, "334f99b4157ee1da")),
]


@pytest.mark.parametrize(("args", "kw", "want"), LOTTERIES)
def test_plan_lottery_plans_what_the_api_planned(args: tuple, kw: dict, want: tuple[int, str]) -> None:
    nodes = plan_lottery(*args, root=Path("/R"), **kw).nodes()
    assert (len(closure(nodes)), digest(nodes)) == want


def test_plan_lottery_refuses_bad_settings_naming_them() -> None:
    with pytest.raises(UserError, match=r"pruning: unknown option 'fracton' \(did you mean 'fraction'\?\)"):
        plan_lottery("digits_mlp", 1, root="/R", pruning={"fracton": 0.3})
    with pytest.raises(UserError, match=r"^--set milestones=5ep: after the end of training"):
        plan_lottery("digits_mlp", 1, root="/R", branches={"retrain": {"set": ["milestones=5ep"]}},
                     training_steps="3ep")
    with pytest.raises(UserError) as e:
        plan_lottery("digits_mlp", 1, root="/R", rewind=["0it", "5it"], pretrain_steps="3it")
    assert str(e.value).startswith("--rewind 0it 5it: with --pretrain-steps 3it the rewind step is 3it")


def test_options_parse_strings_and_python_values() -> None:
    cli = RecipeOptions.from_values({"name": "lottery", "quick": "true", "levels": "2", "training_steps": "10it",
                                     "datasets": ["digits"]})
    py = RecipeOptions.from_values(name="lottery", quick=True, levels=2, training_steps="10it", datasets="digits")
    assert cli == py and py.training_steps == Step.parse("10it") and py.datasets == ("digits",)
    assert py.scale() == Scale(levels=2, replicates=None, steps="10it")
    assert RecipeOptions.from_values(name="list").datasets is None


@pytest.mark.parametrize(("values", "cli", "python"), [
    ({"name": "lotery"}, "recipe: unknown name 'lotery'; allowed: lottery, ", "recipe: unknown name 'lotery'"),
    ({"name": "x", "levels": -1}, "--levels: bad value -1; allowed: a whole number >= 1", "levels: bad value -1"),
    ({"name": "list", "datasets": ["mnist"]}, "--datasets: bad value mnist with 'list'; allowed: with a recipe NAME",
     "datasets: bad value mnist with 'list'"),
    ({"name": "lottery", "training_steps": "abc"}, "--training-steps: bad step 'abc'", "training_steps: bad step"),
])
def test_bad_options_name_the_field_per_face(values: dict, cli: str, python: str) -> None:
    with pytest.raises(UserError) as e:
        RecipeOptions.from_values(values)
    assert str(e.value).startswith(cli) and e.value.for_face("api").render().startswith(python)


def test_python_keywords_suggest_and_render_for_python(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^recipe: unknown keyword argument 'quik' \(did you mean 'quick'\?\); "
                                        r"allowed: address, "):
        api.recipe("lottery", quik=True)
    with pytest.raises(UserError, match=r"^save_states 5it: lth recipe keeps the states its study needs; allowed: "
                                        r"save_states with lth train"):
        api.recipe("normalization", quick=True, save_states=["5it"], root=tmp_path / "r")
    with pytest.raises(UserError, match=r"^training_steps 3ep: shorter than the recipe's rewinding step 2000it; "
                                        r"allowed: at least 2000it \(or quick\)$"):
        api.recipe("normalization", training_steps="3ep", root=tmp_path / "r")
    with pytest.raises(UserError, match=r"^datasets: bad value cifar; allowed: digits \(the datasets of recipe "
                                        r"normalization with quick\)$"):
        api.recipe("normalization", quick=True, datasets=["cifar"], root=tmp_path / "r")
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("spec.json"))


def test_runtime_keywords_are_the_fields_and_the_flags_without_dashes() -> None:
    assert {"address", "slurm_time", "executor", "retries", "device", "save_states", "ray", "slurm"} <= set(
        RUNTIME_KEYWORDS)
    assert runtime_from_keywords({"executor": "slurm", "slurm_time": "1:00"}).executor.slurm.time == "1:00"
    flat = runtime_from_keywords({"executor": "ray", "address": "auto", "device": "cpu"})
    nested = runtime_from_keywords({"executor": {"kind": "ray", "ray": {"address": "auto"}}, "device": "cpu"})
    assert flat == nested and flat.executor.ray.address == "auto" and isinstance(flat, RuntimeOptions)
    with pytest.raises(UserError, match="address"):
        runtime_from_keywords({"address": "auto"})  # a Ray field with the local executor


def test_the_default_store_is_the_recipes_own(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("LTH_ROOT", raising=False)
    assert recipe_root(RecipeOptions.from_values(name="lottery", quick=True)) == str(Path("runs") / "lottery-quick")
    monkeypatch.setenv("LTH_ROOT", str(tmp_path))
    assert recipe_root(RecipeOptions.from_values(name="dynamics")) == str(tmp_path / "dynamics")


def test_the_python_face_equals_the_cli_document(tmp_path: Path) -> None:
    root = tmp_path / "r"
    argv = ["recipe", "lottery", "--quick", "--levels", "1", "--replicates", "1", "--training-steps", "5it",
            "--root", str(root), "--json"]
    code, out, err = lth(*argv)
    assert code == 0, err
    doc = json.loads(out)
    assert list(doc) == ["recipe", "report", "verdicts", "verdict_basis", "rows", "substitutions", "seconds",
                         "datasets"]
    mine = api.recipe("lottery", quick=True, levels=1, replicates=1, training_steps="5it", root=root)
    assert {k: v for k, v in mine.items() if k != "seconds"} == {k: v for k, v in doc.items() if k != "seconds"}
    typed = run_recipe(RecipeOptions.from_values(name="lottery", quick=True, levels=1, replicates=1,
                                                 training_steps="5it"),
                       RuntimeOptions.from_values(root=str(root)), progress=False)
    assert typed.frame()["quantity"].tolist() == [r["quantity"] for r in doc["rows"]]
    listed = recipe("list")
    assert [r["recipe"] for r in listed["recipes"]] == list(RECIPES)


def test_the_demo_study_equals_the_command(tmp_path: Path) -> None:
    code, out, err = lth("demo", "--root", str(tmp_path), "--levels", "1", "--replicates", "1", "--training-steps",
                         "4it", "--json")
    assert code == 0, err
    doc = json.loads(out)
    result = run_demo(1, 1, "4it", runtime=RuntimeOptions.from_values(root=str(tmp_path), threads=1),
                      progress=False)
    mine = result.to_json()
    assert {k: v for k, v in mine.items() if k != "seconds"} == {k: v for k, v in doc.items() if k != "seconds"}
    assert (result.dataset, result.test_examples, result.replicates) == ("digits", 297, 1)
    with pytest.raises(UserError, match=r"^--data-dir '.*none': no such directory"):
        run_demo(runtime=RuntimeOptions.from_values(root=str(tmp_path), data_dir=str(tmp_path / "none")))
