"""The density / ticket / reinit / random-mask table from bench/lottery_mnist.sh's ROOT/lottery.json (mean, min,
max over replicates), as Markdown.  python bench/lottery_table.py ROOT"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path


def by_level(records: list[dict]) -> dict[int, list[tuple[float, float]]]:
    out: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        if r.get("final_test_accuracy") is not None:
            out[r["level"]].append((r["density"], r["final_test_accuracy"]))
    return out


def cell(vals: list[float]) -> str:
    return f"{100 * sum(vals) / len(vals):.2f} ({100 * min(vals):.2f}-{100 * max(vals):.2f})" if vals else ""


def main() -> None:
    doc = json.loads((Path(sys.argv[1]) / "lottery.json").read_text())
    trunk = by_level(doc["runs"])
    branches = {name: by_level([r for r in doc.get("branches", []) if r["branch"] == name])
                for name in ("reinit", "random-mask")}
    print("| level | density | ticket acc. % | reinit acc. % | random-mask acc. % |")
    print("|---|---|---|---|---|")
    for level in sorted(trunk):
        d = trunk[level][0][0]
        row = [str(level), f"{100 * d:.1f}%", cell([a for _, a in trunk[level]])]
        for other in branches.values():
            row.append(cell([a for _, a in other.get(level, [])]))
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
