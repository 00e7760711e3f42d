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
from lth.studies.branch import BranchStudyOptions, plan_branch, run_branch
from lth.studies.lottery import pruning_of
from lth.studies.runtime import RuntimeOptions
from lth.studies.train import spec_of

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
    spec, preset = spec_of("digits_mlp", KW)
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
