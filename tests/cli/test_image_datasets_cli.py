"""Every command on images read from disk: lottery with rewinding and a branch, stability, landscape, hessian,
report, on a folder of real JPEGs written at test time (`--dataset imagefolder --data-dir DIR`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import lth

from tests.data.image_files import write_imagefolder

COMMON = ("--preset", "lenet_300_100", "--dataset", "imagefolder", "--image-size", "8", "--model", "fc_16",
          "--batch-size", "40", "--training-steps", "2ep", "--validation-size", "0", "--lr", "0.05",
          "--loader-workers", "1")


def test_lottery_stability_landscape_and_report_on_an_image_folder(tmp_path: Path) -> None:
    data = write_imagefolder(tmp_path / "digits", count=300)
    root = tmp_path / "runs"
    common = (*COMMON, "--data-dir", str(data), "--root", str(root))
    code, out, err = lth("lottery", *common, "--levels", "1", "--rewind", "3it", "--branches", "reinit", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert {b["branch"] for b in doc["branches"]} == {"reinit"}
    spec = json.loads((Path(doc["runs"][0]["path"]) / "spec.json").read_text())
    assert spec["data_source"]["layout"] == "imagefolder" and spec["data_source"]["classes"] == 10
    assert all(r["status"] == "complete" for r in doc["runs"])

    code, out, err = lth("stability", *common, "--rewind", "0it", "--alphas", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["results"][0]["test_instability"] >= 0

    code, out, err = lth("landscape", *common, "--rewind", "0it", "--alphas", "3", "--trajectory-points", "2",
                         "--json")
    assert code == 0, err

    code, out, err = lth("hessian", "--root", str(root), "--data-dir", str(data), "--steps", "final", "--k", "2",
                         "--iters", "4", "--tol", "1", "--examples", "40", "--json")
    assert code == 0, err
    rows = json.loads(out)["rows"]  # every run's final state: 2 eigenvalues each, largest first
    assert rows and {r["rank"] for r in rows} == {0, 1} and all(r["eigenvalue"] == r["eigenvalue"] for r in rows)
    assert all(a["eigenvalue"] >= b["eigenvalue"] for a, b in zip(rows[::2], rows[1::2], strict=True))

    code, out, err = lth("report", "--root", str(root))
    assert code == 0, err
    assert (root / "report" / "index.html").is_file()


def test_a_missing_image_folder_is_one_line_naming_it(tmp_path: Path) -> None:
    code, out, err = lth("train", *COMMON, "--data-dir", str(tmp_path / "nowhere"), "--root", str(tmp_path / "r"))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "folder not found" in lines[0] and "nowhere" in lines[0], err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("*.pt"))


def test_decoder_dali_trains_and_is_recorded_or_is_refused_where_missing(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from lth.engine import dali

    data = write_imagefolder(tmp_path / "digits", count=200)
    common = (*COMMON, "--data-dir", str(data), "--training-steps", "3it", "--decoder", "dali")
    if dali.available():
        code, out, err = lth("train", *common, "--root", str(tmp_path / "ok"), "--json")
        assert code == 0, err
        spec = json.loads((Path(json.loads(out)["runs"][0]["path"]) / "spec.json").read_text())
        assert spec["image_decoder"] == "dali"
    monkeypatch.setattr(dali, "available", lambda: False)
    code, out, err = lth("train", *common, "--root", str(tmp_path / "r"))
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--decoder: bad value 'dali'" in lines[0] and "lth[dali]" in lines[0], err
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").rglob("*.pt"))
    code, out, err = lth("train", *common[:-1], "pillow", "--root", str(tmp_path / "p"))
    assert code == 0, err


def test_world_size_two_reads_an_image_folder_with_loader_workers(tmp_path: Path) -> None:
    """Each rank of a distributed run starts DataLoader workers of its own (a rank process once could not:
    'daemonic processes are not allowed to have children'); world size 2 equals 1 up to rounding."""
    import torch

    from lth.store import RunDir

    data = write_imagefolder(tmp_path / "digits", count=200)
    finals = []
    for w in ("1", "2"):
        code, out, err = lth("train", *COMMON, "--data-dir", str(data), "--training-steps", "6it", "--augment",
                             "--world-size", w, "--root", str(tmp_path / w), "--json")
        assert code == 0, err
        finals.append(RunDir(Path(json.loads(out)["runs"][0]["path"])).load_state("final"))
    for k in finals[0]:
        torch.testing.assert_close(finals[1][k], finals[0][k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("workers", ["0", "1"])
def test_an_image_that_does_not_decode_is_named_in_one_line(tmp_path: Path, workers: str) -> None:
    """Decoded in this process or in a DataLoader worker (whose error torch wraps as 'Caught UserError in
    DataLoader worker process 0.'), the error is one line naming the file; the checkpoint stays for a rerun."""
    data = write_imagefolder(tmp_path / "digits", count=200)
    bad = data / "train" / "c2" / "zz_bad.jpg"
    bad.write_bytes(b"\xff\xd8 this is no jpeg")
    code, out, err = lth("train", *COMMON, "--data-dir", str(data), "--loader-workers", workers,
                         "--root", str(tmp_path / "r"), "--json")
    assert code == 2 and out == "", err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"lth: error: image file {bad}: cannot be decoded"), err
    assert "allowed: a readable JPEG" in last


def test_a_store_refuses_other_images_under_the_same_run(tmp_path: Path) -> None:
    """An image folder is the dataset: the same command on a folder with other images is refused in one line
    naming both (it once answered 'already trained' with the first folder's result); a copy of the same files
    elsewhere is the same data."""
    import shutil

    first = write_imagefolder(tmp_path / "a", count=200)
    other = write_imagefolder(tmp_path / "b", count=150)
    root = tmp_path / "r"
    code, _, err = lth("train", *COMMON, "--data-dir", str(first), "--training-steps", "3it", "--root", str(root))
    assert code == 0, err
    before = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    code, out, err = lth("train", *COMMON, "--data-dir", str(other), "--training-steps", "3it", "--root",
                         str(root), "--json")
    assert code == 2 and out == "", err
    (line,) = err.strip().splitlines()
    assert line.startswith("lth: error: --data-dir: ") and "was trained on other images" in line, line
    assert str(first.resolve()) in line and str(other.resolve()) in line
    after = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file() and "plans" not in p.parts}
    assert after == {p: t for p, t in before.items() if "plans" not in p.parts}  # nothing written
    code, out, err = lth("hessian", "--root", str(root), "--data-dir", str(other), "--steps", "final", "--k", "1",
                         "--iters", "3", "--examples", "20", "--json")
    assert code == 2 and out == "" and "was trained on other images" in err, err
    shutil.copytree(first, tmp_path / "copy")
    code, _, err = lth("train", *COMMON, "--data-dir", str(tmp_path / "copy"), "--training-steps", "3it",
                       "--root", str(root))
    assert code == 0 and "nothing to do" in err, err


def test_the_default_crop_side_given_explicitly_is_the_same_run(tmp_path: Path) -> None:
    """--image-size 224 on an image folder is what leaving it out trains: one run (it was two, trained twice);
    spec.json records the side used."""
    data = write_imagefolder(tmp_path / "digits", count=100)
    common = (*[a for a in COMMON if a not in ("--image-size", "8")], "--data-dir", str(data), "--training-steps",
              "1it", "--batch-size", "20", "--root", str(tmp_path / "r"), "--json")
    assert "--image-size" not in common
    code, out, err = lth("train", *common)
    assert code == 0, err
    (run,) = json.loads(out)["runs"]
    assert json.loads((Path(run["path"]) / "spec.json").read_text())["data_source"]["image_size"] == 224
    code, out, err = lth("train", *common, "--image-size", "224")
    assert code == 0 and "nothing to do" in err, err
    assert json.loads(out)["runs"][0]["path"] == run["path"]
    code, out, err = lth("train", *common, "--image-size", "16")
    assert code == 0 and json.loads(out)["runs"][0]["path"] != run["path"], err
