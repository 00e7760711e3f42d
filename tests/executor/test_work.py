"""executor/work.py: what a rerun does with a finished run's damaged files."""

from __future__ import annotations

import torch

from lth.executor.work import LINE_CHARS, discard_damaged, discard_strays, error_line
from lth.store import RunDir, paths


def _finished(tmp_path) -> RunDir:
    run = RunDir(tmp_path / "run")
    run.write_spec({"node": "x"})
    run.write_metrics([{"iteration": 0, "step": "0it", "test_accuracy": 0.5}])
    run.save_state("init", {"w": torch.zeros(2)}, 0)
    run.save_state("final", {"w": torch.ones(2)}, 10)
    run.write_done({"status": "complete"})
    assert run.complete() and run.damaged() == []
    return run


def test_a_damaged_scaffold_record_is_removed_and_the_run_kept(tmp_path, capsys) -> None:
    run = _finished(tmp_path)
    (run.path / paths.SCAFFOLD).write_text("garbage{{")  # bookkeeping only: extra states to remove later
    discard_damaged(run)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(run.path / paths.SCAFFOLD) in err[0]
    assert run.complete() and run.damaged() == [] and torch.equal(run.load_state("final")["w"], torch.ones(2))


def test_a_damaged_result_file_makes_the_run_train_again(tmp_path, capsys) -> None:
    run = _finished(tmp_path)
    f = run.state_file("final")
    f.write_bytes(f.read_bytes()[:20])
    discard_damaged(run)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(f) in err[0]
    assert not run.has_done() and not f.exists() and run.has_state("init")


def test_temporary_files_of_writes_cut_by_a_kill_are_removed(tmp_path, capsys) -> None:
    """A SIGKILL inside an atomic write leaves its ``.<name>.XXXX.tmp`` (never renamed into place): the next run
    of the node removes it, silently, and keeps every real file."""
    run = _finished(tmp_path)
    strays = [run.path / ".metrics.csv.ab12.tmp", run.path / paths.STATES / ".final.pt.cd34.tmp"]
    for s in strays:
        s.write_bytes(b"half")
    with run.lock():  # train_group holds the run's lock
        keep = sorted(p.name for p in run.path.rglob("*") if p not in strays)
        discard_strays(run)
    assert not any(s.exists() for s in strays) and capsys.readouterr().err == ""
    assert sorted(p.name for p in run.path.rglob("*")) == keep and run.complete()


def test_temporary_files_other_processes_write_without_the_run_lock_are_kept(tmp_path) -> None:
    """Only the training's own writes are made under the run's lock: ``lth hessian`` (hessian.csv) and an
    executor's deduplication (scaffold.json) write into a finished run without it, so their in-flight temporary
    files may be live: removing one makes that process's rename fail (FileNotFoundError)."""
    run = _finished(tmp_path)
    live = [run.path / ".hessian.csv.ab12.tmp", run.path / ".scaffold.json.cd34.tmp", run.path / ".mine.txt.ef56.tmp"]
    for s in live:
        s.write_bytes(b"being written")
    with run.lock():
        discard_strays(run)
    assert all(s.exists() for s in live)


def test_discard_damaged_removes_no_temporary_file(tmp_path) -> None:
    """``discard_damaged`` runs without the run's lock (Executor.run, before the graph): a temporary file there
    may be another process's write in flight (it trains the run, holding the lock), so none is removed."""
    run = _finished(tmp_path)
    (run.path / "metrics.csv").write_text("iteration,step\n1,")  # damaged: the run is trained again
    live = [run.path / ".checkpoint.pt.ab12.tmp", run.path / paths.STATES / ".init.pt.cd34.tmp"]
    for s in live:
        s.write_bytes(b"being written")
    discard_damaged(run)
    assert not run.has_done() and all(s.exists() for s in live)


def test_two_names_of_one_iteration_are_both_kept_once(tmp_path) -> None:
    """digits_mlp has 46 iterations an epoch: `--save-states 1ep 46it` names one state twice. Both names are kept
    by the training itself, under its lock (one file saved, the other name a hard link of it: no second copy on
    disk), both in states/index.json at 46, so a rerun has nothing to do. (Before, the executor's pass after
    training saved the second name as a separate copy.)"""
    import os

    from conftest import lth

    argv = ["train", "--preset", "digits_mlp", "--model", "fc_8", "--training-steps", "2ep", "--save-states", "1ep",
            "46it", "--root", str(tmp_path)]
    code, _, err = lth(*argv)
    assert code == 0, err
    run = RunDir(next(tmp_path.rglob("done.json")).parent)
    index = run.state_iterations()
    assert index["1ep"] == index["46it"] == 46
    a, b = run.load_state("1ep"), run.load_state("46it")
    assert os.path.samefile(run.state_file("1ep"), run.state_file("46it"))  # one file, two names
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a[next(iter(a))], run.load_state("final")[next(iter(a))])  # 46it, not the end (92it)
    code, _, err = lth(*argv)
    assert code == 0 and "already trained: nothing to do" in err and "replay" not in err


def test_a_long_error_line_is_never_cut_mid_sentence() -> None:
    """Ray's authentication error is one line of several sentences, the advice in the later ones: the line ends
    after the sentence that reaches the limit, never inside it."""
    first = "RPC error: InvalidAuthToken: Authentication token is missing or incorrect."
    advice = " Ensure that the token for the cluster is available in a local file (e.g., ~/.ray/auth_token or via " \
             "RAY_AUTH_TOKEN_PATH) or as the `RAY_AUTH_TOKEN` environment variable."
    text = first + " Note: RAY_AUTH_MODE is currently 'disabled' (not 'token')." + advice + " See the docs." * 30
    line = error_line(RuntimeError(text))
    assert len(text) > LINE_CHARS and line.startswith("RuntimeError: " + first)
    assert advice.strip() in line and line.endswith("environment variable. ...") and "\n" not in line
    assert error_line(ValueError("short. message")) == "ValueError: short. message"
