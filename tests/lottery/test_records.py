"""Level records say which density they report: under structured pruning the effective density (dead units'
outgoing weights discounted) is below the kept fraction; under magnitude pruning of an MLP they agree."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from conftest import lth

from lth.prune import density, effective_density


def test_structured_levels_record_effective_density(tmp_path: Path) -> None:
    code, out, err = lth("lottery", "--preset", "digits_mlp", "--levels", "2", "--training-steps", "10it",
                         "--strategy", "structured", "--root", str(tmp_path), "--json")
    assert code == 0, err
    runs = {r["level"]: r for r in json.loads(out)["runs"]}
    mask = torch.load(runs[2]["mask"], weights_only=True)
    assert runs[2]["density"] == density(mask)
    assert runs[2]["effective_density"] == effective_density(mask) < runs[2]["density"]


def test_magnitude_levels_of_an_mlp_lose_nothing(tmp_path: Path) -> None:
    code, out, err = lth("lottery", "--preset", "digits_mlp", "--levels", "1", "--training-steps", "10it",
                         "--root", str(tmp_path), "--json")
    assert code == 0, err
    level1 = json.loads(out)["runs"][1]
    assert level1["effective_density"] == level1["density"]
