"""A store of plain training runs with states kept along the way gets training curves and telemetry panels."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

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
    """The y-axis named the last run's label (a loop variable shadowed the quantity's name; issue #33); Fig. 3 has
    nine panels, the accuracy's with the loss on its right axis."""
    from lth.report.sections.telemetry import LOSS_LABEL, PANELS, draw_telemetry

    quantities = [c for c, _, _ in PANELS if c not in ("test_accuracy", "sampled")]
    rows = [{"series": "my run", "path": f"/r{r}", "replicate": r, "iteration": i,
             **{col: float(i + r) for col in quantities}, **{f"w[l.weight[{j}]]": float(j * i) for j in range(10)}}
            for r in (0, 1) for i in (0, 10)]
    acc = pd.DataFrame([{"series": "my run", "path": f"/r{r}", "iteration": i, "test_accuracy": 0.5,
                         "test_loss": 1.0} for r in (0, 1) for i in (0, 10)])
    fig, panels = draw_telemetry(pd.DataFrame(rows), acc)
    assert len(PANELS) == 9
    assert [panels[c].get_ylabel() for c, _, _ in PANELS] == [label for _, label, _ in PANELS]
    assert panels["test_loss"].get_ylabel() == LOSS_LABEL and len(panels["test_loss"].lines) == 2
    assert len(panels["sampled"].lines) == 10  # the ten weights of one run
    scale = {c: k for c, _, k in PANELS}
    for c in quantities:  # one line per run, each the run's values (the sign-change fraction in percent)
        assert len(panels[c].lines) == 2, c
        assert list(panels[c].lines[1].get_ydata()) == [scale[c] * 1.0, scale[c] * 11.0], c
    assert {line.get_label() for line in panels["mean_abs_weight"].lines} == {"my run"}


def test_a_quantity_not_recorded_is_a_panel_that_says_so() -> None:
    from lth.report.sections.telemetry import draw_telemetry

    rows = [{"series": "s", "path": "/r", "replicate": 0, "iteration": i, "mean_abs_weight": 1.0 + i,
             "sign_changed_fraction": 0.0, "l2_from_init": 0.0, "l2_from_final": 0.0, "cosine_to_init": 1.0,
             "cosine_to_final": 1.0} for i in (0, 5)]  # states-based telemetry: no gradient norm, no ten weights
    _, panels = draw_telemetry(pd.DataFrame(rows))
    for col in ("grad_norm", "sampled", "test_accuracy"):
        assert not panels[col].lines and "not recorded" in panels[col].texts[0].get_text() or \
            col == "test_accuracy" and "no evaluations" in panels[col].texts[0].get_text()


@pytest.fixture(scope="module")
def pretrain_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain trunk rewound to 0 and 5it and a trunk whose state at 5it is pretrained on rotations, all with
    the engine's telemetry."""
    root = tmp_path_factory.mktemp("pretrain")
    common = ["--preset", "digits_mlp", "--levels", "1", "--replicates", "2", "--training-steps", "1ep",
              "--telemetry-every", "10it", "--root", str(root)]
    assert main(["lottery", *common, "--rewind", "0it", "5it"]) == 0
    assert main(["lottery", *common, "--pretrain-steps", "5it", "--pretrain-task", "rotation"]) == 0
    assert main(["report", "--root", str(root)]) == 0
    return root


def test_a_lottery_store_gets_fig3_of_its_dense_network_each_run_once(pretrain_store: Path, capsys) -> None:
    from lth.analysis import runs_frame

    capsys.readouterr()
    out = pretrain_store / "report"
    assert 'src="telemetry.png"' in (out / "index.html").read_text()
    assert (out / "telemetry.png").stat().st_size > 1000
    df = pd.read_csv(out / "telemetry.csv")
    runs = runs_frame(pretrain_store)
    level0 = runs[(runs["kind"] == "lottery") & (runs["level"] == 0)]
    assert len(level0) == 6 and level0["node"].nunique() == 2  # three trunks x two replicates: two networks
    drawn = level0[level0["path"].isin(df["path"])]
    assert len(drawn) == 2 and drawn["node"].nunique() == 2 and sorted(drawn["replicate"]) == [0, 1]
    if "trained_as" in drawn:  # a directory filled from another is not drawn beside it
        assert drawn["trained_as"].isna().all()
    trained = drawn
    assert {"grad_norm", "l2_from_final", "cosine_to_init"} <= set(df)
    assert (df.groupby("path")["grad_norm"].count() >= 5).all()  # every step but the last one records it
    assert len([c for c in df if c.startswith("w[")]) == 10
    own = pd.read_csv(Path(trained["path"].iloc[0]) / "telemetry.csv")
    assert df[df["path"] == trained["path"].iloc[0]]["mean_abs_weight"].tolist() == own["mean_abs_weight"].tolist()


def test_each_pretraining_task_is_its_own_series(pretrain_store: Path) -> None:
    """The pretrained trunk's tickets were pooled with the plain trunk's as "IMP ticket, rewind 5it" (#33)."""
    acc = pd.read_csv(pretrain_store / "report" / "accuracy_vs_density.csv")
    counts = acc.set_index(["series", "level"])["count"].to_dict()
    assert counts == {(s, lv): 2 for s in ("IMP ticket (pretrain: rotation), rewind 5it", "IMP ticket, rewind 0it",
                                           "IMP ticket, rewind 5it") for lv in (0, 1)}
