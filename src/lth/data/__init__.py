"""Datasets held in memory as tensors."""

from lth.data.datasets import (
    DATA_FILES,
    DATASETS,
    FALLBACK_ROOTS,
    Dataset,
    RawSplits,
    data_root,
    data_source,
    load_dataset,
    locate,
)

__all__ = ["DATASETS", "DATA_FILES", "FALLBACK_ROOTS", "Dataset", "RawSplits", "data_root", "data_source",
           "load_dataset", "locate"]
