"""``lth report``'s own bad input: exit 2 and one line, before any figure is drawn."""

from __future__ import annotations

import pytest

from lth.cli import main


@pytest.mark.parametrize("under", [False, True])
def test_out_that_is_a_file(capsys: pytest.CaptureFixture, tmp_path, under: bool) -> None:
    # `-o` naming a file (or a path under one) was a FileExistsError: exit 1 and "failed"
    (tmp_path / "store").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    out = tmp_path / "notes.txt" / "report" if under else tmp_path / "notes.txt"
    code = main(["report", "--root", str(tmp_path / "store"), "-o", str(out)])
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("lth: error: -o ") and str(out) in lines[0] and "notes.txt is a file" in lines[0]
    assert (tmp_path / "notes.txt").read_text() == "mine"
