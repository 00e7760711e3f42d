"""The Ray executor on a local Ray instance (2 CPUs): a lottery experiment with a branch equals the local
executor's run for run; a failing node is retried, then reported, and independent nodes finish."""

from __future__ import annotations

from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

import cluster_cases as cases  # noqa: E402  (beside this file: pytest puts its folder on sys.path)

from lth.executor import EXECUTORS  # noqa: E402


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_lottery_with_a_branch_equals_the_local_executor(ray_instance, tmp_path: Path) -> None:
    cases.check_lottery_equals_local(EXECUTORS["ray"](options=cases.OPTIONS), tmp_path)


def test_a_failing_node_is_retried_then_reported(ray_instance, tmp_path: Path) -> None:
    cases.check_failure_is_retried_then_reported(EXECUTORS["ray"](options=cases.OPTIONS, retries=2), tmp_path, 2)
