"""Nodes: identities from references, pinned hashes, closure order, collisions and cycles."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from lth.api import lottery
from lth.graph import Node, Recipe, Ref, closure
from lth.presets import get_preset
from lth.spec import Step

SPEC = get_preset("digits_mlp").spec


def chain(tmp: Path, n: int = 3) -> list[Node]:
    nodes = [Node(SPEC, 0, tmp / "n0")]
    for i in range(1, n):
        nodes.append(Node(SPEC, 0, tmp / f"n{i}", setup=Recipe.make("ticket", Ref(nodes[-1], "state:final"))))
    return nodes


def test_digest_follows_references(tmp_path: Path) -> None:
    a = chain(tmp_path)
    b = chain(tmp_path)
    assert [n.digest for n in a] == [n.digest for n in b]
    other_root = Node(dataclasses.replace(SPEC, train=dataclasses.replace(SPEC.train, lr=0.5)), 0, tmp_path / "n0")
    changed = Node(SPEC, 0, tmp_path / "n1", setup=Recipe.make("ticket", Ref(other_root, "state:final")))
    assert changed.digest != a[1].digest  # a parent's change reaches the child's identity
    assert a[2].parents() == [a[1]] and a[0].parents() == []


def test_a_mask_reference_depends_on_the_referenced_nodes_parents(tmp_path: Path) -> None:
    a = chain(tmp_path)
    child = Node(SPEC, 0, tmp_path / "m", setup=Recipe.make("mask_only", Ref(a[2], "mask")))
    assert child.parents() == [a[1]]  # a[2]'s mask is computed from a[1]; a[2] need not be trained


def test_closure_is_parents_first_and_rejects_collisions(tmp_path: Path) -> None:
    a = chain(tmp_path, 4)
    order = closure([a[3]])
    assert [n.path.name for n in order] == ["n0", "n1", "n2", "n3"]
    clash = Node(SPEC, 1, tmp_path / "n0")
    with pytest.raises(ValueError, match="share the directory"):
        closure([a[3], clash])


def test_recipe_options_round_trip_exactly() -> None:
    r = Recipe.make("imp", pruning={"strategy": "random", "ignore": ["a"]}, level=3, step=Step(5, "it"))
    assert r.opts == {"pruning": {"strategy": "random", "ignore": ["a"]}, "level": 3, "step": "5it"}
    assert hash(r) == hash(Recipe.make("imp", level=3, step="5it", pruning={"ignore": ["a"], "strategy": "random"}))


# Pinned identities: a trunk level and every branch at one level. A change here changes which runs a store
# holds (a released identity never changes without a migration).
PINNED_ALL = {"trunk/level_2": "4553459b0bab", "reinit/level_1": "8cf018573409", "random-mask/level_1": "8f84156b917a",
              "dn-reinit/level_1": "ae52644b9d5a", "remask/level_1": "189ceaf724d5",
              "small-dense/level_1": "c2252a0e177f", "retrain/level_1": "8d08150ae7ce",
              "oneshot/level_1": "fa6366c813b4", "signs/level_1": "a49706373dce", "shuffle/level_1": "6de83930bf69",
              "noise/level_1": "25a3fa39b64c", "transfer/level_1": "d0216117b3d8",
              "finetune/level_1": "2b432827436f"}
PINNED_TRUNK_PATH = "lottery_e42216f24915/replicate_0/level_2"  # the same directory as before the run graph


def pinned_plan(tmp: Path):
    from lth.lottery import BRANCHES

    branches: dict[str, dict] = {name: {} for name in BRANCHES}
    branches["retrain"] = {"set": ("lr=0.001",)}
    branches["transfer"] = {"target_dataset": "digits"}
    return lottery("digits_mlp", 2, branches=branches, branch_levels=[1], root=tmp, training_steps="2ep")


def test_pinned_node_digests(tmp_path: Path) -> None:
    plan = pinned_plan(tmp_path)
    trunk = plan.trunk_nodes()
    got = {"trunk/level_2": trunk[2].digest}
    for n in plan.branch_nodes():
        got[f"{n.meta['branch']}/level_1"] = n.digest
    assert got == PINNED_ALL
    # directory names (the store layout) are pinned as well
    assert trunk[2].path.relative_to(tmp_path.resolve()).as_posix() == PINNED_TRUNK_PATH
