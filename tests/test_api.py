"""The Python API (``lth.api``) with a newcomer's wrong types and names: one-line UserErrors naming the argument,
the value and what is allowed, instead of a TypeError deep in the planner or a silently empty plan."""

from __future__ import annotations

import pytest

import lth.api as api
from lth.errors import UserError


@pytest.mark.parametrize(("call", "named"), [
    (lambda r: api.lottery("digits_mlp", levels="3", root=r), ["levels", "'3'", ">= 0"]),
    (lambda r: api.lottery("digits_mlp", levels=-1, root=r), ["levels", "-1"]),
    (lambda r: api.lottery("digits_mlp", levels=1, replicates=0, root=r), ["replicates", "0", ">= 1"]),
    (lambda r: api.lottery("digits_mlp", levels=1, replicates=2.5, root=r), ["replicates", "2.5"]),
    (lambda r: api.train("digits_mlp", replicates=True, root=r), ["replicates", "True"]),
    (lambda r: api.lottery("digits_mlp", levels=1, pruning={"fracton": 0.3}, root=r),
     ["pruning", "'fracton'", "fraction"]),
    (lambda r: api.run("digits_mlp"), ["plan", "'digits_mlp'", "LotteryPlan"]),
    (lambda r: api.run(5), ["plan", "5", "LotteryPlan"]),  # not iterable: was a TypeError
    (lambda r: api.lottery("digits_mlp", levels=1, pruning="fraction", root=r),
     ["pruning", "'fraction'", "a dict"]),  # was "unknown key 'a'", a character of the string
    (lambda r: api.lottery("digits_mlp", levels=1, rewind=[], root=r), ["rewind", "[]", "at least one step"]),
    (lambda r: api.executor("rey"), ["executor", "'rey'", "local, ray, slurm"]),
    (lambda r: api.executor(max_populaton=3), ["'max_populaton'", "max_population"]),
    (lambda r: api.executor(device="gpu"), ["device", "'gpu'", "cpu"]),
    (lambda r: api.executor(max_population=0), ["max_population", "0"]),
    (lambda r: api.results(r / "typo"), ["root", "typo", "no such store"]),
    (lambda r: api.runs(r / "typo"), ["root", "typo"]),
])
def test_bad_arguments_are_one_line_user_errors(tmp_path, call, named) -> None:
    with pytest.raises(UserError) as e:
        call(tmp_path)
    line = str(e.value)
    assert "\n" not in line
    for word in named:
        assert word in line, line
    assert not (tmp_path / "typo").exists()


def test_one_string_is_a_list_of_names_not_of_characters(tmp_path) -> None:
    # branches="reinit" used to plan the branches 'r', 'e', 'i', ... ("unknown branch 'r'"); rewind="10it" and
    # save_states="100it" failed on the step '1'. One string is split at commas and spaces, as the CLI splits it.
    plan = api.lottery("digits_mlp", levels=1, branches="reinit,random-mask", rewind="0it 10it", root=tmp_path)
    assert list(plan.branches) == ["reinit", "random-mask"]
    assert [str(t.rewind) for t in plan.trunks] == ["0it", "10it"]
    assert plan.nodes() == api.lottery("digits_mlp", levels=1, branches=["reinit", "random-mask"],
                                       rewind=["0it", "10it"], root=tmp_path).nodes()
    (node,) = api.train("digits_mlp", save_states="100it", root=tmp_path)
    assert [name for name, _ in node.keep] == ["100it"]
