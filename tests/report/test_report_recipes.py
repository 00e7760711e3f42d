"""A recipe's section is part of the store: kept as ROOT/recipes/NAME.json and drawn by every report, so a later
`lth report` keeps it; two recipes in one store each keep their section; a damaged result is named, not fatal."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from conftest import lth

TINY = ("--quick", "--levels", "1", "--training-steps", "21it", "--replicates", "1")


def recipe(root: Path, name: str) -> dict:
    code, out, err = lth("recipe", name, *TINY, "--root", str(root), "--json")
    assert code == 0, err
    return json.loads(out)


def test_a_later_report_keeps_every_recipes_section(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    first = recipe(root, "normalization")
    page = Path(first["report"])
    assert (root / "recipes" / "normalization.json").is_file()
    assert "<h1>Recipe normalization" in page.read_text()
    rows = pd.read_csv(page.parent / "paper_vs_lth.csv")
    assert len(rows) == len(first["rows"]) > 0

    code, out, err = lth("report", "--root", str(root), "--json")  # rebuilt whole: the recipe's section stays
    assert code == 0, err
    doc = json.loads(out)
    html = Path(doc["report"]).read_text()
    assert html.index("<h1>") == html.index("<h1>Recipe normalization")  # first on the page
    assert str(page.parent / "paper_vs_lth.csv") in doc["tables"]
    assert pd.read_csv(page.parent / "paper_vs_lth.csv").equals(rows)

    second = recipe(root, "lottery")  # the recipe run last first, with the plain names; the other prefixed
    html = Path(second["report"]).read_text()
    assert html.index("<h1>Recipe lottery") < html.index("<h1>Recipe normalization")
    assert len(pd.read_csv(page.parent / "paper_vs_lth.csv")) == len(second["rows"])
    assert pd.read_csv(page.parent / "normalization_paper_vs_lth.csv").equals(rows)


def test_a_damaged_recipe_result_is_named_and_left_out(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    recipe(root, "normalization")
    bad = root / "recipes" / "lottery.json"
    bad.write_text("{not json")
    code, out, err = lth("report", "--root", str(root), "--json")
    assert code == 0, err
    assert f"damaged recipe result {bad}" in err
    html = Path(json.loads(out)["report"]).read_text()
    assert "<h1>Recipe normalization" in html and "<h1>Recipe lottery" not in html
