"""Legend labels of the training-runs section: fields that tell runs apart are compared within a preset."""

from __future__ import annotations

import pandas as pd

from lth.report.context import with_run_labels


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
    labels = with_run_labels(_frame())["label"].tolist()
    # batch size and model differ only between presets: the preset name says that already
    assert labels == ["digits_mlp, training_steps=2ep", "digits_mlp, training_steps=4ep", "lenet_300_100"]


def test_same_preset_in_two_experiments_that_differ_in_nothing_names_the_folder() -> None:
    frame = _frame().assign(**{"train.training_steps": "2ep"})
    labels = with_run_labels(frame)["label"].tolist()
    assert labels == ["digits_mlp (train_a)", "digits_mlp (train_b)", "lenet_300_100"]


def test_split_text_names_the_split_and_its_size() -> None:
    from lth.report.build import split_text

    mnist = pd.DataFrame({"data.dataset": ["mnist"] * 2, "data.validation_size": [5000] * 2,
                          "data.data_seed": [0] * 2, "data.synthetic_size": [50000] * 2})
    assert split_text(mnist) == "the mnist test split of 10,000 examples"
    assert split_text(mnist, "val") == "the validation split of 5,000 training examples held out (data seed 0)"
    synth = mnist.assign(**{"data.dataset": "synthetic", "data.synthetic_size": 1000})
    assert split_text(synth) == "the synthetic test split of 200 examples"  # synthetic_size // 5
    both = pd.concat([mnist, mnist.assign(**{"data.dataset": "cifar10"})])
    assert split_text(both) == "the test split of cifar10, mnist"


def test_digits_test_size_in_captions_is_the_loaded_one() -> None:
    from lth.data import load_dataset
    from lth.report.captions import TEST_EXAMPLES
    from lth.spec import DataHparams

    assert TEST_EXAMPLES["digits"] == load_dataset(DataHparams(dataset="digits")).test_y.shape[0]


def test_runs_text_counts_per_point() -> None:
    from lth.report.build import runs_text

    assert runs_text([2, 2, 2]) == "2 replicates per point"
    assert runs_text([1, 3]) == "1-3 replicates per point (see the count column)"
