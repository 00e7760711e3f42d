"""Downloads said aloud, without a network (the downloader replaced): "downloading X from URL to DIR" on stderr,
the md5 checksum checked, the reason of a failure in the final one-line error, and only into lth's cache: a folder
named with --data-dir is never written into."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torchvision.datasets as tvd

import lth.data.download as dl
from lth.data import load_dataset
from lth.errors import UserError
from lth.spec import DataHparams


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty home (so lth's cache is HOME/.cache/lth) and no $LTH_DATA."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LTH_DATA", raising=False)
    return tmp_path / "home" / ".cache" / "lth"


def cifar_archive() -> bytes:
    """A CIFAR-10 archive as Toronto serves it, with ten tiny images per batch."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
            body = pickle.dumps({b"data": np.full((10, 3072), 7, np.uint8), b"labels": list(range(10))})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def test_a_download_is_said_checked_and_lands_in_the_cache(cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capfd: pytest.CaptureFixture[str]) -> None:
    archive = cifar_archive()
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", hashlib.md5(archive).hexdigest())  # the fake's checksum
    fetched = []

    def fake(url: str, folder: str, filename: str) -> None:
        fetched.append(url)
        (Path(folder) / filename).write_bytes(archive)

    monkeypatch.setattr(dl, "download_url", fake)
    d = load_dataset(DataHparams(dataset="cifar10"))
    assert fetched == [tvd.CIFAR10.url] and d.train_x.shape == (50, 3, 32, 32)
    _, err = capfd.readouterr()
    assert f"lth: downloading CIFAR10 (cifar-10-python.tar.gz) from {tvd.CIFAR10.url} to {cache}" in err
    assert "md5 checksum" in err and "verified" in err
    assert sorted(p.name for p in cache.iterdir()) == ["cifar-10-batches-py"]  # no temporary folder left
    load_dataset(DataHparams(dataset="cifar10"))
    assert len(fetched) == 1  # there now: not downloaded again


def test_a_bad_checksum_is_the_reason_in_the_error(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dl, "download_url", lambda url, folder, name: (Path(folder) / name).write_bytes(b"html"))
    with pytest.raises(UserError) as e:
        load_dataset(DataHparams(dataset="cifar10"))
    text = str(e.value)
    assert f"tried to download from {tvd.CIFAR10.url}: ValueError: md5 checksum " in text, text
    assert f"expected {tvd.CIFAR10.tgz_md5}; put the files in {cache / 'cifar-10-batches-py'}" in text
    assert "\n" not in text and not list(cache.iterdir())  # nothing half-downloaded left


def test_every_mirror_tried_is_named_with_its_reason(cache: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capfd: pytest.CaptureFixture[str]) -> None:
    def offline(url: str, folder: str, filename: str) -> None:
        raise OSError(f"<urlopen error [Errno -3] Temporary failure in name resolution> ({url})")

    monkeypatch.setattr(dl, "download_url", offline)
    with pytest.raises(UserError) as e:
        load_dataset(DataHparams(dataset="mnist"))
    first = tvd.MNIST.resources[0][0]
    for mirror in tvd.MNIST.mirrors:
        assert f"{mirror}{first}: OSError: <urlopen error [Errno -3] Temporary failure" in str(e.value)
    assert str(e.value).endswith(f"; put the files in {cache / 'MNIST' / 'raw'}")
    _, err = capfd.readouterr()
    assert f"lth: downloading MNIST ({first}) from {tvd.MNIST.mirrors[0]}{first} to {cache / 'MNIST' / 'raw'}" in err


def test_a_named_data_dir_is_never_written_into(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--data-dir names the user's folder: missing files there are an error that says where lth would download
    them; nothing is downloaded, nothing is created or removed inside it."""
    mine = tmp_path / "DATA" / "MNIST"
    (mine / "keep").mkdir(parents=True)
    tried = []
    monkeypatch.setattr(dl, "download_url", lambda *a: tried.append(a))
    with pytest.raises(UserError) as e:
        load_dataset(DataHparams(dataset="mnist"), mine)
    assert tried == [] and [p.name for p in mine.rglob("*")] == ["keep"]
    assert f"put them there or leave the flag out (lth downloads only into its cache, {cache})" in str(e.value)


def test_tiny_imagenet_is_downloaded_into_the_cache_and_read(cache: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    """Tiny-ImageNet's zip (the one image dataset with a public download): said, md5-checked, unpacked in the cache,
    then read as its layout; a failure names the URL, the reason and where to put the folder."""
    import shutil

    from tests.data.image_files import write_tiny_imagenet

    write_tiny_imagenet(tmp_path / "src", count=40)
    archive = Path(shutil.make_archive(str(tmp_path / "tiny"), "zip", tmp_path / "src"))
    monkeypatch.setattr(dl, "TINY_IMAGENET", dl.Source("Tiny-ImageNet", ("http://example.invalid/",),
                                                       (("tiny.zip", hashlib.md5(archive.read_bytes()).hexdigest()),),
                                                       ""))
    monkeypatch.setattr("lth.data.datasets.TINY_IMAGENET", dl.TINY_IMAGENET)
    monkeypatch.setattr(dl, "download_url", lambda url, folder, name: shutil.copy(archive, Path(folder) / name))
    d = load_dataset(DataHparams(dataset="tiny_imagenet"))
    assert d.num_classes == 10 and (cache / "tiny-imagenet-200" / "wnids.txt").is_file()
    assert "lth: downloading Tiny-ImageNet (tiny.zip) from http://example.invalid/tiny.zip" in capfd.readouterr().err
    shutil.rmtree(cache)
    monkeypatch.setattr(dl, "download_url", lambda url, folder, name: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(UserError, match=r"tiny_imagenet: not found in .*tried to download from "
                                        r"http://example.invalid/tiny.zip: OSError: offline; put the unzipped"):
        load_dataset(DataHparams(dataset="tiny_imagenet"))
    assert not cache.exists() or not any(cache.iterdir())
