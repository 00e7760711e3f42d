"""Specs: step syntax, flags from fields, and hashes that never change once released."""

from __future__ import annotations

import dataclasses

import pytest

from lth.errors import UserError
from lth.presets import PRESETS
from lth.spec import (
    Step,
    TrainSpec,
    from_dict,
    non_default,
    past_end,
    replace_fields,
    spec_hash,
    to_dict,
    validate_lengths,
)


def test_step_parse_and_iterations() -> None:
    assert Step.parse("500it").iterations(1000) == 500
    assert Step.parse("2ep").iterations(390) == 780
    assert str(Step.parse("2ep")) == "2ep"
    for bad in ("5xyz", "ep", "-1it", "1.5ep", ""):
        with pytest.raises(UserError, match="bad step"):
            Step.parse(bad)


def test_released_hashes_are_pinned() -> None:
    # A released default never changes: these literal hashes name directories in users' stores.
    assert spec_hash(TrainSpec()) == "99914b932bd3"
    # lenet_300_100 was "30947458ad81" before it held out Frankle & Carbin's 5,000-example validation split
    assert spec_hash(PRESETS["lenet_300_100"].spec) == "823696576175"
    assert spec_hash(PRESETS["resnet20"].spec) == "19fd557f2153"
    assert spec_hash(PRESETS["digits_mlp"].spec) == "3f9779a02c22"


def test_only_non_default_fields_count() -> None:
    spec = replace_fields(TrainSpec(), {"lr": "0.5", "training_steps": "3ep", "milestones": ["1ep", "2ep"]})
    assert non_default(spec) == {"train.lr": 0.5, "train.training_steps": "3ep", "train.milestones": ["1ep", "2ep"]}
    # setting a field to its default is the same spec
    assert spec_hash(replace_fields(spec, {"momentum": "0.0"})) == spec_hash(spec)
    assert spec_hash(replace_fields(spec, {"momentum": "0.9"})) != spec_hash(spec)


def test_round_trip_through_json() -> None:
    for p in PRESETS.values():
        assert from_dict(TrainSpec, to_dict(p.spec)) == p.spec


def test_bad_values_name_the_flag() -> None:
    with pytest.raises(UserError, match="--batch-size"):
        replace_fields(TrainSpec(), {"batch_size": "x"})
    with pytest.raises(UserError, match="unknown hyperparameter"):
        replace_fields(TrainSpec(), {"nope": 1})
    for field, value, flag in [("lr", "-1", "--lr"), ("batch_size", "0", "--batch-size"),
                               ("dataset", "foo", "--dataset"), ("optimizer", "rmsprop", "--optimizer")]:
        with pytest.raises(UserError, match=flag):
            replace_fields(TrainSpec(), {field: value}).validate()


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("lr", "0", "> 0"), ("lr", "-0.1", "> 0"), ("momentum", "1", "[0, 1)"), ("momentum", "-0.5", "[0, 1)"),
    ("weight_decay", "-1e-4", ">= 0"), ("gamma", "0", "> 0"), ("batch_size", "0", ">= 1"), ("width", "0", "> 0"),
    ("width", "-2", "> 0")])
def test_values_that_can_only_be_mistakes_are_refused(field: str, value: str, allowed: str) -> None:
    """lr 0 trains nothing, momentum 1 never forgets a gradient (>= 1 diverges): each is refused, naming its flag,
    the value and what is allowed."""
    flag = "--" + field.replace("_", "-")
    with pytest.raises(UserError) as e:
        replace_fields(TrainSpec(), {field: value}).validate()
    msg = str(e.value)
    assert msg.startswith(flag) and f"{float(value)!r}".rstrip("0").rstrip(".") in msg and "allowed" in msg, msg
    assert allowed in msg, msg


def test_values_a_researcher_may_mean_are_kept() -> None:
    """Momentum 0, weight decay 0, gamma > 1 (the rate grows at a milestone), a tiny lr: all valid."""
    for over in ({"momentum": "0"}, {"momentum": "0.99"}, {"weight_decay": "0"}, {"gamma": "2"}, {"lr": "1e-9"}):
        replace_fields(TrainSpec(), over).validate()


def test_lengths_against_the_training_set() -> None:
    """1500 examples in batches of 60 are 25 iterations an epoch: 2ep = 50it is the end of training. A warmup or
    milestone may reach it but not pass it; a batch may not exceed the training set."""
    spec = replace_fields(TrainSpec(), {"batch_size": "60", "training_steps": "2ep", "warmup_steps": "50it",
                                        "milestones": ["1ep", "50it"]})
    validate_lengths(spec, 1500)  # at the end exactly: fine
    for over, flag, value in [({"warmup_steps": "51it"}, "--warmup-steps", "51it"),
                              ({"warmup_steps": "3ep"}, "--warmup-steps", "3ep"),
                              ({"milestones": ["1ep", "51it"]}, "--milestones", "51it")]:
        with pytest.raises(UserError) as e:
            validate_lengths(replace_fields(spec, over), 1500)
        assert str(e.value) == (f"{flag} {value}: after the end of training (--training-steps 2ep = 50it); "
                                f"allowed: a step from 0it to 50it (--training-steps)")
    with pytest.raises(UserError, match=r"^--batch-size 1501: .*allowed: a whole number from 1 to 1500$"):
        validate_lengths(replace_fields(spec, {"batch_size": "1501"}), 1500)
    validate_lengths(replace_fields(spec, {"batch_size": "1500", "training_steps": "2it", "warmup_steps": "0it",
                                           "milestones": []}), 1500)
    # a preset's schedule under a shortened --training-steps is meant; the same values given as flags are not
    short = replace_fields(spec, {"training_steps": "2it"})
    validate_lengths(short, 1500, given={"training_steps"})
    for given in ({"warmup_steps"}, {"milestones", "training_steps"}):
        with pytest.raises(UserError, match="after the end of training"):
            validate_lengths(short, 1500, given=given)


def test_lengths_given_as_set_are_named_as_typed() -> None:
    """A branch's ``--set KEY=VALUE`` is named so (not as a flag the user never typed); with several milestones,
    the one past the end follows; a length given by --set is the end named. 1500 examples / 60 = 25 it an epoch."""
    spec = replace_fields(TrainSpec(), {"batch_size": "60", "training_steps": "2ep", "milestones": ["1ep", "51it"]})
    with pytest.raises(UserError) as e:
        validate_lengths(spec, 1500, given={"milestones"}, set_values={"milestones": "1ep,51it"})
    assert str(e.value) == ("--set milestones=1ep,51it (51it): after the end of training (--training-steps 2ep = "
                            "50it); allowed: a step from 0it to 50it (--training-steps)")
    with pytest.raises(UserError) as e:
        validate_lengths(spec, 1500, given={"milestones", "training_steps"},
                         set_values={"milestones": "1ep,51it", "training_steps": "2ep"})
    assert "(--set training_steps=2ep = 50it); allowed: a step from 0it to 50it (--set training_steps)" in str(e.value)
    with pytest.raises(UserError, match=r"^--set batch_size=1501: larger than the training set \(1500 examples\)"):
        validate_lengths(replace_fields(spec, {"batch_size": "1501"}), 1500, given=(),
                         set_values={"batch_size": "1501"})


def test_past_end_names_flag_value_end_and_range() -> None:
    assert str(past_end("--rewind", Step.parse("9it"), Step.parse("4it"), 4)) == (
        "--rewind 9it: after the end of training (--training-steps 4it); allowed: a step from 0it to 4it "
        "(--training-steps)")
    assert "from 1it to 92it" in str(past_end("--pretrain-steps", "3ep", Step.parse("2ep"), 92, "1it"))


def test_specs_are_hashable_and_frozen() -> None:
    spec = PRESETS["resnet20"].spec
    assert hash(spec) == hash(dataclasses.replace(spec))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.train.lr = 1.0  # type: ignore[misc]


def test_tuple_fields_take_commas_or_separate_values() -> None:
    for raw in (["3,16,16"], ["3", "16", "16"], "3,16,16"):
        assert replace_fields(TrainSpec(), {"synthetic_shape": raw}).data.synthetic_shape == (3, 16, 16)


def test_spec_imports_neither_data_nor_models_but_checks_their_names() -> None:
    import ast
    import dataclasses as dc
    from pathlib import Path

    import lth.spec
    from lth.errors import UserError
    from lth.presets import get_preset

    tree = ast.parse(Path(lth.spec.__file__).read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
        {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m and (m.startswith("lth.data") or m.startswith("lth.models"))}
    spec = get_preset("digits_mlp").spec
    with pytest.raises(UserError, match="--dataset"):
        dc.replace(spec, data=dc.replace(spec.data, dataset="nope")).validate()
    with pytest.raises(UserError, match="unknown model"):
        dc.replace(spec, model=dc.replace(spec.model, model="nope")).validate()


def test_a_training_set_emptied_by_the_split_names_the_flags_that_emptied_it() -> None:
    spec = replace_fields(PRESETS["digits_mlp"].spec, {"subsample_fraction": "0.0001"})
    with pytest.raises(UserError, match=r"^--subsample-fraction 0.0001 with --validation-size \d+: leaves no "
                                        r"training examples of digits; allowed: a larger"):
        validate_lengths(spec, 0)
