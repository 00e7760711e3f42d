"""Report files are written whole: a crash while drawing or writing leaves the previous file, never a part."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lth.report.figures import new_figure, save, write_csv


def _partial_then_fail(target, *args, **kwargs):
    """A writer killed half-way: some bytes reach its target, then it stops."""
    if isinstance(target, list):  # rendered in memory: nothing reaches a file
        pass
    elif hasattr(target, "write"):
        target.write(b"partial" if "b" in getattr(target, "mode", "b") else "partial")
    else:
        Path(target).write_bytes(b"partial")
    raise RuntimeError("killed")


def test_save_writes_png_and_svg_and_a_failed_save_keeps_the_old_files(tmp_path, monkeypatch) -> None:
    fig, (ax,) = new_figure()
    ax.plot([0, 1], [1, 0])
    png, svg = save(fig, tmp_path, "f")
    assert png.read_bytes().startswith(b"\x89PNG") and svg.read_text().rstrip().endswith("</svg>")
    before = {p: p.read_bytes() for p in (png, svg)}
    monkeypatch.setattr(fig, "savefig", _partial_then_fail)
    with pytest.raises(RuntimeError):
        save(fig, tmp_path, "f")
    assert {p: p.read_bytes() for p in (png, svg)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "f.svg"]  # no temporary left


def test_write_csv_is_to_csv_written_whole(tmp_path, monkeypatch) -> None:
    df = pd.DataFrame({"a": [1, 2], "b": [0.5, None], "c": ["x", "y,z"]})
    p = tmp_path / "t.csv"
    assert write_csv(df, p) == p.resolve()
    assert p.read_text() == df.to_csv(index=False)
    pd.testing.assert_frame_equal(pd.read_csv(p), df)
    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda self, target=None, **kw: _partial_then_fail(target or []))
    with pytest.raises(RuntimeError):
        write_csv(df.iloc[:1], p)
    assert pd.read_csv(p).shape == (2, 3) and [q.name for q in tmp_path.iterdir()] == ["t.csv"]
