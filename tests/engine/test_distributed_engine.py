"""The engine's side of a distributed run (lth.engine.distributed; named apart from the executor's
tests/executor/test_distributed.py, as pytest imports test modules by file name): rank shards of a batch make
up the global batch without overlap; evaluation shards cover the test set once; ranks other than 0 write
nothing; synchronised BatchNorm over 2 gloo processes equals one process on the global batch; gradients reduced
while the backward runs equal those reduced after it; a ResNet with BatchNorm and augmentation trained on 2
processes equals 1."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import lth

from lth.engine.batches import EpochBatches
from lth.engine.distributed import QuietRunDir, shard_rows
from lth.store import RunDir


@pytest.mark.parametrize("augment", [False, True])
def test_rank_shards_make_up_the_global_batch(augment: bool) -> None:
    x = torch.randn(100, 3, 8, 8)
    y = torch.arange(100)
    whole = EpochBatches(2, 100, 12, augment, (8, 8), torch.device("cpu"))
    whole.fill(3, [5, 6], [7, 8])
    shards = [EpochBatches(2, 100, 12, augment, (8, 8), torch.device("cpu"), shard=(r, 4)) for r in range(4)]
    for s in shards:
        s.fill(3, [5, 6], [7, 8])
    for pos in (0, 5, torch.tensor([7])):
        xb, yb = whole.batch(x, y, pos)
        parts = [s.batch(x, y, pos) for s in shards]
        assert all(p[0].shape == (2, 3, 3, 8, 8) for p in parts)
        assert torch.equal(torch.cat([p[1] for p in parts], 1), yb)  # rank r: rows 3r..3r+2, no overlap
        assert torch.equal(torch.cat([p[0] for p in parts], 1), xb)
    with pytest.raises(ValueError, match="does not split over 5"):
        EpochBatches(1, 100, 12, False, (8, 8), torch.device("cpu"), shard=(0, 5))


@pytest.mark.parametrize("total, world", [(10, 3), (2, 4), (360, 2)])
def test_evaluation_shards_cover_every_row_once(total: int, world: int) -> None:
    rows = [r for rank in range(world) for r in range(total)[shard_rows(total, rank, world)]]
    assert rows == list(range(total))


def test_ranks_other_than_0_write_nothing(tmp_path: Path) -> None:
    q = QuietRunDir(tmp_path / "run")
    q.write_spec({"a": 1})
    q.save_mask({"w": torch.ones(2, dtype=torch.bool)})
    q.save_state("init", {"w": torch.ones(2)}, 0)
    q.save_checkpoint({"iteration": 1})
    q.write_metrics([{"iteration": 0}])
    q.write_telemetry([{"iteration": 0}])
    q.write_done({"status": "complete"})
    assert not (tmp_path / "run").exists() or not [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    RunDir(tmp_path / "run").write_spec({"a": 1})
    assert QuietRunDir(tmp_path / "run").spec == {"a": 1}  # it reads as rank 0 wrote


def _bn_rank(rank: int, port: int, out: str) -> None:
    """Rank ``rank`` of 2: its half of a fixed batch through a synchronised PopBatchNorm2d; saves the output,
    the gradients and the running statistics."""
    from lth.engine.distributed import setup, sync_batchnorm, teardown

    torch.set_num_threads(1)
    dist = setup(rank, 2, "127.0.0.1", port, "cpu", timeout_s=60)
    try:
        bn, x, w = _bn_case()
        sync_batchnorm(bn, dist)
        part = x[rank * 4:(rank + 1) * 4].clone().requires_grad_(True)
        y = bn(part)
        (y * w[rank * 4:(rank + 1) * 4]).sum().backward()
        torch.save({"y": y.detach(), "gx": part.grad, "gw": bn.weight.grad, "gb": bn.bias.grad,
                    "mean": bn.running_mean, "var": bn.running_var}, f"{out}/{rank}.pt")
    finally:
        teardown()


def _bn_case() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    from lth.models.layers import PopBatchNorm2d

    g = torch.Generator().manual_seed(0)
    bn = PopBatchNorm2d(2, 3)
    with torch.no_grad():
        bn.weight.copy_(torch.rand(2, 3, generator=g) + 0.5)
        bn.bias.copy_(torch.randn(2, 3, generator=g))
    return bn, torch.randn(8, 6, 5, 5, generator=g) * 3 + 1, torch.randn(8, 6, 5, 5, generator=g)


def test_synchronised_batchnorm_on_two_ranks_equals_one_process(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    from lth.executor.distributed import free_port

    mp.start_processes(_bn_rank, args=(free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    ranks = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    bn, x, w = _bn_case()
    x.requires_grad_(True)
    y = bn(x)
    (y * w).sum().backward()  # the sum over both halves: each rank's part of one loss
    torch.testing.assert_close(torch.cat([r["y"] for r in ranks]), y.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([r["gx"] for r in ranks]), x.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ranks[0]["gw"] + ranks[1]["gw"], bn.weight.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ranks[0]["gb"] + ranks[1]["gb"], bn.bias.grad, rtol=1e-4, atol=1e-5)
    for r in ranks:  # every rank holds the global batch's running statistics
        torch.testing.assert_close(r["mean"], bn.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(r["var"], bn.running_var, rtol=1e-5, atol=1e-6)


def _grads_rank(rank: int, port: int, out: str) -> None:
    """Rank ``rank`` of 2: a small population convnet's gradients on its own batch, reduced by a GradReducer
    (buckets of about 4 KB, started by the backward's hooks) and, from the same backward again without
    ``begin`` (the hooks idle, as after a hand-written backward), all reduced by ``finish``; saves both and what
    the reducer had started before ``finish``."""
    from lth.engine.distributed import setup, teardown
    from lth.models import build_model

    torch.set_num_threads(1)
    dist = setup(rank, 2, "127.0.0.1", port, "cpu", timeout_s=60)
    try:
        torch.manual_seed(0)
        model = build_model("resnet_8", 2, (3, 8, 8), 10, width=0.5)
        params = [q for q in model.parameters() if q.requires_grad]
        g = torch.Generator().manual_seed(100 + rank)
        x, y = torch.randn(2, 6, 3, 8, 8, generator=g), torch.randint(0, 10, (2, 6), generator=g)

        def backward() -> None:
            for q in params:
                q.grad = None
            torch.nn.functional.cross_entropy(model(x).reshape(12, -1), y.reshape(-1)).backward()

        reducer = dist.reducer(params, bucket_bytes=4096)
        reducer.begin()
        backward()
        started = len(reducer.flying)
        first = [params[i].shape for i in reducer.buckets[0]]
        reducer.finish()
        overlapped = [q.grad.clone() for q in params]
        backward()
        own = [q.grad.clone() for q in params]
        assert not reducer.flying
        reducer.finish()
        reducer.close()
        torch.save({"overlapped": overlapped, "after": [q.grad for q in params], "own": own, "started": started,
                    "buckets": len(reducer.buckets), "first": first, "last": [params[-1].shape]},
                   f"{out}/{rank}.pt")
    finally:
        teardown()


def test_gradients_reduced_during_the_backward_equal_those_reduced_after(tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    from lth.executor.distributed import free_port

    mp.start_processes(_grads_rank, args=(free_port(), str(tmp_path)), nprocs=2, start_method="spawn")
    ranks = [torch.load(tmp_path / f"{r}.pt") for r in range(2)]
    for r in ranks:
        assert r["buckets"] > 3  # several buckets, every one started by the backward's hooks, before finish()
        assert r["started"] == r["buckets"], r
        assert r["first"][0] == r["last"][0]  # the first bucket holds the last parameters (backward order)
        for a, b in zip(r["overlapped"], r["after"], strict=True):
            assert torch.equal(a, b)  # the same sums over the ranks, bit for bit
    for a, b in zip(ranks[0]["overlapped"], ranks[1]["overlapped"], strict=True):
        assert torch.equal(a, b)  # every rank holds the same mean
    for mean, a, b in zip(ranks[0]["overlapped"], ranks[0]["own"], ranks[1]["own"], strict=True):
        torch.testing.assert_close(mean, (a + b) / 2)  # the mean of the two ranks' own gradients
    assert not all(torch.equal(m, a) for m, a in zip(ranks[0]["overlapped"], ranks[0]["own"], strict=True))


def test_a_batchnorm_resnet_with_augmentation_on_two_processes_equals_one(tmp_path: Path) -> None:
    common = ("train", "--preset", "resnet20", "--model", "resnet_8", "--width", "0.5", "--dataset", "synthetic",
              "--synthetic-shape", "3", "8", "8", "--synthetic-size", "256", "--batch-size", "32", "--augment",
              "--training-steps", "16it", "--eval-every", "8it", "--lr", "0.05", "--device", "cpu", "--json")
    for w in ("1", "2"):
        code, _, err = lth(*common, "--world-size", w, "--root", str(tmp_path / w))
        assert code == 0, err
    (one,) = [p.parent.parent for p in (tmp_path / "1").rglob("final.pt")]
    two = tmp_path / "2" / one.relative_to(tmp_path / "1")
    a, b = RunDir(one).load_state("final"), RunDir(two).load_state("final")
    assert any("running_var" in k for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    assert [r["test_accuracy"] for r in RunDir(one).read_metrics()] == \
           [r["test_accuracy"] for r in RunDir(two).read_metrics()]
    assert json.loads((two / "spec.json").read_text())["distributed"]["batchnorm"] == "sync"


def test_streamed_rank_shards_make_up_the_global_batch(tmp_path: Path) -> None:
    """Images read from disk (StreamBatches): each rank decodes only its rows, with the augmentation the one-process
    stream gives them."""
    from lth.data import load_dataset
    from lth.engine.stream import StreamBatches
    from lth.spec import DataHparams
    from tests.data.image_files import write_imagefolder

    folder = write_imagefolder(tmp_path / "digits", count=120)
    data = load_dataset(DataHparams(dataset="imagefolder", batch_size=16, image_size=12, augment=True),
                        data_dir=folder)
    cpu = torch.device("cpu")

    def stream(shard: tuple[int, int]) -> StreamBatches:
        s = StreamBatches(2, data.train_x, data.train_y, 16, True, [5, 6], [1, 2], cpu, workers=0, shard=shard)
        s.fill(1, [5, 6], [1, 2], start=2)
        return s

    whole, parts = stream((0, 1)), [stream((r, 2)) for r in range(2)]
    for pos in (2, 3):
        for s in (whole, *parts):
            s.prepare(pos)
        xb, yb = whole.batch(None, None, pos)
        got = [p.batch(None, None, pos) for p in parts]
        assert got[0][0].shape[1] == 8
        assert torch.equal(torch.cat([g[1] for g in got], 1), yb)
        assert torch.equal(torch.cat([g[0] for g in got], 1), xb)
    with pytest.raises(ValueError, match="does not split over 3"):
        StreamBatches(1, data.train_x, data.train_y, 16, False, [0], [0], cpu, workers=0, shard=(0, 3))
