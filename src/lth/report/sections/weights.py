"""A study's weights: the D_n histograms of the tickets' initial weights (seed 004, Fig. 5: the whole network's
theta_LT at each of the study's D_n densities and per replicate; and per layer for the sparsest ticket), the R_p
overlap of final weights and the frame potential of each layer (replicate and rewind step: the trunk's first)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from lth.analysis import dn_histograms, dn_values, frame_potential, rp_curve
from lth.report.context import Study, rewind_order
from lth.report.figures import new_figure, pct
from lth.store import RunDir

DN_DENSITIES = (0.262, 0.107)  # seed 004, section 4.1 and Fig. 5: 6 and 10 rounds of 20%


def dn_levels(study: pd.DataFrame, trunk: pd.DataFrame) -> list[int]:
    """The levels whose D_n Fig. 5 draws: those the study's ``dn-reinit`` and ``remask`` branches hang off (the
    densities the study samples D_n at), else the pruned trunk levels nearest seed 004's 26.2% and 10.7%."""
    b = study[(study["kind"] == "branch") & study["branch"].isin(["dn-reinit", "remask"])] if "branch" in study \
        else study.iloc[0:0]
    if not b.empty:
        return sorted({int(v) for v in b["level"].dropna()})
    pruned = trunk[trunk["level"] > 0].groupby("level")["density"].mean()
    if pruned.empty:
        return []
    return sorted({int((pruned - d).abs().idxmin()) for d in DN_DENSITIES})


def dn_by_density(study: Study, trunk: pd.DataFrame) -> None:
    """Seed 004's Fig. 5: the histogram of theta_LT = nonzero(m * theta_0) over the whole network
    (:func:`lth.analysis.dn_values`), one panel per replicate (rows) and D_n level (columns, :func:`dn_levels`),
    each over its replicate's own initialisation (all weights, shaded)."""
    levels = dn_levels(study.runs, trunk)
    reps = sorted(int(r) for r in trunk["replicate"].dropna().unique())
    if not levels or not reps:
        return
    cells = []
    for r in reps:
        t = trunk[trunk["replicate"] == r]
        lvl0 = t[t["level"] == 0]
        if lvl0.empty:
            continue
        d0 = RunDir(Path(lvl0["path"].iloc[0]))
        states = d0.states()
        start = "rewind" if "rewind" in states else "init"
        if start not in states:
            continue
        init = None
        for lv in levels:
            run = t[t["level"] == lv]
            if run.empty or not RunDir(Path(run["path"].iloc[0])).has_mask():
                continue
            init = d0.load_state(start) if init is None else init
            mask = RunDir(Path(run["path"].iloc[0])).load_mask()
            cells.append((r, lv, float(run["density"].iloc[0]), start, dn_values(init, mask),
                          np.concatenate([init[k].detach().double().flatten().numpy() for k in mask])))
    if not cells:
        return
    rows_r, cols_l = sorted({c[0] for c in cells}), sorted({c[1] for c in cells})
    fig, axes = new_figure(ncols=len(cols_l), nrows=len(rows_r), width=3.6 * len(cols_l) + 0.6,
                           height=2.4 * len(rows_r) + 0.8)
    table = []
    for r, lv, density, start, ticket, everything in cells:
        ax = axes[rows_r.index(r) * len(cols_l) + cols_l.index(lv)]
        edges = np.histogram_bin_edges(everything, bins=40)
        ca, _ = np.histogram(everything, bins=edges)
        ct, _ = np.histogram(ticket, bins=edges)
        ax.hist(everything, bins=edges, density=True, alpha=0.45, label="initialisation (all)",
                color=study.page.colour("initialisation (all)"))
        if ct.sum():
            ax.hist(ticket, bins=edges, density=True, histtype="step", lw=1.8, label="ticket (kept)",
                    color=study.page.colour("ticket (kept)"))
        ax.set_title(f"replicate {r}, level {lv} ({100 * density:.3g}% remaining)", fontsize=9)
        ax.set_xlabel("Initial weight value")
        ax.set_ylabel("Probability density")
        table.append(pd.DataFrame({"replicate": r, "level": lv, "density": density, "start_state": start,
                                   "bin_left": edges[:-1], "bin_right": edges[1:], "all_count": ca,
                                   "ticket_count": ct}))
    axes[0].legend(loc="upper left", fontsize=7)
    fig.suptitle(f"{study.title}: D_n per replicate and density")
    study.page.figure(fig, f"{study.prefix}dn_by_density",
                      "Seed 004, Fig. 5: histogram of each ticket's nonzero initial weights over the whole network "
                      f"(its D_n) at levels {', '.join(map(str, cols_l))}, one row per replicate, against all "
                      "initial weights of its prunable layers (normalised to unit area)", pd.concat(table))


def weights(study: Study) -> None:
    """D_n histograms (level 0's start state under the sparsest mask), R_p curves and frame potentials."""
    s, page, prefix, preset = study.runs, study.page, study.prefix, study.title
    trunk = s[(s["kind"] == "lottery") & (s["status"] == "complete")]
    if trunk.empty:
        return
    rewind = sorted(trunk["rewind"].dropna().unique(), key=rewind_order)[0]
    trunk = trunk[trunk["rewind"] == rewind]
    dn_by_density(study, trunk)
    rep = int(trunk["replicate"].min())
    trunk = trunk[trunk["replicate"] == rep]
    lvl0 = trunk[trunk["level"] == 0]
    sparse = trunk[trunk["level"] == trunk["level"].max()]
    if lvl0.empty or sparse.empty or int(sparse["level"].iloc[0]) == 0:
        return
    d0, ds = RunDir(Path(lvl0["path"].iloc[0])), RunDir(Path(sparse["path"].iloc[0]))
    level, density = int(sparse["level"].iloc[0]), float(sparse["density"].iloc[0])
    if not ds.has_mask():
        return
    mask = ds.load_mask()
    states0 = d0.states()
    start_name = "rewind" if "rewind" in states0 else "init"
    if start_name in states0:
        init = d0.load_state(start_name)
        layers = dn_histograms(init, mask)
        # seed 004's D_n is the network's theta_LT (its Figure 5: one histogram per network), then per layer
        hist = {"whole network (D_n)": {"ticket": dn_values(init, mask),
                                        "all": np.concatenate([h["all"] for h in layers.values()])}, **layers}
        names = list(hist)[:6]
        fig, axes = new_figure(len(names), height=3.6)
        rows = []
        for ax, name in zip(axes, names, strict=True):
            h = hist[name]
            edges = np.histogram_bin_edges(h["all"], bins=40)
            ca, _ = np.histogram(h["all"], bins=edges)
            ct, _ = np.histogram(h["ticket"], bins=edges)
            ax.hist(h["all"], bins=edges, density=True, alpha=0.45, label="initialisation (all)",
                    color=page.colour("initialisation (all)"))
            if ct.sum():  # a layer initialised to zero (Fixup's last convolutions) keeps no nonzero weight
                ax.hist(h["ticket"], bins=edges, density=True, histtype="step", lw=1.8, label="ticket (kept)",
                        color=page.colour("ticket (kept)"))
            ax.set_title(name, fontsize=10)
            ax.set_xlabel("Initial weight value")
            rows.append(pd.DataFrame({"layer": name, "bin_left": edges[:-1], "bin_right": edges[1:],
                                      "all_count": ca, "ticket_count": ct}))
        axes[0].set_ylabel("Probability density (1/unit weight)")
        axes[0].legend(loc="upper left", fontsize=8)
        fig.suptitle(f"{preset}: D_n, level {level} ticket ({density * 100:.3g}% remaining) vs the "
                     f"initialisation ({start_name} state)")
        page.figure(fig, f"{prefix}dn_histograms",
                    f"Initial weights kept by the sparsest ticket (level {level}, replicate {rep}) against all "
                    "initial weights, over the whole network (the study's D_n) and per layer (histograms "
                    "normalised to unit area)", pd.concat(rows))
    if "final" in states0 and "final" in ds.states():
        f0, fs = d0.load_state("final"), ds.load_state("final")
        layers = list(mask)
        ps = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)
        curves = [rp_curve(f0, fs, ps, layers).assign(comparison=f"level 0 final vs level {level} final")]
        if start_name in states0:
            init = d0.load_state(start_name)
            curves.append(rp_curve(init, f0, ps, layers).assign(comparison=f"level 0 {start_name} vs final"))
        table = pd.concat(curves, ignore_index=True)
        fig, (ax,) = new_figure()
        for name, g in table.groupby("comparison", sort=False):
            ax.plot(pct(g["p"]), g["r_p"], marker="o", ms=4, label=name, color=page.colour(f"R_p: {name}"))
        ax.plot(pct(ps), ps, color="0.5", ls=":", label="chance (R_p = p)")
        ax.set_xlabel("Top fraction p of weights by magnitude (%)")
        ax.set_ylabel("Overlap R_p (fraction of top-p weights shared)")
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{preset}: weight correlation R_p (replicate {rep})")
        ax.legend(loc="lower right")
        page.figure(fig, f"{prefix}rp_overlap",
                    "R_p (Liu et al. 2021): fraction of the top-p weights by magnitude shared by two states, "
                    "over the prunable layers", table)
        fp = [{"layer": k, "rows": int(f0[k].shape[0]), "fp_dense_final": frame_potential(f0[k]),
               "fp_ticket_final": frame_potential(fs[k] * mask[k]),
               "fp_minimum": max(f0[k].shape[0], f0[k].shape[0] ** 2 / f0[k][0].numel())} for k in layers]
        page.table(pd.DataFrame(fp), f"{prefix}frame_potential",
                   f"Frame potential of each layer's rows (sum of squared cosines; minimum max(n, n^2/d)), "
                   f"level 0 vs level {level} final weights")
