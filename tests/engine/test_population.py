"""The population engine: each member's result equals training it alone; masks; divergence; starts at k."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from lth.data import load_dataset
from lth.engine.train import EngineOptions, Job, train_population
from lth.spec import DataHparams, ModelHparams, Step, TrainHparams, TrainSpec
from lth.store import RunDir

OPTS = EngineOptions(device="cpu", checkpoint_every=None)


def digits_spec(**train: object) -> TrainSpec:
    t = dict(optimizer="adam", lr=3e-3, training_steps=Step(1, "ep"))
    t.update(train)
    return TrainSpec(DataHparams(dataset="digits", batch_size=50), ModelHparams(model="fc_32_16"),
                     TrainHparams(**t))  # type: ignore[arg-type]


def conv_spec() -> TrainSpec:
    return TrainSpec(
        DataHparams(dataset="synthetic", synthetic_shape=(3, 8, 8), synthetic_size=256, batch_size=32, augment=True),
        ModelHparams(model="resnet_8", norm="batchnorm", width=0.5),
        TrainHparams(optimizer="sgd", lr=0.05, momentum=0.9, weight_decay=1e-4, training_steps=Step(1, "ep"),
                     milestones=(Step(4, "it"),)))


def final(job: Job) -> dict[str, torch.Tensor]:
    return RunDir(job.run_dir).load_tensors("states/final.pt")


def random_mask(spec: TrainSpec, density: float, seed: int) -> dict[str, torch.Tensor]:
    from lth.models import build_model

    data = load_dataset(spec.data)
    m = build_model(spec.model.model, 1, data.example_shape, data.num_classes, spec.model.norm, spec.model.width)
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(dict(m.named_parameters())[k][0].shape, generator=g) < density for k in m.prunable()}


def alone_vs_together(tmp_path: Path, jobs_for: callable) -> None:
    together = jobs_for(tmp_path / "together")
    data = load_dataset(together[0].spec.data)
    train_population(together, data, OPTS)
    for i, job in enumerate(jobs_for(tmp_path / "alone")):
        train_population([job], data, OPTS)
        a, b = final(job), final(together[i])
        assert a.keys() == b.keys()
        for k in a:
            assert torch.allclose(a[k], b[k], atol=1e-4, rtol=0), (i, k, (a[k] - b[k]).abs().max())
        acc_a = RunDir(job.run_dir).done["final_test_accuracy"]
        acc_b = RunDir(together[i].run_dir).done["final_test_accuracy"]
        assert acc_a == pytest.approx(acc_b, abs=1e-6)


def test_mlp_population_equals_alone(tmp_path: Path) -> None:
    # members differ in seed and learning rate (two clock groups)
    def jobs(root: Path) -> list[Job]:
        return [Job(digits_spec(), 0, root / "a"), Job(digits_spec(), 1, root / "b"),
                Job(digits_spec(lr=1e-3), 2, root / "c")]
    alone_vs_together(tmp_path, jobs)


def test_convnet_batchnorm_population_equals_alone(tmp_path: Path) -> None:
    def jobs(root: Path) -> list[Job]:
        return [Job(conv_spec(), r, root / str(r)) for r in range(3)]
    alone_vs_together(tmp_path, jobs)


def test_masked_ticket_population_equals_alone_and_stays_zero(tmp_path: Path) -> None:
    spec = digits_spec()
    masks = [random_mask(spec, 0.3, s) for s in range(3)]

    def jobs(root: Path) -> list[Job]:
        return [Job(spec, r, root / str(r), mask=masks[r]) for r in range(3)]
    alone_vs_together(tmp_path, jobs)
    for r in range(3):
        run = RunDir(tmp_path / "together" / str(r))
        stored = run.load_tensors("mask.pt")
        for name in ("init", "final"):
            state = run.load_tensors(f"states/{name}.pt")
            for k, m in stored.items():
                assert m.dtype == torch.bool
                assert torch.all(state[k][~m] == 0), (name, k)
                assert torch.count_nonzero(state[k][m]) == m.sum()  # survivors really train


def test_start_at_step_k_matches_uninterrupted(tmp_path: Path) -> None:
    """Plain SGD carries no optimiser state, so a run started at step k from the state an uninterrupted run had
    at k must end bit-identical: schedule and data order are where the uninterrupted run had them."""
    spec = digits_spec(optimizer="sgd", lr=0.05, training_steps=Step(2, "ep"), milestones=(Step(40, "it"),))
    data = load_dataset(spec.data)
    full = Job(spec, 0, tmp_path / "full", state_names={37: "rewind"})
    train_population([full], data, OPTS)
    rewind = RunDir(full.run_dir).load_tensors("states/rewind.pt")
    late = Job(spec, 0, tmp_path / "late", start_step=37, start_state=rewind, state_names={37: "rewind"})
    train_population([late], data, OPTS)
    a, b = final(full), final(late)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # and members that join late train beside members that started at 0
    both = [Job(spec, 0, tmp_path / "p0"), Job(spec, 0, tmp_path / "p37", start_step=37, start_state=rewind)]
    train_population(both, data, OPTS)
    for job in both:
        for k, v in final(job).items():
            assert torch.allclose(v, a[k], atol=1e-5), k
    assert RunDir(both[1].run_dir).read_metrics()[0]["iteration"] == 37


def test_diverging_member_is_marked_and_others_finish(tmp_path: Path) -> None:
    good = Job(digits_spec(optimizer="sgd", lr=0.05), 0, tmp_path / "good")
    bad = Job(digits_spec(optimizer="sgd", lr=1e6), 0, tmp_path / "bad")
    data = load_dataset(good.spec.data)
    train_population([good, bad], data, OPTS)
    assert RunDir(bad.run_dir).done["status"] == "diverged"
    assert not (bad.run_dir / "states" / "final.pt").exists()
    assert RunDir(good.run_dir).done["status"] == "complete"
    alone = Job(good.spec, 0, tmp_path / "alone")
    train_population([alone], data, OPTS)  # the diverged neighbour left no trace on the good member
    for k, v in final(alone).items():
        assert torch.allclose(v, final(good)[k], atol=1e-5), k


def test_seeds_are_separate(tmp_path: Path) -> None:
    """Changing the data-order seed changes the result but not the initialisation."""
    base = digits_spec()
    other = dataclasses.replace(base, train=dataclasses.replace(base.train, order_seed=7))
    a, b = Job(base, 0, tmp_path / "a"), Job(other, 0, tmp_path / "b")
    train_population([a, b], load_dataset(base.data), OPTS)
    ia, ib = (RunDir(j.run_dir).load_tensors("states/init.pt") for j in (a, b))
    fa, fb = final(a), final(b)
    assert all(torch.equal(ia[k], ib[k]) for k in ia)
    assert not all(torch.equal(fa[k], fb[k]) for k in fa)


def test_resumed_member_beside_an_earlier_starter_keeps_its_metrics(tmp_path: Path) -> None:
    """A run resumed from its checkpoint inside a population that starts earlier (another replicate from 0):
    the steps its slot spent as a placeholder leave no trace in its training loss or weights."""
    spec = digits_spec(training_steps=Step(4, "ep"))
    data = load_dataset(spec.data)
    whole = Job(spec, 0, tmp_path / "whole")
    train_population([whole], data, OPTS)

    class Stop(Exception):
        pass

    def stop_at_3ep(event: str, info: dict) -> None:
        if event == "eval" and info["iteration"] == 3 * 30:
            raise Stop

    broken = Job(spec, 0, tmp_path / "broken")
    with pytest.raises(Stop):
        train_population([broken], data, EngineOptions(device="cpu", checkpoint_every=Step(1, "ep"),
                                                       callback=stop_at_3ep))
    assert RunDir(broken.run_dir).done is None and (broken.run_dir / "checkpoint.pt").exists()
    train_population([Job(spec, 1, tmp_path / "other"), broken], data, OPTS)
    got, want = RunDir(broken.run_dir).read_metrics(), RunDir(whole.run_dir).read_metrics()
    assert [r["iteration"] for r in got] == [r["iteration"] for r in want]
    for a, b in zip(got, want, strict=True):
        for key in ("train_loss", "test_loss", "test_accuracy"):
            assert a[key] == pytest.approx(b[key], abs=1e-4), (a["iteration"], key)
    for k, v in final(whole).items():
        assert torch.allclose(v, final(broken)[k], atol=1e-4), k


def test_start_after_the_end_is_bad_input(tmp_path: Path) -> None:
    from lth.errors import UserError

    spec = digits_spec()
    with pytest.raises(UserError, match="after the end of training"):
        train_population([Job(spec, 0, tmp_path / "late", start_step=10_000)], load_dataset(spec.data), OPTS)
    assert not (tmp_path / "late").exists()


def test_metrics_csv_is_rewritten_at_most_every_metrics_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Each metrics.csv write pauses the device between steps: while training it is rewritten only once
    ``METRICS_SECONDS`` have passed (and at checkpoints), always at the end, with every row."""
    import lth.engine.population as pp

    calls: list[int] = []
    real = RunDir.write_metrics
    monkeypatch.setattr(RunDir, "write_metrics", lambda self, rows: (calls.append(len(rows)), real(self, rows))[1])
    spec = digits_spec(training_steps=Step(3, "ep"))
    data = load_dataset(spec.data)
    for seconds, expected in ((1e9, 1), (0.0, 5)):  # evaluations at 0, 1, 2, 3 epochs (the last also at the end)
        calls.clear()
        monkeypatch.setattr(pp, "METRICS_SECONDS", seconds)
        job = Job(spec, 0, tmp_path / str(seconds))
        train_population([job], data, OPTS)
        assert len(calls) == expected and calls[-1] == 4
        assert len(RunDir(job.run_dir).read_metrics()) == 4


def test_building_a_population_writes_nothing_to_the_store(tmp_path: Path) -> None:
    """The constructor only reads the run directories (checkpoints): spec.json and the mask are written by
    ``prepare_store``, which the training loop calls before the first step."""
    from lth.engine.population import Population

    spec = digits_spec()
    mask = random_mask(spec, 0.5, 0)
    jobs = [Job(spec, 0, tmp_path / "a", mask=mask), Job(spec, 1, tmp_path / "b", meta={"kind": "test"})]
    (tmp_path / "b").mkdir()  # an existing, empty run directory stays empty too
    pop = Population(jobs, load_dataset(spec.data), OPTS, lambda *a, **k: None)
    assert not (tmp_path / "a").exists() and list((tmp_path / "b").iterdir()) == []
    pop.prepare_store()
    a, b = RunDir(tmp_path / "a"), RunDir(tmp_path / "b")
    assert a.spec["replicate"] == 0 and b.spec["kind"] == "test" and b.spec["replicate"] == 1
    assert a.has_mask() and not b.has_mask()
    assert all(torch.equal(a.load_mask()[k], mask[k]) for k in mask)
