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


def _check_dataset(spec) -> None:  # noqa: ANN001 (a TrainSpec)
    from lth.errors import UserError, ref

    if spec.data.dataset not in DATASETS:
        raise UserError(f"{ref('dataset')}: unknown value {spec.data.dataset!r}; allowed: {', '.join(DATASETS)}",
                        value=spec.data.dataset, allowed=", ".join(DATASETS))


def _register() -> None:
    from lth.spec import NAME_CHECKS

    if _check_dataset not in NAME_CHECKS:
        NAME_CHECKS.append(_check_dataset)


_register()
