"""What planning needs to know about a dataset without loading it: example shape, classes, training-set size."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lth.spec import DataHparams

# name -> (example shape, classes, training examples) of the files lth reads; a dataset registered by a user
# is loaded once to learn them.
KNOWN: dict[str, tuple[tuple[int, ...], int, int]] = {
    "mnist": ((1, 28, 28), 10, 60000),
    "fashion_mnist": ((1, 28, 28), 10, 60000),
    "cifar10": ((3, 32, 32), 10, 50000),
    "cifar100": ((3, 32, 32), 100, 50000),
    "digits": ((1, 8, 8), 10, 1500),
}
# Image datasets read from disk: (classes, training images, default crop side) of the official releases, used to plan
# where the files are not here (a recipe's ImageNet pieces before they are left out); present files are counted.
KNOWN_IMAGES: dict[str, tuple[int, int, int]] = {"imagenet": (1000, 1281167, 224), "tiny_imagenet": (200, 100000, 64)}


@dataclass(frozen=True)
class DataInfo:
    """Shapes and sizes of a dataset after the transforms of its :class:`~lth.spec.DataHparams`."""

    example_shape: tuple[int, ...]
    num_classes: int
    n_train: int

    def steps_per_epoch(self, batch_size: int) -> int:
        """Training iterations per epoch (the last partial batch is dropped)."""
        return self.n_train // batch_size


def describe(hp: DataHparams, data_dir: str | Path | None = None) -> DataInfo:
    """The :class:`DataInfo` of ``hp`` (cheap for the built-in datasets: no file is read)."""
    if hp.dataset == "synthetic":
        shape, classes, n = tuple(hp.synthetic_shape), hp.synthetic_classes, hp.synthetic_size
    elif hp.dataset in KNOWN:
        shape, classes, n = KNOWN[hp.dataset]
    else:
        from lth.data import load_dataset
        from lth.errors import UserError

        try:
            if hp.dataset in KNOWN_IMAGES and not _images_here(hp.dataset, data_dir):
                raise UserError(f"{hp.dataset}: not here")  # its known size; never a download to describe it
            d = load_dataset(hp, data_dir)
        except UserError:
            if hp.dataset not in KNOWN_IMAGES:
                raise
            classes, n, side = KNOWN_IMAGES[hp.dataset]
            shape = (3, hp.image_size or side, hp.image_size or side)
        else:
            return DataInfo(d.example_shape, d.num_classes, int(d.train_x.shape[0]))
    n -= hp.validation_size
    if hp.subsample_fraction < 1:
        n = round(hp.subsample_fraction * n)
    return DataInfo(shape, 4 if hp.rotation_task else classes, n)


def _images_here(name: str, data_dir: str | Path | None) -> bool:
    """Whether image dataset ``name`` is laid out under the data root (read, never downloaded)."""
    from lth.data.datasets import data_root
    from lth.data.images import read_layout
    from lth.errors import UserError

    try:
        read_layout(name, data_root(data_dir))
    except UserError:
        return False
    return True
