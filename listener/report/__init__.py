"""Post-incident reports: ``listener report ID`` and the end of ``listener drill``.

``data`` gathers one incident's :class:`~listener.report.data.ReportData` from the store
(read methods only); ``chart`` draws its timeline to PNG; ``render`` writes HTML or
Markdown. :func:`render_document` puts them together without touching the disk.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath
from typing import Literal

from listener.report.chart import render_chart
from listener.report.data import ReportData, gather
from listener.report.render import render_html, render_markdown

Format = Literal["html", "md"]

__all__ = ["Format", "ReportData", "gather", "render_chart", "render_document"]


def render_document(
    reports: Sequence[ReportData], fmt: Format, out: str | None = None
) -> tuple[str, dict[str, bytes]]:
    """The document's text and the files to write beside it (file name → bytes).

    HTML embeds each chart. Markdown written to ``out`` links ``<stem>.png`` (one chart
    per incident: ``<stem>-2.png`` … after the first) to be written beside it; Markdown
    without ``out`` has no image and says how to get one.
    """
    if fmt == "html":
        return render_html([(data, render_chart(data)) for data in reports]), {}
    if out is None:
        return render_markdown(reports), {}
    stem = PurePath(out).stem or "report"
    images = {
        (f"{stem}.png" if i == 0 else f"{stem}-{i + 1}.png"): render_chart(data)
        for i, data in enumerate(reports)
    }
    return render_markdown(reports, list(images)), images
