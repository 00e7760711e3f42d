"""The error logs (one file per crash in $LTH_LOG, else ~/.cache/lth/errors/, else a temporary file, else None - never
an exception),
and the domain modules' errors rendered per face (flags on the command line, keywords in Python)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from lth.errors import UserError, write_error_log


def test_error_log_home_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LTH_LOG", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    p = write_error_log("Traceback one")
    assert p is not None and p.parent == tmp_path / "home" / ".cache" / "lth" / "errors"
    assert p.name.startswith("error-") and p.suffix == ".log" and p.read_text() == "Traceback one"
    monkeypatch.setenv("LTH_LOG", str(tmp_path / "logs"))
    q = write_error_log("Traceback two")
    assert q is not None and q.parent == tmp_path / "logs" and q.read_text() == "Traceback two"


def test_each_crash_gets_its_own_log_named_in_the_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two crashes of the CLI: two log files, each named in its one-line message, the first not overwritten (one
    shared error.log was replaced by every crash)."""
    import contextlib
    import io
    import re

    import lth.cli.results as results_cli
    from lth.cli import main

    monkeypatch.setenv("LTH_LOG", str(tmp_path / "logs"))
    said = []
    for n in (1, 2):
        def crash(*_: object, n: int = n) -> int:
            raise RuntimeError(f"crash number {n}")
        monkeypatch.setattr(results_cli, "run", crash)
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            assert main(["results", "--root", str(tmp_path)]) == 1
        (line,) = err.getvalue().strip().splitlines()
        m = re.search(r"\(log: (.+)\)$", line)
        assert m and f"crash number {n}" in line, line
        said.append(Path(m.group(1)))
    assert said[0] != said[1] and sorted((tmp_path / "logs").iterdir()) == sorted(said)
    assert "crash number 1" in said[0].read_text() and "crash number 2" in said[1].read_text()


def test_error_log_unwritable_home_falls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LTH_LOG", raising=False)
    home = tmp_path / "home"
    home.write_text("a file, so no folder can be made under it (holds even for root)")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    p = write_error_log("Traceback three")
    assert p is not None and p.parent == tmp_path / "tmp" and p.read_text() == "Traceback three"
    monkeypatch.setattr(tempfile, "tempdir", str(home / "no"))  # the temporary folder is unusable too
    assert write_error_log("Traceback four") is None


# ---------------------------------------------------------------------------------------------- domain errors per face
# The domain modules name fields by path (lth.errors.ref): the CLI's text is the flags' (pinned by docs/CONTRACT.md),
# the Python API's the keywords'. Each case: (the error, its exact CLI text, its exact API text).
def _raised(call: Callable[[], object]) -> UserError:
    with pytest.raises(UserError) as e:
        call()
    return e.value


def _faces(err: UserError) -> tuple[str, str]:
    return str(err), str(err.for_face("api"))


def test_a_bad_pruning_fraction_names_the_flag_or_the_dict_key() -> None:
    from lth.prune import PruneHparams

    err = _raised(PruneHparams(fraction=1.5).validate)
    assert _faces(err) == ("--pruning-fraction 1.5: expected a number in (0, 1)",
                           'pruning["fraction"] 1.5: expected a number in (0, 1)')
    assert err.field == "pruning.fraction" and err.value == 1.5
    err = _raised(PruneHparams(strategy="nope").validate)
    assert _faces(err) == ("--pruning-strategy 'nope': unknown value; allowed: global, layerwise, random, structured",
                           'pruning["strategy"] \'nope\': unknown value; allowed: global, layerwise, random, '
                           'structured')
    assert err.render(aliases={"pruning.strategy": "--strategy"}).startswith("--strategy 'nope'")  # as typed
    err = _raised(PruneHparams(layer_fractions=("fc=1.5",)).validate)
    assert _faces(err) == ("--pruning-layer-fractions fc=1.5: expected a number in (0, 1)",
                           'pruning["layer_fractions"] fc=1.5: expected a number in (0, 1)')


def test_a_step_past_the_end_names_the_field_and_the_length() -> None:
    from lth.spec import Step, past_end

    err = past_end("save_states", Step.parse("9it"), Step.parse("2ep"), 92)
    assert _faces(err) == (
        "--save-states 9it: after the end of training (--training-steps 2ep = 92it); allowed: a step from 0it to "
        "92it (--training-steps)",
        "save_states 9it: after the end of training (training_steps 2ep = 92it); allowed: a step from 0it to 92it "
        "(training_steps)")
    assert err.field == "save_states"
    # a literal CLI flag (callers that still pass one) or plain words are kept as written
    assert str(past_end("--save-states", Step.parse("9it"), Step.parse("2ep"), 92)) == str(err)
    assert str(past_end("start step", "9it", Step.parse("4it"), 4)).startswith("start step 9it: after the end")


def test_a_batch_larger_than_the_training_set_names_the_field_or_the_set_item() -> None:
    from lth.spec import TrainSpec, replace_fields, validate_lengths

    spec = replace_fields(TrainSpec(), {"batch_size": "1501", "training_steps": "2ep", "milestones": ["51it"]})
    err = _raised(lambda: validate_lengths(spec, 1500))
    assert _faces(err) == (
        "--batch-size 1501: larger than the training set (1500 examples); allowed: a whole number from 1 to 1500",
        "batch_size 1501: larger than the training set (1500 examples); allowed: a whole number from 1 to 1500")
    err = _raised(lambda: validate_lengths(spec, 1500, given=(), set_values={"batch_size": "1501"}))
    assert _faces(err) == (
        "--set batch_size=1501: larger than the training set (1500 examples); allowed: a whole number from 1 to 1500",
        "set batch_size=1501: larger than the training set (1500 examples); allowed: a whole number from 1 to 1500")
    spec = replace_fields(spec, {"batch_size": "60"})  # 25 it an epoch: 2ep = 50it
    err = _raised(lambda: validate_lengths(spec, 1500, given={"milestones", "training_steps"},
                                           set_values={"milestones": "51it", "training_steps": "2ep"}))
    assert _faces(err) == (
        "--set milestones=51it: after the end of training (--set training_steps=2ep = 50it); allowed: a step from "
        "0it to 50it (--set training_steps)",
        "set milestones=51it: after the end of training (set training_steps=2ep = 50it); allowed: a step from 0it "
        "to 50it (set training_steps)")


def test_a_bad_branch_option_names_the_flag_or_the_option() -> None:
    from lth.lottery.branches import branch_options
    from lth.lottery.branches.retrain import retrained_spec
    from lth.spec import TrainSpec

    err = _raised(lambda: branch_options("transfer", {"target_dataset": "mnist", "transfer_init": "bogus"}))
    assert _faces(err) == ("--transfer-init 'bogus': unknown value; allowed: ticket, reinit",
                           "transfer_init 'bogus': unknown value; allowed: ticket, reinit")
    err = _raised(lambda: branch_options("finetune", {"finetune_lr": 0.0}))
    assert _faces(err) == ("--finetune-lr 0.0: expected a learning rate > 0",
                           "finetune_lr 0.0: expected a learning rate > 0")
    err = _raised(lambda: retrained_spec(TrainSpec(), ("lr=0",)))  # --set: the field as the user gave it
    assert _faces(err) == ("--set lr=0: bad value 0.0; allowed: a number > 0 (at 0 nothing trains)",
                           "set lr=0: bad value 0.0; allowed: a number > 0 (at 0 nothing trains)")
    err = _raised(lambda: branch_options("nope", {}))  # plain text: the same on both faces
    assert str(err) == str(err.for_face("api")) and str(err).startswith("unknown branch 'nope'; allowed: reinit")


def test_a_bad_model_name_names_the_flag_or_the_keyword() -> None:
    from lth.models import resolve

    err = _raised(lambda: resolve("resnet_9"))
    cli, api = _faces(err)
    assert cli.startswith("--model: unknown model 'resnet_9': ResNet depth must be 6n+2 (8, 14, 20, 32, 56, 110, "
                          "...), got 9; allowed: fc_<h1>[_<h2>...]")
    assert api == "model" + cli.removeprefix("--model") and err.value == "resnet_9"


def test_domain_errors_elsewhere_render_per_face() -> None:
    from lth.data.datasets import load_dataset
    from lth.engine.evaluate import _autocast
    from lth.lottery.branches import parse_levels
    from lth.presets import get_preset
    from lth.spec import DataHparams

    for call, cli, api in [
        (lambda: load_dataset(DataHparams(dataset="digits", validation_size=-1)),
         "--validation-size: bad value -1, expected a whole number >= 0",
         "validation_size: bad value -1, expected a whole number >= 0"),
        (lambda: parse_levels("5-3"), "--levels '5-3': expected a range like 0-15 or a list like 3,5,8",
         "levels '5-3': expected a range like 0-15 or a list like 3,5,8"),
        (lambda: _autocast(__import__("torch").device("cpu"), "fp8"),
         "--precision: bad value 'fp8'; allowed: fp32, bf16", "precision: bad value 'fp8'; allowed: fp32, bf16"),
    ]:
        assert _faces(_raised(call)) == (cli, api)
    cli, api = _faces(_raised(lambda: get_preset("digits_mpl")))
    assert cli.startswith("--preset 'digits_mpl': unknown preset (did you mean digits_mlp?); allowed: ")
    assert api == "preset" + cli.removeprefix("--preset")
