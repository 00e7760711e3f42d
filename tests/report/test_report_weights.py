"""Seed 004's Fig. 5 in the report: theta_LT's histogram at each D_n density and per replicate."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lth.cli import main


@pytest.fixture(scope="module")
def dn_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dn")
    assert main(["lottery", "--preset", "digits_mlp", "--levels", "3", "--replicates", "2", "--training-steps", "1ep",
                 "--branches", "dn-reinit", "--branch-levels", "1", "3", "--root", str(root)]) == 0
    assert main(["report", "--root", str(root)]) == 0
    return root


def test_dn_histograms_at_each_dn_level_and_replicate_count_the_tickets_weights(dn_store: Path, capsys) -> None:
    from lth.analysis import runs_frame
    from lth.store import RunDir

    capsys.readouterr()
    out = dn_store / "report"
    assert 'src="dn_by_density.png"' in (out / "index.html").read_text()
    df = pd.read_csv(out / "dn_by_density.csv")
    cells = df.groupby(["replicate", "level"])
    assert sorted(cells.groups) == [(0, 1), (0, 3), (1, 1), (1, 3)]  # the dn-reinit levels, every replicate
    runs = runs_frame(dn_store)
    trunk = runs[runs["kind"] == "lottery"]
    for (r, lv), g in cells:
        at = trunk[(trunk["replicate"] == r)]
        init = RunDir(Path(at[at["level"] == 0]["path"].iloc[0])).load_state("init")
        mask = RunDir(Path(at[at["level"] == lv]["path"].iloc[0])).load_mask()
        kept = sum(int(((init[k] != 0) & mask[k].bool()).sum()) for k in mask)
        assert g["ticket_count"].sum() == kept  # every nonzero initial weight the ticket keeps, this replicate's
        assert g["all_count"].sum() == sum(mask[k].numel() for k in mask)
        assert g["density"].iloc[0] == pytest.approx(kept / g["all_count"].sum(), abs=1e-3)
    a = df[(df["replicate"] == 0) & (df["level"] == 3)]["ticket_count"].to_numpy()
    b = df[(df["replicate"] == 1) & (df["level"] == 3)]["ticket_count"].to_numpy()
    assert (a != b).any()  # each replicate its own ticket


def test_dn_levels_without_dn_branches_are_the_levels_nearest_26_and_11_percent() -> None:
    from lth.report.sections.weights import dn_levels

    trunk = pd.DataFrame({"kind": "lottery", "branch": None, "level": list(range(12)),
                          "density": [0.8 ** lv for lv in range(12)]})
    assert dn_levels(trunk, trunk) == [6, 10]  # 0.8^6 = 0.262, 0.8^10 = 0.107 (seed 004's densities)
    short = trunk[trunk["level"] <= 3]
    assert dn_levels(short, short) == [3]  # the sparsest, nearest to both
    with_branch = pd.concat([trunk, pd.DataFrame({"kind": ["branch"], "branch": ["remask"], "level": [4],
                                                  "density": [0.4]})])
    assert dn_levels(with_branch, trunk) == [4]

