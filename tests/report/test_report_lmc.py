"""`lth report` draws the instability section from what `lth stability` and `lth landscape` stored."""

from __future__ import annotations

import pandas as pd

from lth.report.build import build_report
from tests.conftest import lth

BASE = ("--preset", "digits_mlp", "--training-steps", "20it", "--eval-every", "10it", "--device", "cpu",
        "--alphas", "4", "--train-examples", "200", "--trajectory-points", "1", "--rewind", "0it", "5it")


def test_report_renders_paths_instability_table2_and_contours(tmp_path):
    root = str(tmp_path / "store")
    code, _, err = lth("stability", *BASE, "--root", root, "--levels", "0-1", "--subnetwork", "imp", "random-prune",
                       "random-reinit")
    assert code == 0, err
    code, _, err = lth("landscape", *BASE, "--root", root, "--grid", "3")
    assert code == 0, err
    rep = build_report(tmp_path / "store")
    names = {p.name for p in rep.figures}
    for sub in ("dense", "imp", "random-prune", "random-reinit"):
        assert f"stability_path_{sub}.png" in names
    assert "stability_vs_k.png" in names
    assert sum(n.startswith("landscape_") and n.endswith(".png") for n in names) == 2  # dense at k = 0 and 5it
    t2 = pd.read_csv(rep.index.parent / "stability_table2.csv")
    assert list(t2["rewind"]) == ["0it", "5it"] and set(t2["level"]) == {1}
    assert (t2["delta"] - (t2["full"] - t2["imp"])).abs().max() < 1e-12
    from lth.analysis.instability import latest_setting, pair_instabilities
    from lth.stability.analysis import stability_frame

    per = pair_instabilities(latest_setting(stability_frame(tmp_path / "store")))
    dense = per[per["subnetwork"] == "dense"]
    assert set(dense["rewind"]) == {"0it", "5it"}  # Table 2's full network: the copies made at k = 0 only
    assert t2["full"].tolist() == [dense[dense["rewind"] == "0it"]["accuracy"].mean()] * 2
    assert set(t2["full_from"]) == {"k=0"}
    assert t2[["full", "imp", "random_prune", "random_reinit"]].stack().between(0, 1).all()
    vk = pd.read_csv(rep.index.parent / "stability_vs_k.csv")
    assert set(vk["subnetwork"]) == {"dense", "imp", "random-prune", "random-reinit"}
    assert vk["test_instability"].between(0, 1).all()
    page = rep.index.read_text()
    assert "Instability analysis" in page and "BatchNorm" in page and "stability_table2.csv" in page
    # captions name the split, the paths per point (1 replicate, --copies 2: one pair) and the threshold's source
    assert "on the test split (left)" in page and "mean over 1 pairs of copies (1 replicates) per point" in page
    assert "Frankle et al. ICML 2020, section 2: stable when instability &lt; 2%" in page
    assert "Test error (fraction, on the test split) over the copies plane" in page and "replicate 0" in page


def test_pairs_text_counts_pairs_and_replicates_per_point() -> None:
    from lth.report.sections.stability import _pairs_text

    rows = [{"experiment": "e", "subnetwork": "imp", "rewind": "0it", "level": 1, "schedule_from_zero": False,
             "align": False, "replicate": r, "pair": p, "split": split}
            for r in (0, 1) for p in ("0-1", "0-2", "1-2") for split in ("test", "train")]  # 3 copies: 3 pairs
    d = pd.DataFrame(rows)
    assert _pairs_text(d) == "6 pairs of copies (2 replicates) per point"  # the paper's 3 x 3 would say 9 (3)
    fewer = pd.concat([d, d[d["replicate"] == 0].assign(rewind="5it")])
    assert _pairs_text(fewer) == "3-6 pairs of copies (1-2 replicates) per point"


def test_a_damaged_landscape_file_is_named_and_left_out(tmp_path, capsys):
    """A landscape JSON that is cut short (or not an object) is named in one warning; the rest of the report
    is written."""
    root = tmp_path / "store"
    base = ("--preset", "digits_mlp", "--training-steps", "20it", "--eval-every", "10it", "--device", "cpu",
            "--alphas", "3", "--train-examples", "100", "--trajectory-points", "1", "--rewind", "0it")
    assert lth("landscape", *base, "--root", str(root), "--grid", "3")[0] == 0
    (land,) = sorted(root.glob("stability_*/replicate_*/level_*/landscape_*.json"))
    land.write_text(land.read_text()[:40])
    capsys.readouterr()
    rep = build_report(root)
    err = capsys.readouterr().err
    assert err.count("damaged file") == 1 and str(land) in err
    assert not any(p.name.startswith("landscape_") for p in rep.figures) and rep.index.is_file()
