"""The Hessian study (``lth.studies.hessian``): typed options parsed from strings and Python values with the
CLI's and Python's names in errors, the Python face's result equal to ``lth hessian --json``, warnings named per
face, and torch's thread count left as it was."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import lth

import lth.api as api
from lth.errors import UserError
from lth.studies.hessian import HessianOptions, find_runs, group_members, hessian, print_warning, run_hessian
from lth.studies.runtime import RuntimeOptions


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hessian_study")
    code, _, err = lth("train", "--preset", "digits_mlp", "--model", "fc_8", "--training-steps", "6it",
                       "--save-states", "3it", "--replicates", "2", "--root", str(root))
    assert code == 0, err
    return root


def test_options_parse_strings_and_python_values() -> None:
    assert HessianOptions.from_values({"k": "3", "iters": "7", "steps": "init,3it"}) == \
        HessianOptions.from_values(k=3, iters=7, steps=["init", "3it"])
    o = HessianOptions()
    assert (o.steps, o.k, o.which, o.iters, o.bn_mode, o.examples, o.preset) == (("final",), 1, "largest", 20,
                                                                                  "train", 1000, None)


@pytest.mark.parametrize(("values", "cli", "api_text"), [
    ({"which": "biggest"}, "--which: bad value 'biggest'; allowed: largest, magnitude, smallest",
     "which: bad value 'biggest'"),
    ({"bn_mode": "bogus"}, "--bn-mode: bad value 'bogus'; allowed: train, eval", "bn_mode: bad value 'bogus'"),
    ({"k": 3, "iters": 2}, "--iters 2: fewer than --k 3; allowed: a number >= --k", "iters 2: fewer than k 3"),
    ({"k": 0}, "--k: bad value 0; allowed: a whole number >= 1", "k: bad value 0"),
    ({"examples": "x"}, "--examples: bad value 'x', expected a whole number", "examples: bad value 'x'"),
])
def test_bad_options_name_the_field_per_face(values: dict, cli: str, api_text: str) -> None:
    with pytest.raises(UserError) as e:
        HessianOptions.from_values(values)
    assert str(e.value) == cli
    assert e.value.for_face("api").render().startswith(api_text)


def test_a_misspelt_keyword_gets_a_suggestion(store: Path) -> None:
    with pytest.raises(UserError, match=r"^hessian: unknown keyword argument 'kk' \(did you mean 'k'\?\); allowed: "
                                        r"bn_mode, data_dir, device, examples, iters, k, max_iters, preset, root, "
                                        r"steps, threads, tol"):
        api.hessian(store, steps="init", kk=2)
    with pytest.raises(UserError, match=r"^k: bad value 0; allowed: a whole number >= 1$"):
        api.hessian(store, steps="init", k=0)  # rendered for Python: no flag


def test_the_python_face_equals_the_cli_document(store: Path) -> None:
    code, out, err = lth("hessian", "--root", str(store), "--steps", "init", "3it", "--k", "2", "--iters", "6",
                         "--examples", "64", "--device", "cpu")
    assert code == 0, err
    doc = json.loads(out)
    result = run_hessian(HessianOptions.from_values(steps=["init", "3it"], k=2, iters=6, examples=64),
                         RuntimeOptions.from_values(root=str(store), device="cpu"))
    assert result.to_json() == doc
    frame = api.hessian(store, steps="init 3it", k=2, iters=6, examples=64, device="cpu", data_dir=None, preset=None)
    pd.testing.assert_frame_equal(frame, pd.DataFrame(doc["rows"]))
    assert len(frame) == 2 * 2 * 2 and set(frame["state"]) == {"init", "3it"}


def test_a_missing_step_is_a_warning_named_per_face(store: Path) -> None:
    said: list[str] = []
    result = hessian(store, "init,7it", k=1, iters=2, examples=16, device="cpu", warn=said.append)
    assert {r["state"] for r in result["rows"]} == {"init"} and len(said) == 1
    cli, py = UserError(said[0]).render("cli"), UserError(said[0]).render("api")
    assert cli.startswith("--steps 7it: no finished run under") and "keep it with --save-states when training" in cli
    assert py.startswith("steps 7it: ") and "keep it with save_states when training" in py


def test_print_warning_renders_for_its_face(capsys: pytest.CaptureFixture) -> None:
    from lth.errors import ref

    print_warning("cli")(f"{ref('steps')} x")
    print_warning("api")(f"{ref('steps')} x")
    assert capsys.readouterr().err.splitlines() == ["lth: warning: --steps x", "lth: warning: steps x"]


def test_threads_hold_for_the_call_only(store: Path) -> None:
    before = torch.get_num_threads()
    hessian(store, ["init"], k=1, iters=2, examples=16, device="cpu", threads=1)
    assert torch.get_num_threads() == before


def test_discovery_filters_by_preset_and_groups_by_architecture(store: Path) -> None:
    members = find_runs(store, None, ["init", "3it", "rewind"])
    assert len(members) == 4 and {m[2] for m in members} == {"init", "3it"}
    assert find_runs(store, "lenet_300_100", ["init"]) == []
    assert len(find_runs(store, "digits_mlp", ["init"])) == 2
    groups = group_members(members)
    assert len(groups) == 1 and next(iter(groups))[1] == "fc_8"


def test_no_state_anywhere_is_bad_input(store: Path) -> None:
    with pytest.raises(UserError) as e:
        run_hessian(HessianOptions.from_values(steps=["9999it"]), RuntimeOptions.from_values(root=str(store)))
    assert str(e.value).startswith("--steps 9999it: no finished run under ")
    assert e.value.for_face("api").render().startswith("steps 9999it: ")


def test_each_row_has_its_residual_and_an_unconverged_eigenvalue_is_named(store: Path) -> None:
    """Lanczos goes on past iters until every residual ||Hv - lambda v|| is within tol * |lambda|; at the cap,
    a warning names each eigenvalue still above it, with its residual and the flag to raise."""
    said: list[str] = []
    capped = hessian(store, ["init"], k=2, which="smallest", iters=3, max_iters=3, tol=1e-9, examples=64,
                     device="cpu", warn=said.append)
    rows = capped["rows"]
    assert all(r["iters"] == 3 and r["converged"] is False and r["residual"] > 0 for r in rows)
    assert len(said) == len(rows) == 4
    cli = UserError(said[0]).render("cli")
    assert f"residual ||Hv - lambda v|| = {rows[0]['residual']:.3g}" in cli and "above --tol 1e-09" in cli
    assert "raise --max-iters" in cli
    said.clear()
    done = hessian(store, ["init"], k=2, which="smallest", iters=3, max_iters=400, tol=1e-4, examples=64,
                   device="cpu", warn=said.append)["rows"]
    assert said == [] and all(r["converged"] is True and 3 < r["iters"] <= 400 for r in done)
    assert all(r["residual"] <= 1e-4 * abs(r["eigenvalue"]) for r in done)
    with pytest.raises(UserError, match="max.iters 2: fewer than --iters 3"):
        HessianOptions.from_values(iters=3, max_iters=2)
