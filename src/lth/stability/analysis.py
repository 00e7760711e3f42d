"""Evaluate the linear paths between trained copies and store the results beside them.

For every pair of copies of a cell (experiment, level, replicate), the states ``(1 - alpha) W1 + alpha W2`` at
``alphas`` evenly spaced points (Frankle et al. 2020, Sec. 2: 30) are evaluated on the test set and on a fixed
subset of the training set; all points of all paths of one architecture are evaluated as populations
(:func:`lth.engine.evaluate.evaluate_states`). Networks with BatchNorm get their running statistics recomputed
at every point on a fixed set of training batches (interpolated running statistics are not the statistics of
the interpolated network; see :mod:`lth.engine.evaluate`). Instability is the error barrier
(:func:`lth.analysis.stability.error_barrier`). With ``align``, the second copy's hidden units are first
permuted to match the first's (weight matching, Ainsworth et al., Git Re-Basin, ICLR 2023) - beyond the paper.

Results are written atomically to ``<level dir>/pairs.json`` (one entry per pair and setting), which
``lth stability --json`` and ``lth report`` read back; a stored entry is reused when its settings match. A
``pairs.json`` that cannot be read (a truncated copy) is named in one warning line: the report leaves its cell
out, ``evaluate_pairs`` evaluates its paths again and writes it whole. A stored entry names its copies by where
the store is now (a moved store reads its own copies, never the folder it was evaluated in).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from lth.analysis.stability import STABLE_THRESHOLD, default_alphas, error_barrier, interpolate, is_stable
from lth.data import Dataset
from lth.engine.evaluate import evaluate_states
from lth.stability.plan import Stability
from lth.store import RunDir
from lth.store.run import DamagedFile

PAIRS = "pairs.json"
DEFAULT_TRAIN_EXAMPLES = 10_000
BN_BATCHES, BN_BATCH_SIZE = 30, 128


def train_subset(data: Dataset, examples: int = DEFAULT_TRAIN_EXAMPLES, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A fixed subset of the training set (a seeded permutation's first ``examples``): where train instability is
    measured and BatchNorm statistics are recomputed."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(data.train_x.shape[0], generator=g)[:examples].to(data.train_x.device)
    return data.train_x[idx], data.train_y[idx]


def settings_key(alphas: list[float], align: bool, train_examples: int) -> str:
    """Names one evaluation setting inside ``pairs.json``."""
    return f"alphas={len(alphas)},align={int(align)},train={train_examples}"


def _pair_key(pair: tuple[int, int]) -> str:
    return f"{pair[0]}-{pair[1]}"


def read_pairs(level_dir: Path, warned: set[Path] | None = None) -> dict[str, Any]:
    """``pairs.json`` of a cell (empty when absent, or damaged: then one warning line on stderr names it, once
    per file when the caller passes the same ``warned`` set)."""
    try:
        return RunDir(level_dir).read_object(PAIRS) or {}  # DamagedFile too for JSON that is no object ([1], null)
    except DamagedFile as e:
        if warned is None or e.path not in warned:
            print(f"lth: warning: damaged file {e.path}: {e.reason}; its paths are left out (lth stability "
                  "evaluates them again)", file=sys.stderr)
        if warned is not None:
            warned.add(e.path)
        return {}


def evaluate_pairs(items: list[tuple[Stability, int, int, tuple[int, int]]], data: Dataset, *,
                   alphas: list[float] | None = None, align: bool = False,
                   train_examples: int = DEFAULT_TRAIN_EXAMPLES, device: str = "cpu",
                   max_population: int = 64, recompute: bool = False,
                   log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Evaluate the path of every pair in ``items`` (``(experiment, level, replicate, (c1, c2))``, as
    :meth:`StabilityPlan.pairs` gives) whose copies are complete, store it, and return one entry per item:
    ``alphas``, ``test_error`` / ``train_error`` / ``test_loss`` / ``train_loss`` along the path,
    ``test_instability``, ``train_instability`` (fractions) and the two copies' paths. Items whose copies are
    not both complete give ``{"status": "missing"}``. Stored entries with the same settings are reused. ``log``
    receives one line saying how many paths are evaluated and how many stored ones are reused."""
    alphas = default_alphas() if alphas is None else [float(a) for a in alphas]
    key = settings_key(alphas, align, train_examples)
    out: list[dict[str, Any] | None] = [None] * len(items)
    todo: list[int] = []
    warned: set[Path] = set()
    for i, (exp, lv, r, pair) in enumerate(items):
        runs = [exp.copy_dir(r, lv, c) for c in pair]
        if not all(RunDir(p).complete() for p in runs):
            out[i] = {"status": "missing", "runs": [str(p) for p in runs]}
            continue
        stored = read_pairs(exp.level_dir(r, lv), warned).get(key, {}).get(_pair_key(pair))
        if stored is not None and not recompute:
            out[i] = {**stored, "runs": [str(p) for p in runs]}  # where the copies are now
        else:
            todo.append(i)
    if log is not None:
        reused = sum(o is not None and o.get("status") == "complete" for o in out)
        missing = sum(o is not None and o.get("status") == "missing" for o in out)
        log(f"evaluating {len(todo)} path(s) of {len(alphas)} points"
            + (f"; {reused} stored path(s) with these settings reused" if reused else "")
            + (f"; {missing} path(s) whose copies are not both trained left out" if missing else ""))
    by_arch: dict[Any, list[int]] = {}
    for i in todo:
        m = items[i][0].trunk.spec.model
        by_arch.setdefault((m.model, m.norm, m.width), []).append(i)
    tx, ty = train_subset(data, train_examples)
    for group in by_arch.values():
        model = items[group[0]][0].trunk.spec.model
        states: list[dict[str, Tensor]] = []
        for i in group:
            exp, lv, r, (c1, c2) = items[i]
            a = RunDir(exp.copy_dir(r, lv, c1)).load_state("final")
            b = RunDir(exp.copy_dir(r, lv, c2)).load_state("final")
            if align:
                from lth.analysis.align import align as align_states

                b = align_states(model, a, b)
            states.extend(interpolate(a, b, alphas))
        kw = dict(example_shape=data.example_shape, num_classes=data.num_classes, device=device, bn_data=tx,
                  bn_batches=BN_BATCHES, bn_batch_size=BN_BATCH_SIZE, max_population=max_population,
                  precision=items[group[0]][0].trunk.spec.train.precision)
        test = evaluate_states(model, states, data.test_x, data.test_y, **kw)
        train = evaluate_states(model, states, tx, ty, **kw)
        n = len(alphas)
        for j, i in enumerate(group):
            exp, lv, r, pair = items[i]
            sl = slice(j * n, (j + 1) * n)
            entry = {"status": "complete", "alphas": alphas, "align": align, "train_examples": int(tx.shape[0]),
                     "runs": [str(exp.copy_dir(r, lv, c)) for c in pair],
                     "test_error": test["error"][sl].tolist(), "train_error": train["error"][sl].tolist(),
                     "test_loss": test["loss"][sl].tolist(), "train_loss": train["loss"][sl].tolist(),
                     "test_instability": error_barrier(test["error"][sl]),
                     "train_instability": error_barrier(train["error"][sl])}
            _store(exp.level_dir(r, lv), key, pair, entry)
            out[i] = entry
    return [o if o is not None else {"status": "missing"} for o in out]


def _store(level_dir: Path, key: str, pair: tuple[int, int], entry: dict[str, Any]) -> None:
    run = RunDir(level_dir)
    with run.lock():
        try:
            doc = run.read_object(PAIRS) or {}
        except DamagedFile:  # named when it was read; replaced by what this call evaluated
            doc = {}
        doc.setdefault(key, {})[_pair_key(pair)] = entry
        run.write_json(PAIRS, doc)


def record(exp: Stability, level: int, replicate: int, pair: tuple[int, int], entry: dict[str, Any],
           threshold: float = STABLE_THRESHOLD) -> dict[str, Any]:
    """The CONTRACT's record of one pair: level, rewind, replicate, test/train instability (fractions),
    stable (test instability < ``threshold``), the two copies' paths, plus subnetwork, copies and the end
    points' test errors."""
    done = entry.get("status") == "complete"
    ti = entry.get("test_instability") if done else None
    return {"level": level, "rewind": str(exp.k), "replicate": replicate, "subnetwork": exp.subnetwork,
            "copies": list(pair), "schedule_from_zero": exp.schedule_from_zero,
            "test_instability": ti, "train_instability": entry.get("train_instability") if done else None,
            "stable": None if ti is None else is_stable(ti, threshold),
            "end_test_errors": [entry["test_error"][0], entry["test_error"][-1]] if done else None,
            "aligned": bool(entry.get("align", False)), "status": entry.get("status", "missing"),
            "runs": entry.get("runs", [str(exp.copy_dir(replicate, level, c)) for c in pair])}


# ------------------------------------------------------------------------------------------------ reading back
def stability_frame(root: Path | str) -> pd.DataFrame:
    """One row per stored pair, point and split of every stability experiment under ``root``: columns
    ``experiment, subnetwork, rewind, level, replicate, pair, schedule_from_zero, setting, align, split, alpha,
    error, loss, instability, density`` (density of copy c1's mask; 1.0 dense)."""
    from lth.analysis.tables import mask_density

    rows = []
    for f in sorted(Path(root).resolve().glob(f"stability_*/replicate_*/level_*/{PAIRS}")):
        spec = RunDir(f.parent / "copy_0").spec or {}
        doc = read_pairs(f.parent)
        for setting, pairs in doc.items():
            for pair, e in pairs.items():
                if e.get("status") != "complete":
                    continue
                density = mask_density(RunDir(f.parent / f"copy_{pair.split('-')[0]}").mask_file)  # this store's
                for split in ("test", "train"):
                    for a, err, loss in zip(e["alphas"], e[f"{split}_error"], e[f"{split}_loss"], strict=True):
                        rows.append({"experiment": f.parents[2].name, "subnetwork": spec.get("subnetwork"),
                                     "rewind": spec.get("rewind"), "level": int(f.parent.name.split("_")[1]),
                                     "replicate": int(f.parents[1].name.split("_")[1]), "pair": pair,
                                     "schedule_from_zero": bool(spec.get("schedule_from_zero", False)),
                                     "preset": spec.get("preset"), "setting": setting, "align": e.get("align"),
                                     "split": split, "alpha": a, "error": err, "loss": loss,
                                     "instability": e[f"{split}_instability"], "density": density})
    return pd.DataFrame(rows)


def summary(records: Iterable[dict[str, Any]], dense_accuracy: float | None,
            threshold: float = STABLE_THRESHOLD) -> list[dict[str, Any]]:
    """Per (subnetwork, level, schedule): the first k whose mean test instability is below ``threshold``
    (:func:`lth.analysis.stability.first_stable`) and the first that is also matching (mean end-point test
    accuracy within 0.2 points of ``dense_accuracy``; :func:`first_stable_and_matching`)."""
    from lth.analysis.stability import first_stable, first_stable_and_matching
    from lth.spec import Step

    groups: dict[tuple, dict[Step, dict[str, list[float]]]] = {}
    for rec in records:
        if rec.get("test_instability") is None:
            continue
        g = groups.setdefault((rec["subnetwork"], rec["level"], rec["schedule_from_zero"]), {})
        k = g.setdefault(Step.parse(rec["rewind"]), {"inst": [], "acc": {}})
        k["inst"].append(rec["test_instability"])
        k["acc"].update(end_accuracies([rec]))
    samples = per_sample(records)
    out = []
    for (sub, lv, sfz), per_k in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        inst = {k: v["inst"] for k, v in per_k.items()}
        acc = {k: list(v["acc"].values()) for k, v in per_k.items()}
        fs = first_stable(inst, threshold)
        fsm = None if dense_accuracy is None else first_stable_and_matching(inst, acc, dense_accuracy, threshold)
        mine = [v for key, v in samples.items() if key[:3] == (sub, lv, sfz)]
        med_s = median_first_k([first_stable({k: i for k, (i, _) in smp.items()}, threshold) for smp in mine])
        med_m = None if dense_accuracy is None else median_first_k([
            first_stable_and_matching({k: i for k, (i, _) in smp.items()}, {k: a for k, (_, a) in smp.items()},
                                      dense_accuracy, threshold) for smp in mine])
        out.append({"subnetwork": sub, "level": lv, "schedule_from_zero": sfz,
                    "first_stable": None if fs is None else str(fs),
                    "first_stable_and_matching": None if fsm is None else str(fsm),
                    "median_first_stable": None if med_s is None else str(med_s),
                    "median_first_stable_and_matching": None if med_m is None else str(med_m),
                    "samples": len(mine), "dense_accuracy": dense_accuracy})
    return out


def full_accuracy(records: Iterable[dict[str, Any]]) -> tuple[float | None, int]:
    """The full network's test accuracy that matching compares to (Frankle et al. ICML 2020, Table 2's "full" and
    Fig. 9's "accuracy drop"): the mean final test accuracy of the dense copies made at k = 0 in any unit (each
    copy once, by its run directory; usual schedule), and how many copies it averages; ``(None, 0)`` when the
    records hold none. Aligned records (``--align``) count too: alignment permutes the second copy's units, the
    same function, so an end point's accuracy is that copy's. A record without a ``rewind`` is no such copy."""
    from lth.spec import Step

    dense = [r for r in records if r.get("subnetwork") == "dense" and r.get("rewind") is not None
             and Step.parse(str(r["rewind"])).count == 0 and not r.get("schedule_from_zero")]
    acc = list(end_accuracies(dense).values())
    return (sum(acc) / len(acc), len(acc)) if acc else (None, 0)


def end_accuracies(records: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Each copy's final test accuracy, once per copy, by its run directory: the ends of the pairs' paths (a copy
    is an end of ``copies - 1`` pairs, so counting pair ends would count it that many times)."""
    out: dict[str, float] = {}
    for n, rec in enumerate(records):
        errs = rec.get("end_test_errors")
        if errs:
            runs = rec.get("runs") or [f"record {n}, end {i}" for i in range(len(errs))]  # unnamed: all distinct
            for run, err in zip(runs, errs, strict=True):
                out[str(run)] = 1.0 - err
    return out


def per_sample(records: Iterable[dict[str, Any]]) -> dict[tuple, dict[Any, tuple[float, float]]]:
    """``{(subnetwork, level, schedule, replicate, pair): {k: (test instability, mean end-point accuracy)}}``: one
    sample of the paper's Fig. 9 is one replicate's pair of copies (the same copy indices at every k)."""
    from lth.spec import Step

    out: dict[tuple, dict[Any, tuple[float, float]]] = {}
    for rec in records:
        if rec.get("test_instability") is None:
            continue
        pair = tuple(Path(p).name for p in rec.get("runs", []))
        key = (rec["subnetwork"], rec["level"], rec["schedule_from_zero"], rec.get("replicate", 0), pair)
        ends = [1.0 - e for e in rec["end_test_errors"]]
        out.setdefault(key, {})[Step.parse(rec["rewind"])] = (rec["test_instability"], sum(ends) / len(ends))
    return out


def frame_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The records of the pairs in a :func:`stability_frame` (as :func:`record` gives them from a plan: subnetwork,
    level, rewind, replicate, schedule_from_zero, test and train instability, the end points' test errors, the two
    copies' run directories), plus the pair's ``experiment``, ``preset`` and ``density``; aligned paths (``--align``)
    left out (the same copies, another path). Each pair once, in the frame's setting (apply
    :func:`lth.analysis.instability.latest_setting` first where a store holds several)."""
    if df.empty:
        return []
    d = df[(df["split"] == "test") & ~df["align"].fillna(False).astype(bool)]
    keys = ["experiment", "preset", "subnetwork", "rewind", "level", "replicate", "pair", "schedule_from_zero",
            "setting"]
    train = df[df["split"] == "train"].groupby(keys, dropna=False)["instability"].first()
    out = []
    for key, g in d.sort_values("alpha").groupby(keys, dropna=False, sort=True):
        row = dict(zip(keys, key, strict=True))
        cell = f"{row['experiment']}/replicate_{row['replicate']}/level_{row['level']}"
        out.append({"experiment": row["experiment"], "preset": row["preset"], "subnetwork": row["subnetwork"],
                    "level": int(row["level"]), "rewind": row["rewind"], "replicate": int(row["replicate"]),
                    "schedule_from_zero": bool(row["schedule_from_zero"]), "density": float(g["density"].iloc[0]),
                    "test_instability": float(g["instability"].iloc[0]),
                    "train_instability": None if key not in train.index else float(train.loc[key]),
                    "end_test_errors": [float(g["error"].iloc[0]), float(g["error"].iloc[-1])],
                    "runs": [f"{cell}/copy_{c}" for c in str(row["pair"]).split("-")]})
    return out


def copy_errors(df: pd.DataFrame) -> pd.DataFrame:
    """Frankle et al. ICML 2020, Fig. 7: the final test error of the copies made at each step k (each copy once:
    the end points of its pairs' paths), per preset, subnetwork, level (with its ``density``), schedule and k:
    ``mean``, ``std`` (Bessel), ``min``, ``max``, ``count`` (copies over every replicate), sorted by k within
    each. Empty without stored pairs."""
    from lth.analysis.instability import k_iterations

    recs = frame_records(df)
    rows = [{**{k: r[k] for k in ("preset", "subnetwork", "level", "density", "schedule_from_zero", "rewind")},
             "copy": run, "error": err} for r in recs for run, err in zip(r["runs"], r["end_test_errors"], strict=True)]
    if not rows:
        return pd.DataFrame()
    copies = pd.DataFrame(rows).drop_duplicates("copy")
    keys = ["preset", "subnetwork", "level", "schedule_from_zero", "rewind"]
    t = copies.groupby(keys).agg(density=("density", "mean"), mean=("error", "mean"), std=("error", "std"),
                                 min=("error", "min"), max=("error", "max"), count=("error", "size")).reset_index()
    t["k_order"] = t["rewind"].map(k_iterations)
    return t.sort_values([*keys[:-1], "k_order"]).drop(columns="k_order").reset_index(drop=True)


def fig9_table(df: pd.DataFrame, threshold: float = STABLE_THRESHOLD) -> pd.DataFrame:
    """Frankle et al. ICML 2020, Fig. 9 for every level a store's stability analysis holds: per preset,
    subnetwork, level (``density``) and schedule, the median over samples (one replicate's pair of copies) of the
    first k at which the sample is stable (``median_first_stable``) and stable and matching
    (``median_first_stable_and_matching``), each None where a majority of samples never gets there
    (:func:`median_first_k`), as :func:`summary` computes them; matching compares to the preset's dense copies
    made at k = 0 (:func:`full_accuracy`, ``dense_accuracy``). ``ks``: the steps k the samples were run at."""
    from lth.analysis.instability import k_iterations

    recs = frame_records(df)
    out = []
    for preset in sorted({str(r["preset"]) for r in recs}):
        mine = [r for r in recs if str(r["preset"]) == preset]
        dense, _ = full_accuracy(mine)
        density = {(r["subnetwork"], r["level"]): r["density"] for r in mine}
        ks = ",".join(sorted({str(r["rewind"]) for r in mine}, key=k_iterations))
        for row in summary(mine, dense, threshold):
            out.append({"preset": preset, **row, "density": density[(row["subnetwork"], row["level"])], "ks": ks})
    return pd.DataFrame(out)


def median_first_k(firsts: list[Any]) -> Any:
    """The paper's Fig. 9 aggregate (Frankle et al. 2020): each sample's first k (None: never), then the median
    over *all* samples, a sample that never reaches it counting as later than every k; reported only when a
    majority of samples reach it at some k (else None: the median would be "never"), which is why the paper
    includes only such points. The lower median (``median_low``'s convention) keeps the answer one of the ks
    that were run: with n samples it is the ((n - 1) // 2)-th smallest, e.g. first ks 100, 500 and never give
    500."""
    reached = sorted(k for k in firsts if k is not None)
    if not firsts or 2 * len(reached) <= len(firsts):
        return None
    return reached[(len(firsts) - 1) // 2]
