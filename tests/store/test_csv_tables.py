"""The store's CSV tables as text (lth.store.tables) and atomic links (lth.store.atomic), without a run."""

from __future__ import annotations

from pathlib import Path

import pytest

from lth.store.atomic import atomic_link
from lth.store.tables import BadTable, hessian_csv, metrics_csv, parse_hessian, parse_metrics, telemetry_csv


def test_tables_round_trip_as_text() -> None:
    rows = [{"iteration": 0, "step": "0it", "test_accuracy": 0.5, "lr": 1.2e-3, "extra": "x"}]
    text = metrics_csv(rows).decode()
    assert text.splitlines()[0].startswith("iteration,step,") and ",0.0012," in text
    back = parse_metrics(text)[0]
    assert back["iteration"] == 0 and back["step"] == "0it" and back["extra"] == "x" and back["val_loss"] is None
    assert parse_hessian(hessian_csv([{"state": "final", "rank": 1, "eigenvalue": 2.5}]).decode()) == \
        [{"state": "final", "rank": 1, "eigenvalue": 2.5}]
    assert telemetry_csv([{"step": "0it", "b": None, "a": 1, "iteration": 0}]).decode() == \
        "iteration,step,a,b\n0,0it,1,\n"


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"), ("iteration,step\n0,0it", "the last line is cut short"),
    ("step\n0it\n", "has no 'iteration' column"), ("iteration,step\n0\n", "line 2 has 1 cells, the header 2"),
    ("iteration,test_loss\n0,high\n", "line 2: test_loss 'high' is not a number")])
def test_a_metrics_text_that_its_writer_did_not_write_says_why(text: str, reason: str) -> None:
    with pytest.raises(BadTable, match=reason):
        parse_metrics(text)


def test_atomic_link_takes_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    src, dst = tmp_path / "a.txt", tmp_path / "sub" / "b.txt"
    src.write_text("one")
    dst.parent.mkdir()
    dst.write_text("old")
    atomic_link(src, dst)
    assert dst.read_text() == "one" and sorted(p.name for p in dst.parent.iterdir()) == ["b.txt"]
