"""A study's verdicts: matching tickets per rewind step (Frankle et al.) and jackpot grades (Ma et al.), drawn as
tables from :mod:`lth.analysis.studies` and :mod:`lth.analysis.jackpot_runs` (which choose the runs compared)."""

from __future__ import annotations

from lth.analysis.jackpot_runs import jackpot_table
from lth.analysis.studies import matching_by_rewind
from lth.report.captions import runs_text, split_text
from lth.report.context import Study


def verdicts(study: Study) -> None:
    """The sparsest matching ticket per rewind step, matching per level, and the jackpot grade of each ticket."""
    acc = study.accuracy
    if acc.empty:
        return
    s, page, prefix = study.runs, study.page, study.prefix
    tab, summary = matching_by_rewind(acc)
    grades = jackpot_table(s, acc, study.report.runs, study.report.root)
    trunk_acc = acc[acc["kind"] == "lottery"]
    if not tab.empty:
        page.h(3, "Verdicts")
        basis = (f"final test accuracy on {split_text(s[s['kind'] == 'lottery'])}, mean over "
                 f"{runs_text(tab['count'])} of the IMP trunk; matching: mean >= the dense network's (level 0, same "
                 "replicates) - 0.2 points, the edge included (Frankle et al. ICML 2020, Fig. 9 and Table 2; "
                 "docs/stability.md)")
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
