"""The rule engine: level timers and the incident lifecycle per (rule, brand). Pure.

Evaluated at ``now`` for one key, with ``c`` the open incident's current level:

1. For each level, ascending: update its timer (``since`` = when ``when`` started
   holding continuously, reset when it does not hold; ``last_held`` = last time it held).
   * A level above ``c`` (or any level with no incident) is *firing* when ``when`` holds
     and has held for at least ``for_``.
   * A level at or below ``c`` (*held*) keeps firing until its exit holds (default exit:
     ``when`` no longer holds), ``when`` does not hold now, and at least
     ``keep_firing_for`` has passed since ``when`` last held. (A held level whose ``when``
     holds always keeps firing, even if a misconfigured ``exit`` holds at the same time;
     this keeps evaluation idempotent.)
2. Target = the highest firing level.
   * No incident, target → ``opened`` at the target.
   * Target above ``c`` → ``escalated``; below ``c`` → ``deescalated``; equal → nothing.
     Any target clears ``clear_since``.
   * Incident, no target → ``clear_since`` is set (if unset); once
     ``now - clear_since ≥ resolve_after`` → ``resolved`` and the incident is closed; a
     later target opens a new incident with a new id.

Event facts: opened/escalated → the target level's ``when`` facts; deescalated → the
previous level's exit (default: ``when``) facts; resolved → the current values of the
``when`` of the level it was at.

Evaluating twice with the same ``now`` and the resulting state yields no new events.
Keys of rules or brands not being evaluated are left untouched. An incident whose level
is no longer configured counts as below every level (the next target escalates to it;
no target resolves it). Incident ids are ``{opened_at:%Y%m%dT%H%M%SZ}-{slug(brand)}-
{slug(rule)}``; two brands or rules with the same slug share a namespace, and ids repeat
only if a key reopens within the same second it last opened.
"""

from __future__ import annotations

import re
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from listener.clock import as_utc
from listener.config.schema import Config, RuleConfig
from listener.model import Fact
from listener.rules.conditions import (
    Check,
    Condition,
    CountView,
    build_condition,
    condition_leaves,
    reads_distinct,
)
from listener.rules.state import EngineState, Incident, KeyState, LevelTimer, OpenIncident

__all__ = [
    "CompiledLevel",
    "CompiledRule",
    "EngineState",
    "IncidentEvent",
    "OpenIncident",
    "compile_rule",
    "compile_rules",
    "evaluate",
    "evaluate_rule",
    "evaluate_rule_checks",
    "incident_id",
    "max_lookback",
    "next_change",
    "next_move",
    "rule_brands",
    "slug",
]

EventKind = Literal["opened", "escalated", "deescalated", "resolved"]


@dataclass(frozen=True, slots=True)
class CompiledLevel:
    """One severity level; ``rank`` 0 is the lowest. ``exit`` None = ``when`` stops holding."""

    name: str
    rank: int
    when: Condition
    exit: Condition | None
    for_: timedelta
    keep_firing_for: timedelta
    leaves: tuple[str, ...] = ()
    """The paths of ``when``'s leaf conditions (:func:`condition_leaves`), in the order of
    its check's ``readings``."""


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to evaluate. ``brands`` None = every brand passed to evaluation.

    ``lookback`` is how far before ``now`` its conditions read counts;
    ``distinct_lookback`` how far they read distinct voices or stories (zero: never);
    ``window`` the longest 'current' window of its levels' ``when`` (the span an alert's
    top mentions come from; 1h when no leaf has one). All three are worked out here, once.
    """

    name: str
    brands: tuple[str, ...] | None
    levels: tuple[CompiledLevel, ...]
    resolve_after: timedelta
    lookback: timedelta = timedelta(0)
    distinct_lookback: timedelta = timedelta(0)
    window: timedelta = timedelta(hours=1)

    def level(self, name: str) -> CompiledLevel | None:
        """The level called ``name``, or None when the rule has no such level."""
        for level in self.levels:
            if level.name == name:
                return level
        return None


@dataclass(frozen=True, slots=True)
class IncidentEvent:
    """A change in an incident's life. ``seq`` is 1 for ``opened`` and +1 per event.

    ``level`` is the new level (for ``resolved``, the level it was at); ``previous_level``
    is the level before the event (None for ``opened``; for ``resolved``, equal to
    ``level``); ``peak_level`` is the highest level the incident reached so far.
    """

    kind: EventKind
    incident_id: str
    seq: int
    rule: str
    brand: str
    level: str
    previous_level: str | None
    peak_level: str
    at: datetime
    facts: tuple[Fact, ...]

    @property
    def alert_id(self) -> str:
        """Stable id of the alert for this event: ``{incident_id}#{seq}``."""
        return f"{self.incident_id}#{self.seq}"


def compile_rule(config: RuleConfig) -> CompiledRule:
    """Compile one rule config (levels in config order, lowest severity first)."""
    levels = []
    for rank, (name, level) in enumerate(config.levels.items()):
        when = build_condition(level.when)
        levels.append(
            CompiledLevel(
                name=name,
                rank=rank,
                when=when,
                exit=None if level.exit is None else build_condition(level.exit),
                for_=level.for_,
                keep_firing_for=level.keep_firing_for,
                leaves=tuple(path for path, _ in condition_leaves(when)),
            )
        )
    conditions = [level.when for level in levels]
    conditions += [level.exit for level in levels if level.exit is not None]
    return CompiledRule(
        name=config.name,
        brands=None if config.brands is None else tuple(config.brands),
        levels=tuple(levels),
        resolve_after=config.resolve_after,
        lookback=max(c.lookback for c in conditions),
        distinct_lookback=max(reads_distinct(c) for c in conditions),
        window=max(level.when.window for level in levels) or timedelta(hours=1),
    )


def compile_rules(config: Config) -> list[CompiledRule]:
    """Compile every rule of the config, in config order."""
    return [compile_rule(rule) for rule in config.rules]


def max_lookback(rules: Iterable[CompiledRule], *, distinct: bool = False) -> timedelta:
    """The longest lookback of any rule (zero when none): the count retention needed.

    With ``distinct``, the longest ``distinct_lookback``: how long author and story sets
    must be kept.
    """
    if distinct:
        return max((rule.distinct_lookback for rule in rules), default=timedelta(0))
    return max((rule.lookback for rule in rules), default=timedelta(0))


_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug(text: str) -> str:
    """Lowercase, runs of non-alphanumerics (ASCII) replaced by one ``-``, trimmed."""
    return _NOT_SLUG.sub("-", text.lower()).strip("-") or "-"


def incident_id(opened_at: datetime, rule: str, brand: str) -> str:
    """The deterministic id of an incident of ``(rule, brand)`` opened at ``opened_at``."""
    return f"{as_utc(opened_at):%Y%m%dT%H%M%SZ}-{slug(brand)}-{slug(rule)}"


def rule_brands(rule: CompiledRule, brands: Sequence[str]) -> list[str]:
    """Those of ``brands`` that ``rule`` applies to, in their order."""
    if rule.brands is None:
        return list(brands)
    wanted = set(rule.brands)
    return [b for b in brands if b in wanted]


def evaluate_rule(
    rule: CompiledRule,
    brands: Sequence[str],
    view: CountView,
    state: EngineState,
    now: datetime,
    quiet: Container[str] = (),
) -> tuple[EngineState, list[IncidentEvent]]:
    """Evaluate one rule for each of ``brands`` it applies to, at ``now``.

    ``brands`` are the configured brand names; the rule's own brand list filters them.
    Brands in ``quiet`` cannot open a new incident (their windows hold backfilled
    history); their timers still run and their open incidents still move.
    Returns a new state (``state`` is not changed) and the events, in brand order.
    Exceptions from conditions propagate, with ``state`` untouched.
    """
    state, events, _ = evaluate_rule_checks(rule, brands, view, state, now, quiet)
    return state, events


def evaluate_rule_checks(
    rule: CompiledRule,
    brands: Sequence[str],
    view: CountView,
    state: EngineState,
    now: datetime,
    quiet: Container[str] = (),
    *,
    still: Container[str] = frozenset(),
) -> tuple[EngineState, list[IncidentEvent], dict[str, tuple[Check, ...]]]:
    """:func:`evaluate_rule`, also returning the checks it made: per brand evaluated, the
    check of each level's ``when`` (in level order), for gauges and facts to reuse.

    ``still``: brands for which no level's ``when`` holds at ``now``, known beforehand
    (the screen, ``listener.rules.screen``). Such a brand whose key has no open incident
    and no level timer running is not checked: its new state is what checking it would
    give (timers stopped, nothing opened), and it has no entry in the checks returned."""
    now = as_utc(now)
    updates: dict[tuple[str, str], KeyState] = {}
    events: list[IncidentEvent] = []
    made: dict[str, tuple[Check, ...]] = {}
    keys = state.keys
    for brand in rule_brands(rule, brands):
        old = keys.get((rule.name, brand))
        if brand in still and (old is None or _resting(old)):
            rested = _rested(rule, old)
            if rested is not old:  # else checking it would leave it as it is
                updates[(rule.name, brand)] = rested
            continue
        key_state, event, checks = _evaluate_key(
            rule, brand, view, old or KeyState(), now, brand in quiet
        )
        updates[(rule.name, brand)] = key_state
        made[brand] = checks
        if event is not None:
            events.append(event)
    return state.with_keys(updates), events, made


def _resting(key_state: KeyState) -> bool:
    """No open incident and no level timer running: a key that no holding level moves."""
    return key_state.incident is None and all(
        timer.since is None for timer in key_state.timers.values()
    )


def _rested(rule: CompiledRule, old: KeyState | None) -> KeyState:
    """The state :func:`_decide` leaves a resting key in when no level holds: every
    level's timer stopped, ``last_held`` kept (the same object when nothing changes)."""
    timers = old.timers if old is not None else {}
    if (
        old is not None
        and len(timers) == len(rule.levels)
        and all(level.name in timers for level in rule.levels)
    ):
        return old
    return KeyState(
        {
            level.name: LevelTimer(since=None, last_held=_last_held(timers, level.name))
            for level in rule.levels
        },
        None,
    )


def next_change(
    rule: CompiledRule, key_state: KeyState | None, evaluated: datetime
) -> datetime | None:
    """While no level of ``rule`` holds for a key, the earliest time at which evaluating
    it can change it, given ``key_state``, what its evaluation at ``evaluated`` left:

    * a level timer running (a level held then): ``evaluated`` (the next evaluation
      stops it);
    * no incident: None (it rests: nothing moves it until a level holds);
    * an incident at a level at or below which some level has an ``exit``:
      ``evaluated`` (only an evaluation can check it, and while it does not hold its
      level fires again, all-clear or not);
    * an incident whose levels all stopped firing: when it resolves (``clear_since +
      resolve_after``);
    * else the next time a held level stops firing (``last_held + keep_firing_for``,
      which may move the incident down or start its all-clear).

    Every evaluation before that time leaves the key as it is (:func:`_decide`: no timer
    runs, the same levels fire, the incident neither moves nor resolves)."""
    if key_state is None:
        return None
    timers = key_state.timers
    if any(timer.since is not None for timer in timers.values()):
        return evaluated
    incident = key_state.incident
    if incident is None:
        return None
    current = rule.level(incident.level)
    held = rule.levels[: current.rank + 1] if current is not None else ()
    if any(level.exit is not None for level in held):
        return evaluated  # an exit that stops holding fires its level again, all-clear or not
    if incident.clear_since is not None:
        return incident.clear_since + rule.resolve_after
    stops: list[datetime] = []
    for level in held:
        last = _last_held(timers, level.name)
        if last is not None and last + level.keep_firing_for > evaluated:
            stops.append(last + level.keep_firing_for)
    # none still firing: the next evaluation starts the all-clear
    return min(stops, default=evaluated)


def next_move(
    rule: CompiledRule, key_state: KeyState | None, evaluated: datetime
) -> datetime | None:
    """While every level's ``when`` of ``rule`` holds for a key exactly as it held at
    ``evaluated`` (each holding level still holding, the others still not), the earliest
    time at which evaluating it can change more than its holding levels' ``last_held``,
    given ``key_state``, what its evaluation at ``evaluated`` left (a level held then
    exactly when its timer runs, ``since`` set):

    * a holding level that does not fire yet (``for``: above the incident's level, or any
      level with no incident): when it has held for ``for`` (it opens or escalates);
    * a held level (at or below the incident's level) that no longer holds: the next time
      one stops firing (``last_held + keep_firing_for``, which may move the incident down
      or start its all-clear);
    * an incident with no level firing: when it resolves (``clear_since +
      resolve_after``);
    * a held level with an ``exit``: ``evaluated`` (only an evaluation can check it);
    * None when nothing moves while the levels hold as they did (no incident and no
      level holding).

    Every evaluation before that time, with the levels holding so, decides as the one at
    ``evaluated`` did (:func:`_decide`: no event; the same timers, but for ``last_held``
    of the holding levels, which is the time of the evaluation). So a replay that knows
    which levels hold at each step evaluates only the steps where that changes and the
    last step before it does (to record when each level last held), and the times this
    gives."""
    if key_state is None:
        return None
    timers = key_state.timers
    incident = key_state.incident
    current = rule.level(incident.level) if incident is not None else None
    rank = current.rank if current is not None else -1
    moves: list[datetime] = []
    for level in rule.levels:
        timer = timers.get(level.name)
        since = timer.since if timer is not None else None
        held = incident is not None and level.rank <= rank
        if held and level.exit is not None:
            return evaluated
        if since is not None:
            if not held and since + level.for_ > evaluated:
                moves.append(since + level.for_)
        elif held:
            last = _last_held(timers, level.name)
            if last is not None and last + level.keep_firing_for > evaluated:
                moves.append(last + level.keep_firing_for)
    if incident is not None and incident.clear_since is not None:
        moves.append(incident.clear_since + rule.resolve_after)
    return min(moves, default=None)


def _last_held(timers: Mapping[str, LevelTimer], name: str) -> datetime | None:
    timer = timers.get(name)
    return timer.last_held if timer is not None else None


def evaluate(
    rules: Iterable[CompiledRule],
    brands: Sequence[str],
    view: CountView,
    state: EngineState,
    now: datetime,
) -> tuple[EngineState, list[IncidentEvent]]:
    """:func:`evaluate_rule` for each rule in order (no exception isolation)."""
    events: list[IncidentEvent] = []
    for rule in rules:
        state, found = evaluate_rule(rule, brands, view, state, now)
        events.extend(found)
    return state, events


def _evaluate_key(
    rule: CompiledRule,
    brand: str,
    view: CountView,
    key_state: KeyState,
    now: datetime,
    quiet: bool = False,
) -> tuple[KeyState, IncidentEvent | None, tuple[Check, ...]]:
    checks: dict[str, Check] = {}
    new_state, event = _decide(rule, brand, view, key_state, now, quiet, checks)
    return new_state, event, tuple(checks.values())


def _decide(
    rule: CompiledRule,
    brand: str,
    view: CountView,
    key_state: KeyState,
    now: datetime,
    quiet: bool,
    checks: dict[str, Check],
) -> tuple[KeyState, IncidentEvent | None]:
    """The new state and event of one key; fills ``checks`` with each level's ``when``
    check, in level order."""
    incident = key_state.incident
    current = rule.level(incident.level) if incident is not None else None
    current_rank = current.rank if current is not None else -1

    timers: dict[str, LevelTimer] = {}
    exits: dict[str, Check] = {}
    target: CompiledLevel | None = None
    for level in rule.levels:
        check = level.when.check(view, brand, now)
        checks[level.name] = check
        old = key_state.timers.get(level.name) or LevelTimer()
        if check.holds:
            timer = LevelTimer(since=old.since or now, last_held=now)
        else:
            timer = LevelTimer(since=None, last_held=old.last_held)
        timers[level.name] = timer

        if incident is not None and level.rank <= current_rank:
            firing = check.holds or not _exited(level, view, brand, now, timer, exits)
        else:
            firing = check.holds and timer.since is not None and now - timer.since >= level.for_
        if firing:
            target = level

    if incident is None:
        if target is None or quiet:
            return KeyState(timers, None), None
        opened = Incident(
            id=incident_id(now, rule.name, brand),
            level=target.name,
            peak_level=target.name,
            opened_at=now,
            level_since=now,
        )
        event = _event("opened", opened, rule, brand, None, now, checks[target.name].facts)
        return KeyState(timers, opened), event

    if target is None:
        clear_since = incident.clear_since or now
        if now - clear_since >= rule.resolve_after:
            facts = checks[current.name].facts if current is not None else ()
            closed = replace(incident, clear_since=clear_since, seq=incident.seq + 1)
            event = _event("resolved", closed, rule, brand, incident.level, now, facts)
            return KeyState(timers, None), event
        return KeyState(timers, replace(incident, clear_since=clear_since)), None

    if target.rank == current_rank:
        return KeyState(timers, replace(incident, clear_since=None)), None

    peak = rule.level(incident.peak_level)
    peak_level = target.name if peak is None or target.rank > peak.rank else incident.peak_level
    moved = replace(
        incident,
        level=target.name,
        peak_level=peak_level,
        level_since=now,
        clear_since=None,
        seq=incident.seq + 1,
    )
    if current is None or target.rank > current_rank:
        facts = checks[target.name].facts
        event = _event("escalated", moved, rule, brand, incident.level, now, facts)
    else:
        facts = exits[current.name].facts if current.name in exits else checks[current.name].facts
        event = _event("deescalated", moved, rule, brand, incident.level, now, facts)
    return KeyState(timers, moved), event


def _exited(
    level: CompiledLevel,
    view: CountView,
    brand: str,
    now: datetime,
    timer: LevelTimer,
    exits: dict[str, Check],
) -> bool:
    """Whether a held level whose ``when`` does not hold now has stopped firing."""
    if level.exit is not None:
        check = level.exit.check(view, brand, now)
        exits[level.name] = check
        if not check.holds:
            return False
    return timer.last_held is None or now - timer.last_held >= level.keep_firing_for


def _event(
    kind: EventKind,
    incident: Incident,
    rule: CompiledRule,
    brand: str,
    previous_level: str | None,
    now: datetime,
    facts: tuple[Fact, ...],
) -> IncidentEvent:
    return IncidentEvent(
        kind=kind,
        incident_id=incident.id,
        seq=incident.seq,
        rule=rule.name,
        brand=brand,
        level=incident.level,
        previous_level=previous_level,
        peak_level=incident.peak_level,
        at=now,
        facts=facts,
    )
