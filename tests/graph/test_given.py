"""Given nodes: tensors handed in, stored as a run (written atomically, done marker last), found again by their
hash, and never trained."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lth.graph import Node, OpContext, Recipe, Ref, closure, given_node, given_spec, resolve, tensors_hash, write_given
from lth.presets import get_preset
from lth.store import RunDir


def _ticket() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    state = {"a.weight": torch.randn(3, 4, generator=g), "a.bias": torch.zeros(3)}
    return state, {"a.weight": torch.rand(3, 4, generator=g) > 0.5}


def test_the_hash_follows_the_tensors_not_their_order() -> None:
    state, mask = _ticket()
    h = tensors_hash(state, mask)
    assert h == tensors_hash(dict(reversed(list(state.items()))), mask)
    other = {**state, "a.bias": state["a.bias"].clone()}
    other["a.bias"][1] = 1e-7
    assert len({h, tensors_hash(other, mask), tensors_hash(state, None), tensors_hash(state, mask, salt={"x": 1}),
                tensors_hash({k: v.double() for k, v in state.items()}, mask)}) == 5


def test_a_given_node_is_written_once_read_as_a_finished_run_and_never_trained(tmp_path: Path) -> None:
    state, mask = _ticket()
    spec = given_spec(get_preset("digits_mlp").spec)
    node = given_node(spec, tmp_path / "ticket_x", tensors_hash(state, mask), meta={"kind": "ticket"})
    assert node.parents() == [] and node.digest != given_node(spec, node.path, tensors_hash(state, None)).digest
    assert write_given(node, state, mask)
    run = RunDir(node.path)
    assert run.complete() and run.spec["node"] == node.digest and run.spec["kind"] == "ticket" and not run.damaged()
    assert run.state_iterations() == {"init": 0, "final": 0} and run.has_telemetry()
    assert all(torch.equal(run.load_state("final")[k], v) for k, v in state.items())
    assert all(torch.equal(run.load_mask()[k], v) for k, v in mask.items())
    before = {p: p.stat().st_mtime_ns for p in node.path.rglob("*") if p.is_file()}
    assert not write_given(node, state, mask)  # the same tensors: reused, nothing written
    assert {p: p.stat().st_mtime_ns for p in node.path.rglob("*") if p.is_file()} == before
    (node.path / "done.json").write_text("{")  # a damaged marker: written again, whole
    assert write_given(node, state, mask) and run.complete()
    child = Node(get_preset("digits_mlp").spec, 0, tmp_path / "child",
                 setup=Recipe.make("ticket", Ref(node, "state:final"), Ref(node, "mask")))
    assert closure([child]) == [node, child]
    ctx = OpContext(node, ["a.weight"], {"a.weight": "fc"}, (4,), 3, 1)
    with pytest.raises(RuntimeError, match="not stored there"):
        resolve(node, ctx)
