"""Tables of stored instability analyses (what ``lth stability`` wrote, as
:func:`lth.stability.analysis.stability_frame` reads it): the setting each pair is drawn with
(:func:`latest_setting`), one row of instability per pair (:func:`pair_instabilities`) and the verdicts of
Frankle et al. 2020, Table 2 (:func:`table2`). The report draws them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lth.analysis.stability import MATCHING_TOLERANCE


def k_iterations(text: Any) -> float:
    """The order of a rewind step's text (``5it``, ``2ep``) on an axis of iterations; epochs come after every
    iteration count when the units mix."""
    t = str(text)
    return float(t[:-2]) * (1e6 if t.endswith("ep") else 1)  # epochs after iterations when units mix


def latest_setting(df: pd.DataFrame) -> pd.DataFrame:
    """Per pair and alignment, the setting with the most points (a store may hold several --alphas)."""
    pts = df.groupby(["experiment", "replicate", "level", "pair", "align", "setting"])["alpha"].transform("nunique")
    best = pts.groupby([df[c] for c in ("experiment", "replicate", "level", "pair", "align")]).transform("max")
    return df[pts == best]


def pair_instabilities(df: pd.DataFrame) -> pd.DataFrame:
    """One row per pair: its test and train instability and end-point test accuracy."""
    keys = ["experiment", "subnetwork", "rewind", "level", "density", "replicate", "pair", "schedule_from_zero",
            "align"]
    out = df.pivot_table(index=keys, columns="split", values="instability", aggfunc="first").reset_index()
    ends = df[(df["split"] == "test") & ((df["alpha"] == 0.0) | (df["alpha"] == 1.0))]
    acc = (1 - ends.groupby(keys)["error"].mean()).rename("accuracy").reset_index()
    return out.merge(acc, on=keys).rename(columns={"test": "test_instability", "train": "train_instability"})


def table2(df: pd.DataFrame) -> pd.DataFrame:
    """Frankle et al. 2020, Table 2, for every (k, level) the store holds: test accuracy (mean over copies and
    replicates) of the full network, IMP, the one-shot subnetwork, random pruning and random reinitialisation,
    ``delta`` = full - IMP and ``imp_matching`` (IMP within :data:`~lth.analysis.stability.MATCHING_TOLERANCE` of
    full), both of the one-shot subnetwork where a (k, level) has no IMP copies (Table 2's ImageNet rows, whose
    "IMP" is one-shot pruning); sorted by k and
    level, empty without a subnetwork. The full network is the dense copies made at k = 0 (``full_from``): copies
    made at a later k are that network too, with other SGD noise after k, used only when k = 0 is absent."""
    per = pair_instabilities(df)
    per = per[~per["schedule_from_zero"].astype(bool) & ~per["align"].astype(bool)]
    acc = per.groupby(["subnetwork", "rewind", "level"]).agg(accuracy=("accuracy", "mean"),
                                                           density=("density", "mean")).reset_index()
    dense = per[per["subnetwork"] == "dense"]
    at_init = dense[dense["rewind"].map(k_iterations) == 0]
    full_from = "k=0" if not at_init.empty else "all k"
    full = float((at_init if not at_init.empty else dense)["accuracy"].mean()) if not dense.empty else np.nan
    rows = []
    for (k, level), g in acc[acc["subnetwork"] != "dense"].groupby(["rewind", "level"]):
        a = g.set_index("subnetwork")["accuracy"]
        imp, oneshot = a.get("imp", np.nan), a.get("oneshot", np.nan)
        ticket = oneshot if np.isnan(imp) else imp  # LMC's ImageNet rows: the one-shot subnetwork is the ticket
        rows.append({"rewind": k, "level": level, "density": float(g["density"].iloc[0]), "full": full,
                     "full_from": full_from, "imp": imp, "oneshot": oneshot,
                     "random_prune": a.get("random-prune", np.nan),
                     "random_reinit": a.get("random-reinit", np.nan), "delta": full - ticket,
                     "imp_matching": None if np.isnan(full) or np.isnan(ticket)
                     else bool(ticket >= full - MATCHING_TOLERANCE - 1e-12)})
    if not rows:
        return pd.DataFrame()
    t = pd.DataFrame(rows)
    return t.assign(k_order=t["rewind"].map(k_iterations)).sort_values(["k_order", "level"]).drop(columns="k_order")
