"""The report's timeline chart, rendered to PNG bytes.

matplotlib's object API on an Agg canvas (a :class:`~matplotlib.figure.Figure` of our
own, never ``pyplot``): no global state, no display, safe in a worker thread. matplotlib is
the optional ``report`` extra, imported only when a chart is drawn; without it drawing
raises :class:`ReportExtraMissing`, which says how to install it.

Top panel: the brand's mentions per bucket (bars), the negative ones over them, and the
trailing baseline (a step line); bands shaded by the severity level the incident was at,
and a triangle at the top with a dotted line for every alert raised (coloured by what
became of it), a star for the acknowledgement, and a numbered box under the top edge
with a thin line for every note and assignment people wrote (numbered as in the report's
table). Bottom panel: mean sentiment per bucket.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from listener.config.duration import format_duration
from listener.errors import ListenerError
from listener.report.data import AlertRow, ReportData

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REPORT_EXTRA_HINT: Final = (
    "listener report needs the 'report' extra: pip install 'listener[report]'"
)

MENTIONS = "#9ecae1"
NEGATIVE = "#e6550d"
BASELINE = "#252525"
SENTIMENT = "#3182bd"
OUTCOME_COLOURS = {
    "delivered": "#2ca02c",
    "failed": "#d62728",
    "pending": "#969696",
    "muted": "#ffffff",
}
OUTCOME_LABELS = {
    "delivered": "alert delivered",
    "failed": "alert failed",
    "pending": "alert not delivered (pending)",
    "muted": "alert muted",
}
NOTE_COLOURS = {"note": "#1b7f79", "assigned": "#8c564b"}
"""A person's note (teal) and an assignment (brown): apart from the alerts' colours."""
UTC_NAME = "UTC"
FIGSIZE: Final = (11.0, 6.4)
DPI: Final = 110
PIXELS: Final = (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI))
"""The PNG's width and height (a page can reserve its box before it loads)."""


class ReportExtraMissing(ListenerError):
    """matplotlib, the ``report`` extra, is not installed."""


def available() -> bool:
    """Whether a chart can be drawn here (matplotlib imports). The first call imports
    it: call it where the chart would be drawn, off an event loop."""
    try:
        _require_matplotlib()
    except ReportExtraMissing:
        return False
    return True


def _require_matplotlib() -> None:
    """Import what the chart uses, or say which extra brings it."""
    try:
        import matplotlib.backends.backend_agg  # noqa: F401  (numpy, pillow)
    except ImportError as exc:
        raise ReportExtraMissing(REPORT_EXTRA_HINT) from exc


LEVEL_STOPS: Final = ("#f7d84a", "#f28e2b", "#d62728")
"""The level scale: yellow (the lowest level), orange, red (the highest)."""


def level_colour(rank: int, levels: int) -> str:
    """Yellow for the lowest level through orange to red for the highest (an unknown
    level, ranked above them all, is red). Plain arithmetic: no matplotlib needed, so
    the tables of a report and the console have their colours without the extra."""
    t = min(max(rank / (levels - 1) if levels > 1 else 0.0, 0.0), 1.0)
    along = t * (len(LEVEL_STOPS) - 1)
    i = min(int(along), len(LEVEL_STOPS) - 2)
    low, high = (_rgb(c) for c in LEVEL_STOPS[i : i + 2])
    return "#" + "".join(
        f"{round(a + (b - a) * (along - i)):02x}" for a, b in zip(low, high, strict=True)
    )


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


@dataclass(frozen=True, slots=True)
class _Mark:
    at: datetime
    outcome: str


def _alert_marks(alerts: tuple[AlertRow, ...]) -> list[_Mark]:
    """One mark per alert: delivered if any sink got it, else failed, pending, muted."""
    order = ("delivered", "failed", "pending", "muted")
    best: dict[str, AlertRow] = {}
    for row in alerts:
        seen = best.get(row.alert_id)
        if seen is None or order.index(row.outcome) < order.index(seen.outcome):
            best[row.alert_id] = row
    return [_Mark(r.raised_at, r.outcome) for r in sorted(best.values(), key=lambda r: r.raised_at)]


@dataclass(frozen=True, slots=True)
class NoteMark:
    """Where a note or an assignment goes on the chart's time axis."""

    at: datetime
    kind: str
    """``note`` or ``assigned``."""
    number: int
    """Its place among the incident's notes and assignments, from 1 (as in the table)."""


def note_marks(data: ReportData) -> list[NoteMark]:
    """One mark per note and assignment written within the chart's time span."""
    return [
        NoteMark(note.at, note.kind, number)
        for number, note in enumerate(data.notes, start=1)
        if data.chart_start <= note.at <= data.chart_end
    ]


def _num(when: datetime) -> float:
    from matplotlib import dates as mdates

    return float(mdates.date2num(when))  # type: ignore[no-untyped-call]


def render_chart(data: ReportData) -> bytes:
    """The timeline chart of one incident as PNG bytes."""
    fig = chart_figure(data)
    out = io.BytesIO()
    fig.savefig(out, format="png", metadata={"Software": None})
    return out.getvalue()


def chart_figure(data: ReportData) -> Figure:
    """The timeline chart of one incident, drawn on a Figure of its own (Agg canvas)."""
    _require_matplotlib()
    from matplotlib import dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(2, 1, height_ratios=(3, 1.4))
    top: Axes = fig.add_subplot(grid[0])
    bottom: Axes = fig.add_subplot(grid[1], sharex=top)
    series: list[Artist] = []
    levels: list[Artist] = []
    marks: list[Artist] = []
    _draw_levels(data, (top, bottom), levels)
    _draw_volume(data, top, series)
    _draw_sentiment(data, bottom, series)
    _draw_marks(data, top, bottom, marks)
    _draw_notes(data, top, bottom, marks)

    start, end = _num(data.chart_start), _num(data.chart_end)
    top.set_xlim(start, end)
    locator = mdates.AutoDateLocator(  # type: ignore[no-untyped-call]
        tz=data.chart_start.tzinfo, minticks=5, maxticks=12
    )
    bottom.xaxis.set_major_locator(locator)
    concise = mdates.ConciseDateFormatter(locator, tz=locator.tz)  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_formatter(concise)
    top.tick_params(labelbottom=False)
    bottom.set_xlabel(f"time ({UTC_NAME})")
    drill = "[DRILL] " if data.drill else ""
    top.set_title(
        f"{drill}{data.incident.brand}: mentions around incident “{data.incident.rule}”",
        loc="left",
        fontsize=12,
    )
    handles = [*series, *levels, *marks]
    ncol = len(handles) if len(handles) <= 5 else math.ceil(len(handles) / 2)
    fig.legend(
        handles=_row_major(handles, ncol),
        loc="outside lower center",
        ncol=ncol,
        fontsize=8.5,
        frameon=False,
    )
    return fig


def _draw_levels(data: ReportData, axes: tuple[Axes, Axes], handles: list[Artist]) -> None:
    from matplotlib.patches import Patch

    shown: dict[str, str] = {}
    for span in data.spans:
        colour = level_colour(data.rank(span.level), max(len(data.levels), 1))
        begin = max(span.start, data.chart_start)
        end = min(span.end or data.chart_end, data.chart_end)
        if end <= begin:
            continue
        for ax in axes:
            ax.axvspan(_num(begin), _num(end), color=colour, alpha=0.22, linewidth=0, zorder=0)
        shown.setdefault(span.level, colour)
    handles.extend(
        Patch(color=shown[level], alpha=0.35, label=f"level: {level}")
        for level in sorted(shown, key=data.rank)
    )


def _draw_volume(data: ReportData, ax: Axes, handles: list[Artist]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    step_days = data.step / timedelta(days=1)
    x = [_num(b.start) for b in data.buckets]
    ax.bar(
        x,
        [b.mentions for b in data.buckets],
        width=step_days,
        align="edge",
        color=MENTIONS,
        linewidth=0,
        zorder=2,
    )
    ax.bar(
        x,
        [b.negative for b in data.buckets],
        width=step_days,
        align="edge",
        color=NEGATIVE,
        linewidth=0,
        zorder=3,
    )
    handles.append(Patch(color=MENTIONS, label="mentions"))
    handles.append(Patch(color=NEGATIVE, label="negative mentions"))
    if any(b.baseline is not None for b in data.buckets):
        xs = [*x, _num(data.chart_end)]
        ys = [b.baseline if b.baseline is not None else float("nan") for b in data.buckets]
        ax.plot(
            xs, [*ys, ys[-1]], drawstyle="steps-post", color=BASELINE, lw=1.6, ls="--", zorder=4
        )
        handles.append(
            Line2D(
                [], [], color=BASELINE, lw=1.6, ls="--", label="baseline: mean of the previous 24 h"
            )
        )
    peak = max(
        [b.mentions for b in data.buckets] + [b.baseline or 0.0 for b in data.buckets] + [1.0]
    )
    ax.set_ylim(0, peak * 1.15)
    ax.set_ylabel(f"mentions per {format_duration(data.step)}")
    ax.grid(axis="y", color="#dddddd", linewidth=0.6, zorder=1)
    ax.set_axisbelow(True)
    if not data.brand_incident:
        _note(ax, f"source-health incident: {data.incident.brand} is a source, not a brand")
    elif not any(b.mentions for b in data.buckets):
        _note(ax, f"no mentions of {data.incident.brand} stored for this period")


def _draw_sentiment(data: ReportData, ax: Axes, handles: list[Artist]) -> None:
    from matplotlib.lines import Line2D

    half = data.step / 2
    xs = [_num(b.start + half) for b in data.buckets]
    # an empty bucket has no sentiment: the line breaks there rather than bridging it
    ys = [b.sentiment if b.sentiment is not None else math.nan for b in data.buckets]
    ax.axhline(0, color="#888888", lw=0.8, zorder=1)
    if any(b.sentiment is not None for b in data.buckets):
        ax.plot(xs, ys, color=SENTIMENT, lw=1.3, marker=".", markersize=3, zorder=3)
        ax.fill_between(
            xs, ys, 0, where=[y < 0 for y in ys], interpolate=True, color=NEGATIVE, alpha=0.25
        )
    handles.append(Line2D([], [], color=SENTIMENT, lw=1.3, label="mean sentiment"))
    ax.set_ylim(-1.05, 1.05)
    ax.set_yticks([-1, -0.5, 0, 0.5, 1])
    ax.set_ylabel("mean sentiment")
    ax.grid(axis="y", color="#dddddd", linewidth=0.6, zorder=1)


def _draw_marks(data: ReportData, top: Axes, bottom: Axes, handles: list[Artist]) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    tip = blended_transform_factory(top.transData, top.transAxes)
    start, end = data.chart_start, data.chart_end
    seen: set[str] = set()
    for mark in _alert_marks(data.alerts):
        if not start <= mark.at <= end:
            continue
        x = _num(mark.at)
        colour = OUTCOME_COLOURS[mark.outcome]
        edge = "#555555" if mark.outcome == "muted" else colour
        for ax in (top, bottom):
            ax.axvline(x, color=edge, lw=0.9, ls=":", zorder=5)
        top.plot(
            [x],
            [1.0],
            marker="v",
            markersize=9,
            color=colour,
            markeredgecolor="#333333",
            transform=tip,
            clip_on=False,
            zorder=6,
        )
        seen.add(mark.outcome)
    handles.extend(
        Line2D(
            [],
            [],
            marker="v",
            ls="",
            markersize=8,
            color=OUTCOME_COLOURS[outcome],
            markeredgecolor="#333333",
            label=label,
        )
        for outcome, label in OUTCOME_LABELS.items()
        if outcome in seen
    )
    if data.ack is not None and start <= data.ack.at <= end:
        x = _num(data.ack.at)
        top.plot(
            [x],
            [1.0],
            marker="*",
            markersize=13,
            color="#6a3d9a",
            transform=tip,
            clip_on=False,
            zorder=7,
        )
        for ax in (top, bottom):
            ax.axvline(x, color="#6a3d9a", lw=1.0, ls="-.", zorder=5)
        handles.append(Line2D([], [], marker="*", ls="-.", color="#6a3d9a", label="acknowledged"))


def _draw_notes(data: ReportData, top: Axes, bottom: Axes, handles: list[Artist]) -> None:
    """A numbered box just under the top edge and a thin line down both panels for each
    note and assignment (the alerts' triangles sit on the edge itself)."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import blended_transform_factory

    tip = blended_transform_factory(top.transData, top.transAxes)
    kinds: set[str] = set()
    for mark in note_marks(data):
        x = _num(mark.at)
        colour = NOTE_COLOURS.get(mark.kind, NOTE_COLOURS["note"])
        for ax in (top, bottom):
            ax.axvline(x, color=colour, lw=0.8, alpha=0.7, zorder=5)
        top.annotate(
            str(mark.number),
            (x, 0.9),
            xycoords=tip,
            ha="center",
            va="center",
            fontsize=7.5,
            color="white",
            bbox={"boxstyle": "round,pad=0.25", "fc": colour, "ec": "none"},
            zorder=8,
            gid=f"note-{mark.number}",
        )
        kinds.add(mark.kind if mark.kind in NOTE_COLOURS else "note")
    labels = {"note": "note (numbered as in the table)", "assigned": "assignment"}
    handles.extend(
        Line2D([], [], marker="s", ls="-", lw=0.8, markersize=7, color=NOTE_COLOURS[k], label=label)
        for k, label in labels.items()
        if k in kinds
    )


def _row_major(handles: list[Artist], ncol: int) -> list[Artist]:
    """Reorder for a legend that fills columns first, so it reads left to right."""
    rows = math.ceil(len(handles) / ncol)
    grid = [handles[r * ncol : (r + 1) * ncol] for r in range(rows)]
    return [grid[r][c] for c in range(ncol) for r in range(rows) if c < len(grid[r])]


def _note(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#555555")
