"""Analysis: the store as tidy pandas DataFrames, and the verdicts computed from them."""

from lth.analysis.tables import distinguishing_fields, field_label, mask_density, metrics_frame, runs_frame
from lth.analysis.verdicts import (
    CONDITIONS,
    JackpotVerdict,
    aggregate,
    early_stopping,
    early_stopping_by_level,
    jackpot,
    matching,
)
from lth.analysis.weights import dn_histograms, dn_values, frame_potential, rp_curve, telemetry, weight_correlation

__all__ = ["CONDITIONS", "JackpotVerdict", "aggregate", "distinguishing_fields", "dn_histograms", "dn_values",
           "early_stopping", "early_stopping_by_level", "field_label", "frame_potential", "jackpot", "mask_density",
           "matching", "metrics_frame", "rp_curve", "runs_frame", "telemetry", "weight_correlation"]
