"""The Evaluate stage's memo of settled keys: which (rule, brand) an evaluation may skip.

A key whose last evaluation left it *resting* (no open incident, no level holding, so no
timer running) gives the same checks and keeps its state when evaluated again, as long as
nothing it reads has changed: its brand's windows (their change count), and, for a rule
that reads whole buckets only, the buckets its ranges cover (the read epoch) once the
brand is past the rule's warm-up. A *dormant* key (found *sunk* by the screen, kept only
without condition gauges) stays as it is until its brand's windows change, whatever the
time: no level can hold before.

At 1,000 brands × 10 rules a tick looks at ten thousand keys, so the memo is kept per
rule as arrays indexed by brand row (the position of the brand in the brands evaluated),
and planning and settling a tick are a few numpy operations per rule; only the keys the
engine checked are handled one by one.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from listener.clock import as_utc
from listener.rules.conditions import Check
from listener.rules.engine import CompiledRule
from listener.rules.state import KeyState, StateKey

__all__ = ["Marks", "Plan", "SettledKeys", "marks_of"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
_NEVER = np.iinfo(np.int64).min

Bools = NDArray[np.bool_]
Ints = NDArray[np.int64]
Rows = NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Marks:
    """What a tick knows of each brand (by row) before evaluating: its windows' change
    count, and when its history starts (epoch seconds; the int64 minimum when it has
    none)."""

    changes: Ints
    first_seen: Ints
    now_us: int

    def warm(self, lookback: timedelta) -> Bools:
        """Whether each brand's history starts at least ``lookback`` before ``now`` (or
        it has none): past a rule's warm-up, nothing about it changes with time."""
        seen = self.first_seen != _NEVER
        first_us = np.where(seen, self.first_seen, 0) * 1_000_000
        return np.asarray(~seen | (first_us <= self.now_us - lookback // _MICRO))


def marks_of(changes: Sequence[int], first_seen: Ints, now: datetime) -> Marks:
    """:class:`Marks` from each brand's change count and first-seen seconds at ``now``."""
    return Marks(
        np.fromiter(changes, np.int64, len(changes)),
        first_seen,
        (as_utc(now) - _EPOCH) // _MICRO,
    )


class Plan(NamedTuple):
    """One rule's keys at a tick, by brand row: ``due`` must be evaluated (the others'
    last evaluation still holds, or the rule does not apply to the brand); ``resting``
    are the due ones whose state is that of a settled evaluation (no incident, no timer
    running: the screen may leave them be)."""

    due: Bools
    resting: Bools


class SettledKeys:
    """One rule's memo: per brand row, whether the key is settled (its last evaluation
    left it resting), and then the read epoch and change count it was evaluated at,
    whether it is reusable (every range the rule reads aligned to the windows' buckets,
    and the brand past the rule's warm-up), whether it is dormant, and the state it
    left. The state is kept so that a key changed by anything else (a hand-off, a reload)
    is not taken for settled: its state is then another object."""

    __slots__ = ("_keys", "changes", "dormant", "epoch", "reusable", "settled", "states")

    def __init__(self, rule: str, brands: Sequence[str]) -> None:
        size = len(brands)
        self._keys: list[StateKey] = [(rule, brand) for brand in brands]
        self.settled: Bools = np.zeros(size, dtype=np.bool_)
        self.epoch: Ints = np.zeros(size, dtype=np.int64)
        self.changes: Ints = np.zeros(size, dtype=np.int64)
        self.reusable: Bools = np.zeros(size, dtype=np.bool_)
        self.dormant: Bools = np.zeros(size, dtype=np.bool_)
        self.states: list[KeyState | None] = [None] * size

    def moved(self, rule: str, brands: Sequence[str], old: Sequence[int]) -> SettledKeys:
        """The memo for ``brands``, whose rows were ``old`` here (-1: a brand not held
        before, with nothing settled)."""
        out = SettledKeys(rule, brands)
        at = np.asarray(old, dtype=np.intp)
        kept = at >= 0
        src = at[kept]
        for name in ("settled", "epoch", "changes", "reusable", "dormant"):
            getattr(out, name)[kept] = getattr(self, name)[src]
        states = self.states
        out.states = [states[i] if i >= 0 else None for i in old]
        return out

    def forget(self, row: int | None = None) -> None:
        """Nothing is settled (of the brand at ``row``, or of any brand)."""
        if row is None:
            self.settled[:] = False
            self.states = [None] * len(self.states)
        else:
            self.settled[row] = False
            self.states[row] = None

    def plan(
        self,
        rule: CompiledRule,
        applies: Bools,
        marks: Marks,
        epoch: int,
        keys: Mapping[StateKey, KeyState] | None,
    ) -> Plan:
        """Which of the brands the rule ``applies`` to it must evaluate at ``epoch``: not
        the settled keys whose brand's windows have not changed, either dormant, or
        reusable in the same read epoch and still past warm-up. ``keys``: the engine's
        keys, to check that each settled key still has the state it was left in (None
        when known to: nothing but this memo's evaluations changed them since)."""
        settled = self.settled
        if keys is not None:
            same = np.fromiter(
                map(operator.is_, map(keys.get, self._keys), self.states),
                np.bool_,
                len(self.states),
            )
            settled = settled & same
        unchanged = self.changes == marks.changes
        current = self.dormant | (self.reusable & (self.epoch == epoch) & marks.warm(rule.lookback))
        skip = settled & unchanged & current
        due = applies & ~skip
        return Plan(due, due & settled)

    def settle(
        self,
        rule: CompiledRule,
        checks: Mapping[str, tuple[Check, ...]],
        rows: Mapping[str, int],
        still: Rows,
        rested: Rows,
        dormant: Bools,
        keys: Mapping[StateKey, KeyState],
        marks: Marks,
        epoch: int,
        aligned: bool,
    ) -> None:
        """Record which keys just evaluated are settled: those the engine checked
        (``checks``, brand → checks; ``rows``: each brand's row) that rest with no level
        holding, and those at rows ``still`` that the screen found still and the engine
        did not check, ``dormant`` (aligned with ``still``) when sunk. ``rested``: those
        of ``still`` the engine was given (their state may be new; the others kept
        theirs). ``keys``: the engine's keys after the evaluation."""
        changes, states, own = marks.changes, self.states, self._keys
        warm = marks.warm(rule.lookback) if aligned else None
        for brand, made in checks.items():
            row = rows[brand]
            key_state = keys.get(own[row])
            if (
                key_state is not None
                and key_state.incident is None
                and not any(check.holds for check in made)
            ):
                self.settled[row] = True
                self.epoch[row] = epoch
                self.changes[row] = changes[row]
                self.reusable[row] = warm is not None and bool(warm[row])
                self.dormant[row] = False
                states[row] = key_state
            else:
                self.settled[row] = False
                states[row] = None
        if not len(still):
            return
        self.settled[still] = True
        self.epoch[still] = epoch
        self.changes[still] = changes[still]
        self.reusable[still] = False if warm is None else warm[still]
        self.dormant[still] = dormant
        for row in rested.tolist():
            states[row] = keys[own[row]]
