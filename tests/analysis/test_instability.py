"""Table 2 of Frankle et al. 2020 from stored pairs: the one-shot subnetwork stands for IMP where a (k, level) has
no IMP copies (the ImageNet rows, whose tickets are one-shot pruned)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lth.analysis.instability import table2


def _pairs(subnetwork: str, level: int, density: float, end_error: float) -> list[dict]:
    rows = []
    for split in ("test", "train"):
        for alpha, err in ((0.0, end_error), (0.5, end_error + 0.1), (1.0, end_error)):
            rows.append({"experiment": f"stability_{subnetwork}", "subnetwork": subnetwork, "rewind": "0it",
                         "level": level, "density": density, "replicate": 0, "pair": "0-1",
                         "schedule_from_zero": False, "align": False, "split": split, "alpha": alpha, "error": err,
                         "loss": err, "instability": 0.1})
    return rows


def test_table2_takes_the_oneshot_subnetwork_as_the_ticket_where_there_is_no_imp() -> None:
    df = pd.DataFrame(_pairs("dense", 0, 1.0, 0.24) + _pairs("oneshot", 1, 0.3, 0.27)
                      + _pairs("random-prune", 1, 0.3, 0.29))
    t = table2(df)
    row = t.iloc[0]
    assert row["full"] == pytest.approx(0.76) and row["oneshot"] == pytest.approx(0.73) and np.isnan(row["imp"])
    assert row["random_prune"] == pytest.approx(0.71) and np.isnan(row["random_reinit"])
    assert row["delta"] == pytest.approx(0.03) and not row["imp_matching"]  # 3 points below full
    # with IMP copies beside them, IMP is the ticket and the one-shot network its own column
    both = table2(pd.concat([df, pd.DataFrame(_pairs("imp", 1, 0.3, 0.2405))])).iloc[0]
    assert both["imp"] == pytest.approx(0.7595) and both["oneshot"] == pytest.approx(0.73)
    assert both["delta"] == pytest.approx(0.0005) and both["imp_matching"]
