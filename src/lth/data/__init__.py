"""Datasets held in memory as tensors."""

from lth.data.datasets import DATASETS, Dataset, RawSplits, data_root, load_dataset

__all__ = ["DATASETS", "Dataset", "RawSplits", "data_root", "load_dataset"]
