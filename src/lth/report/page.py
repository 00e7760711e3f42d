"""The report's page: what a report wrote (:class:`Report`) and the HTML page sections add to (:class:`Page`:
headings, paragraphs, tables with their CSV, figures with their PNG, SVG and CSV), written whole at the end
(:func:`write_page`)."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lth.report.figures import PALETTE, save, write_csv
from lth.store.atomic import atomic_write_bytes


@dataclass
class Report:
    """What a report wrote: the page, its figures (PNG and SVG) and its tables (CSV), all absolute paths."""

    index: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    account: dict[str, Any] = field(default_factory=dict)  # planned runs vs present (lth.store.plans.store_status)

    def to_json(self) -> dict[str, Any]:
        """The ``lth report --json`` document: ``report``, ``figures``, ``tables``, and ``planned``, ``present``,
        ``missing`` (the planned runs not in the store) and ``shortfalls`` (levels with fewer runs than planned)."""
        extra = {k: self.account[k] for k in ("planned", "present", "missing", "shortfalls") if k in self.account}
        return {"report": str(self.index), "figures": [str(p) for p in self.figures],
                "tables": [str(p) for p in self.tables], **extra}

    def moved(self, old: Path, new: Path, account: dict[str, Any] | None = None) -> Report:
        """This report with its paths in the folder ``old`` moved to ``new`` (and the store's ``account``)."""
        def move(p: Path) -> Path:
            return new / p.relative_to(old)
        return Report(move(self.index), [move(p) for p in self.figures], [move(p) for p in self.tables],
                      dict(account if account is not None else self.account))


@dataclass
class Page:
    """The page being built in the folder ``out``: its HTML ``parts`` in order, and the ``report`` of every file
    written for it."""

    out: Path
    report: Report
    parts: list[str] = field(default_factory=list)
    colours: dict[str, str] = field(default_factory=dict)

    def colour(self, meaning: str) -> str:
        """The colour of ``meaning`` (a series, a level, a subnetwork: the legend's text) on this page: the same
        meaning gets the same colour in every figure, and a new meaning the next unused colour of
        :data:`~lth.report.figures.PALETTE` (after the palette's last colour they repeat, in order), so a colour
        is never reused for another meaning in the figures that follow one another."""
        if meaning not in self.colours:
            self.colours[meaning] = PALETTE[len(self.colours) % len(PALETTE)]
        return self.colours[meaning]

    def h(self, level: int, text: str) -> None:
        """A heading of ``level`` (1-6)."""
        self.parts.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def p(self, text: str) -> None:
        """A paragraph."""
        self.parts.append(f"<p>{html.escape(text)}</p>")

    def warning(self, text: str) -> None:
        """A paragraph set apart as a warning (planned runs that are missing, ...)."""
        self.parts.append(f'<p class="warn"><strong>Warning:</strong> {html.escape(text)}</p>')

    def table(self, df: pd.DataFrame, name: str, caption: str, show: pd.DataFrame | None = None) -> None:
        """``df`` as ``<name>.csv`` and shown on the page (``show``: the columns to show, when not all)."""
        p = write_csv(df, self.out / f"{name}.csv")
        self.report.tables.append(p)
        shown = (show if show is not None else df).to_html(index=False, na_rep="", border=0, classes="t",
                                                           float_format=lambda x: f"{x:.4g}")
        self.parts.append(f'<div class="tbl"><p class="cap">{html.escape(caption)} '
                          f'(<a href="{p.name}">CSV</a>)</p>{shown}</div>')

    def note(self, text: str, df: pd.DataFrame, name: str) -> None:
        """One line of ``text`` where a table would say nothing more (every row empty), with ``df`` kept as
        ``<name>.csv`` and linked."""
        p = write_csv(df, self.out / f"{name}.csv")
        self.report.tables.append(p)
        self.parts.append(f'<p class="cap">{html.escape(text)} (<a href="{p.name}">CSV</a>)</p>')

    def figure(self, fig: Any, name: str, caption: str, data: pd.DataFrame | None = None) -> None:
        """``fig`` as ``<name>.png`` and ``.svg``, shown with ``caption``; ``data`` (the table behind it) as
        ``<name>.csv``."""
        paths = save(fig, self.out, name)
        self.report.figures.extend(paths)
        links = f'<a href="{name}.svg">SVG</a>'
        if data is not None:
            csv = write_csv(data, self.out / f"{name}.csv")
            self.report.tables.append(csv)
            links += f' · <a href="{name}.csv">CSV</a>'
        self.parts.append(f'<figure><img src="{name}.png" alt="{html.escape(caption)}">'
                          f"<figcaption>{html.escape(caption)} ({links})</figcaption></figure>")


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}figcaption,.cap{font-size:.9em;color:#444}
table.t{border-collapse:collapse;font-size:.85em;margin:.5em 0}table.t td,table.t th{border:1px solid #ccc;
padding:2px 6px;text-align:right}.tbl{overflow-x:auto}
.warn{background:#fff3cd;border:1px solid #d39e00;padding:.5em .8em}"""


def write_page(page: Page) -> None:
    """Write ``page`` as the report's ``index.html``, whole (atomically)."""
    doc = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>lth report</title>"
           f"<style>{_CSS}</style></head><body>\n" + "\n".join(page.parts) + "\n</body></html>\n")
    atomic_write_bytes(page.report.index, doc.encode("utf-8"))
