"""Legend labels of the training-runs section: fields that tell runs apart are compared within a preset."""

from __future__ import annotations

import pandas as pd

from lth.report.build import _with_run_labels


def _frame() -> pd.DataFrame:
    rows = [  # two presets with their own batch size and model; digits_mlp trained at two lengths
        {"experiment": "train_a", "preset": "digits_mlp", "data.batch_size": 32, "model.model": "fc_64_32",
         "train.training_steps": "2ep"},
        {"experiment": "train_b", "preset": "digits_mlp", "data.batch_size": 32, "model.model": "fc_64_32",
         "train.training_steps": "4ep"},
        {"experiment": "train_c", "preset": "lenet_300_100", "data.batch_size": 60, "model.model": "fc_300_100",
         "train.training_steps": "2ep"},
    ]
    return pd.DataFrame(rows)


def test_labels_name_only_what_differs_within_a_preset() -> None:
    labels = _with_run_labels(_frame())["label"].tolist()
    # batch size and model differ only between presets: the preset name says that already
    assert labels == ["digits_mlp, training_steps=2ep", "digits_mlp, training_steps=4ep", "lenet_300_100"]


def test_same_preset_in_two_experiments_that_differ_in_nothing_names_the_folder() -> None:
    frame = _frame().assign(**{"train.training_steps": "2ep"})
    labels = _with_run_labels(frame)["label"].tolist()
    assert labels == ["digits_mlp (train_a)", "digits_mlp (train_b)", "lenet_300_100"]
