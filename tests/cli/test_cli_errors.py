"""A newcomer's mistakes, from the command line: exit code 2, one line on stderr naming the flag and the value,
nothing written under --root; and the few things that must not be errors (``--version``)."""

from __future__ import annotations

import pytest

from lth.cli import main
from lth.executor import capacity


def lth(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """Run `lth` in-process; (exit code, stdout, stderr)."""
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse's --version exits
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


CASES = [  # argv (``--root ROOT`` is added), what the one line must name
    (["train", "--preset", "digits_mlp", "--device", "cuda7"], ["--device", "cuda7"]),
    (["train", "--preset", "digits_mlp", "--checkpoint-every", "0it"], ["--checkpoint-every", "0it"]),
    (["train", "--preset", "digits_mlp", "--training-steps", "-3it"], ["--training-steps", "-3it"]),
    (["train", "--preset", "digits_mlp", "--replicates", "-1"], ["--replicates", "-1"]),
    (["train", "--preset", "digits_mlp", "--max-population", "0"], ["--max-population", "0"]),
    (["lottery", "--preset", "digits_mlp", "--levels", "1", "--strategy", "globl"], ["--strategy", "globl"]),
    (["lottery", "--preset", "digits_mlp", "--levels", "-2"], ["--levels", "-2"]),
    (["train", "--preset", "digits_mlp", "--replicates", "100000000"], ["--replicates", "100000000", "memory"]),
    (["lottery", "--preset", "digits_mlp", "--levels", "2", "--replicates", "100000000"],
     ["--replicates", "100000000"]),
    (["lottery", "--preset", "digits_mlp", "--levels", "100000000"], ["--levels", "100000000"]),
    (["branch", "reinit", "--preset", "digits_mlp", "--levels", "1", "--replicates", "100000000"],
     ["--replicates", "100000000"]),
    (["train", "--preset", "digits_mlp", "--width", "1e9"], ["--width", "1e9", "parameters"]),
    (["lottery", "--preset", "lenet_300_100", "--levels", "1", "--width", "1e6"], ["--width", "1e6"]),
    (["train", "--preset", "digits_mlp", "--width", "inf"], ["--width", "inf"]),
    (["train", "--preset", "digits_mlp", "--threads", "0"], ["--threads", "0"]),
    (["branch", "retrain", "--preset", "digits_mlp", "--levels", "1", "--set", "model=fc_300_100"],
     ["--set", "model=fc_300_100"]),
    # the flag typed, not the one it becomes: K of --pretrain-steps is the rewind step, the target is a dataset
    (["lottery", "--preset", "digits_mlp", "--levels", "1", "--training-steps", "1ep", "--pretrain-steps", "5ep"],
     ["--pretrain-steps", "5ep", "after the end of training"]),
    (["branch", "transfer", "--preset", "digits_mlp", "--levels", "1", "--target-dataset", "fmnist"],
     ["--target-dataset", "'fmnist'", "fashion_mnist"]),
    (["train", "--preset", "digits_mlp", "--model", "fc_abc"], ["--model", "'fc_abc'", "fc_<h1>"]),
    (["train", "--preset", "digits_mlp", "--telemetry-every", "0it"], ["--telemetry-every", "'0it'", "1it"]),
    (["train", "--preset", "digits_mlp", "--telemetry-every", "1ep", "--telemetry-dense-until", "1ep",
      "--telemetry-dense-every", "0ep"], ["--telemetry-dense-every", "'0ep'"]),
]


@pytest.mark.parametrize(("argv", "named"), CASES, ids=[" ".join(a[2:] if a[0] == "branch" else a[1:])
                                                         for a, _ in CASES])
def test_bad_input_one_line_exit_2_nothing_written(capsys: pytest.CaptureFixture, tmp_path, argv, named) -> None:
    root = tmp_path / "store"
    code, out, err = lth(capsys, *argv, "--root", str(root))
    assert code == 2, err
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lth: error: ")
    for word in named:
        assert word in lines[0], lines[0]
    assert not root.exists()


def test_results_root_typo(capsys: pytest.CaptureFixture, tmp_path) -> None:
    code, out, err = lth(capsys, "results", "--root", str(tmp_path / "typo"))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "--root" in err and "typo" in err
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("command", [["results"], ["report"], ["hessian", "--steps", "final"]])
def test_reading_a_store_that_is_a_file(capsys: pytest.CaptureFixture, tmp_path, command: list[str]) -> None:
    """A command that reads a store, pointed at a file: the file is named as such (not "no such directory"), and
    the file is left as it was."""
    f = tmp_path / "runs.csv"
    f.write_text("x")
    code, out, err = lth(capsys, *command, "--root", str(f))
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert f"--root {str(f)!r}: is a file" in err, err
    assert f.read_text() == "x"


def test_version(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = lth(capsys, "--version")
    assert code == 0
    assert out.startswith("lth ")


def test_disk_too_small_names_the_store_before_writing(capsys: pytest.CaptureFixture, tmp_path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # digits_mlp has 6570 parameters: 3 runs store 3 x 3 states x 6570 x 4 bytes = 236,520 bytes
    monkeypatch.setattr(capacity, "disk_free", lambda root: 200_000)
    args = ("train", "--preset", "digits_mlp", "--training-steps", "1it", "--root", str(tmp_path / "s"))
    code, _, err = lth(capsys, *args, "--replicates", "3")
    assert code == 2
    assert f"--root {tmp_path / 's'}: the 3 runs still to train" in err and "231 KB" in err and "195 KB is free" in err
    assert len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "s").rglob("*.pt")) and not list((tmp_path / "s").rglob("plan*.json"))
    monkeypatch.setattr(capacity, "disk_free", lambda root: 240_000)
    code, _, err = lth(capsys, *args, "--replicates", "3")
    assert code == 0, err
    # finished runs need no more room: the same command again, and one replicate more (78,840 bytes), fit in 100 KB
    monkeypatch.setattr(capacity, "disk_free", lambda root: 100_000)
    code, _, err = lth(capsys, *args, "--replicates", "3")
    assert code == 0, err
    code, _, err = lth(capsys, *args, "--replicates", "4")
    assert code == 0, err
    code, _, err = lth(capsys, *args, "--replicates", "6")  # two more: 157,680 bytes
    assert code == 2 and "2 runs still to train" in err


@pytest.mark.parametrize("make", ["file", "unwritable", "under_a_file"])
def test_root_that_cannot_hold_a_store(capsys: pytest.CaptureFixture, tmp_path, make: str) -> None:
    if make == "file":
        root = tmp_path / "a_file"
        root.write_text("x")
    elif make == "under_a_file":
        (tmp_path / "a_file").write_text("x")
        root = tmp_path / "a_file" / "store"
    else:
        root = tmp_path / "ro" / "store"
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        import os

        if os.access(tmp_path / "ro", os.W_OK):  # root ignores permissions: use a path no one can create
            root = __import__("pathlib").Path("/proc/lth-store")
    code, out, err = lth(capsys, "train", "--preset", "digits_mlp", "--root", str(root))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--root" in err, err
    if make == "under_a_file":  # the file is named as the reason, not permissions
        assert "a_file is a file" in err and "not writable" not in err, err
