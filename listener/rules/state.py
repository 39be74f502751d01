"""The rule engine's persisted state: level timers and open incidents per (rule, brand).

All types here are frozen; the engine returns a new :class:`EngineState` after each
evaluation and never changes one in place, so the caller can persist whichever it holds.

JSON form (``to_json``/``from_json``), version 1::

    {"version": 1,
     "keys": [{"rule": "...", "brand": "...",
               "timers": {"<level>": {"since": "<iso>|null", "last_held": "<iso>|null"}},
               "incident": null | {"id": "...", "level": "...", "peak_level": "...",
                                   "opened_at": "<iso>", "level_since": "<iso>",
                                   "clear_since": "<iso>|null", "seq": 1}}]}
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from listener.clock import as_utc
from listener.errors import BrandHeld, StoreError

__all__ = [
    "STATE_VERSION",
    "EngineState",
    "Incident",
    "KeyState",
    "LevelTimer",
    "OpenIncident",
    "StateEncoder",
]

STATE_VERSION = 1

StateKey = tuple[str, str]
"""``(rule, brand)``."""


@dataclass(frozen=True, slots=True)
class LevelTimer:
    """``since``: when the level's ``when`` started holding continuously (None when it
    does not hold now); ``last_held``: the last evaluation at which it held."""

    since: datetime | None = None
    last_held: datetime | None = None


@dataclass(frozen=True, slots=True)
class Incident:
    """An open incident of one (rule, brand). ``seq`` is the seq of its latest event;
    ``clear_since`` is when no level started firing (None while one fires)."""

    id: str
    level: str
    peak_level: str
    opened_at: datetime
    level_since: datetime
    clear_since: datetime | None = None
    seq: int = 1


@dataclass(frozen=True, slots=True)
class KeyState:
    """Timers per level name, and the open incident if any."""

    timers: Mapping[str, LevelTimer] = field(default_factory=dict)
    incident: Incident | None = None

    @property
    def resting(self) -> bool:
        """No open incident and no level timer running: only a level that holds can move
        it."""
        return self.incident is None and all(t.since is None for t in self.timers.values())


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """An open incident as listed by :meth:`EngineState.open_incidents`."""

    incident_id: str
    rule: str
    brand: str
    level: str
    peak_level: str
    opened_at: datetime
    level_since: datetime
    clear_since: datetime | None
    seq: int


@dataclass(frozen=True, slots=True)
class EngineState:
    """Immutable engine state: :class:`KeyState` per ``(rule, brand)``."""

    keys: Mapping[StateKey, KeyState] = field(default_factory=dict)

    def get(self, rule: str, brand: str) -> KeyState:
        """The state of one key (empty when never seen)."""
        return self.keys.get((rule, brand)) or KeyState()

    def with_keys(self, updates: Mapping[StateKey, KeyState]) -> EngineState:
        """A new state with ``updates`` replacing those keys (others kept as they are).

        An update equal to the key's current state keeps the current object, and when no
        key changes the result is ``self``: identity tells a caller what changed (what
        to persist, which cached encodings still hold)."""
        keys = self.keys
        changed = {
            key: value
            for key, value in updates.items()
            if (old := keys.get(key)) is not value and old != value
        }
        if not changed:
            return self
        return replace(self, keys={**keys, **changed})

    def prune(self, rule_names: Iterable[str], brands: Iterable[str] | None = None) -> EngineState:
        """A new state keeping only keys of ``rule_names`` (and of ``brands`` when given).

        Open incidents of dropped keys are discarded without a resolved event; compare
        :meth:`open_incidents` before and after when that matters.
        """
        rules = set(rule_names)
        keep = None if brands is None else set(brands)
        kept = {
            key: value
            for key, value in self.keys.items()
            if key[0] in rules and (keep is None or key[1] in keep)
        }
        return self if len(kept) == len(self.keys) else replace(self, keys=kept)

    def brands(self) -> set[str]:
        """The brands that have at least one key."""
        return {brand for _, brand in self.keys}

    def split_brand(self, brand: str) -> tuple[EngineState, EngineState]:
        """``(part, rest)``: the keys of ``brand``, and every other key (``rest`` is
        ``self`` when ``brand`` has none). :meth:`merge_brands` of the two gives back an
        equal state."""
        part = {key: value for key, value in self.keys.items() if key[1] == brand}
        if not part:
            return EngineState(), self
        rest = {key: value for key, value in self.keys.items() if key[1] != brand}
        return EngineState(part), EngineState(rest)

    def merge_brands(self, part: EngineState, besides: Container[str] = ()) -> EngineState:
        """A new state with the keys of ``part`` added; :class:`BrandHeld` when a brand of
        ``part`` already has a key here (its state would be mixed with another's), or a
        key is taken. Keys of the rules in ``besides`` are not a brand's (source health:
        keyed by source) and do not make their brand present."""
        if not part.keys:
            return self
        mine = {brand for rule, brand in part.keys if rule not in besides}
        clash = sorted(mine & {brand for rule, brand in self.keys if rule not in besides})
        if clash:
            raise BrandHeld(
                f"engine state already holds keys of {', '.join(map(repr, clash))}: "
                "a brand's state can be merged only where the brand has none"
            )
        taken = sorted(part.keys.keys() & self.keys.keys())
        if taken:
            raise BrandHeld(f"engine state already holds key {taken[0]!r}")
        return replace(self, keys={**self.keys, **part.keys})

    def open_incidents(self) -> list[OpenIncident]:
        """Open incidents, sorted by opening time then id."""
        found = [
            OpenIncident(
                incident_id=ks.incident.id,
                rule=rule,
                brand=brand,
                level=ks.incident.level,
                peak_level=ks.incident.peak_level,
                opened_at=ks.incident.opened_at,
                level_since=ks.incident.level_since,
                clear_since=ks.incident.clear_since,
                seq=ks.incident.seq,
            )
            for (rule, brand), ks in self.keys.items()
            if ks.incident is not None
        ]
        return sorted(found, key=lambda o: (o.opened_at, o.incident_id))

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> str:
        """Versioned JSON (``"version": 1``), keys sorted so equal states give equal text."""
        keys = [_key_json(key, ks) for key, ks in sorted(self.keys.items())]
        return json.dumps({"version": STATE_VERSION, "keys": keys}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EngineState:
        """Inverse of :meth:`to_json`; ``StoreError`` on an unknown version or bad content."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise StoreError(f"engine state is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise StoreError("engine state is not a JSON object")
        version = data.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise StoreError(f"engine state has no valid version (got {version!r})")
        if version > STATE_VERSION:
            raise StoreError(
                f"engine state version {version} was written by a newer listener; "
                f"this listener reads version {STATE_VERSION}"
            )
        if version != STATE_VERSION:
            raise StoreError(f"unknown engine state version {version}")
        try:
            keys: dict[StateKey, KeyState] = {}
            for item in data["keys"]:
                timers = {
                    str(name): LevelTimer(_dt(t["since"]), _dt(t["last_held"]))
                    for name, t in item["timers"].items()
                }
                keys[(str(item["rule"]), str(item["brand"]))] = KeyState(
                    timers=timers, incident=_incident_from(item["incident"])
                )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise StoreError(f"engine state is malformed: {exc!r}") from exc
        return cls(keys=keys)


class StateEncoder:
    """:meth:`EngineState.to_json`, re-encoding only the keys whose :class:`KeyState`
    object changed since the last call (the engine keeps the object of a key that did not
    change, see :meth:`EngineState.with_keys`); the text is the same as ``to_json``'s."""

    def __init__(self) -> None:
        self._parts: dict[StateKey, tuple[KeyState, str]] = {}
        self._order: list[StateKey] = []

    def encode(self, state: EngineState) -> str:
        parts, keys = self._parts, state.keys
        if len(parts) != len(keys) or any(key not in parts for key in keys):
            parts = self._parts = {k: v for k, v in parts.items() if k in keys}
            self._order = sorted(keys)
        for key, ks in keys.items():
            cached = parts.get(key)
            if cached is None or cached[0] is not ks:
                parts[key] = (ks, json.dumps(_key_json(key, ks), sort_keys=True))
        body = ", ".join(parts[key][1] for key in self._order)
        return f'{{"keys": [{body}], "version": {STATE_VERSION}}}'


def _key_json(key: StateKey, ks: KeyState) -> dict[str, Any]:
    rule, brand = key
    return {
        "rule": rule,
        "brand": brand,
        "timers": {
            name: {"since": _iso(t.since), "last_held": _iso(t.last_held)}
            for name, t in sorted(ks.timers.items())
        },
        "incident": _incident_json(ks.incident),
    }


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _dt(text: Any) -> datetime | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise TypeError(f"expected an ISO datetime string, got {text!r}")
    return as_utc(datetime.fromisoformat(text))


def _required_dt(text: Any) -> datetime:
    when = _dt(text)
    if when is None:
        raise ValueError("missing datetime")
    return when


def _incident_json(incident: Incident | None) -> dict[str, Any] | None:
    if incident is None:
        return None
    return {
        "id": incident.id,
        "level": incident.level,
        "peak_level": incident.peak_level,
        "opened_at": incident.opened_at.isoformat(),
        "level_since": incident.level_since.isoformat(),
        "clear_since": _iso(incident.clear_since),
        "seq": incident.seq,
    }


def _incident_from(data: Any) -> Incident | None:
    if data is None:
        return None
    seq = data["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise ValueError(f"bad incident seq {seq!r}")
    return Incident(
        id=str(data["id"]),
        level=str(data["level"]),
        peak_level=str(data["peak_level"]),
        opened_at=_required_dt(data["opened_at"]),
        level_since=_required_dt(data["level_since"]),
        clear_since=_dt(data["clear_since"]),
        seq=seq,
    )
