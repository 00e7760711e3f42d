"""SIGTERM (what Slurm sends a driver at its time limit, what ``kill`` sends) ends a command as Ctrl-C does: the
interrupted line with the resume hint on stderr, the run left to resume, exit 143 (Ctrl-C: 130)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lth.store import RunDir


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_command_with_the_resume_line(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    root = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "lth", "train", "--preset", "digits_mlp", "--training-steps",
                             "400ep", "--checkpoint-every", "1ep", "--device", "cpu", "--root", str(root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LTH_LOG": str(tmp_path / "error.log")},
                            # a test runner started in the background inherits SIGINT ignored (POSIX shells do that
                            # to `cmd &`), and Python then never raises KeyboardInterrupt: give the command the
                            # default, as a terminal's Ctrl-C finds it
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not list(root.glob("train_*/replicate_0/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert err.rstrip().endswith("lth: interrupted; run the same command again to resume"), err
    assert out == "" and "Traceback" not in err
    (run,) = root.glob("train_*/replicate_0")
    assert RunDir(run).done is None and (run / "checkpoint.pt").exists()  # left to resume


def test_sigterm_to_the_process_group_with_loader_workers_is_an_interruption(tmp_path: Path) -> None:
    """Slurm's time limit and ``timeout`` signal the whole process group: the DataLoader workers of an image folder
    die of the SIGTERM too, and torch reports that as an error; the command still says it was interrupted."""
    from tests.data.image_files import write_imagefolder

    data = write_imagefolder(tmp_path / "digits", count=200)
    root = tmp_path / "store"
    proc = subprocess.Popen([sys.executable, "-m", "lth", "train", "--preset", "lenet_300_100", "--dataset",
                             "imagefolder", "--data-dir", str(data), "--image-size", "8", "--model", "fc_16",
                             "--batch-size", "40", "--validation-size", "0", "--training-steps", "400ep",
                             "--checkpoint-every", "1ep", "--loader-workers", "2", "--device", "cpu", "--root",
                             str(root)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LTH_LOG": str(tmp_path / "error.log")}, start_new_session=True)
    deadline = time.monotonic() + 120
    while not list(root.glob("train_*/replicate_0/checkpoint.pt")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # the workers are busy with the next epoch
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.rstrip().endswith("lth: interrupted; run the same command again to resume"), err
    assert "failed" not in err and "Traceback" not in err
    (run,) = root.glob("train_*/replicate_0")
    assert RunDir(run).done is None and (run / "checkpoint.pt").exists()
