"""A trunk whose level diverges stops there: no later level is pruned from NaN weights, and the records say so."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import lth


def test_diverged_level_stops_only_its_replicate(tmp_path: Path) -> None:
    # a learning rate no network survives: level 0 diverges
    code, out, err = lth("lottery", "--preset", "digits_mlp", "--levels", "2", "--training-steps", "1ep",
                         "--optimizer", "sgd", "--lr", "1e6", "--root", str(tmp_path), "--json")
    assert code == 0, err
    runs = {(r["replicate"], r["level"]): r for r in json.loads(out)["runs"]}
    assert runs[(0, 0)]["status"] == "diverged"
    for level in (1, 2):
        assert runs[(0, level)]["status"] == "blocked"  # not trained: a parent diverged
        assert runs[(0, level)]["density"] is None
        assert not Path(runs[(0, level)]["path"]).exists()
