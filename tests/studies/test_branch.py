"""The branch study (:mod:`lth.studies.branch`) and its two faces: ``lth branch NAME --json`` and
``lth.api.branch`` give the same runs; its checks name the branch's name, options and the trunk as each face
names them."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import lth

import lth.api as api
from lth.errors import UserError
from lth.studies.base import resolve_spec
from lth.studies.branch import BranchStudyOptions, plan_branch, run_branch
from lth.studies.lottery import pruning_of
from lth.studies.runtime import RuntimeOptions

TINY = ["--preset", "digits_mlp", "--model", "fc_8", "--training-steps", "4it"]
KW = {"model": "fc_8", "training_steps": "4it"}


def test_the_api_frame_and_the_study_document_equal_the_cli_json(tmp_path: Path) -> None:
    root = str(tmp_path)
    assert lth("lottery", *TINY, "--levels", "2", "--rewind", "1it", "--root", root)[0] == 0
    code, out, err = lth("branch", "random-mask", *TINY, "--levels", "1-2", "--rewind", "1it", "--mask-mode",
                         "global", "--root", root, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert [r["level"] for r in doc["runs"]] == [1, 2]
    df = api.branch("random-mask", "digits_mlp", [1, 2], rewind="1it", mask_mode="global", root=root, progress=False,
                    **KW)
    pd.testing.assert_frame_equal(df, pd.DataFrame(doc["runs"]))
    spec, preset = resolve_spec("digits_mlp", KW)
    opts = BranchStudyOptions.from_values(name="random-mask", levels="1-2", rewind="1it",
                                          options={"mask_mode": "global"})
    plan = plan_branch(spec, pruning_of(preset), opts, RuntimeOptions(root=root), preset=preset, given=KW)
    assert run_branch(plan, progress=False).to_json() == doc


def test_checks_name_fields_as_each_face_names_them(tmp_path: Path) -> None:
    root = tmp_path / "r"
    with pytest.raises(UserError, match=r"^name: unknown branch 'reinitt'; allowed: reinit, random-mask"):
        api.branch("reinitt", "digits_mlp", 1, root=root)
    code, _, err = lth("branch", "reinitt", "--preset", "digits_mlp", "--levels", "1", "--root", str(root))
    assert code == 2 and err.startswith("lth: error: lth branch NAME: unknown branch 'reinitt'; allowed: reinit")
    with pytest.raises(UserError, match=r"^unknown keyword argument 'dn_pol' \(did you mean 'dn_pool'\?\)"):
        api.branch("dn-reinit", "digits_mlp", 1, dn_pol="layer", root=root)
    with pytest.raises(UserError, match=r"^dn_pool 'layr': unknown value; allowed: network, layer"):
        api.branch("dn-reinit", "digits_mlp", 1, dn_pool="layr", root=root)
    with pytest.raises(UserError, match=r"^rewind 0it 5it: a branch hangs off one trunk; give one rewind step"):
        api.branch("reinit", "digits_mlp", 1, rewind=["0it", "5it"], root=root)
    with pytest.raises(UserError, match=r"^levels 'a-b': expected a range like 0-15 or a list like 3,5,8"):
        api.branch("reinit", "digits_mlp", "a-b", root=root)
    code, _, err = lth("branch", "reinit", *TINY, "--levels", "1", "--dn-pool", "layer", "--root", str(root))
    assert code == 2 and err.strip() == ("lth: error: --dn-pool layer: an option of the branches dn-reinit, remask, "
                                         "not of reinit; allowed: --dn-pool with lth branch NAME naming one of those")
    assert not root.exists()


def test_a_missing_trunk_names_the_fields_that_select_the_one_that_exists(tmp_path: Path) -> None:
    assert lth("lottery", *TINY, "--levels", "1", "--root", str(tmp_path))[0] == 0
    with pytest.raises(UserError) as e:
        api.branch("reinit", "digits_mlp", 1, root=tmp_path, model="fc_8", training_steps="5it")
    line = str(e.value)
    assert "a trunk of preset digits_mlp exists with training_steps=4it (yours: 5it)" in line
    assert "add training_steps 4it to use it" in line and "--training-steps 4it" not in line.split("`")[0], line
    assert "`lth lottery --preset digits_mlp --model fc_8 --training-steps 5it --root" in line
    assert line.endswith("(from Python: lth.api.run(lth.api.lottery(preset, levels, ...)) with the same keywords)")


def test_a_set_schedule_past_the_end_is_refused_from_python(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"^set milestones=5ep: after the end of training \(training_steps 3ep"):
        api.branch("retrain", "digits_mlp", 1, set=["milestones=5ep"], training_steps="3ep", root=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_branches_on_a_ticket_given_as_tensors(tmp_path: Path) -> None:
    """``ticket=(state, mask)``: the branch runs on exactly that ticket, stored once as a given node
    (``ticket_<hash>/``) with the run beside it at ``branch_<name>_<hash>/level_0``: reinit and random-mask keep
    (reinit) or redraw (random-mask: same density) the given mask, retrain starts from the given weights under it;
    a second call trains nothing; a branch that needs the trunk's dense network and ``levels`` beside a ticket are
    refused in one line, writing nothing."""
    import torch

    from lth.lottery import BRANCHES
    from lth.store import RunDir

    root = tmp_path / "runs"
    records = api.run(api.lottery("digits_mlp", levels=1, root=root, training_steps="10it"), device="cpu")
    state, mask = api.ticket(next(r["path"] for r in records["runs"] if r["level"] == 1))
    assert any(not bool(m.all()) for m in mask.values())
    kw = {"root": root, "training_steps": "10it", "device": "cpu", "progress": False}

    out = api.branch("reinit", "digits_mlp", ticket=(state, mask), **kw)
    assert list(out["status"]) == ["complete"] and list(out["level"]) == [0] and list(out["branch"]) == ["reinit"]
    (ticket_dir,) = root.glob("ticket_*")
    run = RunDir(out["path"].iloc[0])
    assert run.path.parent.parent == ticket_dir and run.path.name == "level_0"
    assert run.path.parent.name.startswith("branch_reinit_")
    given = run.load_mask()
    assert given.keys() == mask.keys() and all(torch.equal(given[k], mask[k]) for k in mask)
    assert run.spec["ticket"] == str(ticket_dir) and RunDir(ticket_dir).spec["kind"] == "ticket"
    done = (run.path / "done.json").read_bytes()
    listing = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.name != ".lock"}
    again = api.branch("reinit", "digits_mlp", ticket=(state, mask), **kw)
    assert list(again["path"]) == list(out["path"])
    assert (run.path / "done.json").read_bytes() == done
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and p.name != ".lock"} == listing

    rm = RunDir(api.branch("random-mask", "digits_mlp", ticket=(state, mask), **kw)["path"].iloc[0])
    assert rm.path.parent.parent == ticket_dir
    drawn = rm.load_mask()
    assert {k: int(v.sum()) for k, v in drawn.items()} == {k: int(v.sum()) for k, v in mask.items()}
    assert any(not torch.equal(drawn[k], mask[k]) for k in mask)

    rt = RunDir(api.branch("retrain", "digits_mlp", ticket=(state, mask), set=["lr=0.05"], **kw)["path"].iloc[0])
    start, kept = rt.load_state("init"), rt.load_mask()  # the ticket is at step 0: its start is init
    assert all(torch.equal(kept[k], mask[k]) for k in mask)
    assert set(start) == set(state) and all(torch.equal(start[k], v) for k, v in state.items())

    runs = set(root.rglob("*"))
    spec, preset = resolve_spec("digits_mlp", {"training_steps": "10it"})
    for name in (n for n, b in BRANCHES.items() if not b.dense):  # every other branch plans on the ticket
        needed = {"retrain": {"set": ["lr=0.05"]}, "transfer": {"target_dataset": "digits"}}
        opts = BranchStudyOptions.from_values(name=name, levels=[0], options=needed.get(name))
        plan = plan_branch(spec, pruning_of(preset), opts, RuntimeOptions(root=str(root)), preset=preset,
                           ticket=(state, mask))
        (node,) = plan.nodes
        assert node.path.parent.parent == ticket_dir and node.meta["level"] == 0 and node.replicate == 0
        if name == "small-dense":  # as many weights as the ticket keeps: narrower
            assert node.spec.model.width < spec.model.width
    refused = [n for n, b in BRANCHES.items() if b.dense]
    assert refused == ["oneshot", "signs", "finetune"]
    for name in refused:
        with pytest.raises(UserError, match=rf"^ticket: branch {name} needs the trunk's dense network .*; allowed: "
                                            r"reinit, random-mask, dn-reinit, remask, small-dense, retrain, shuffle, "
                                            r"noise, transfer$") as e:
            api.branch(name, "digits_mlp", ticket=(state, mask), **kw)
        assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"^levels 1: a branch on a ticket runs on that ticket, not on trunk levels"):
        api.branch("reinit", "digits_mlp", 1, ticket=(state, mask), **kw)
    assert set(root.rglob("*")) == runs


def test_the_suggested_trunk_command_is_quoted_for_a_shell() -> None:
    """A missing trunk's error suggests an ``lth lottery`` line; a root with a space or ``#`` (and list values)
    must paste into a shell as the words meant (issue #32)."""
    import shlex

    from lth.prune import PruneHparams
    from lth.spec import Step
    from lth.studies.branch import lottery_command

    line = lottery_command("digits_mlp", {"milestones": ("1ep", "2ep")}, PruneHparams(fraction=0.3), Step(5, "it"),
                           "/tmp/my runs#1", 3)
    words = shlex.split(line)
    assert words[:4] == ["lth", "lottery", "--preset", "digits_mlp"]
    assert words[words.index("--root") + 1] == "/tmp/my runs#1"
    assert words[words.index("--milestones") + 1:words.index("--milestones") + 3] == ["1ep", "2ep"]
    assert words[words.index("--rewind") + 1] == "5it" and words[-2:] == ["--levels", "3"]
