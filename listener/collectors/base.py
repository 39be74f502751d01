"""The collector extension point.

A collector polls one configured source and returns new mentions plus a cursor.
Collectors are *blocking* (they use the real client libraries: feedparser, tweepy,
praw); the pipeline runs ``poll`` in a worker thread, owns scheduling, backoff,
metrics and error isolation, and persists the cursor in the same transaction as
the mentions it produced.

Collectors have no optional capability today; one would be a ``@runtime_checkable``
protocol beside :class:`Collector` (as ``Refreshable`` is beside ``Sink``), checked with
``isinstance``, never with ``getattr``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from listener.errors import CollectorError
from listener.model import Mention

Cursor = dict[str, Any]
"""JSON-serialisable state a collector keeps between polls (ETags, since ids, ...)."""


def since_and_seen(state: Any) -> tuple[int, set[str]] | None:
    """``(since, seen)`` of a ``{"since": <epoch seconds>, "seen": [<id>, ...]}`` cursor
    part (the newest time seen and the ids at that second); ``None`` without ``since``."""
    if not isinstance(state, Mapping):
        return None
    since = state.get("since")
    if not isinstance(since, int) or isinstance(since, bool):
        return None
    seen = state.get("seen")
    return since, {s for s in seen if isinstance(s, str)} if isinstance(seen, list) else set()


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll produced. ``cursor`` replaces the stored cursor once the
    mentions are safely stored. ``errors`` are partial failures (e.g. one feed of
    several failed): the pipeline logs and counts them and treats the source as
    degraded. ``notes`` are small facts for logs (bounded keys)."""

    mentions: list[Mention]
    cursor: Cursor
    errors: list[CollectorError] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    backfill: bool = False
    """True when this poll reached back into history (a first poll without a cursor,
    bounded by the source's ``lookback``): its mentions count into the baseline but
    cannot open an incident."""
    quota_remaining: int | None = None
    """Requests left in the current rate-limit window, where the API says."""


@runtime_checkable
class Collector(Protocol):
    """Contract: ``poll`` fetches what is new since ``cursor`` (``None`` on first start),
    never blocks longer than its configured timeouts, and raises only
    :class:`~listener.errors.CollectorError` subclasses (translate library errors at
    this boundary). It does not retry, sleep or log: the pipeline does.
    ``now`` is the poll time, for sources that ask for a time range. On the first
    poll (``cursor is None``) a collector reaches back at most the source's
    ``lookback`` and sets ``PollResult.backfill``; at most ``page_limit`` pages are
    fetched per query per poll."""

    name: str

    def poll(self, cursor: Cursor | None, now: datetime) -> PollResult: ...

    def close(self) -> None: ...
