"""Frankle, Schwab & Morcos 2020, Fig. 8 in the report: effective std against accuracy, with Pearson's r."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from lth.cli import main


def test_fig8_is_drawn_from_the_stores_perturbation_runs(tmp_path: Path, capsys) -> None:
    """Fig. 8 (Frankle, Schwab & Morcos 2020): each point is a perturbation's runs (its effective std recomputed
    here from their starting states and the trunk's), r is Pearson's over the points of its panel."""
    from lth.analysis import runs_frame
    from lth.analysis.perturbations import pearson
    from lth.store import RunDir

    root = tmp_path / "s"
    assert main(["lottery", "--preset", "digits_mlp", "--levels", "1", "--replicates", "2", "--training-steps", "1ep",
                 "--rewind", "5it", "--branches", "signs", "shuffle", "noise", "--branch-levels", "1",
                 "--root", str(root)]) == 0
    assert main(["report", "--root", str(root)]) == 0
    capsys.readouterr()
    assert 'src="effective_std.png"' in (root / "report" / "index.html").read_text()
    pts = pd.read_csv(root / "report" / "effective_std.csv")
    assert sorted(pts["branch"]) == ["noise", "shuffle", "signs"] and (pts["count"] == 2).all()
    runs = runs_frame(root)
    trunk = runs[(runs["kind"] == "lottery") & (runs["level"] == 1)].set_index("replicate")
    for _, p in pts.iterrows():
        stds = []
        for path in p["runs"].split(";"):
            b = RunDir(Path(path))
            rep = int(runs.set_index("path").loc[path, "replicate"])
            t = RunDir(Path(trunk.loc[rep, "path"]))
            mask = t.load_mask()
            a, z = b.load_state("rewind"), t.load_state("rewind")
            stds.append(float(torch.cat([(a[k] - z[k]).double()[mask[k].bool()] for k in mask]).std()))
        assert p["effective_std"] == pytest.approx(sum(stds) / len(stds), rel=1e-6)
    r, pv = pearson(pts["effective_std"], pts["accuracy"])
    assert pts["pearson_r"].iloc[0] == pytest.approx(r) and pts["p_value"].iloc[0] == pytest.approx(pv)
