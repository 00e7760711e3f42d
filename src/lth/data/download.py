"""Dataset downloads, said aloud: what is downloaded from where to where (on stderr, with torchvision's progress
bar), checked against the md5 checksum torchvision publishes, and, on failure, the reason, which the caller puts in
its one-line error.

Downloads go only into lth's data cache (:func:`cache_root`: ``$LTH_DATA`` where set, else ``~/.cache/lth``):
a folder named with ``--data-dir`` is the user's and is never written into. The files are fetched and unpacked in a
temporary folder inside the cache and moved into place when whole, so a failed or interrupted download leaves
nothing behind but what was there before. The URLs and checksums are torchvision's own (its dataset classes'
``mirrors``/``resources``, ``url``/``tgz_md5``), so they follow the pinned torchvision.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO


class DownloadFailed(Exception):
    """Every mirror failed: ``str(e)`` is ``tried to download from URL: reason`` (one line)."""


@dataclass(frozen=True)
class Source:
    """Where a dataset's files come from: each of ``files`` (name, md5) from the first of ``mirrors`` that serves
    it, unpacked into ``<root>/<into>``."""

    title: str
    mirrors: tuple[str, ...]
    files: tuple[tuple[str, str], ...]
    into: str


def source(tv_class: str) -> Source:
    """The source of torchvision's dataset class ``tv_class`` (``MNIST``, ``FashionMNIST``, ``CIFAR10``,
    ``CIFAR100``), read from the class itself."""
    import torchvision.datasets as tvd

    cls = getattr(tvd, tv_class)
    if hasattr(cls, "mirrors"):  # MNIST-like: four gzipped IDX files in <root>/<class>/raw
        return Source(tv_class, tuple(cls.mirrors), tuple((n, m) for n, m in cls.resources), f"{tv_class}/raw")
    base, _, name = cls.url.rpartition("/")  # CIFAR: one archive holding its own folder
    return Source(tv_class, (base + "/",), ((cls.filename or name, cls.tgz_md5),), "")


def cache_root() -> Path:
    """lth's data cache, the one folder downloads go into: ``$LTH_DATA`` where set, else ``~/.cache/lth``."""
    env = os.environ.get("LTH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "lth"


def download_url(url: str, folder: str, filename: str) -> None:
    """torchvision's download (a progress bar on stderr); what tests replace to run without a network."""
    from torchvision.datasets.utils import download_url as tv_download

    tv_download(url, folder, filename)


def reason(e: BaseException) -> str:
    """A download error as one short clause."""
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


# Datasets torchvision does not ship a class for: Tiny-ImageNet's zip from its Stanford home (the md5 that the
# public loaders of it check), unpacked as tiny-imagenet-200/ in the cache.
TINY_IMAGENET = Source("Tiny-ImageNet", ("http://cs231n.stanford.edu/",),
                       (("tiny-imagenet-200.zip", "90528d7ca1a48142e341f4ef8d21d0de"),), "")


def fetch(tv_class: str | Source, root: Path, log: TextIO | None = None) -> None:
    """Download and unpack ``tv_class``'s files into ``root`` (lth's cache), saying so on ``log`` (stderr);
    :class:`DownloadFailed` with every URL tried and why, when no mirror served a file whole."""
    from torchvision.datasets.utils import calculate_md5, extract_archive

    log = log or sys.stderr
    src = tv_class if isinstance(tv_class, Source) else source(tv_class)
    target = root / src.into
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".download-", dir=root))
    try:
        unpacked = work / "unpacked"
        unpacked.mkdir()
        for name, md5 in src.files:
            tried = []
            for mirror in src.mirrors:
                url = mirror + name
                print(f"lth: downloading {src.title} ({name}) from {url} to {target}", file=log, flush=True)
                try:
                    download_url(url, str(work), name)
                    got = calculate_md5(work / name)
                    if got != md5:
                        raise ValueError(f"md5 checksum {got}, expected {md5}")
                except Exception as e:  # noqa: BLE001 - any failure: the next mirror, then the reason
                    tried.append(f"{url}: {reason(e)}")
                    (work / name).unlink(missing_ok=True)
                    continue
                print(f"lth: {name}: md5 checksum {md5} verified", file=log, flush=True)
                break
            else:
                raise DownloadFailed(f"tried to download from {'; '.join(tried)}")
            extract_archive(str(work / name), str(unpacked))
        target.mkdir(parents=True, exist_ok=True)
        for item in sorted(unpacked.iterdir()):  # whole files and folders, moved into place
            dest = target / item.name
            if dest.is_dir() and item.is_dir():
                shutil.rmtree(dest)
            os.replace(item, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
