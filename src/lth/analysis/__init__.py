"""Analysis: the store as tidy pandas DataFrames, and the verdicts computed from them."""

from lth.analysis.tables import metrics_frame, runs_frame

__all__ = ["metrics_frame", "runs_frame"]
