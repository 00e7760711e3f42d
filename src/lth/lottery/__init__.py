"""Lottery tickets: the IMP trunk with rewinding, and the branches (ablations) run on its tickets."""

from lth.lottery.branches import BRANCHES, BranchOptions, branch_options, parse_levels, plan_branch
from lth.lottery.trunk import Trunk, plan_trunks

__all__ = ["BRANCHES", "BranchOptions", "Trunk", "branch_options", "parse_levels", "plan_branch", "plan_trunks"]
