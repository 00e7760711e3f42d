"""The density / ticket / reinit / random-mask table from bench/lottery_mnist.sh's JSON files (mean, min, max
over replicates), as Markdown.  python bench/lottery_table.py ROOT"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def load(path: Path) -> dict[int, list[float]]:
    by_level: dict[int, list[float]] = defaultdict(list)
    for r in json.loads(path.read_text())["runs"]:
        by_level[r["level"]].append((r["density"], r["final_test_accuracy"]))
    return by_level


def cell(vals: list[float]) -> str:
    return f"{100 * sum(vals) / len(vals):.2f} ({100 * min(vals):.2f}-{100 * max(vals):.2f})"


def main() -> None:
    root = Path(sys.argv[1])
    trunk, reinit, rmask = (load(root / f) for f in ("lottery.json", "reinit.json", "random_mask.json"))
    print("| level | density | ticket acc. % | reinit acc. % | random-mask acc. % |")
    print("|---|---|---|---|---|")
    for level in sorted(trunk):
        d = trunk[level][0][0]
        row = [str(level), f"{100 * d:.1f}%", cell([a for _, a in trunk[level]])]
        for other in (reinit, rmask):
            row.append(cell([a for _, a in other[level]]) if level in other else "")
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
