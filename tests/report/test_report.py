"""`lth report` on a small real digits store: every figure is a real PNG with an SVG beside it, tables parse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from lth.cli import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
COMMON = ["--preset", "digits_mlp", "--replicates", "2", "--training-steps", "2ep", "--validation-size", "200"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("store")
    assert main(["lottery", "--levels", "2", *COMMON, "--root", str(root)]) == 0
    for branch in ("reinit", "small-dense"):
        assert main(["branch", branch, "--levels", "1-2", *COMMON, "--root", str(root)]) == 0
    return root


@pytest.fixture(scope="module")
def report(store: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["report", "--root", str(store), "--json"]) == 0
    return json.loads(buf.getvalue())


def test_report_page_and_images(report: dict, store: Path):
    index = Path(report["report"])
    assert index == store.resolve() / "report" / "index.html" and index.is_file()
    page = index.read_text()
    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert {"accuracy_vs_density.png", "accuracy_curves.png", "early_stopping.png", "dn_histograms.png",
            "rp_overlap.png"} <= set(srcs)
    for src in srcs:
        assert "/" not in src  # relative, beside the page: it opens from disk
        png = index.parent / src
        data = png.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1024, src
        svg = png.with_suffix(".svg")
        assert svg.is_file() and "<svg" in svg.read_text()[:2000]
    for href in re.findall(r'href="([^"]+)"', page):
        assert (index.parent / href).is_file(), href


def test_report_tables_and_verdicts(report: dict):
    tables = {Path(p).name: Path(p) for p in report["tables"]}
    assert {"runs.csv", "accuracy_vs_density.csv", "matching.csv", "sparsest_matching.csv", "jackpot.csv",
            "early_stopping.csv", "rp_overlap.csv", "dn_histograms.csv"} <= set(tables)
    for p in tables.values():
        assert not pd.read_csv(p).empty, p
    acc = pd.read_csv(tables["accuracy_vs_density.csv"])
    assert set(acc["series"]) == {"IMP ticket", "reinit", "small-dense"}
    assert acc["mean"].between(0, 1).all() and (acc["count"] == 2).all()
    matching = pd.read_csv(tables["matching.csv"])
    assert matching["level"].tolist() == [0, 1, 2] and bool(matching["matching"].iloc[0])
    grades = pd.read_csv(tables["jackpot.csv"])
    assert grades["level"].tolist() == [1, 2]
    assert set(grades["grade"]) <= {"jackpot", "secondary prize", "no prize"}
    # one lr and no longer dense run in this store: condition 1's training half is reported, never assumed
    assert (grades["sufficient_training"] == "not checked").all() and (grades["grade"] == "no prize").all()
    assert (grades["not_checked"] == "sufficient_training").all()
    for c in ("beats_reinit_any_lr", "matches_dense_same_lr", "beats_small_dense"):
        assert grades[f"{c}_runs"].str.contains("replicate_").all(), c
    assert grades["beats_reinit_any_lr_runs"].str.contains("branch_reinit").all()
    assert grades["beats_small_dense_runs"].str.contains("branch_small-dense").all()
    assert grades["matches_dense_same_lr_runs"].str.endswith("level_0").all()
    early = pd.read_csv(tables["early_stopping.csv"])
    assert (early["chosen_on"] == "val").all() and (early["criterion"] == "val_loss").all()
    rp = pd.read_csv(tables["rp_overlap.csv"])
    assert rp["r_p"].between(0, 1).all()


def test_report_json_paths_absolute(report: dict):
    paths = [report["report"], *report["figures"], *report["tables"]]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in paths)
    assert sum(p.endswith(".png") for p in report["figures"]) == sum(p.endswith(".svg") for p in report["figures"])


def test_report_out_flag(store: Path, tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["report", "--root", str(store), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "index.html").is_file()
    assert capsys.readouterr().out.strip() == str((tmp_path / "out" / "index.html").resolve())


def test_report_errors(tmp_path: Path, capsys: pytest.CaptureFixture):
    assert main(["report", "--root", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing" in err
    (tmp_path / "empty").mkdir()
    assert main(["report", "--root", str(tmp_path / "empty")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert list((tmp_path / "empty").iterdir()) == []


def test_jackpot_uses_reinit_at_every_lr_and_a_longer_dense_run(tmp_path: Path):
    """Two trunks at two learning rates and a longer dense run: each ticket's condition 3 compares with the
    reinit at both lrs; condition 1 is checked against the longer run; no validation split -> said so."""
    import io
    from contextlib import redirect_stdout

    root = tmp_path / "s"
    base = ["--preset", "digits_mlp", "--replicates", "1", "--training-steps", "1ep", "--root", str(root)]
    for lr in ("3e-3", "1e-3"):
        assert main(["lottery", "--levels", "1", *base, "--lr", lr]) == 0
        for branch in ("reinit", "small-dense"):
            assert main(["branch", branch, "--levels", "1", *base, "--lr", lr]) == 0
    assert main(["train", *base[:-4], "--training-steps", "2ep", "--lr", "3e-3", "--root", str(root)]) == 0
    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(["report", "--root", str(root), "--json"]) == 0
    tables = {Path(p).name: Path(p) for p in json.loads(buf.getvalue())["tables"]}
    grades = pd.concat([pd.read_csv(tables[n]) for n in tables if n.endswith("jackpot.csv")], ignore_index=True)
    assert len(grades) == 2 and sorted(grades["lr"]) == [1e-3, 3e-3]
    assert (grades["reinit_lrs"].str.split(", ").map(len) == 2).all()  # both lrs' reinits, for each ticket
    assert grades["best_reinit_accuracy"].nunique() == 1  # the same best reinit over all lrs for both tickets
    row = grades.set_index("lr").loc[3e-3]
    assert row["sufficient_training"] in ("met", "FAILED") and "train_" in row["sufficient_training_runs"]
    assert grades.set_index("lr").loc[1e-3, "sufficient_training"] == "not checked"  # no longer run at 1e-3
    early = pd.concat([pd.read_csv(tables[n]) for n in tables if n.endswith("early_stopping.csv")])
    assert (early["criterion"] == "no validation split").all() and (early["count"] == 0).all()
    # on the page: one line per study naming the CSV, not a table of empty rows (#33)
    page = (root / "report" / "index.html").read_text()
    notes = re.findall(r'<p class="cap">Early stopping \(.*?no run has a validation split.*?href="([^"]+)"', page)
    assert sorted(notes) == sorted(n for n in tables if n.endswith("early_stopping.csv")) and len(notes) == 2
    assert "early_stopping.csv\">CSV</a>)</p><table" not in page and "Early-stop" not in page


def test_dn_histogram_has_the_whole_networks_theta_lt(report: dict, store: Path):
    """Seed 004's D_n (section 2, Figure 5) is the network's nonzero kept initial weights, not one layer's: the
    first panel counts every one of them (the per-layer panels' ticket counts sum to it)."""
    tables = {Path(p).name: Path(p) for p in report["tables"]}
    h = pd.read_csv(tables["dn_histograms.csv"])
    whole = h[h["layer"] == "whole network (D_n)"]
    layers = h[h["layer"] != "whole network (D_n)"]
    assert not whole.empty and not layers.empty
    assert whole["ticket_count"].sum() == layers["ticket_count"].sum() > 0
    assert whole["all_count"].sum() == layers["all_count"].sum()


def test_captions_name_the_split_the_runs_and_the_threshold(report: dict) -> None:
    page = Path(report["report"]).read_text()
    pairs = re.findall(r"<figcaption>(.*?)</figcaption>|<p class=\"cap\">(.*?)</p>", page)
    caps = {c for pair in pairs for c in pair if c}

    def cap(start: str) -> str:
        (found,) = [c for c in caps if c.startswith(start)]
        return found
    digits = "the digits test split of 297 examples"  # the fixture: digits, 2 replicates, 200 held out
    acc = cap("Final test accuracy (after the last training step")
    assert digits in acc and "mean over 2 replicates per point" in acc and "IMP ticket, reinit, small-dense" in acc
    assert digits in cap("Test accuracy on") and "levels 0, 1, 2" in cap("Test accuracy on")
    early = cap("Iteration of minimum validation loss")
    assert "the validation split of 200 training examples held out (data seed 0)" in early and digits in early
    for start in ("Sparsest matching ticket", "Matching per level"):
        c = cap(start)
        assert digits in c and "2 replicates" in c and "0.2 points" in c and "Frankle et al. ICML 2020, Fig. 9" in c
    assert digits in cap("Jackpot grades") and "section 3" in cap("Jackpot grades")


def test_consecutive_figures_never_share_a_colour_for_different_meanings(store: Path) -> None:
    """The lottery curve's series and the training curves' levels were both drawn from the first colours of one
    cycle (C0 = IMP in one figure, C0 = level 0 in the next; #33): each meaning now has its page colour."""
    from matplotlib.colors import to_hex

    from lth.analysis import metrics_frame, runs_frame
    from lth.report.context import ReportContext
    from lth.report.page import Page, Report
    from lth.report.sections import STUDY_SECTIONS

    out = store / "colours"
    out.mkdir(exist_ok=True)
    page = Page(out, Report(out / "index.html"))
    drawn: list[tuple[str, dict[str, set[str]]]] = []

    def keep(fig, name, caption, data=None) -> None:
        labels: dict[str, set[str]] = {}
        for ax in fig.axes:
            for line in ax.get_lines():
                if not line.get_label().startswith("_") and line.get_linestyle() != ":":
                    labels.setdefault(line.get_label(), set()).add(to_hex(line.get_color()))
        drawn.append((name, labels))
    page.figure = keep  # type: ignore[method-assign]
    runs = runs_frame(store)
    ctx = ReportContext(page, store, runs, metrics_frame(store, runs))
    for study in ctx.studies:
        for section in STUDY_SECTIONS.values():
            section(study)
    names = [n for n, _ in drawn]
    assert names[:2] == ["accuracy_vs_density", "accuracy_curves"], names
    for (_, a), (_, b) in zip(drawn, drawn[1:], strict=False):
        for label_a, colours_a in a.items():
            for label_b, colours_b in b.items():
                if label_a != label_b:
                    assert not colours_a & colours_b, (label_a, label_b)
    for _, labels in drawn:  # within a figure, too
        assert all(len(c) == 1 for c in labels.values())


def test_page_colour_is_one_per_meaning() -> None:
    from lth.report.figures import PALETTE
    from lth.report.page import Page, Report

    page = Page(Path("."), Report(Path("index.html")))
    colours = [page.colour(f"series {i}") for i in range(len(PALETTE))]
    assert len(set(colours)) == len(PALETTE) and page.colour("series 3") == colours[3]
    assert all(c not in ("#7f7f7f", "#000000") for c in PALETTE)  # grey and black mark references
