"""The train study (:mod:`lth.studies.train`) and its Python face: a TrainSpec or a model class in, the API's
document equal to the CLI's ``--json``, the capacity refused from Python as on the command line, keywords that
suggest the nearest name, an executor made from the runtime options, a model that must reach a cluster's workers."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from conftest import lth
from torch import nn

import lth.api as api
from lth.errors import UserError
from lth.spec import Step, TrainSpec
from lth.studies.base import resolve_spec
from lth.studies.runtime import RuntimeOptions
from lth.studies.train import TrainOptions, generated_name, plan_train, run_train

TINY = {"model": "fc_8", "training_steps": "4it"}


class TinyNet(nn.Module):
    """A model defined in a test module: neither lth's nor importable by a worker process."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def forward(self, x):  # noqa: ANN001, ANN201
        return self.body(x)


def test_the_api_document_equals_the_cli_json(tmp_path: Path) -> None:
    code, out, err = lth("train", "--preset", "digits_mlp", "--model", "fc_8", "--training-steps", "4it",
                         "--replicates", "2", "--root", str(tmp_path), "--json")
    assert code == 0, err
    assert api.run(api.train("digits_mlp", replicates=2, root=tmp_path, **TINY)) == json.loads(out)["runs"]
    spec, preset = resolve_spec("digits_mlp", TINY)
    plan = plan_train(spec, TrainOptions(replicates=2), RuntimeOptions(root=str(tmp_path)), preset=preset)
    assert run_train(plan, progress=False).to_json() == json.loads(out)
    assert run_train(plan, progress=False).frame()["path"].tolist() == [r["path"] for r in json.loads(out)["runs"]]


def test_a_train_spec_is_taken_as_it_is(tmp_path: Path) -> None:
    spec = api.spec("digits_mlp", **TINY)
    assert isinstance(spec, TrainSpec)
    nodes = api.train(spec, root=tmp_path)
    assert nodes == api.train("digits_mlp", root=tmp_path, **TINY)  # one spec: one run
    assert nodes[0].meta["preset"] == "custom" and nodes.spec == spec
    (record,) = api.run(api.train(spec, root=tmp_path, lr=0.01), progress=False)
    assert record["status"] == "complete"
    assert api.spec(spec, lr=0.01).train.lr == 0.01


def test_a_model_class_trains_under_a_stable_name(tmp_path: Path) -> None:
    plan = api.train("digits_mlp", model=TinyNet, training_steps="4it", root=tmp_path)
    name = plan[0].spec.model.model
    assert name == generated_name(TinyNet) and name.endswith("test_train.tinynet")
    (record,) = api.run(plan, progress=False)
    assert record["status"] == "complete"
    assert json.loads((Path(record["path"]) / "spec.json").read_text())["model"]["model"] == name
    weights = api.state(record["path"], "final")
    TinyNet().load_state_dict(weights)  # the names are the module's own
    # a lambda or a partial gets its own name, stable for the same code and arguments
    assert generated_name(lambda: TinyNet(8)) != generated_name(lambda: TinyNet(4))
    import functools

    assert generated_name(functools.partial(TinyNet, 8)) == generated_name(functools.partial(TinyNet, 8))
    assert generated_name(functools.partial(TinyNet, 8)) != generated_name(functools.partial(TinyNet, 4))


def test_a_model_class_reaches_the_workers_of_a_cluster_and_an_unpicklable_one_is_refused(tmp_path: Path) -> None:
    """Slurm's local cluster trains in other processes, which cannot import this test module: the class is sent
    pickled by value and registered there. A factory closing over a lock cannot be sent: one line naming
    ``model``, before anything is written."""
    pytest.importorskip("submitit")
    slurm = {"cluster": "local", "folder": str(tmp_path / "submitit")}
    plan = api.train("digits_mlp", model=TinyNet, training_steps="4it", root=tmp_path / "s", executor="slurm",
                     slurm=slurm)
    (record,) = api.run(plan, progress=False)
    assert record["status"] == "complete", record
    lock = threading.Lock()
    with pytest.raises(UserError) as e:
        api.train("digits_mlp", model=lambda: (lock, TinyNet())[1], root=tmp_path / "u", executor="slurm",
                  slurm=slurm)
    line = str(e.value)
    assert "\n" not in line and line.startswith("model: ") and "does not pickle" in line and "lock" in line, line
    assert not (tmp_path / "u").exists()
    assert api.train("digits_mlp", model=lambda: (lock, TinyNet())[1], root=tmp_path / "u")  # local: fine


def test_the_capacity_is_refused_from_python_as_from_the_command_line(tmp_path: Path) -> None:
    started = time.perf_counter()
    with pytest.raises(UserError, match=r"^replicates 100000000: 100000000 runs would need about .* memory"):
        api.train("digits_mlp", replicates=10**8, root=tmp_path)
    with pytest.raises(UserError, match=r"^width 1000000000.0: one network has \d+ parameters"):
        api.train("digits_mlp", width=1e9, root=tmp_path)
    assert time.perf_counter() - started < 10 and not any(tmp_path.iterdir())
    code, _, err = lth("train", "--preset", "digits_mlp", "--replicates", "100000000", "--root", str(tmp_path))
    assert code == 2 and err.startswith("lth: error: --replicates 100000000: 100000000 runs would need")


def test_a_misspelt_keyword_suggests_the_nearest(tmp_path: Path) -> None:
    for call, near in [(lambda: api.train("digits_mlp", lrr=0.1, root=tmp_path), "'lr'"),
                       (lambda: api.train("digits_mlp", replicate=2, root=tmp_path), "'replicates'"),
                       (lambda: api.train("digits_mlp", devce="cpu", root=tmp_path), "'device'"),
                       (lambda: api.spec("digits_mlp", trainig_steps="2ep"), "'training_steps'"),
                       (lambda: api.executor(telemetry_evry="10it"), "'telemetry_every'"),
                       (lambda: api.run([], devce="cpu"), "'device'")]:
        with pytest.raises(UserError, match=rf"did you mean {near}\?") as e:
            call()
        assert "--" not in str(e.value) and "\n" not in str(e.value)


def test_the_executor_is_made_from_the_runtime_options(tmp_path: Path) -> None:
    """``telemetry_every="10it"`` was kept as a string and failed later with an AttributeError."""
    ex = api.executor(telemetry_every="10it", device="cpu")
    assert ex.options.telemetry_every == Step(10, "it") and str(ex.options.device) == "cpu"
    (record,) = api.run(api.train("digits_mlp", root=tmp_path, model="fc_8", training_steps="20it"), ex=ex,
                        progress=False)
    assert record["status"] == "complete" and (Path(record["path"]) / "telemetry.csv").is_file()
    for bad, words in [({"telemetry_every": "0it"}, ["telemetry_every", "at least 1it"]),
                       ({"telemetry_every": "ten"}, ["telemetry_every", "'ten'"]),
                       ({"retries": 2}, ["retries is for executor ray or slurm"])]:
        with pytest.raises(UserError) as e:
            api.executor(**bad)
        assert all(w in str(e.value) for w in words) and "--" not in str(e.value), str(e.value)
    slurm = api.executor("slurm", partition="gpu", time="1:00", root=str(tmp_path))
    assert (slurm.partition, slurm.time_min) == ("gpu", 60)


def test_run_prints_progress_unless_told_not_to(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    plan = api.train("digits_mlp", root=tmp_path, **TINY)
    api.run(plan)
    err = capsys.readouterr().err
    assert "training a population of 1 run" in err and "iteration 4 of 4" in err and "\x1b[" not in err
    api.run(api.train("digits_mlp", root=tmp_path, lr=0.01, **TINY), progress=False)
    assert capsys.readouterr().err == ""
