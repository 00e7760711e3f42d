"""The landscape study (lth.studies.landscape): its options checked and named per face, and the API's result equal
to ``lth landscape --json``."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import lth.api as api
from lth.errors import UserError
from lth.studies.landscape import LandscapeOptions
from tests.conftest import lth


def test_options_and_their_errors_per_face() -> None:
    assert LandscapeOptions.from_values({"plane": "pca", "grid": "5", "margin": "0"}) == \
        LandscapeOptions.from_values(plane="pca", grid=5, margin=0.0)
    for values, cli, python in [
        ({"plane": "diagonal"}, "--plane 'diagonal': unknown value; allowed: copies, pca", "plane 'diagonal'"),
        ({"grid": -1}, "--grid: bad value -1; allowed: a whole number >= 2", "grid: bad value -1"),
        ({"margin": "nan"}, "--margin: bad value 'nan'; allowed: a finite number", "margin: bad value 'nan'"),
        ({"margin": -0.5}, "--margin: bad value -0.5; allowed: a number >= 0, e.g. 0.25", "margin: bad value -0.5"),
    ]:
        with pytest.raises(UserError) as e:
            LandscapeOptions.from_values(values)
        assert str(e.value) == cli or str(e.value).startswith(cli), str(e.value)
        assert e.value.render("api").startswith(python)


def test_the_api_result_equals_the_cli_json_document(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    argv = ["--preset", "digits_mlp", "--model", "fc_8", "--training-steps", "6it", "--device", "cpu",
            "--train-examples", "50", "--trajectory-points", "1", "--grid", "3", "--rewind", "2it", "--root", str(root)]
    code, out, err = lth("landscape", *argv, "--json")
    assert code == 0, err
    doc = json.loads(out)
    (row,) = doc["landscapes"]
    assert row["rewind"] == "2it" and row["rewind_iteration"] == 2 and Path(row["file"]).is_file()
    got = api.landscape("digits_mlp", model="fc_8", training_steps="6it", device="cpu", train_examples=50,
                        trajectory_points=1, grid=3, rewind="2it", root=root, progress=False)
    pd.testing.assert_frame_equal(got, pd.DataFrame(doc["landscapes"]))
    with pytest.raises(UserError, match=r"^landscape: unknown keyword argument 'grd' \(did you mean 'grid'\?\)"):
        api.landscape("digits_mlp", grd=3, root=root)
