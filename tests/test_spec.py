"""Specs: step syntax, flags from fields, and hashes that never change once released."""

from __future__ import annotations

import dataclasses

import pytest

from lth.errors import UserError
from lth.presets import PRESETS
from lth.spec import Step, TrainSpec, from_dict, non_default, replace_fields, spec_hash, to_dict


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
