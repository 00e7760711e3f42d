"""A study's verdicts: matching tickets per rewind step (Frankle et al.) and jackpot grades (Ma et al.), drawn as
tables from :mod:`lth.analysis.studies` and :mod:`lth.analysis.jackpot_runs` (which choose the runs compared), with
a warning naming the levels that have fewer runs than the study planned (:mod:`lth.store.plans`)."""

from __future__ import annotations

from pathlib import Path

from lth.analysis.jackpot_runs import jackpot_table
from lth.analysis.studies import matching_by_rewind
from lth.report.captions import runs_text, split_text
from lth.report.context import Study


def shortfalls_of(study: Study) -> list[dict]:
    """The store's levels with fewer runs present than planned (:func:`lth.store.plans.shortfalls`) that belong
    to ``study`` (its trunks' experiment folders, branches included)."""
    mine = {Path(t).name for t in study.runs["trunk"].dropna().astype(str)} if "trunk" in study.runs else set()
    return [g for g in study.report.account.get("shortfalls", []) if Path(g["experiment"]).name in mine]


def verdicts(study: Study) -> None:
    """The sparsest matching ticket per rewind step, matching per level, and the jackpot grade of each ticket."""
    acc = study.accuracy
    if acc.empty:
        return
    s, page, prefix = study.runs, study.page, study.prefix
    tab, summary = matching_by_rewind(acc)
    grades = jackpot_table(s, acc, study.report.runs, study.report.root)
    trunk_acc = acc[acc["kind"] == "lottery"]
    short = shortfalls_of(study)
    if not tab.empty or short:
        page.h(3, "Verdicts")
    if short:
        page.warning("computed on fewer runs than planned: " + "; ".join(
            f"{'IMP' if g['kind'] == 'lottery' else g['branch'] or g['kind']} level {g['level']}: {g['present']} of "
            f"{g['planned']} present (replicate{'s' if len(g['replicates_missing']) > 1 else ''} "
            f"{', '.join(map(str, g['replicates_missing']))} not in the store)" for g in short)
            + ". A level's mean, and whether it matches, may change when they are trained (lth status lists them).")
    if not tab.empty and short:  # the count each level's verdict is computed on beside the count planned
        trunk_of = {str(r): Path(t).name for r, t in s[s["kind"] == "lottery"][["rewind", "trunk"]].drop_duplicates()
                    .itertuples(index=False)}
        planned = {(Path(g["experiment"]).name, g["level"]): g["planned"] for g in short if g["kind"] == "lottery"}
        tab = tab.assign(planned=[planned.get((trunk_of.get(str(r)), int(lv)), c)
                                  for r, lv, c in zip(tab["rewind"], tab["level"], tab["count"], strict=True)])
    if not tab.empty:
        basis = (f"final test accuracy on {split_text(s[s['kind'] == 'lottery'])}, mean over "
                 f"{runs_text(tab['count'])} of the IMP trunk; matching: mean >= the dense network's (level 0, same "
                 "replicates) - 0.2 points, the edge included (Frankle et al. ICML 2020, Fig. 9 and Table 2; "
                 "docs/stability.md)" + ("; planned: the runs the study planned at that level" if short else ""))
        page.table(summary, f"{prefix}sparsest_matching", f"Sparsest matching ticket per rewind step ({basis})")
        page.table(tab, f"{prefix}matching", f"Matching per level (accuracies as fractions; gap = mean - dense; "
                   f"{basis})")
    if not grades.empty:
        show = grades[[c for c in grades if not c.endswith("_runs")]]
        page.table(grades, f"{prefix}jackpot",
                   f"Jackpot grades (Ma et al. NeurIPS 2021, section 3), one row per ticket at its learning rate; "
                   f"every accuracy is the mean final test accuracy on {split_text(s)} over the replicates of the "
                   f"runs named in the CSV (the ticket: {runs_text(trunk_acc['count'])}). Conditions: [1] density "
                   "<= 80% and the dense net sufficiently trained (a longer dense run at the same lr gains <= 0.5 "
                   "points; 'not checked' without one); [2] > 0.5 points over a small dense net of equal size; [3] > "
                   "0.5 points over the reinitialised ticket at ANY learning rate in the store; [4] >= the dense "
                   "net at the same lr; [5] >= the best dense net in the store. Secondary prize: [1]-[4]; jackpot: "
                   "[1]-[5]; a condition not checked counts as unmet (provisional_grade assumes it holds). The CSV "
                   "names the runs each condition used (columns *_runs)", show)
