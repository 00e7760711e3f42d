"""Lottery tickets: the IMP trunk with rewinding, and the branches (ablations) run on its tickets."""

from lth.lottery.branches import BRANCHES, BranchOptions, parse_levels, run_branch
from lth.lottery.trunk import Trunk, run_trunks

__all__ = ["BRANCHES", "BranchOptions", "Trunk", "parse_levels", "run_branch", "run_trunks"]
