"""``lth train`` on a store where everything is trained: a bad runtime flag is still one line, alone."""

from __future__ import annotations

from conftest import lth


def test_bad_runtime_flag_on_a_trained_store_is_one_line(tmp_path) -> None:
    # before: "already trained: nothing to do; ..." came first, then the error: two lines for bad input
    argv = ["train", "--preset", "digits_mlp", "--model", "fc_8", "--training-steps", "2it", "--root", str(tmp_path)]
    code, _, err = lth(*argv)
    assert code == 0, err
    code, out, err = lth(*argv, "--telemetry-dense-every", "2it")
    assert code == 2 and out == "", err
    assert err.strip().splitlines() == ["lth: error: --telemetry-dense-until/--telemetry-dense-every need "
                                        "--telemetry-every"]
    code, _, err = lth(*argv)
    assert code == 0 and "already trained: nothing to do" in err


def test_a_trained_run_asked_for_telemetry_is_not_called_nothing_to_do(tmp_path) -> None:
    """Asking a trained run for telemetry it did not record replays it: the command must not also say
    'already trained: nothing to do'."""
    argv = ["train", "--preset", "digits_mlp", "--model", "fc_8", "--training-steps", "4it", "--root", str(tmp_path)]
    assert lth(*argv)[0] == 0
    code, _, err = lth(*argv, "--telemetry-every", "2it")
    assert code == 0, err
    assert "nothing to do" not in err and "replaying" in err
    assert next(tmp_path.rglob("telemetry.csv")).is_file()
    code, _, err = lth(*argv, "--telemetry-every", "2it")  # recorded now: nothing to do
    assert code == 0 and "already trained: nothing to do" in err
