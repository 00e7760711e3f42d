"""A store of plain training runs with states kept along the way gets training curves and telemetry panels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lth.cli import main


def test_train_only_store_report_with_telemetry(tmp_path: Path, capsys) -> None:
    root = tmp_path / "store"
    assert main(["train", "--preset", "digits_mlp", "--training-steps", "2ep", "--replicates", "2", "--save-states",
                 "5it", "1ep", "--root", str(root)]) == 0
    assert main(["report", "--root", str(root)]) == 0
    capsys.readouterr()
    out = root / "report"
    html = (out / "index.html").read_text()
    for name in ("train_curves", "telemetry"):
        png = out / f"{name}.png"
        assert f'src="{name}.png"' in html
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert (out / f"{name}.svg").stat().st_size > 1000
    df = pd.read_csv(out / "telemetry.csv")
    assert sorted(df["iteration"].unique()) == [0, 5, 46, 92]  # digits: 46 steps per epoch at batch 32
    assert (df.loc[df["iteration"] == 0, "sign_changed_fraction"] == 0).all()


def test_report_draws_the_engines_telemetry_csv(tmp_path: Path, capsys) -> None:
    from lth import api
    from lth.spec import Step

    root = tmp_path / "store"
    api.run(api.train("digits_mlp", root=root, training_steps=Step(1, "ep")), device="cpu",
            telemetry_every=Step(20, "it"), telemetry_dense_until=Step(4, "it"), telemetry_dense_every=Step(2, "it"))
    assert main(["report", "--root", str(root)]) == 0
    capsys.readouterr()
    df = pd.read_csv(root / "report" / "telemetry.csv")
    assert sorted(df["iteration"].unique()) == [0, 2, 4, 20, 40, 46]  # no --save-states: the engine's rows
    assert "grad_norm" in df and df["l2_from_final"].iloc[-1] == 0


def test_each_telemetry_panel_names_its_quantity_on_the_y_axis() -> None:
    """The y-axis named the last run's label (a loop variable shadowed the quantity's name; issue #33)."""
    import pandas as pd

    from lth.report.sections.telemetry import _TELEMETRY, draw_telemetry

    rows = [{"experiment": "train_x", "label": "my run", "replicate": r, "iteration": i,
             **{col: float(i + r) for col, _ in _TELEMETRY}} for r in (0, 1) for i in (0, 10)]
    fig = draw_telemetry(pd.DataFrame(rows))
    assert [ax.get_ylabel() for ax in fig.axes] == [quantity for _, quantity in _TELEMETRY]
    assert {line.get_label() for line in fig.axes[0].lines} == {"my run r0", "my run r1"}
