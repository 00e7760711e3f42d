"""Caption text: which data split the runs were evaluated on (:func:`split_text`) and how many runs each point
aggregates (:func:`runs_text`)."""

from __future__ import annotations

from typing import Any

import pandas as pd

# Test-set sizes of the built-in datasets (lth.data.datasets: MNIST / Fashion-MNIST / CIFAR's own test files; the
# last 297 of scikit-learn's 1,797 digits; synthetic_size // 5 for synthetic data), so captions can name the split.
TEST_EXAMPLES = {"mnist": 10000, "fashion_mnist": 10000, "cifar10": 10000, "cifar100": 10000, "digits": 297}


def _one(df: pd.DataFrame, col: str) -> Any:
    """The single value of ``col`` in ``df`` (None when absent or when the rows disagree)."""
    if col not in df:
        return None
    vals = df[col].dropna().unique()
    return vals[0] if len(vals) == 1 else None


def split_text(df: pd.DataFrame, split: str = "test") -> str:
    """The data split that ``df``'s runs were evaluated on, for a caption: ``"the digits test split of 297
    examples"``; for ``split="val"`` the held-out validation examples (``"the validation split of 200 training
    examples held out (data seed 0)"``). Runs on several datasets are named together; sizes are omitted when
    unknown."""
    names = sorted(map(str, df["data.dataset"].dropna().unique())) if "data.dataset" in df else []
    if split == "val":
        n, seed = _one(df, "data.validation_size"), _one(df, "data.data_seed")
        if n is None:
            return "the validation split (training examples held out; see the CSV's runs)"
        return (f"the validation split of {int(n):,} training examples held out"
                + (f" (data seed {int(seed)})" if seed is not None else ""))
    if len(names) != 1:
        return f"the test split of {', '.join(names) or 'each run'}"
    name = names[0]
    n = TEST_EXAMPLES.get(name)
    if name == "synthetic" and _one(df, "data.synthetic_size") is not None:
        n = int(_one(df, "data.synthetic_size")) // 5
    return f"the {name} test split" + (f" of {n:,} examples" if n else "")


def runs_text(counts: Any, what: str = "replicates") -> str:
    """How many runs each plotted or tabled point aggregates, from the per-point ``counts``: ``"2 replicates per
    point"``, or ``"1-3 replicates per point (see the count column)"`` when they differ."""
    c = pd.to_numeric(pd.Series(counts), errors="coerce").dropna().astype(int)
    if c.empty:
        return f"no {what}"
    lo, hi = int(c.min()), int(c.max())
    return f"{lo} {what} per point" if lo == hi else f"{lo}-{hi} {what} per point (see the count column)"
