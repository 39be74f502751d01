"""One brand's Evaluate state, as one immutable record that can move between workers.

The Evaluate stage is keyed by brand: what it decides for a brand reads and writes only
that brand's window buckets, its engine keys ``(rule, brand)``, its tracked
notifications and its quiet period. :class:`BrandState` holds those four together, so a
worker can hand a brand to another (``Processor.export_brand`` then
``Processor.adopt_brand``) and the other decides from then on exactly as the first
would have. Source-health keys (rule ``source-health``, keyed by source) are not a
brand's and never travel.

Pure: :func:`split_brand` takes a brand's part out of the states, :func:`merge_brand`
puts one in (:class:`~listener.errors.BrandHeld` when the brand already has state there).

JSON form (``to_json``/``from_json``), version 1, keys sorted, equal records give equal
text and ``from_json(to_json(s)) == s``::

    {"version": 1, "brand": "...",
     "buckets": [[<bucket start, epoch seconds>, "<bucket JSON as the store holds it>"], ...],
     "first_seen": <epoch seconds> | null,
     "engine": <EngineState JSON, only this brand's keys>,
     "notify": <NotifyState JSON, only this brand's incidents>,
     "quiet_until": "<iso>" | null}
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from listener.clock import as_utc
from listener.errors import BrandStateError, StoreError
from listener.rules.notify import NotifyState
from listener.rules.source_health import SOURCE_HEALTH
from listener.rules.state import EngineState
from listener.scoring.velocity import BucketRow

__all__ = ["BRAND_STATE_VERSION", "BrandState", "first_seen_at", "merge_brand", "split_brand"]

BRAND_STATE_VERSION = 2
# 1: bucket rows as JSON objects (store schema 5); 2: bucket rows as arrays (schema 6).
# The windows load both row forms, so a version-1 document is still read.
_READABLE_VERSIONS = (1, 2)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class BrandState:
    """All of one brand's Evaluate state.

    ``buckets``: its velocity window buckets as stored rows ``(brand, start, json)``,
    sorted by start; ``first_seen``: the start of its earliest bucket ever (epoch
    seconds; it outlives pruning, so it travels on its own); ``engine``: its rule keys
    (``(rule, brand)`` only); ``notify``: its tracked incidents; ``quiet_until``: the end
    of its backfill quiet period, if any.
    """

    brand: str
    buckets: tuple[BucketRow, ...] = ()
    first_seen: int | None = None
    engine: EngineState = field(default_factory=EngineState)
    notify: NotifyState = field(default_factory=NotifyState)
    quiet_until: datetime | None = None

    def __post_init__(self) -> None:
        others = {row[0] for row in self.buckets} | self.engine.brands() | self.notify.brands()
        others.discard(self.brand)
        if others:
            names = ", ".join(map(repr, sorted(others)))
            raise BrandStateError(f"state of brand {self.brand!r} holds state of {names}")

    def empty(self) -> bool:
        """Whether there is nothing to hand over."""
        return not (
            self.buckets
            or self.first_seen is not None
            or self.engine.keys
            or self.notify.incidents
            or self.quiet_until is not None
        )

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> str:
        """Versioned JSON (see the module docstring)."""
        return json.dumps(
            {
                "version": BRAND_STATE_VERSION,
                "brand": self.brand,
                "buckets": [[start, blob] for _, start, blob in self.buckets],
                "first_seen": self.first_seen,
                "engine": json.loads(self.engine.to_json()),
                "notify": json.loads(self.notify.to_json()),
                "quiet_until": None if self.quiet_until is None else self.quiet_until.isoformat(),
            },
            sort_keys=True,
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> BrandState:
        """Inverse of :meth:`to_json`; :class:`BrandStateError` on an unknown version or
        malformed content (bucket contents are checked where they are loaded)."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise BrandStateError(f"brand state is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise BrandStateError("brand state is not a JSON object")
        version = data.get("version")
        if version not in _READABLE_VERSIONS or isinstance(version, bool):
            raise BrandStateError(
                f"brand state version {version!r} is not one this listener reads "
                f"({BRAND_STATE_VERSION})"
            )
        brand = data.get("brand")
        if not isinstance(brand, str) or not brand:
            raise BrandStateError(f"brand state has no valid brand (got {brand!r})")
        try:
            return cls(
                brand=brand,
                buckets=tuple(_row(brand, item) for item in data["buckets"]),
                first_seen=_seconds(data["first_seen"]),
                engine=EngineState.from_json(json.dumps(data["engine"])),
                notify=_notify(data["notify"]),
                quiet_until=_when(data["quiet_until"]),
            )
        except StoreError as exc:
            raise BrandStateError(f"brand state of {brand!r}: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BrandStateError(f"brand state of {brand!r} is malformed: {exc!r}") from None


def split_brand(
    brand: str,
    engine: EngineState,
    notify: NotifyState,
    buckets: tuple[BucketRow, ...] = (),
    first_seen: datetime | None = None,
    quiet_until: Mapping[str, datetime] | None = None,
) -> tuple[BrandState, EngineState, NotifyState]:
    """``brand``'s :class:`BrandState` and the engine and notification states without it.

    ``buckets`` and ``first_seen`` are the brand's windows as
    ``VelocityWindows.export_brand`` and ``first_seen`` give them; ``quiet_until`` the
    quiet periods of every brand. Source-health keys stay (they are a source's)."""
    part, rest = engine.split_brand(brand)
    if part.keys and any(rule == SOURCE_HEALTH for rule, _ in part.keys):
        health = EngineState({k: v for k, v in part.keys.items() if k[0] == SOURCE_HEALTH})
        part = EngineState({k: v for k, v in part.keys.items() if k[0] != SOURCE_HEALTH})
        rest = rest.merge_brands(health, (SOURCE_HEALTH,))
    mine, others = notify.split_brand(brand)
    if any(t.rule == SOURCE_HEALTH for t in mine.incidents.values()):
        kept = {k: t for k, t in mine.incidents.items() if t.rule == SOURCE_HEALTH}
        mine = NotifyState({k: t for k, t in mine.incidents.items() if k not in kept})
        others = NotifyState({**others.incidents, **kept})
    state = BrandState(
        brand=brand,
        buckets=tuple(sorted(buckets, key=lambda row: row[1])),
        first_seen=None if first_seen is None else (as_utc(first_seen) - _EPOCH) // _SECOND,
        engine=part,
        notify=mine,
        quiet_until=(quiet_until or {}).get(brand),
    )
    return state, rest, others


def merge_brand(
    state: BrandState, engine: EngineState, notify: NotifyState
) -> tuple[EngineState, NotifyState]:
    """The engine and notification states with ``state``'s parts added;
    :class:`~listener.errors.BrandHeld` when the brand already has a key or a tracked
    incident there. (Its windows and quiet period are the caller's to restore.)"""
    return engine.merge_brands(state.engine, (SOURCE_HEALTH,)), notify.merge_brands(state.notify)


def first_seen_at(state: BrandState) -> datetime | None:
    """:attr:`BrandState.first_seen` as a datetime."""
    return None if state.first_seen is None else _EPOCH + timedelta(seconds=state.first_seen)


def _row(brand: str, item: Any) -> BucketRow:
    start, blob = item
    if type(start) is not int or not isinstance(blob, str):
        raise ValueError(f"bad bucket row {item!r}")
    return (brand, start, blob)


def _seconds(value: Any) -> int | None:
    if value is None:
        return None
    if type(value) is not int:
        raise ValueError(f"bad first_seen {value!r}")
    return value


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"bad quiet_until {value!r}")
    return datetime.fromisoformat(value)


def _notify(data: Any) -> NotifyState:
    if not isinstance(data, dict) or data.get("version") != 1:
        raise ValueError(f"bad notification state {data!r:.80}")
    return NotifyState.from_json(json.dumps(data))
