"""``listener backtest``: replay recorded data through the real engine in simulated time.

Two kinds of input, and one path for each:

* **Mention files**, JSON Lines in the daemon's own mention format
  (:meth:`~listener.model.Mention.to_dict`) or CSV exports read through a column
  mapping (``--map text=text,created_at=tweet_created,id=tweet_id``). They are sorted by
  ``created_at`` and fed minute by minute through the same
  :class:`~listener.processor.Processor` the daemon runs (matching, sentiment, velocity
  windows, rules, incidents) over an in-memory store, evaluated at the end of every
  simulated minute at which something could change (the others are skipped: the changes
  are those of evaluating every minute, see :func:`replay_mentions`). De-duplication is
  the processor's own (``(source, id)``). Rows whose file names
  their brand skip matching through the Ingest stage's pins
  (:attr:`~listener.ingest.Ingest.pins`), built for the replay and handed to the
  processor (``Processor(..., stage=...)``).
* **Volume series**, CSV ``timestamp,value`` with one row per bucket, the value a count
  of mentions (as in NAB). Each row is added to the same
  :class:`~listener.scoring.velocity.VelocityWindows` as one weighted sample at its
  timestamp, for one synthetic brand, and the rules are evaluated by the same
  :func:`~listener.rules.engine.evaluate_rule` at the end of the window bucket that holds
  the row: online (the engine never sees a later row), with constant work per row (the
  windows are pruned to the rules' look-back).

A backtest reports the incidents the rules would have opened (with their escalations,
resolution and the facts behind each decision); for a volume series it can also write
``timestamp,value,anomaly_score`` with 1.0 on each row where an incident opens or
escalates (a NAB results file). An unusable input is a :class:`BacktestError` of one
line naming the file and, for a bad row, its line number; an unknown rule is a
:class:`~listener.errors.ConfigError` listing the rules.
"""

from __future__ import annotations

import argparse
import csv
import io
import itertools
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal, TextIO, cast, get_args

from listener.clock import as_utc
from listener.errors import ConfigError, ConfigProblem, ListenerError, UsageError

# The engine is imported where it is used, so that ``listener`` can build its command line
# (``add_arguments``) without loading it.
if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from listener.config.schema import Config, RuleConfig
    from listener.model import Explanation, Fact, Mention
    from listener.processor import Processor
    from listener.rules.engine import EventKind, IncidentEvent
    from listener.rules.timeline import Holding
    from listener.scoring.base import Scorer
    from listener.store import IncidentEventRecord, IncidentRecord

__all__ = [
    "DEFAULT_RULE",
    "KINDS",
    "MENTION_FIELDS",
    "BacktestError",
    "BacktestResult",
    "BacktestUsageError",
    "Change",
    "IncidentReport",
    "InputKind",
    "MentionRecord",
    "Progress",
    "VolumeRow",
    "add_arguments",
    "detect_kind",
    "format_report",
    "parse_map",
    "parse_time",
    "read_jsonl",
    "read_mention_csv",
    "read_volume",
    "replay_mentions",
    "replay_volume",
    "run_backtest",
    "select_rules",
    "write_changes",
    "write_scores",
]

DEFAULT_RULE: Final = "volume-spike"
"""The rule a backtest of a volume series uses when ``--rule`` is not given."""

InputKind = Literal["jsonl", "csv", "volume"]
"""``jsonl``: mentions as JSON Lines; ``csv``: mentions as CSV with a column mapping;
``volume``: a ``timestamp,value`` series of mention counts."""

KINDS: Final[tuple[InputKind, ...]] = get_args(InputKind)

MENTION_FIELDS: Final[tuple[str, ...]] = (
    "text",
    "created_at",
    "id",
    "author",
    "source",
    "url",
    "language",
    "title",
    "followers",
    "likes",
    "reposts",
    "replies",
    "brand",
)
"""What a CSV column can be mapped to: mention fields, and ``brand`` (the brand a row is
about, as the export says; such rows skip brand matching)."""

REQUIRED_FIELDS: Final = ("text", "created_at")
_INT_FIELDS: Final = ("followers", "likes", "reposts", "replies")
_EVENT_KINDS: Final[frozenset[str]] = frozenset({"opened", "escalated", "deescalated", "resolved"})
"""The kinds of :data:`listener.rules.engine.EventKind`."""
DETECTIONS: Final[frozenset[str]] = frozenset({"opened", "escalated"})
"""Incident changes that count as a detection (``anomaly_score`` 1.0)."""

CSV_SOURCE: Final = "csv"
"""The mention source of CSV rows without a ``source`` column."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_PRUNE_EVERY: Final = 64
_STEP: Final = timedelta(minutes=1)
"""Simulated time per step of a mention replay: the windows' bucket (``processor.BUCKET``)."""
_STRETCH: Final = 1440
"""The most steps in a segment of a mention replay (a simulated day at the default step):
how far it ingests ahead of its evaluations, and so how far the windows run ahead of
their last prune."""
_PROBE: Final = 16
"""The steps of a segment a mention replay reads step by step to see how dense it is."""


class BacktestError(ListenerError):
    """The input of a backtest cannot be used (one line: the file, the line, the fix)."""

    error_type = "backtest"


class BacktestUsageError(BacktestError, UsageError):
    """A flag of ``listener backtest`` is wrong (``--map``): the CLI exits 2."""


# --------------------------------------------------------------------------- reading


_EPOCH_NUMBER = re.compile(r"\d{9,13}(\.\d+)?")
_TIME_FORMATS: Final = (
    "%Y-%m-%d %H:%M:%S %z",  # 2015-02-24 11:35:52 -0800 (Twitter exports)
    "%Y-%m-%d %H:%M:%S.%f %z",
    "%a %b %d %H:%M:%S %z %Y",  # Tue Feb 24 11:35:52 +0000 2015 (Twitter API v1)
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
)


def parse_time(text: str) -> datetime:
    """A date-time as an aware UTC datetime: ISO 8601 (naive = UTC), ``YYYY-MM-DD
    HH:MM:SS ±HHMM``, the Twitter API's ``Tue Feb 24 11:35:52 +0000 2015``, or Unix epoch
    seconds (13 digits: milliseconds). Raises ``ValueError`` otherwise."""
    s = text.strip()
    if not s:
        raise ValueError("empty date-time")
    if _EPOCH_NUMBER.fullmatch(s):
        seconds = float(s)
        if len(s.split(".")[0]) == 13:
            seconds /= 1000
        return _EPOCH + timedelta(seconds=seconds)
    try:
        return as_utc(datetime.fromisoformat(s))
    except ValueError:
        pass
    for fmt in _TIME_FORMATS:
        try:
            return as_utc(datetime.strptime(s, fmt))
        except ValueError:
            continue
    raise ValueError(f"not a date-time: {text!r}")


@dataclass(frozen=True, slots=True)
class MentionRecord:
    """A mention read from a file: the line it starts on, and the brand the file says it
    is about (None: the brands are matched from its text, as in the daemon)."""

    mention: Mention
    line: int
    brand: str | None = None


@dataclass(frozen=True, slots=True)
class VolumeRow:
    """One row of a volume series: the raw timestamp and value (written back as read),
    the time, the count and the line number."""

    timestamp: str
    raw_value: str
    at: datetime
    value: int
    line: int


def _open_text(path: Path) -> TextIO:
    try:
        return path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise BacktestError(f"{path}: file not found") from None
    except OSError as exc:
        raise BacktestError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing key {exc.args[0]!r}"
    return str(exc) or type(exc).__name__


def read_jsonl(path: str | Path) -> list[MentionRecord]:
    """Mentions from a JSON Lines file (one :meth:`Mention.to_dict` object a line; blank
    lines skipped). Raises :class:`BacktestError` naming the line of a bad one."""
    from listener.model import Mention

    path = Path(path)
    records: list[MentionRecord] = []
    with _open_text(path) as f:
        try:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    if not isinstance(data, dict):
                        raise ValueError("expected a JSON object")
                    mention = Mention.from_dict(data)
                except (ValueError, KeyError, TypeError) as exc:
                    raise BacktestError(
                        f"{path}:{number}: not a mention: {_describe(exc)}"
                    ) from None
                records.append(MentionRecord(mention, number))
        except UnicodeDecodeError as exc:
            raise BacktestError(f"{path}: not UTF-8 text: {exc.reason}") from None
    return records


def parse_map(specs: Iterable[str]) -> dict[str, str]:
    """``--map`` values (``field=column`` pairs, comma-separated, repeatable) as a dict
    field → column. Raises :class:`BacktestError` on a malformed pair or unknown field."""
    mapping: dict[str, str] = {}
    for spec in specs:
        for pair in spec.split(","):
            if not pair.strip():
                continue
            name, sep, column = pair.partition("=")
            name, column = name.strip(), column.strip()
            if not sep or not name or not column:
                raise BacktestUsageError(f"--map: expected FIELD=COLUMN, not {pair.strip()!r}")
            if name not in MENTION_FIELDS:
                raise BacktestUsageError(
                    f"--map: unknown field {name!r} (known: {', '.join(MENTION_FIELDS)})"
                )
            mapping[name] = column
    return mapping


def read_mention_csv(
    path: str | Path, mapping: Mapping[str, str] | None = None
) -> list[MentionRecord]:
    """Mentions from a CSV export with a header row. ``mapping`` is field → column (see
    :data:`MENTION_FIELDS`); a field not mapped reads the column of the same name when
    there is one. ``text`` and ``created_at`` are required; ``id`` defaults to the line
    number and ``source`` to ``csv``. Raises :class:`BacktestError` naming a missing
    column, or the line of a bad row."""
    path = Path(path)
    given = dict(mapping or {})
    records: list[MentionRecord] = []
    with _open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            if header is None:
                raise BacktestError(f"{path}: empty file (expected a header row)")
            index = {name.strip(): i for i, name in enumerate(header)}
            columns = ", ".join(name.strip() for name in header)
            for name in MENTION_FIELDS:
                if name not in given and name in index:
                    given[name] = name
            for name in REQUIRED_FIELDS:
                if name not in given:
                    raise BacktestError(
                        f"{path}: no column for {name}: pass --map {name}=COLUMN "
                        f"(columns: {columns})"
                    )
            for name, column in given.items():
                if column not in index:
                    raise BacktestError(
                        f"{path}: column {column!r} (for {name}) is not in the header "
                        f"(columns: {columns})"
                    )
            where = {name: index[column] for name, column in given.items()}
            need = max(where.values()) + 1
            start = reader.line_num + 1
            for row in reader:
                line, start = start, reader.line_num + 1
                if not row:
                    continue
                if len(row) < need:
                    raise BacktestError(
                        f"{path}:{line}: {len(row)} fields, the header has {len(header)}"
                    )
                records.append(_csv_record(path, line, row, where))
        except csv.Error as exc:
            raise BacktestError(f"{path}:{reader.line_num}: bad CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise BacktestError(f"{path}: not UTF-8 text: {exc.reason}") from None
    return records


def _csv_record(path: Path, line: int, row: list[str], where: Mapping[str, int]) -> MentionRecord:
    from listener.model import Author, Engagement, Mention

    def get(name: str) -> str | None:
        i = where.get(name)
        if i is None:
            return None
        value = row[i].strip()
        return value or None

    raw_time = row[where["created_at"]]
    try:
        created = parse_time(raw_time)
    except ValueError:
        raise BacktestError(
            f"{path}:{line}: created_at {raw_time!r} is not a date-time "
            "(ISO 8601, 'YYYY-MM-DD HH:MM:SS +HHMM' or epoch seconds)"
        ) from None
    counts: dict[str, int | None] = {}
    for name in _INT_FIELDS:
        raw = get(name)
        try:
            counts[name] = None if raw is None else int(float(raw))
        except ValueError:
            raise BacktestError(f"{path}:{line}: {name} {raw!r} is not a number") from None
    mention = Mention(
        source=get("source") or CSV_SOURCE,
        id=get("id") or f"line-{line}",
        text=row[where["text"]],
        created_at=created,
        url=get("url"),
        author=Author(handle=get("author"), followers=counts["followers"]),
        language=get("language"),
        engagement=Engagement(
            likes=counts["likes"], reposts=counts["reposts"], replies=counts["replies"]
        ),
        title=get("title"),
    )
    return MentionRecord(mention, line, get("brand"))


def read_volume(path: str | Path) -> list[VolumeRow]:
    """A volume series: CSV with a ``timestamp,value`` header (further columns are
    ignored), one row per bucket, timestamps strictly increasing, values whole
    non-negative counts. Raises :class:`BacktestError` naming the line of a bad row."""
    path = Path(path)
    rows: list[VolumeRow] = []
    with _open_text(path) as f:
        reader = csv.reader(f)
        try:
            header = next(reader, None)
            names = [h.strip().lower() for h in header or []]
            if names[:2] != ["timestamp", "value"]:
                raise BacktestError(
                    f"{path}:1: a volume series needs the header 'timestamp,value', "
                    f"not {','.join(header or [])!r}"
                )
            start = reader.line_num + 1
            previous: VolumeRow | None = None
            for raw in reader:
                line, start = start, reader.line_num + 1
                if not raw or not "".join(raw).strip():
                    continue
                if len(raw) < 2:
                    raise BacktestError(f"{path}:{line}: expected timestamp,value")
                row = _volume_row(path, line, raw[0].strip(), raw[1].strip())
                if previous is not None and row.at <= previous.at:
                    raise BacktestError(
                        f"{path}:{line}: timestamp {row.timestamp} is not after the row "
                        f"before ({previous.timestamp}, line {previous.line}); a volume "
                        "series must be in time order, one row per bucket"
                    )
                rows.append(row)
                previous = row
        except csv.Error as exc:
            raise BacktestError(f"{path}:{reader.line_num}: bad CSV: {exc}") from None
        except UnicodeDecodeError as exc:
            raise BacktestError(f"{path}: not UTF-8 text: {exc.reason}") from None
    return rows


def _volume_row(path: Path, line: int, stamp: str, raw: str) -> VolumeRow:
    try:
        at = parse_time(stamp)
    except ValueError:
        raise BacktestError(f"{path}:{line}: timestamp {stamp!r} is not a date-time") from None
    try:
        number = float(raw)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0 or not number.is_integer():
        raise BacktestError(
            f"{path}:{line}: value {raw!r} is not a count of mentions (a whole number ≥ 0)"
        )
    return VolumeRow(stamp, raw, at, int(number), line)


def detect_kind(path: str | Path) -> InputKind:
    """What a file holds: ``jsonl`` (a ``.jsonl``/``.ndjson``/``.json`` name, or a first
    line that is a JSON object), ``volume`` (a CSV header starting ``timestamp,value``)
    or ``csv`` (any other CSV: mentions)."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    with _open_text(path) as f:
        try:
            first = next((line for line in f if line.strip()), "")
        except UnicodeDecodeError as exc:
            raise BacktestError(f"{path}: not UTF-8 text: {exc.reason}") from None
    if not first:
        raise BacktestError(f"{path}: empty file")
    if first.lstrip().startswith("{"):
        return "jsonl"
    header = next(csv.reader(io.StringIO(first)), [])
    if [h.strip().lower() for h in header[:2]] == ["timestamp", "value"]:
        return "volume"
    return "csv"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Change:
    """One incident event of a backtest: what changed, when, at which level, and why.

    ``row`` is the index of the volume-series row after which it happened and ``line``
    that row's line in the file (None for mention files)."""

    kind: EventKind
    incident_id: str
    rule: str
    brand: str
    level: str
    previous_level: str | None
    at: datetime
    facts: tuple[Fact, ...]
    row: int | None = None
    line: int | None = None
    explanation: Explanation | None = None
    """Why it spiked (mention files; opened and escalated changes)."""

    @classmethod
    def of_event(
        cls, event: IncidentEvent, row: int | None = None, line: int | None = None
    ) -> Change:
        return cls(
            event.kind,
            event.incident_id,
            event.rule,
            event.brand,
            event.level,
            event.previous_level,
            event.at,
            event.facts,
            row,
            line,
        )

    @classmethod
    def of_record(cls, incident: IncidentRecord, event: IncidentEventRecord) -> Change:
        """A change as the processor stored it."""
        if event.kind not in _EVENT_KINDS:
            raise ValueError(f"not an incident change: {event.kind}")
        return cls(
            cast("EventKind", event.kind),
            incident.id,
            incident.rule,
            incident.brand,
            event.level,
            event.previous_level,
            event.at,
            event.facts,
        )

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (one line of ``--out`` for mention files)."""
        return {
            "kind": self.kind,
            "incident_id": self.incident_id,
            "rule": self.rule,
            "brand": self.brand,
            "level": self.level,
            "previous_level": self.previous_level,
            "at": self.at.isoformat(),
            "facts": [
                {"name": f.name, "value": f.value, "threshold": f.threshold, "baseline": f.baseline}
                for f in self.facts
            ],
            **({"row": self.row, "line": self.line} if self.row is not None else {}),
            **({"explanation": self.explanation.to_dict()} if self.explanation else {}),
        }


@dataclass(frozen=True, slots=True)
class IncidentReport:
    """One incident a backtest opened: its changes in order (the first is ``opened``)."""

    changes: tuple[Change, ...]
    peak_level: str

    @property
    def id(self) -> str:
        return self.changes[0].incident_id

    @property
    def rule(self) -> str:
        return self.changes[0].rule

    @property
    def brand(self) -> str:
        return self.changes[0].brand

    @property
    def opened_at(self) -> datetime:
        return self.changes[0].at

    @property
    def level(self) -> str:
        """The level it opened at."""
        return self.changes[0].level

    @property
    def facts(self) -> tuple[Fact, ...]:
        """Why it opened."""
        return self.changes[0].facts

    @property
    def resolved_at(self) -> datetime | None:
        last = self.changes[-1]
        return last.at if last.kind == "resolved" else None


@dataclass
class BacktestResult:
    """What a backtest did and found. ``scores`` (volume series only) has one value per
    row: 1.0 where an incident opened or escalated, else 0.0."""

    kind: InputKind
    source: str
    rules: tuple[str, ...]
    brands: tuple[str, ...]
    rows: int
    start: datetime | None
    end: datetime | None
    elapsed: float
    changes: list[Change] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    level_order: dict[str, tuple[str, ...]] = field(default_factory=dict)
    distinct: int | None = None
    """Mention files: how many distinct ``(source, id)`` mentions the rows hold."""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.elapsed if self.elapsed > 0 else math.inf

    @property
    def incidents(self) -> list[IncidentReport]:
        """The incidents, in the order they opened."""
        grouped: dict[str, list[Change]] = {}
        for change in self.changes:
            grouped.setdefault(change.incident_id, []).append(change)
        reports = []
        for changes in grouped.values():
            order = self.level_order.get(changes[0].rule, ())
            levels = [c.level for c in changes]
            peak = max(levels, key=lambda lv: order.index(lv) if lv in order else -1)
            reports.append(IncidentReport(tuple(changes), peak))
        return reports


# --------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress bar with rows/s, redrawn at most ten times a second; silent
    when ``stream`` is None."""

    WIDTH: Final = 28

    def __init__(
        self,
        total: int,
        label: str,
        stream: TextIO | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(total, 1)
        self.label = label
        self.stream = stream
        self.clock = clock
        self.started = clock()
        self._next_check = 0
        self._last_draw = -math.inf

    @classmethod
    def for_terminal(cls, total: int, label: str, stream: TextIO | None = None) -> Progress:
        """A bar on ``stream`` (default stderr) when it is a terminal, else a silent one."""
        stream = stream if stream is not None else sys.stderr
        return cls(total, label, stream if stream.isatty() else None)

    def update(self, done: int) -> None:
        if self.stream is None or done < self._next_check:
            return
        self._next_check = done + 256
        now = self.clock()
        if now - self._last_draw >= 0.1:
            self._last_draw = now
            self._draw(done, now)

    def close(self, done: int) -> None:
        if self.stream is not None:
            self._draw(done, self.clock())
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, done: int, now: float) -> None:
        assert self.stream is not None
        share = min(done / self.total, 1.0)
        filled = int(share * self.WIDTH)
        rate = done / (now - self.started) if now > self.started else 0.0
        bar = "█" * filled + "░" * (self.WIDTH - filled)
        self.stream.write(
            f"\r{self.label} {bar} {share:6.1%} {done:,}/{self.total:,} rows  {rate:,.0f} rows/s"
        )
        self.stream.flush()


# --------------------------------------------------------------------------- rules


def select_rules(
    config: Config, names: Sequence[str] | None, *, default: str | None, file: str = "rules.yaml"
) -> list[RuleConfig]:
    """The rules named (in config order), or the rule ``default`` when none are named, or
    every rule when there is no default. Raises :class:`ConfigError` listing the rules
    when a name is not one of them."""
    known = [rule.name for rule in config.rules]
    wanted = list(names) if names else ([default] if default is not None else known)
    for name in wanted:
        if name not in known:
            listed = ", ".join(known) or "none"
            hint = (
                f"add a rule named '{DEFAULT_RULE}' (see docs/backtest.md) or pass --rule NAME"
                if not names and name == DEFAULT_RULE
                else "pass --rule with one of them"
            )
            raise ConfigError(
                [
                    ConfigProblem(
                        file, None, "rules", f"no rule named {name!r} (rules: {listed})", hint
                    )
                ]
            )
    return [rule for rule in config.rules if rule.name in wanted]


def _level_order(rules: Iterable[RuleConfig]) -> dict[str, tuple[str, ...]]:
    return {rule.name: tuple(rule.levels) for rule in rules}


# --------------------------------------------------------------------------- replay


def replay_volume(
    rows: Sequence[VolumeRow],
    rules: Sequence[RuleConfig],
    *,
    brand: str,
    source: str = "",
    progress: Progress | None = None,
) -> BacktestResult:
    """Replay a volume series online: each row is added as one sample weighted by its
    count at its timestamp, then every rule is evaluated for ``brand`` at the end of the
    window bucket holding the row. ``rules`` apply to ``brand`` whatever their own
    ``brands`` say. Work per row is constant (the windows keep only the rules' look-back
    and read counts from their running sums)."""
    from listener.processor import windows_for
    from listener.rules.engine import EngineState, compile_rule, evaluate_rule
    from listener.scoring.velocity import Sample

    compiled = [compile_rule(rule.model_copy(update={"brands": None})) for rule in rules]
    windows = windows_for(compiled)
    state = EngineState()
    sample = Sample(negative=False)
    brands = (brand,)
    size = windows.bucket
    scores = [0.0] * len(rows)
    changes: list[Change] = []
    began = time.perf_counter()
    for i, row in enumerate(rows):
        windows.add(brand, row.at, sample, weight=row.value)
        now = _EPOCH + timedelta(seconds=windows.bucket_start(row.at)) + size
        for rule in compiled:
            state, events = evaluate_rule(rule, brands, windows, state, now)
            for event in events:
                changes.append(Change.of_event(event, i, row.line))
                if event.kind in DETECTIONS:
                    scores[i] = 1.0
        if i % _PRUNE_EVERY == _PRUNE_EVERY - 1:
            windows.prune(now)
            if progress is not None:
                progress.update(i + 1)
    elapsed = time.perf_counter() - began
    if progress is not None:
        progress.close(len(rows))
    return BacktestResult(
        kind="volume",
        source=source,
        rules=tuple(rule.name for rule in rules),
        brands=brands,
        rows=len(rows),
        start=rows[0].at if rows else None,
        end=rows[-1].at if rows else None,
        elapsed=elapsed,
        changes=changes,
        scores=scores,
        level_order=_level_order(rules),
    )


def _with_brands(config: Config, names: Iterable[str]) -> Config:
    """``config`` with a brand added for each name it lacks."""
    from listener.config.schema import BrandConfig

    have = set(config.brand_names())
    extra = [name for name in dict.fromkeys(names) if name not in have]
    if not extra:
        return config
    brands = [*config.brands, *(BrandConfig(name=name) for name in extra)]
    return config.model_copy(update={"brands": brands})


def replay_mentions(
    records: Sequence[MentionRecord],
    config: Config,
    rules: Sequence[RuleConfig] | None = None,
    *,
    source: str = "",
    kind: InputKind = "jsonl",
    scorer: Scorer | None = None,
    step: timedelta = _STEP,
    progress: Progress | None = None,
    every_step: bool = False,
    explain: bool = False,
) -> BacktestResult:
    """Replay mentions through the daemon's :class:`Processor` in simulated time.

    Mentions are taken in ``created_at`` order; the clock starts at the step holding the
    first one and advances by ``step``: each step ingests the mentions created in it and
    then evaluates every rule at its end, until the step holding the last mention. Records
    with a ``brand`` count for that brand only (added to the config when it lacks it);
    others are matched from their text. ``rules`` (default: all of the config's) are the
    rules evaluated.

    The evaluations that cannot change anything are skipped (:func:`_replay`); with
    ``every_step`` every step is evaluated, with the same changes (slower: the reference
    the skipping is tested against). With ``explain``, each opening and escalation
    carries the spike explanation its alert would have carried (worked out once at the
    end, from the replayed mentions)."""
    from listener import heap
    from listener.ingest import Ingest
    from listener.metrics import Metrics
    from listener.processor import Processor, explain_spike, rule_window
    from listener.scoring.explain import FeatureCache
    from listener.store import Store

    chosen = list(config.rules if rules is None else rules)
    pinned = [r.brand for r in records if r.brand is not None]
    run_config = _with_brands(config, pinned).model_copy(update={"rules": chosen})
    ordered = sorted(records, key=lambda r: r.mention.created_at)
    stage = Ingest.build(run_config, scorer=scorer, pins=_pins(ordered, step))
    store = Store.open(":memory:")
    changes: list[Change] = []
    began = time.perf_counter()
    try:
        # no condition gauges to keep: keys that cannot move wait for their brand's next mention
        processor = Processor(
            run_config,
            store,
            Metrics(),
            stage=stage,
            readings=False,
            explain=False,
            persist_windows=False,
        )
        with heap.settled():  # the models and the rules are loaded: they live as long as the run
            if every_step:
                for now, batch, stop in _steps(ordered, step):
                    if batch:
                        processor.ingest("backtest", [r.mention for r in batch], now)
                    processor.evaluate(now)
                    if progress is not None:
                        progress.update(stop)
            else:
                _replay(processor, _steps(ordered, step), progress)
        # the processor's own record of what it opened (whatever was routed or muted)
        windows = {r.name: rule_window(r) for r in chosen}
        seen = FeatureCache(EXPLAIN_CACHE)  # incidents of a brand share much of their day
        for incident in store.incidents(limit=sys.maxsize):
            for e in store.incident_events(incident.id):
                change = Change.of_record(incident, e)
                if explain and change.kind in ("opened", "escalated") and incident.rule in windows:
                    window = windows[incident.rule]
                    why = explain_spike(store, run_config, incident.brand, change.at, window, seen)
                    change = replace(change, explanation=why)
                changes.append(change)
        changes.sort(key=lambda c: c.at)
    finally:
        store.close()
    elapsed = time.perf_counter() - began
    if progress is not None:
        progress.close(len(ordered))
    return BacktestResult(
        kind=kind,
        source=source,
        rules=tuple(rule.name for rule in chosen),
        brands=tuple(run_config.brand_names()),
        rows=len(ordered),
        start=ordered[0].mention.created_at if ordered else None,
        end=ordered[-1].mention.created_at if ordered else None,
        elapsed=elapsed,
        changes=changes,
        level_order=_level_order(chosen),
        distinct=len({r.mention.key for r in records}),
    )


_Step = tuple[datetime, list[MentionRecord], int]


def _replay(processor: Processor, steps: Iterable[_Step], progress: Progress | None) -> None:
    """Feed ``steps`` (:func:`_steps`) to ``processor``, evaluating only where that can
    change something.

    At a step where no level of any rule may hold for any brand (the timeline,
    :mod:`listener.rules.timeline`), an evaluation leaves every key, incident and
    notification as it is unless the processor has something due by then
    (:meth:`~listener.processor.Processor.next_change`: a level timer to stop, an incident
    to move down or resolve, a reminder). Where levels hold and the timeline knows exactly
    which (:meth:`~listener.rules.timeline.Timeline.holding`, read ahead), a step is
    evaluated only when they differ from those that held at the last evaluation, when one
    that keeps firing for a while after it stops (``keep_firing_for``) stops at the next
    step (its last hold must be recorded), or when something is due
    (:meth:`~listener.processor.Processor.next_move`: a ``for`` reached, a level or an
    incident timing out, a reminder); the evaluations in between would decide as the last
    one did. The steps go in segments (:class:`_Pace`), and the last step of each is
    evaluated whatever it is (it prunes the windows)."""
    from listener.rules.timeline import Timeline

    timeline = Timeline(processor.rules)
    brands = processor.held_brands()
    view = processor.windows
    pace = _Pace(min(_STRETCH, timeline.span(len(brands))))

    def ingest(now: datetime, batch: list[MentionRecord]) -> None:
        if batch:
            processor.ingest("backtest", [r.mention for r in batch], now)

    # the processor's next change and next move, asked once after each evaluation
    dues: dict[Callable[[], datetime | None], datetime | None] = {}

    def due(ask: Callable[[], datetime | None], now: datetime) -> bool:
        if ask not in dues:
            dues[ask] = ask()
        found = dues[ask]
        return found is not None and now >= found

    steps = iter(steps)
    held: NDArray[np.int64] | None = None  # which levels held at the last evaluation
    while segment := list(itertools.islice(steps, pace.size)):
        holding: Holding | None = None
        if pace.mode == "ahead":  # the whole segment, with one run of the Ingest stage
            batches = [(now, [r.mention for r in batch]) for now, batch, _ in segment if batch]
            processor.ingest_many("backtest", batches)
            holding = timeline.holding(view, brands, [now for now, _, _ in segment])
            hot = holding.hot
        evaluated, last = 0, len(segment) - 1
        for k, (now, batch, stop) in enumerate(segment):
            if pace.mode != "ahead":
                ingest(now, batch)
            if pace.mode == "every" or k == last:
                must = True
            elif holding is not None and hot[k]:
                # levels hold: the step decides nothing new while they hold as they did at
                # the last evaluation, none stops at the next step in a way that needs its
                # last hold recorded, and nothing is due
                must = not holding.steady(k, held) or due(processor.next_move, now)
            else:
                (hot_now,) = [hot[k]] if holding is not None else timeline.hot(view, brands, [now])
                must = hot_now or due(processor.next_change, now)
            if must:
                processor.evaluate(now)
                evaluated += 1
                dues.clear()
                held = holding.codes[:, k].copy() if holding is not None else None
            if progress is not None:
                progress.update(stop)
        pace.after(len(segment), evaluated)


@dataclass(slots=True)
class _Pace:
    """How a mention replay takes its next segment of steps, from how many steps of the
    last one needed an evaluation:

    * ``ahead`` (after a segment where fewer than half did, and at most ``span`` steps):
      the whole segment is ingested, then read by the timeline in one pass (reads at a
      step never see the buckets of later steps, so the mentions ahead change no read
      and no decision; only an alert's top mentions, read from the store up to a minute
      past its time, may list some of the next minute's, and a backtest reports no
      alert). What makes a sparse replay cheap; but while the windows hold mentions of
      later steps the processor lets no key lie dormant (``RuleScreen.sunk``), which at
      many brands costs a dense replay more than it saves;
    * ``steps`` (the first segment, and after one between half and 15/16): each step is
      ingested, read by the timeline, and evaluated if it must;
    * ``every`` (after one where almost all steps did): every step is evaluated, as a
      plain replay does (a read per step would cost more than the few evaluations it
      saves), for twice as many steps each time in a row, then ``steps`` again to see
      whether it still is so."""

    span: int
    mode: Literal["ahead", "steps", "every"] = "steps"
    size: int = 0
    dense: int = 0
    """Dense segments in a row."""

    def __post_init__(self) -> None:
        self.size = min(self.span, _PROBE)

    def after(self, steps: int, evaluated: int) -> None:
        """Choose the next segment after one of ``steps`` steps, ``evaluated`` of them."""
        if self.mode == "every":  # measured nothing: measure again
            self.mode, self.size = "steps", min(self.span, _PROBE)
        elif 2 * evaluated < steps:
            self.mode, self.size, self.dense = "ahead", self.span, 0
        elif 16 * evaluated >= 15 * steps:
            self.dense += 1
            self.mode, self.size = "every", self.span << min(self.dense - 1, 4)
        else:
            self.mode, self.size, self.dense = "steps", self.span, 0


def _steps(ordered: Sequence[MentionRecord], step: timedelta) -> Iterator[_Step]:
    """``(now, records, stop)`` for each step of a replay of ``ordered`` (time-ordered), from the
    step holding the first record to the one holding the last, empty steps included.

    A step's records are ingested as one batch: those matched from their text first, then
    those whose file names their brand, brand by brand in the order the step first names
    them. That is the order replays have always used, so a row's story and which of two
    rows with one key counts stay as they were. ``stop``: where the step ends in
    ``ordered`` (for the progress bar)."""
    n = len(ordered)
    i = 0
    t = _EPOCH + ((ordered[0].mention.created_at if n else _EPOCH) - _EPOCH) // step * step
    while i < n:
        now = t + step
        j = i
        while j < n and ordered[j].mention.created_at < now:
            j += 1
        batch = ordered[i:j]
        by_brand: dict[str | None, list[MentionRecord]] = {None: []}
        for r in batch:
            by_brand.setdefault(r.brand, []).append(r)
        yield now, [r for group in by_brand.values() for r in group], j
        i, t = j, now


def _pins(ordered: Sequence[MentionRecord], step: timedelta) -> dict[tuple[str, str], str]:
    """The Ingest stage's pins for a replay: each mention key whose first record, in the
    order the replay ingests them, names its brand. Later records of a key are never
    counted (the processor de-duplicates by key), so the first one decides."""
    first: dict[tuple[str, str], str | None] = {}
    for _, batch, _ in _steps(ordered, step):
        for r in batch:
            first.setdefault(r.mention.key, r.brand)
    return {key: brand for key, brand in first.items() if brand is not None}


# --------------------------------------------------------------------------- output


def write_scores(rows: Sequence[VolumeRow], scores: Sequence[float], out: TextIO) -> None:
    """``timestamp,value,anomaly_score`` (timestamps and values as read)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["timestamp", "value", "anomaly_score"])
    for row, score in zip(rows, scores, strict=True):
        writer.writerow([row.timestamp, row.raw_value, f"{score:.1f}"])


def write_changes(changes: Iterable[Change], out: TextIO) -> None:
    """One JSON object per incident change (JSON Lines)."""
    for change in changes:
        out.write(json.dumps(change.to_dict(), ensure_ascii=False) + "\n")


def _when(at: datetime | None) -> str:
    return "-" if at is None else f"{as_utc(at):%Y-%m-%d %H:%M} UTC"


_KIND_NAMES: Final[dict[InputKind, str]] = {
    "jsonl": "mentions, JSON Lines",
    "csv": "mentions, CSV",
    "volume": "volume series",
}


def format_report(result: BacktestResult) -> list[str]:
    """The human-readable report: what was replayed, then each incident with the facts
    behind its opening and each later change."""
    unit = "rows"
    distinct = f" ({result.distinct:,} distinct)" if result.distinct is not None else ""
    lines = [
        f"listener backtest: {result.source} ({_KIND_NAMES[result.kind]}, {result.rows:,} "
        f"{unit}{distinct}, {_when(result.start)} to {_when(result.end)})",
        f"rules: {_names(result.rules, 'rules')}; brands: {_names(result.brands, 'brands')}",
        f"replayed in {result.elapsed:.2f} s ({result.rows_per_second:,.0f} {unit}/s)",
        "",
    ]
    incidents = result.incidents
    lines.append(f"incidents: {len(incidents)}")
    for n, inc in enumerate(incidents, 1):
        line = inc.changes[0].line
        row = f" (line {line})" if line is not None else ""
        end = f"resolved {_when(inc.resolved_at)}" if inc.resolved_at else "open at the end"
        lines.append(
            f"  {n}. {inc.id}: {inc.rule} for {inc.brand}, opened {_when(inc.opened_at)}{row} "
            f"at {inc.level}, peak {inc.peak_level}, {end}"
        )
        lines.extend(f"       {fact}" for fact in inc.facts)
        lines.extend(_why(inc.changes[0]))
        for change in inc.changes[1:]:
            if change.kind == "resolved":
                continue
            lines.append(
                f"     {change.kind} to {change.level} {_when(change.at)}: "
                + "; ".join(str(f) for f in change.facts)
            )
            lines.extend(_why(change))
    if not incidents:
        lines.append("  none: the rules would not have opened an incident")
    lines.extend(_summary(result, incidents))
    return lines


def _why(change: Change) -> list[str]:
    """The change's spike explanation, one line (none when it has none)."""
    if change.explanation is None:
        return []
    from listener.sinks.text import explanation_line

    return [f"       {explanation_line(change.explanation)}"]


EXPLAIN_CACHE: Final = 50_000
"""Mentions whose explanation features a replay keeps (its incidents' baselines overlap)."""
SHOWN: Final = 10
"""How many names a header line lists before it summarises the rest."""
TOP: Final = 20
"""How many brand and rule pairs the summary lists."""


def _names(names: Sequence[str], what: str) -> str:
    """``a, b, c``, or for many names ``1,000 brands (first: a, b, c …)``: one short line."""
    if not names:
        return "(none)"
    if len(names) <= SHOWN:
        return ", ".join(names)
    return f"{len(names):,} {what} (first: {', '.join(names[:3])} …)"


def _count(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _summary(result: BacktestResult, incidents: Sequence[IncidentReport]) -> list[str]:
    """Incidents and alerts (every change an incident notifies: opened, escalated,
    de-escalated, resolved) per brand and rule, and alerts per week (weeks from Monday)."""
    alerts = [c for inc in incidents for c in inc.changes]
    lines = ["", f"summary: {_count(len(incidents), 'incident')}, {_count(len(alerts), 'alert')}"]
    if not incidents:
        return lines
    pairs: dict[tuple[str, str], list[int]] = {}
    for inc in incidents:
        counts = pairs.setdefault((inc.brand, inc.rule), [0, 0])
        counts[0] += 1
        counts[1] += len(inc.changes)
    ranked = sorted(pairs.items(), key=lambda kv: (-kv[1][0], -kv[1][1], kv[0]))
    lines.append("  by brand and rule:")
    lines.extend(
        f"    {brand} / {rule}: {_count(n, 'incident')}, {_count(a, 'alert')}"
        for (brand, rule), (n, a) in ranked[:TOP]
    )
    if len(ranked) > TOP:
        lines.append(f"    … and {len(ranked) - TOP:,} more brand and rule pairs")

    def monday(at: datetime) -> datetime:
        day = as_utc(at).replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=day.weekday())

    first = monday(min(result.start or alerts[0].at, *(c.at for c in alerts)))
    last = monday(max(result.end or alerts[-1].at, *(c.at for c in alerts)))
    per_week = dict.fromkeys(
        (first + timedelta(weeks=i) for i in range((last - first).days // 7 + 1)), 0
    )
    for change in alerts:
        per_week[monday(change.at)] += 1
    busiest = max(per_week, key=lambda w: (per_week[w], -w.timestamp()))
    lines.append(
        f"  alerts per week: {len(alerts) / len(per_week):.1f} on average over "
        f"{len(per_week):,} weeks, at most {per_week[busiest]:,} (week of {busiest:%Y-%m-%d})"
    )
    if len(per_week) <= 12:
        lines.extend(f"    week of {week:%Y-%m-%d}: {n:,}" for week, n in per_week.items())
    return lines


# --------------------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``listener backtest``."""
    parser.add_argument("file", help="mentions (.jsonl, or .csv with --map) or a volume series")
    parser.add_argument(
        "--config", "-c", help="rules file (default: rules.yaml, env LISTENER_CONFIG)"
    )
    parser.add_argument(
        "--rule",
        action="append",
        metavar="NAME",
        help=f"rule to replay (repeatable; default: '{DEFAULT_RULE}' for a volume series, "
        "every rule for mention files)",
    )
    parser.add_argument(
        "--out",
        "-o",
        metavar="FILE",
        help="volume series: write timestamp,value,anomaly_score (1.0 where an incident "
        "opens or escalates); mention files: write the incident changes as JSON Lines",
    )
    parser.add_argument(
        "--kind", choices=KINDS, help="what the file holds (default: detected from it)"
    )
    parser.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="FIELD=COLUMN,...",
        help="CSV mentions: which column holds each field; repeat it or separate pairs "
        "with commas, e.g. --map text=text --map created_at=tweet_created --map "
        f"brand=airline (fields: {', '.join(MENTION_FIELDS)})",
    )
    parser.add_argument(
        "--brand", help="volume series: the brand it counts (default: the file name)"
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="mention files: say why each incident opened and escalated (the alerts' spike "
        "explanation: what rose against the day before; docs/explain.md); costs about a "
        "third more CPU on a busy replay",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on a terminal")


def run_backtest(
    args: argparse.Namespace, out: TextIO, err: TextIO | None = None, config: Config | None = None
) -> int:
    """Run ``listener backtest`` with parsed ``args``; the report goes to ``out`` and the
    progress bar to ``err`` (default stderr) when it is a terminal. Returns 0; raises
    :class:`ConfigError` (bad rules file or rule name) or :class:`BacktestError`.
    ``config``: the rules file already loaded (else loaded from ``args.config``)."""
    from listener.config.load import load_config

    config_path = args.config or os.environ.get("LISTENER_CONFIG") or "rules.yaml"
    if config is None:
        config = load_config(config_path)
    path = Path(args.file)
    kind: InputKind = args.kind or detect_kind(path)
    if args.map and kind != "csv":
        raise BacktestUsageError(f"{path}: --map applies to CSV mention files, and this is {kind}")
    default = DEFAULT_RULE if kind == "volume" else None
    rules = select_rules(config, args.rule, default=default, file=config_path)
    label = f"backtest {path.name}"
    if kind == "volume":
        rows = read_volume(path)
        progress = None if args.no_progress else Progress.for_terminal(len(rows), label, err)
        result = replay_volume(
            rows, rules, brand=args.brand or path.stem, source=str(path), progress=progress
        )
        if args.out:
            with _open_out(args.out) as f:
                write_scores(rows, result.scores, f)
    else:
        records = (
            read_jsonl(path) if kind == "jsonl" else read_mention_csv(path, parse_map(args.map))
        )
        progress = None if args.no_progress else Progress.for_terminal(len(records), label, err)
        result = replay_mentions(
            records,
            config,
            rules,
            source=str(path),
            kind=kind,
            progress=progress,
            explain=args.explain,
        )
        if args.out:
            with _open_out(args.out) as f:
                write_changes(result.changes, f)
    for line in format_report(result):
        print(line, file=out)
    if args.out:
        print(f"\nwrote {args.out}", file=out)
    return 0


def _open_out(name: str) -> TextIO:
    try:
        return open(name, "w", newline="", encoding="utf-8")
    except OSError as exc:
        raise BacktestError(f"{name}: cannot write: {exc.strerror or exc}") from None
