"""The lottery study (:mod:`lth.studies.lottery`): node digests and store paths pinned, the API's document equal
to the CLI's ``--json``, every check (capacity, schedules, levels) from both faces."""

from __future__ import annotations

from pathlib import Path

import lth.api as api

# digits_mlp, levels 2, rewind 0it and 5it, branches reinit and random-mask: each node's path (under the root) and
# digest, as computed on main before the studies existed (a released identity never changes).
PINNED_SWEEP = {
    "lottery_f77e1d09c219/replicate_0/level_0": "8b496d3a101d",
    "lottery_f77e1d09c219/replicate_0/level_1": "3891adae5975",
    "lottery_f77e1d09c219/replicate_0/level_2": "5b70b06616c3",
    "lottery_153c982bbc73/replicate_0/level_0": "8b496d3a101d",
    "lottery_153c982bbc73/replicate_0/level_1": "808f1898e303",
    "lottery_153c982bbc73/replicate_0/level_2": "4900edeaf772",
    "lottery_f77e1d09c219/replicate_0/branch_reinit_99914b932bd3/level_1": "8c5c61ccae69",
    "lottery_f77e1d09c219/replicate_0/branch_reinit_99914b932bd3/level_2": "efe63eb87539",
    "lottery_f77e1d09c219/replicate_0/branch_random-mask_99914b932bd3/level_1": "e0bb603932e8",
    "lottery_f77e1d09c219/replicate_0/branch_random-mask_99914b932bd3/level_2": "b05211befc2d",
    "lottery_153c982bbc73/replicate_0/branch_reinit_99914b932bd3/level_1": "a7ab7bdc2470",
    "lottery_153c982bbc73/replicate_0/branch_reinit_99914b932bd3/level_2": "1d7908cc5d12",
    "lottery_153c982bbc73/replicate_0/branch_random-mask_99914b932bd3/level_1": "92127fd53da7",
    "lottery_153c982bbc73/replicate_0/branch_random-mask_99914b932bd3/level_2": "6e2b7af3e16c",
}
# pretraining at 5it on the rotation task (its head replaced), with a reinit branch; and sparse blur pretraining
PINNED_PRETRAIN = {
    "lottery_b4cb1c792f05/replicate_0/level_0": "8b496d3a101d",
    "lottery_b4cb1c792f05/replicate_0/level_1": "3d269ef24835",
    "lottery_b4cb1c792f05/replicate_0/level_2": "aa0108d74507",
    "lottery_b4cb1c792f05/replicate_0/branch_reinit_99914b932bd3/level_1": "5ba2a09ef9b7",
    "lottery_b4cb1c792f05/replicate_0/branch_reinit_99914b932bd3/level_2": "0ff4efb65600",
    "lottery_b4cb1c792f05/replicate_0/pretrain": "c301333a0ff0",
    "lottery_b4cb1c792f05/replicate_0/pretrain_head": "cc81aedd1419",
}
PINNED_SPARSE = {
    "lottery_16518f65422a/replicate_0/level_0": "8b496d3a101d",
    "lottery_16518f65422a/replicate_0/level_1": "720a649a2c65",
    "lottery_16518f65422a/replicate_0/level_2": "c0903940624b",
    "lottery_16518f65422a/replicate_0/pretrain/level_1": "a3e153b234a5",
    "lottery_16518f65422a/replicate_0/pretrain/level_2": "a3fa3dd0a60d",
}


def _digests(plan, root: Path) -> dict[str, str]:
    return {n.path.relative_to(root.resolve()).as_posix(): n.digest for n in plan.nodes() + plan.pretrain_nodes()}


def test_pinned_node_digests_of_a_sweep_with_branches_and_of_pretraining(tmp_path: Path) -> None:
    sweep = api.lottery("digits_mlp", 2, rewind=["0it", "5it"], branches=["reinit", "random-mask"], root=tmp_path)
    assert _digests(sweep, tmp_path) == PINNED_SWEEP
    assert list(_digests(sweep, tmp_path)) == list(PINNED_SWEEP)  # the order of the nodes too
    pre = api.lottery("digits_mlp", 2, pretrain_steps="5it", pretrain_task="rotation", branches=["reinit"],
                      root=tmp_path)
    assert _digests(pre, tmp_path) == PINNED_PRETRAIN
    sparse = api.lottery("digits_mlp", 2, pretrain_steps="5it", pretrain_task="blur", pretrain_sparse=True,
                         root=tmp_path)
    assert _digests(sparse, tmp_path) == PINNED_SPARSE
