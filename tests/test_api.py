"""The Python API (``lth.api``) with a newcomer's wrong types and names: one-line UserErrors naming the argument,
the value and what is allowed, instead of a TypeError deep in the planner or a silently empty plan."""

from __future__ import annotations

from pathlib import Path

import pytest

import lth.api as api
from lth.errors import UserError


@pytest.mark.parametrize(("call", "named"), [
    (lambda r: api.lottery("digits_mlp", levels="3", root=r), ["levels", "'3'", ">= 0"]),
    (lambda r: api.lottery("digits_mlp", levels=-1, root=r), ["levels", "-1"]),
    (lambda r: api.lottery("digits_mlp", levels=1, replicates=0, root=r), ["replicates", "0", ">= 1"]),
    (lambda r: api.lottery("digits_mlp", levels=1, replicates=2.5, root=r), ["replicates", "2.5"]),
    (lambda r: api.train("digits_mlp", replicates=True, root=r), ["replicates", "True"]),
    (lambda r: api.lottery("digits_mlp", levels=1, pruning={"fracton": 0.3}, root=r),
     ["pruning", "'fracton'", "fraction"]),
    (lambda r: api.run("digits_mlp"), ["plan", "'digits_mlp'", "LotteryPlan"]),
    (lambda r: api.run(5), ["plan", "5", "LotteryPlan"]),  # not iterable: was a TypeError
    (lambda r: api.lottery("digits_mlp", levels=1, pruning="fraction", root=r),
     ["pruning", "'fraction'", "a dict"]),  # was "unknown key 'a'", a character of the string
    (lambda r: api.lottery("digits_mlp", levels=1, rewind=[], root=r), ["rewind", "[]", "at least one step"]),
    (lambda r: api.executor("rey"), ["executor", "'rey'", "local, ray, slurm"]),
    (lambda r: api.executor(max_populaton=3), ["'max_populaton'", "max_population"]),
    (lambda r: api.executor(device="gpu"), ["device", "'gpu'", "cpu"]),
    (lambda r: api.executor(max_population=0), ["max_population", "0"]),
    (lambda r: api.results(r / "typo"), ["root", "typo", "no such store"]),
    (lambda r: api.lottery("digits_mlp", levels=1, branchs="reinit", root=r),
     ["unknown keyword argument 'branchs'", "branches", "lr"]),
    (lambda r: api.train("digits_mlp", replicate=2, root=r), ["'replicate'", "replicates", "lr"]),
    (lambda r: api.lottery("digits_mlp", levels=1, save_states="9x", root=r), ["save_states", "'9x'"]),
    (lambda r: api.lottery("digits_mlp", levels=1, lr="fast", root=r), ["lr", "'fast'", "a number"]),
    (lambda r: api.spec("digits_mlpp"), ["preset", "'digits_mlpp'", "digits_mlp"]),
    (lambda r: api.runs(r / "typo"), ["root", "typo"]),
])
def test_bad_arguments_are_one_line_user_errors(tmp_path, call, named) -> None:
    with pytest.raises(UserError) as e:
        call(tmp_path)
    line = str(e.value)
    assert "\n" not in line
    for word in named:
        assert word in line, line
    assert not (tmp_path / "typo").exists()


def test_one_string_is_a_list_of_names_not_of_characters(tmp_path) -> None:
    # branches="reinit" used to plan the branches 'r', 'e', 'i', ... ("unknown branch 'r'"); rewind="10it" and
    # save_states="100it" failed on the step '1'. One string is split at commas and spaces, as the CLI splits it.
    plan = api.lottery("digits_mlp", levels=1, branches="reinit,random-mask", rewind="0it 10it", root=tmp_path)
    assert list(plan.branches) == ["reinit", "random-mask"]
    assert [str(t.rewind) for t in plan.trunks] == ["0it", "10it"]
    assert plan.nodes() == api.lottery("digits_mlp", levels=1, branches=["reinit", "random-mask"],
                                       rewind=["0it", "10it"], root=tmp_path).nodes()
    (node,) = api.train("digits_mlp", save_states="100it", root=tmp_path)
    assert [name for name, _ in node.keep] == ["100it"]


def test_ticket_is_the_mask_times_the_rewind_point_and_loads_into_a_fresh_model(tmp_path) -> None:
    """``ticket(run)``: the run's mask and its start state with pruned weights zeroed; with rewinding to step k the
    start is the trunk's level-0 state at k (Frankle et al. 2019, m * theta_k), not its initialisation."""
    import torch

    from lth.models import build_model

    root = tmp_path / "runs"
    api.run(api.lottery("digits_mlp", levels=2, rewind="5it", root=root, training_steps="20it"), device="cpu")
    table = api.runs(root)
    trunk = table[table["kind"] == "lottery"]
    dense = trunk[trunk["level"] == 0]["path"].iloc[0]
    for level in (1, 2):
        run = trunk[trunk["level"] == level]["path"].iloc[0]
        weights, mask = api.ticket(run)
        theta_k = api.state(dense, "rewind")  # the dense run's state at 5it: where the level starts
        assert set(mask) and set(mask) < set(weights) == set(theta_k)
        for name, w in weights.items():
            if name in mask:
                assert mask[name].dtype == torch.bool and 0 < mask[name].float().mean() < 1
                assert torch.equal(w, theta_k[name] * mask[name])
            else:  # biases are not pruned: the rewind point's values
                assert torch.equal(w, theta_k[name])
        density = sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())
        assert density == pytest.approx(0.8 ** level, abs=0.01)
        net = build_model("fc_64_32", 1, (1, 8, 8), 10)  # digits_mlp's network: the names load as they are
        net.load_member(0, weights)
    with pytest.raises(UserError, match="trained without a mask"):
        api.ticket(dense)
    assert not torch.equal(api.state(dense, "rewind")["layers.0.weight"], api.state(dense, "init")["layers.0.weight"])
    with pytest.raises(UserError, match=r"keeps no such state; allowed: .*final"):
        api.state(dense, "7it")
    with pytest.raises(UserError, match="not a run directory"):
        api.ticket(root)


def test_ticket_with_reset_to_init_is_the_mask_times_the_initialisation(tmp_path) -> None:
    import torch

    root = tmp_path / "runs"
    api.run(api.lottery("digits_mlp", levels=1, root=root, training_steps="10it"), device="cpu")
    table = api.runs(root)
    dense, pruned = (table[table["level"] == lv]["path"].iloc[0] for lv in (0, 1))
    weights, mask = api.ticket(pruned)
    theta_0 = api.state(dense, "init")
    assert all(torch.equal(w, theta_0[k] * mask[k] if k in mask else theta_0[k]) for k, w in weights.items())


def test_ticket_of_a_store_without_a_state_index(tmp_path) -> None:
    """Stores written before states/index.json: the start state is found by name (rewind, else init)."""
    import torch

    root = tmp_path / "runs"
    api.run(api.lottery("digits_mlp", levels=1, rewind="5it", root=root, training_steps="10it"), device="cpu")
    table = api.runs(root)
    dense, pruned = (table[table["level"] == lv]["path"].iloc[0] for lv in (0, 1))
    want, mask = api.ticket(pruned)
    for d in (dense, pruned):
        (Path(d) / "states" / "index.json").unlink()
    weights, _ = api.ticket(pruned)
    assert all(torch.equal(weights[k], want[k]) for k in want)
    assert torch.equal(weights["layers.0.weight"], api.state(dense, "rewind")["layers.0.weight"] * mask[
        "layers.0.weight"])


def test_lottery_save_states_are_kept_inside_each_run_and_replayed_when_finished(tmp_path) -> None:
    """``save_states`` as ``lth lottery --save-states``: level 0 (training from 0it) keeps 5it and 15it; a level
    rewound to 10it keeps only 15it (5it lies before its start); a branch's runs keep them too. The state a run
    keeps at 5it is the one the trunk rewound to 5it starts from (one digest, one run: its level 0 at 5it), and a
    finished run asked for a new step is replayed to the same weights."""
    import torch

    root = tmp_path / "runs"
    tiny = {"training_steps": "20it", "eval_every": "20it"}
    api.run(api.lottery("digits_mlp", levels=1, rewind="10it", branches="reinit", save_states="5it,15it",
                        root=root, **tiny), device="cpu")
    api.run(api.lottery("digits_mlp", levels=1, rewind="5it", root=root, **tiny), device="cpu")
    table = api.runs(root)
    level0 = {}
    for row in table[(table["kind"] == "lottery") & (table["level"] == 0)].itertuples():
        level0[Path(row.path)] = _states(row.path)
    assert len(level0) == 2
    with_saved = next(p for p, have in level0.items() if "5it" in have)
    other = next(p for p in level0 if p != with_saved)
    assert {"5it", "15it"} <= set(level0[with_saved])
    assert torch.equal(api.state(with_saved, "5it")["layers.0.weight"], api.state(other, "rewind")["layers.0.weight"])
    level1 = table[(table["kind"] == "lottery") & (table["level"] == 1)]
    rewound10 = next(p for p in level1["path"] if Path(p).parents[1] == with_saved.parents[1])
    assert "15it" in _states(rewound10) and "5it" not in _states(rewound10)
    branch = table[table["kind"] != "lottery"]["path"].tolist()
    assert branch and all("15it" in _states(p) for p in branch)
    before = api.state(with_saved, "15it")
    api.run(api.lottery("digits_mlp", levels=1, rewind="10it", save_states=["15it", "18it"], root=root, **tiny),
            device="cpu")
    assert "18it" in _states(with_saved) and "18it" in _states(rewound10)
    assert all(torch.equal(before[k], v) for k, v in api.state(with_saved, "15it").items())
    with pytest.raises(UserError, match=r"^save_states 30it: after the end of training"):
        api.lottery("digits_mlp", levels=1, save_states="30it", root=root, **tiny)


def _states(run: str | Path) -> list[str]:
    from lth.store import RunDir

    return list(RunDir(Path(run)).states())


def test_lottery_count_ignored_counts_the_ignored_layer_in_the_global_fraction(tmp_path) -> None:
    """``pruning={"count_ignored": True}`` (open_lth's sparse_global; Frankle et al. 2020, Table 1): global
    pruning of 20% of every surviving weight, the ignored output layer's included, all taken from the pruned
    layers: level L keeps 0.8^L of the whole network; without it, 0.8^L of the pruned layers."""
    root = tmp_path / "runs"
    for count in (True, False):
        pruning = {"strategy": "global", "fraction": 0.2, "ignore": ["layers.2.weight"], "count_ignored": count}
        records = api.run(api.lottery("digits_mlp", levels=2, pruning=pruning, root=root / str(count),
                                      training_steps="10it"), device="cpu")
        for r in records["runs"][1:]:
            _, mask = api.ticket(r["path"])
            pruned = sum(int(m.sum()) for m in mask.values()) / sum(m.numel() for m in mask.values())
            net = api.state(r["path"], "final")
            out = net["layers.2.weight"].numel()
            assert "layers.2.weight" not in mask or bool(mask["layers.2.weight"].all())
            kept = sum(int(m.sum()) for n, m in mask.items() if n != "layers.2.weight")
            total = sum(m.numel() for n, m in mask.items() if n != "layers.2.weight")
            whole = (kept + out) / (total + out)
            assert (whole if count else kept / total) == pytest.approx(0.8 ** r["level"], abs=2e-3), (count, pruned)


def test_every_command_is_reachable_with_its_flags_as_keywords(tmp_path) -> None:
    """``lth.api.command(name, **flags)`` runs the CLI's own command; unknown names and keywords, wrong types and
    bad values are one-line UserErrors naming the keyword (no dashes)."""
    from lth.cli import COMMANDS

    for call, named in [
        (lambda: api.command("stabilty"), ["command", "'stabilty'", "stability"]),
        (lambda: api.stability("digits_mlp", copiez=2, root=tmp_path), ["'copiez'", "copies"]),
        (lambda: api.stability("digits_mlp", copies=1, root=tmp_path), ["copies", "bad value 1", ">= 2"]),
        (lambda: api.stability("digits_mlp", alphas={"a": 1}, root=tmp_path), ["alphas", "{'a': 1}"]),
        (lambda: api.stability("digit", root=tmp_path), ["preset", "'digit'", "digits_mlp"]),
        (lambda: api.hessian(tmp_path / "typo", steps="final"), ["root", "typo"]),
        (lambda: api.report(tmp_path / "typo"), ["root", "typo"]),
    ]:
        with pytest.raises(UserError) as e:
            call()
        assert "\n" not in str(e.value) and "--" not in str(e.value), str(e.value)
        assert all(w in str(e.value) for w in named), str(e.value)
    assert set(api.presets()["name"]) >= {"digits_mlp", "lenet_300_100"}
    assert api.command("presets")["presets"]["digits_mlp"]["spec"]["model"]["model"] == "fc_64_32"
    assert "stability" in COMMANDS


def test_stability_hessian_report_from_the_api(tmp_path) -> None:
    """``stability``: instability is the largest error on the path minus the mean of the end points' errors
    (Frankle et al. ICML 2020, Sec. 2), so with the end points on the path it is >= 0, 'stable' is instability <
    threshold, and copies trained with the same noise are one network (instability 0). ``hessian``: the k largest
    eigenvalues per run and state, largest first. ``report``: the index it wrote."""
    root = tmp_path / "runs"
    tiny = {"root": root, "training_steps": "20it", "device": "cpu", "alphas": 3, "train_examples": 100}
    out = api.stability("digits_mlp", rewind=["0it", "5it"], threshold=0.5, **tiny)
    res = out["results"]
    assert sorted(res["rewind"]) == ["0it", "5it"] and len(out["summary"]) == 1
    assert (res["test_instability"] >= 0).all() and (res["train_instability"] >= 0).all()
    assert (res["stable"] == (res["test_instability"] < 0.5)).all()
    same = api.stability("digits_mlp", rewind="5it", same_noise=True, **tiny)["results"]
    assert same["test_instability"].tolist() == [0.0] and same["train_instability"].tolist() == [0.0]
    eig = api.hessian(root, steps="final", k=2, iters=6, examples=64, device="cpu")
    assert set(eig["state"]) == {"final"} and len(eig) == 2 * eig["path"].nunique() >= 2
    for _, g in eig.groupby("path"):
        values = g.sort_values("rank")["eigenvalue"].tolist()
        assert values == sorted(values, reverse=True)
        assert (Path(g["path"].iloc[0]) / "hessian.csv").is_file()
    rep = api.report(root, out=tmp_path / "report")
    assert Path(rep["report"]).is_file() and Path(rep["report"]).parent == tmp_path / "report"


def test_command_reaches_every_command_and_gives_its_json_document(tmp_path) -> None:
    """``lth.api.command(name, **flags)`` calls the study behind ``lth <name>`` (no command line is built or parsed):
    every CLI command has one, and the document is the one ``--json`` prints."""
    import json

    from lth.cli import COMMANDS as CLI
    from tests.conftest import lth as cli

    assert set(api.COMMANDS) == set(CLI)
    root = tmp_path / "runs"
    doc = api.command("train", preset="digits_mlp", training_steps="10it", replicates=2, root=root, device="cpu",
                      progress=False)
    code, out, _ = cli("train", "--preset", "digits_mlp", "--training-steps", "10it", "--replicates", "2", "--root",
                       str(root), "--device", "cpu", "--json")
    assert code == 0 and json.loads(out) == doc and len(doc["runs"]) == 2
    for name, argv in [("results", ["--root", str(root)]), ("presets", [])]:
        code, out, _ = cli(name, *argv, "--json")
        assert code == 0 and json.loads(out) == api.command(name, **({"root": root} if argv else {}))
    with pytest.raises(UserError, match=r"^command 'branch': .*positional"):
        api.command("branch")


@pytest.mark.parametrize(("call", "typo", "meant"), [
    (lambda kw: api.train("digits_mlp", **kw), "replicats", "replicates"),
    (lambda kw: api.lottery("digits_mlp", 1, **kw), "rewnd", "rewind"),
    (lambda kw: api.branch("reinit", "digits_mlp", 1, **kw), "rewnd", "rewind"),
    (lambda kw: api.stability("digits_mlp", **kw), "copiez", "copies"),
    (lambda kw: api.landscape("digits_mlp", **kw), "plane_", "plane"),
    (lambda kw: api.hessian(kw.pop("root"), **kw), "whch", "which"),
    (lambda kw: api.recipe("lottery", **kw), "quik", "quick"),
    (lambda kw: api.report(kw.pop("root"), **kw), "outt", "out"),
    (lambda kw: api.command("demo", **kw), "levls", "levels"),
    (lambda kw: api.executor(**kw), "max_populaton", "max_population"),
], ids=["train", "lottery", "branch", "stability", "landscape", "hessian", "recipe", "report", "demo", "executor"])
def test_a_misspelt_keyword_is_suggested_in_every_study(tmp_path, call, typo, meant) -> None:
    with pytest.raises(UserError) as e:
        call({typo: 1, "root": tmp_path / "runs"})
    text = str(e.value)
    assert "\n" not in text and "--" not in text and repr(typo) in text and f"did you mean {meant!r}" in text, text
    assert not (tmp_path / "runs").exists()


def _done_times(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("done.json")}


def test_landscape_copies_lie_on_the_plane_at_their_coordinates_and_a_rerun_trains_nothing(tmp_path) -> None:
    """The ``copies`` plane passes through the start state s (origin) and the two copies c0, c1: with the
    orthonormal basis u = (c0 - s)/|c0 - s|, v = Gram-Schmidt of c1 - s against u, each copy is s + x u + y v at
    its reported point (Li et al., NeurIPS 2018, the plane through three points); the reported minimum is the
    grid's. Called again (a notebook cell re-run, a Path root) it gives the same table and trains nothing."""
    import torch

    root = tmp_path / "runs"
    kw = {"root": root, "training_steps": "20it", "device": "cpu", "grid": 3, "train_examples": 100}
    df = api.landscape("digits_mlp", **kw)
    assert len(df) == 1
    doc = __import__("json").loads(Path(df["file"].iloc[0]).read_text())
    flat = [torch.cat([t.flatten().double() for _, t in sorted(api.state(r, "final").items())]) for r in doc["runs"]]
    start = torch.cat([t.flatten().double() for _, t in sorted(api.state(doc["runs"][0], "init").items())])
    u = (flat[0] - start) / (flat[0] - start).norm()
    w = flat[1] - start - ((flat[1] - start) @ u) * u
    v = w / w.norm()
    for c in (0, 1):
        x, y = doc["points"][f"copy {c}"]
        assert torch.allclose(start + x * u + y * v, flat[c], atol=1e-4)
        assert doc["xs"][0] <= x <= doc["xs"][-1] and doc["ys"][0] <= y <= doc["ys"][-1]
    assert doc["points"]["start (step k)"] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert df["min_test_error"].iloc[0] == min(min(row) for row in doc["test_error"])
    assert all(0 <= e <= 1 for row in doc["test_error"] for e in row)
    before = _done_times(root)
    again = api.landscape("digits_mlp", **{**kw, "root": str(root), "grid": "3"})
    assert _done_times(root) == before
    assert again.drop(columns="figures").equals(df.drop(columns="figures"))


def test_branch_reinit_is_one_run_per_level_with_the_tickets_density(tmp_path) -> None:
    """``branch("reinit", ...)`` (Frankle & Carbin 2019, Sec. 2: the ticket's mask with a fresh initialisation): a
    run per asked level whose mask is the trunk's ticket mask at that level (its density), and a new start.
    ``levels`` as an int, a list or the CLI's range give the same runs; a re-run trains nothing."""
    import torch

    root = tmp_path / "runs"
    records = api.run(api.lottery("digits_mlp", levels=2, root=root, training_steps="20it"), device="cpu")
    trunk = {r["level"]: r for r in records["runs"]}
    df = api.branch("reinit", "digits_mlp", levels="1-2", root=root, training_steps="20it", device="cpu")
    assert sorted(df["level"]) == [1, 2] and set(df["branch"]) == {"reinit"}
    for row in df.itertuples():
        _, mask = api.ticket(row.path)
        _, want = api.ticket(trunk[row.level]["path"])
        assert all(torch.equal(mask[k], want[k]) for k in want)
        assert row.density == pytest.approx(trunk[row.level]["density"])
        assert not torch.equal(api.state(row.path, "init")["layers.0.weight"],
                               api.state(trunk[row.level]["path"], "init")["layers.0.weight"])
    before = _done_times(root)
    for levels in ([1, 2], "1,2"):
        again = api.branch("reinit", "digits_mlp", levels=levels, root=root, training_steps="20it", device="cpu")
        assert sorted(again["path"]) == sorted(df["path"])
    assert api.branch("reinit", "digits_mlp", levels=2, root=root, training_steps="20it")["level"].tolist() == [2]
    assert _done_times(root) == before


def test_recipe_gives_the_contract_keys_and_writes_its_report(tmp_path) -> None:
    """``recipe(NAME)``: ``{"recipe": NAME, "report": path, "verdicts": {...}}`` (CONTRACT.md), the report at
    ``root/report/index.html``; run again it trains nothing and gives the same verdicts."""
    root = tmp_path / "dyn"
    kw = {"quick": True, "root": root, "levels": 1, "training_steps": "10it", "replicates": 1}
    doc = api.recipe("dynamics", **kw)
    assert doc["recipe"] == "dynamics" and isinstance(doc["verdicts"], dict) and doc["verdicts"]
    assert Path(doc["report"]) == root / "report" / "index.html" and Path(doc["report"]).is_file()
    before = _done_times(root)
    assert before and api.recipe("dynamics", **kw)["verdicts"] == doc["verdicts"]
    assert _done_times(root) == before


def test_demo_streams_its_progress_and_leaves_torch_threads_as_they_were(tmp_path, monkeypatch) -> None:
    """``command("demo")`` sets torch to one thread (no OMP_NUM_THREADS) and used to leave it so for the rest of
    the notebook; its progress reached stderr only when it ended (a long call looked hung): now line by line,
    while the bad-input line becomes the UserError and is not printed."""
    import io
    import sys

    import torch

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    writes: list[str] = []

    class Err(io.StringIO):
        def write(self, s: str) -> int:
            writes.append(s)
            return len(s)

    monkeypatch.setattr(sys, "stderr", Err())
    try:
        doc = api.command("demo", root=tmp_path / "demo", levels=1, replicates=1, training_steps="10it")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    assert Path(doc["report"]).is_file() and {r["level"] for r in doc["runs"]} == {0, 1}
    assert len(writes) > 3 and any(w.startswith("lth demo:") for w in writes)
    writes.clear()
    with pytest.raises(UserError, match="^levels: bad value 0; allowed: a whole number >= 1"):
        api.command("demo", root=tmp_path / "demo", levels=0)
    assert not any("lth: error" in w for w in writes)


def test_lottery_refuses_a_branch_set_schedule_past_its_end(tmp_path: Path) -> None:
    """As ``lth lottery --branches retrain --set milestones=...``: refused when the plan is made, nothing written."""
    with pytest.raises(UserError, match=r"^set milestones=5ep: after the end of training"):
        api.lottery("digits_mlp", 1, branches={"retrain": {"set": ["milestones=5ep"]}}, training_steps="3ep",
                    root=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_a_misspelt_command_keyword_suggests_the_flag() -> None:
    with pytest.raises(UserError, match=r"^stability: unknown keyword argument 'rewnd' \(did you mean 'rewind'\?\)"):
        api.stability("digits_mlp", rewnd=["0it"])


def test_a_branch_without_its_trunk_says_how_to_train_it_from_python(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"is not trained.*`lth lottery .*` first \(from Python: lth.api.run\("
                                        r"lth.api.lottery\(preset, levels, \.\.\.\)\)"):
        api.branch("reinit", "digits_mlp", levels="1", root=tmp_path / "none", training_steps="1ep")
