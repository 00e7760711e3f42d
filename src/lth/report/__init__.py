"""The report: a store's figures (PNG + SVG), the tables behind them (CSV) and an index.html that opens from disk."""

from lth.report.build import Report, build_report, write_report

__all__ = ["Report", "build_report", "write_report"]
