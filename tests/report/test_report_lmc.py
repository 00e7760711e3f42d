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


def test_fig7_and_fig9_are_drawn_from_every_copy_and_every_level(tmp_path):
    """Fig. 7 (test error of the copies made at k, against k) and Fig. 9 (median first stable / stable-and-matching
    k, against sparsity) at every level the store holds (#33: a CSV and JSON fields, one level)."""
    import json
    from pathlib import Path

    from lth.analysis.instability import k_iterations, latest_setting, pair_instabilities
    from lth.stability.analysis import stability_frame

    root = tmp_path / "store"
    code, _, err = lth("stability", *BASE[:-3], "--trajectory-points", "0", "--rewind", "0it", "5it", "--root",
                       str(root), "--levels", "0-2", "--replicates", "2", "--subnetwork", "imp", "random-prune")
    assert code == 0, err
    rep = build_report(root)
    names = {p.name for p in rep.figures}
    assert {"stability_error_vs_k.png", "stability_fig9.png"} <= names
    # Fig. 7: each copy's own final test error (its done.json), every replicate's copies
    f7 = pd.read_csv(rep.index.parent / "stability_error_vs_k.csv")
    copies = []
    for done in root.glob("stability_*/replicate_*/level_*/copy_*/done.json"):
        spec = json.loads((done.parent / "spec.json").read_text())
        copies.append({"subnetwork": spec["subnetwork"], "rewind": spec["rewind"],
                       "level": int(done.parent.parent.name.split("_")[1]),
                       "error": 1 - json.loads(done.read_text())["final_test_accuracy"]})
    own = pd.DataFrame(copies).groupby(["subnetwork", "level", "rewind"])["error"].agg(["mean", "size"])
    got = f7.set_index(["subnetwork", "level", "rewind"])
    assert sorted(got.index) == sorted(own.index) and len(own) == 10  # dense at 0, two subnetworks at 1 and 2; x2 k
    for key, row in own.iterrows():
        assert got.loc[key, "mean"] == row["mean"] or abs(got.loc[key, "mean"] - row["mean"]) < 1e-6, key
        assert got.loc[key, "count"] == row["size"] == 4  # 2 replicates x 2 copies
    # Fig. 9: every level; each sample's first stable k, then the lower median where a majority gets there
    f9 = pd.read_csv(rep.index.parent / "stability_fig9.csv")
    assert sorted(zip(f9["subnetwork"], f9["level"], strict=True)) == [
        ("dense", 0), ("imp", 1), ("imp", 2), ("random-prune", 1), ("random-prune", 2)]
    per = pair_instabilities(latest_setting(stability_frame(root)))
    for _, row in f9.iterrows():
        g = per[(per["subnetwork"] == row["subnetwork"]) & (per["level"] == row["level"])]
        firsts = []
        for _, s in g.groupby("replicate"):
            s = s.assign(k=s["rewind"].map(k_iterations)).sort_values("k")
            stable = s[s["test_instability"] < 0.02]
            firsts.append(None if stable.empty else stable["rewind"].iloc[0])
        reached = sorted((f for f in firsts if f is not None), key=k_iterations)
        want = reached[(len(firsts) - 1) // 2] if 2 * len(reached) > len(firsts) else None
        got9 = row["median_first_stable"]
        assert (None if pd.isna(got9) else got9) == want, (row["subnetwork"], row["level"])
        assert row["samples"] == 2
    assert Path(rep.index).read_text().count("Fig. 9") >= 1
