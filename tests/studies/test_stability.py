"""The stability study (lth.studies.stability) and its two faces: typed options parsed from strings and Python
values with the same checks, the API's result equal to ``lth stability --json``, a misspelt keyword suggested,
errors named per face, progress as plain lines, and a ticket given as tensors stored as a node and reused."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

import lth.api as api
from lth.errors import UserError
from lth.presets import get_preset
from lth.prune import PruneHparams
from lth.spec import replace_fields
from lth.store import RunDir
from lth.studies.runtime import RuntimeOptions
from lth.studies.stability import PathOptions, StabilityOptions, run_stability
from tests.conftest import lth

SRC = Path(__file__).resolve().parents[2] / "src" / "lth"
TINY = {"model": "fc_8", "training_steps": "4it", "alphas": 3, "train_examples": 50, "device": "cpu"}
TINY_ARGV = ["--preset", "digits_mlp", "--model", "fc_8", "--training-steps", "4it", "--alphas", "3",
             "--train-examples", "50", "--device", "cpu"]


def test_options_parse_strings_and_python_values_alike_and_name_fields_per_face() -> None:
    given = StabilityOptions.from_values({"rewind": ["0it", "5it"], "levels": ["0-2"], "copies": "3",
                                          "subnetwork": ["dense", "imp"], "replicates": "2"})
    assert given == StabilityOptions.from_values(rewind=["0it", "5it"], levels="0-2", copies=3,
                                                 subnetwork=("dense", "imp"), replicates=2)
    assert given.level_list() == [0, 1, 2]
    assert StabilityOptions.from_values(levels=[3, 1], subnetwork=["imp"]).level_list() == [1, 3]
    assert PathOptions.from_values({"alphas": "5"}).points() == [0.0, 0.25, 0.5, 0.75, 1.0]
    for cls, values, cli, python in [
        (StabilityOptions, {"copies": 1}, "--copies: bad value 1; allowed: a whole number >= 2", "copies: bad value 1"),
        (StabilityOptions, {"subnetwork": ["dnse"]}, "--subnetwork 'dnse': unknown value; allowed: dense, imp",
         "subnetwork 'dnse': unknown value"),
        (StabilityOptions, {"levels": "x"}, "--levels 'x': expected a range like 0-15", "levels 'x': expected"),
        (StabilityOptions, {"subnetwork": ["imp"]}, "--levels 0: subnetworks imp need trunk levels >= 1",
         "levels 0: subnetworks imp"),
        (StabilityOptions, {"levels": "0,2"}, "--levels 0,2: --subnetwork dense copies level 0 only, nothing would "
         "be copied at level 2; allowed: --levels 0, or a subnetwork for levels >= 1 (imp, oneshot",
         "levels 0,2: subnetwork dense copies level 0 only"),
        (StabilityOptions, {"rewind": []}, "--rewind: no step given", "rewind: no step given"),
        (StabilityOptions, {"trajectory_points": -1}, "--trajectory-points: bad value -1", "trajectory_points: bad"),
        (PathOptions, {"threshold": "2"}, "--threshold: bad value 2.0; allowed: a fraction between 0 and 1",
         "threshold: bad value 2.0"),
        (PathOptions, {"alphas": 1}, "--alphas: bad value 1; allowed: a whole number >= 2", "alphas: bad value 1"),
        (PathOptions, {"train_examples": "abc"}, "--train-examples: bad value 'abc', expected a whole number",
         "train_examples: bad value 'abc'"),
    ]:
        with pytest.raises(UserError) as e:
            cls.from_values(values)
        assert str(e.value).startswith(cli), str(e.value)
        assert e.value.for_face("api").render().startswith(python) and "--" not in e.value.render("api")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("study_stability")


def test_the_api_result_equals_the_cli_json_document(store: Path) -> None:
    """The same flags and keywords give the same rows: the CLI trains and evaluates, the API reads it all back
    (nothing trains again) and its DataFrames hold exactly the document's rows, steps beside their iterations."""
    argv = [*TINY_ARGV, "--rewind", "0it", "2it", "--levels", "0-1", "--subnetwork", "dense", "imp", "--copies", "3",
            "--root", str(store), "--json"]
    code, out, err = lth("stability", *argv)
    assert code == 0, err
    doc = json.loads(out)
    assert len(doc["results"]) == 2 * 2 * 3 and {s["subnetwork"] for s in doc["summary"]} == {"dense", "imp"}
    done = {p: p.stat().st_mtime_ns for p in store.rglob("done.json")}
    got = api.stability("digits_mlp", rewind=["0it", "2it"], levels="0-1", subnetwork=["dense", "imp"], copies=3,
                        root=store, progress=False, **TINY)
    assert {p: p.stat().st_mtime_ns for p in store.rglob("done.json")} == done
    assert set(got) == {"results", "summary"}
    for key in ("results", "summary"):
        pd.testing.assert_frame_equal(got[key], pd.DataFrame(doc[key]))  # None in a float column: NaN in both
    # the study itself: the document, exactly
    opts = StabilityOptions.from_values(rewind=["0it", "2it"], levels="0-1", subnetwork=["dense", "imp"], copies=3)
    spec = replace_fields(get_preset("digits_mlp").spec, {"model": "fc_8", "training_steps": "4it"})
    result = run_stability(spec, PruneHparams(**get_preset("digits_mlp").pruning), opts,
                           PathOptions.from_values(alphas=3, train_examples=50),
                           RuntimeOptions.from_values(root=str(store), device="cpu"), progress=False,
                           preset="digits_mlp")
    assert json.loads(json.dumps(result.to_json())) == doc
    assert all(r["rewind_iteration"] == int(r["rewind"][:-2]) for r in doc["results"])


def test_api_keywords_suggest_name_per_face_and_progress_is_plain_lines(store: Path,
                                                                        capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(UserError, match=r"^stability: unknown keyword argument 'rewnd' \(did you mean 'rewind'\?\)"):
        api.stability("digits_mlp", rewnd=["0it"], root=store)
    with pytest.raises(UserError, match=r"^stability: unknown keyword argument 'trajectory_pts' \(did you mean "
                                        r"'trajectory_points'\?\)"):
        api.stability("digits_mlp", trajectory_pts=2, root=store)
    with pytest.raises(UserError, match=r"^pruning: unknown option 'fractin' \(did you mean 'fraction'\?\)"):
        api.stability("digits_mlp", pruning={"fractin": 0.3}, root=store)
    with pytest.raises(UserError, match=r'^pruning\["fraction"\]'):
        api.stability("digits_mlp", pruning={"fraction": 2}, root=store, **TINY)
    with pytest.raises(UserError, match=r"^rewind 5it: after the end of training \(training_steps 4it\); allowed: a "
                                        r"step from 0it to 4it \(training_steps\)$"):
        api.stability("digits_mlp", rewind="5it", root=store, **TINY)
    with pytest.raises(UserError, match=r"^preset 'digit': unknown preset \(did you mean digits_mlp\?\)"):
        api.stability("digit", root=store)
    capsys.readouterr()
    api.stability("digits_mlp", rewind="1it", root=store, **TINY)  # progress: a new Progress, plain lines here
    err = capsys.readouterr().err
    assert "training a population of 2 runs" in err and "evaluating 1 path(s) of 3 points" in err
    assert "\x1b[" not in err


def _listing(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.name != ".lock"}


def test_stability_on_a_ticket_given_as_tensors(tmp_path: Path) -> None:
    """``ticket=(state, mask)``: both copies start from exactly those tensors under that mask (masked weights
    exactly zero, the rest equal) and train under the mask; the ticket is stored once as a node
    (``ticket_<hash>/``, done marker last) that a second call reuses; other tensors are another ticket."""
    root = tmp_path / "runs"
    records = api.run(api.lottery("digits_mlp", levels=1, root=root, training_steps="10it"), device="cpu")
    state, mask = api.ticket(next(r["path"] for r in records["runs"] if r["level"] == 1))
    assert any(not bool(m.all()) for m in mask.values())
    state = {k: v + 0.5 * (~mask[k]).to(v.dtype) if k in mask else v for k, v in state.items()}  # pruned: nonzero
    kw = {"root": root, "training_steps": "10it", "device": "cpu", "alphas": 3, "train_examples": 50,
          "progress": False}
    out = api.stability("digits_mlp", ticket=(state, mask), **kw)["results"]
    assert list(out["subnetwork"]) == ["ticket"] and list(out["status"]) == ["complete"]
    assert 0 <= out["test_instability"].iloc[0] <= 1
    (ticket_dir,) = root.glob("ticket_*")
    copies = [RunDir(p) for p in out["runs"].iloc[0]]
    for run in copies:
        start, trained = run.load_state("start"), run.load_mask()
        assert set(start) == set(state) and set(trained) == set(mask)
        for k, v in state.items():
            if k in mask:
                assert torch.equal(trained[k], mask[k])
                assert bool((start[k][~mask[k]] == 0).all()) and torch.equal(start[k][mask[k]], v[mask[k]])
                assert bool((run.load_state("final")[k][~mask[k]] == 0).all())  # trained under the mask
            else:
                assert torch.equal(start[k], v)
        assert run.spec["ticket"] == str(ticket_dir) and run.spec["subnetwork"] == "ticket"
    assert RunDir(ticket_dir).done["status"] == "complete" and RunDir(ticket_dir).spec["kind"] == "ticket"
    before = _listing(root)
    again = api.stability("digits_mlp", ticket=(state, mask), **kw)["results"]
    assert _listing(root) == before and again.to_dict("records") == out.to_dict("records")  # reused: no write
    other = {k: v * 2 for k, v in state.items()}
    moved = api.stability("digits_mlp", ticket=(other, mask), **kw)["results"]
    assert len(list(root.glob("ticket_*"))) == 2
    assert Path(moved["runs"].iloc[0][0]).parents[2] != copies[0].path.parents[2]
    assert api.ticket(ticket_dir)[1].keys() == mask.keys()  # a ticket's directory reads back as a ticket


def test_a_bad_ticket_is_one_line_naming_ticket_and_writes_nothing(tmp_path: Path) -> None:
    from lth.data.describe import describe
    from lth.models import build_model
    from lth.presets import get_preset

    spec = get_preset("digits_mlp").spec
    info = describe(spec.data)
    net = build_model(spec.model.model, 1, info.example_shape, info.num_classes, spec.model.norm, spec.model.width)
    state = net.member_state(0)
    mask = {k: torch.rand_like(state[k]) > 0.5 for k in net.prunable()}
    w = state["layers.0.weight"]
    root = tmp_path / "runs"
    for ticket, words in [
        (({**state, "layers.0.weight": w[:3]}, mask), [f"state['layers.0.weight'] has shape (3, {w.shape[1]})"]),
        ((state, {**mask, "layers.9.weight": mask["layers.0.weight"]}), ["the mask names 'layers.9.weight'"]),
        ((state, {"layers.0.bias": torch.ones_like(state["layers.0.bias"], dtype=torch.bool)}),
         ["the mask names 'layers.0.bias', not a prunable weight"]),
        ((state, {"layers.0.weight": mask["layers.0.weight"].float() * 2}), ["mask['layers.0.weight']"]),
        (({k: v for k, v in state.items() if k != "layers.1.bias"}, mask), ["lacks 'layers.1.bias'"]),
        (({**state, "layers.0.weight": w * float("nan")}, mask), ["NaN"]),
        (state, ["bad value of type dict"]),
    ]:
        with pytest.raises(UserError) as e:
            api.stability("digits_mlp", ticket=ticket, root=root, training_steps="10it", device="cpu", progress=False)
        text = str(e.value)
        assert text.startswith("ticket: ") and "\n" not in text and all(w in text for w in words), text
    with pytest.raises(UserError, match=r"^rewind 0it 5it: a ticket is one state, at one step"):
        api.stability("digits_mlp", ticket=(state, mask), rewind=["0it", "5it"], root=root, training_steps="10it")
    with pytest.raises(UserError, match=r"^ticket: the copies start from the ticket, so subnetwork and levels"):
        api.stability("digits_mlp", ticket=(state, mask), subnetwork="imp", levels=1, root=root)
    assert not root.exists()


def test_studies_import_neither_face() -> None:
    """The studies (and the modules below them this study touches) never import ``lth.api`` or ``lth.cli``; the
    commands are built on the flag walks, not on the transitional ``lth.cli.common``."""
    def imported(path: Path) -> set[str]:
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
        return names

    mine = [SRC / "studies" / "stability.py", SRC / "studies" / "landscape.py", SRC / "graph" / "given.py",
            SRC / "stability" / "plan.py", SRC / "stability" / "landscape.py", SRC / "stability" / "analysis.py"]
    for path in mine:
        assert not {m for m in imported(path) if m.split(".")[:2] in (["lth", "api"], ["lth", "cli"])}, path
    for path in [SRC / "cli" / "stability.py", SRC / "cli" / "landscape.py"]:
        assert "lth.cli.common" not in imported(path), path


def test_oneshot_subnetwork_from_both_faces(tmp_path: Path) -> None:
    """LMC Table 1's ImageNet rows in small: one dense trunk, its final weights pruned once to 30% (global, one level
    of 70%), copies made at k from level 0's state under that mask. No IMP level trains; the API reads the same
    copies back."""
    root = tmp_path / "store"
    argv = [*TINY_ARGV, "--rewind", "2it", "--levels", "1", "--subnetwork", "oneshot", "--strategy", "global",
            "--pruning-fraction", "0.7", "--root", str(root), "--json"]
    code, out, err = lth("stability", *argv)
    assert code == 0, err
    doc = json.loads(out)
    assert [(r["subnetwork"], r["level"], r["rewind"]) for r in doc["results"]] == [("oneshot", 1, "2it")]
    assert [p.parent.name for p in root.glob("lottery_*/replicate_0/level_*/done.json")] == ["level_0"]
    dense = RunDir(next(root.glob("lottery_*/replicate_0/level_0")))
    final = torch.load(dense.path / "states" / "final.pt", weights_only=True)
    masks = [torch.load(Path(p) / "mask.pt", weights_only=True) for p in doc["results"][0]["runs"]]
    assert all(torch.equal(masks[0][k], masks[1][k]) for k in masks[0])  # both copies: one mask
    total = sum(m.numel() for m in masks[0].values())
    assert abs(sum(int(m.sum()) for m in masks[0].values()) - round(0.3 * total)) <= 1  # the asked 30%
    kept = torch.cat([final[k][masks[0][k].bool()].abs() for k in masks[0]])
    dropped = torch.cat([final[k][~masks[0][k].bool()].abs() for k in masks[0]])
    assert kept.min() >= dropped.max()  # one-shot magnitude pruning of the dense network's final weights
    for p in doc["results"][0]["runs"]:  # each copy starts from level 0's state at k = 2it under the mask
        start = torch.load(Path(p) / "states" / "start.pt", weights_only=True)
        rewind = torch.load(dense.path / "states" / "rewind.pt", weights_only=True)
        for k in masks[0]:
            assert torch.equal(start[k], rewind[k] * masks[0][k].to(rewind[k].dtype))
    done = {p: p.stat().st_mtime_ns for p in root.rglob("done.json")}
    got = api.stability("digits_mlp", rewind="2it", levels=1, subnetwork="oneshot", root=root, progress=False,
                        pruning={"strategy": "global", "fraction": 0.7}, **TINY)
    assert {p: p.stat().st_mtime_ns for p in root.rglob("done.json")} == done  # nothing trained again
    pd.testing.assert_frame_equal(got["results"], pd.DataFrame(doc["results"]))


def test_lmc_imagenet_rows_are_one_command_on_images_read_from_disk(tmp_path: Path) -> None:
    """Table 2's ImageNet rows in small: the ``resnet50_imagenet`` preset (torchvision's ResNet-50, one-shot 30%) on
    an ImageNet layout of JPEGs written here, dense copies and one-shot copies at k = 0 in one command; only the
    dense trunk trains."""
    from tests.data.image_files import write_imagenet

    write_imagenet(tmp_path / "data", count=40)
    root = tmp_path / "store"
    code, out, err = lth("stability", "--preset", "resnet50_imagenet", "--data-dir", str(tmp_path / "data"),
                         "--image-size", "32", "--width", "0.0625", "--training-steps", "2it", "--batch-size", "8",
                         "--levels", "0,1", "--subnetwork", "dense", "oneshot", "--alphas", "3", "--train-examples",
                         "16", "--root", str(root), "--device", "cpu", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert sorted((r["subnetwork"], r["level"]) for r in doc["results"]) == [("dense", 0), ("oneshot", 1)]
    assert all(0 <= r["test_instability"] <= 1 for r in doc["results"])
    assert [p.parent.name for p in root.glob("lottery_*/replicate_0/level_*/done.json")] == ["level_0"]
    oneshot = next(r for r in doc["results"] if r["subnetwork"] == "oneshot")
    mask = torch.load(Path(oneshot["runs"][0]) / "mask.pt", weights_only=True)
    assert "conv1.weight" in mask and "fc.weight" in mask  # torchvision's names; every conv and fc pruned
    kept = sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())
    assert kept == pytest.approx(0.3, abs=1e-3)  # Table 1: one-shot to 30%
