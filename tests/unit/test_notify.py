"""The notification policy: routes, follow-ups, silences, inhibition, reminders,
hand-offs and acknowledgements, with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from listener.model import Ack, Silence
from listener.rules.notify import (
    IncidentChange,
    InhibitRule,
    Notice,
    NotifyState,
    Policy,
    Step,
    next_tick,
    on_changes,
    on_tick,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
ROUTES = {"watch": ["social"], "elevated": ["social", "pr"], "crisis": ["social", "pr", "pager"]}


def policy(**kw: object) -> Policy:
    return Policy(route=lambda rule, level: ROUTES.get(level, []), **kw)  # type: ignore[arg-type]


def change(
    kind: str,
    level: str,
    seq: int,
    at: datetime,
    inc: str = "inc-a",
    brand: str = "Acme",
    rule: str = "neg",
) -> IncidentChange:
    return IncidentChange(f"{inc}#{seq}", kind, inc, rule, brand, level, at)  # type: ignore[arg-type]


def sent(notices: list[Notice]) -> list[tuple[str, tuple[str, ...]]]:
    return [(n.kind, n.sinks) for n in notices]


def test_levels_route_and_follow_ups_reach_whoever_heard() -> None:
    """Opened/escalated go to the level's route; de-escalation and resolution go to every
    sink that heard about the incident."""
    p = policy()
    state, out = on_changes([change("opened", "watch", 1, T0)], NotifyState(), [], p, T0)
    state, out2 = on_changes([change("escalated", "crisis", 2, T0)], state, [], p, T0)
    state, out3 = on_changes([change("deescalated", "watch", 3, T0)], state, [], p, T0)
    state, out4 = on_changes([change("resolved", "watch", 4, T0)], state, [], p, T0)
    assert sent(out + out2 + out3 + out4) == [
        ("opened", ("social",)),
        ("escalated", ("social", "pr", "pager")),
        ("deescalated", ("social", "pr", "pager")),
        ("resolved", ("social", "pr", "pager")),
    ]
    assert state.incidents == {}


def test_silence_mutes_then_catch_up_after_expiry() -> None:
    """A silenced opening is recorded as muted; when the silence ends while the incident
    is still open, one catch-up reminder goes out; a resolve nobody heard is muted."""
    silence = Silence("sil-1", T0, T0 + timedelta(hours=1), "ana", "maintenance", brand="Acme")
    p = policy()
    state, out = on_changes([change("opened", "watch", 1, T0)], NotifyState(), [silence], p, T0)
    assert (out[0].sinks, out[0].muted) == ((), "silenced sil-1")
    state, ticks = on_tick(state, [silence], {}, p, T0 + timedelta(minutes=30))
    assert ticks == []
    state, ticks = on_tick(state, [silence], {}, p, T0 + timedelta(hours=1))
    assert sent(ticks) == [("reminder", ("social",))]
    state, ticks = on_tick(state, [silence], {}, p, T0 + timedelta(hours=2))
    assert ticks == []  # no repeat interval configured
    _, out = on_changes([change("resolved", "watch", 2, T0)], state, [], p, T0)
    assert sent(out) == [("resolved", ("social",))]


def test_silence_matches_rule_and_level() -> None:
    """A silence on one level leaves other levels audible."""
    silence = Silence("sil-2", T0, T0 + timedelta(days=1), "ana", "known", level="watch")
    p = policy()
    state, out = on_changes([change("opened", "watch", 1, T0)], NotifyState(), [silence], p, T0)
    state, out2 = on_changes([change("escalated", "crisis", 2, T0)], state, [silence], p, T0)
    assert out[0].muted == "silenced sil-2"
    assert out2[0].sinks == ("social", "pr", "pager")


def test_inhibition_mutes_lower_levels_of_the_same_brand() -> None:
    """While Acme is in crisis, another rule's watch alert for Acme is muted; another
    brand is not."""
    p = policy(inhibit=[InhibitRule(frozenset({"crisis"}), frozenset({"watch"}))])
    state, _ = on_changes(
        [change("opened", "crisis", 1, T0, inc="inc-a")], NotifyState(), [], p, T0
    )
    state, out = on_changes(
        [change("opened", "watch", 1, T0, inc="inc-b", rule="other")], state, [], p, T0
    )
    assert out[0].muted == "inhibited by inc-a"
    state, out = on_changes(
        [change("opened", "watch", 1, T0, inc="inc-c", brand="Globex")], state, [], p, T0
    )
    assert out[0].sinks == ("social",)


def test_reminders_repeat_until_acknowledged() -> None:
    """Reminders go out every repeat interval and stop once someone acknowledges."""
    p = policy(repeat=lambda rule: timedelta(minutes=30))
    state, _ = on_changes([change("opened", "elevated", 1, T0)], NotifyState(), [], p, T0)
    state, t1 = on_tick(state, [], {}, p, T0 + timedelta(minutes=29))
    state, t2 = on_tick(state, [], {}, p, T0 + timedelta(minutes=30))
    state, t3 = on_tick(state, [], {}, p, T0 + timedelta(minutes=45))
    ack = Ack("ana", T0 + timedelta(minutes=50), "on it")
    state, t4 = on_tick(state, [], {"inc-a": ack}, p, T0 + timedelta(minutes=50))
    state, t5 = on_tick(state, [], {"inc-a": ack}, p, T0 + timedelta(hours=3))
    assert t1 == []
    assert t3 == []
    assert t5 == []
    assert [n.alert_id for n in t2] == ["inc-a#reminder-1"]
    assert sent(t4) == [("acknowledged", ("social", "pr"))]
    assert t4[0].ack == ack


def test_handoff_pages_the_next_route_when_nobody_acknowledges() -> None:
    """Unacknowledged at a level for 15m → PR lead; 45m → exec; an ack stops the chain."""
    steps = [Step(timedelta(minutes=15), ("pr-lead",)), Step(timedelta(minutes=45), ("exec",))]
    p = policy(steps=lambda rule, level: steps if level == "crisis" else [])
    state, _ = on_changes([change("opened", "crisis", 1, T0)], NotifyState(), [], p, T0)
    state, t1 = on_tick(state, [], {}, p, T0 + timedelta(minutes=20))
    assert [(n.alert_id, n.sinks) for n in t1] == [("inc-a#handoff-1", ("pr-lead",))]
    ack = Ack("lee", T0 + timedelta(minutes=30))
    state, t2 = on_tick(state, [], {"inc-a": ack}, p, T0 + timedelta(hours=1))
    assert [n.kind for n in t2] == ["acknowledged"]
    assert "pr-lead" in t2[0].sinks  # the PR lead heard, so hears it is taken


def test_handoffs_restart_at_a_new_level() -> None:
    """Escalating to a level starts that level's escalation clock."""
    steps = [Step(timedelta(minutes=15), ("pr-lead",))]
    p = policy(steps=lambda rule, level: steps)
    state, _ = on_changes([change("opened", "watch", 1, T0)], NotifyState(), [], p, T0)
    state, t1 = on_tick(state, [], {}, p, T0 + timedelta(minutes=16))
    later = T0 + timedelta(minutes=20)
    state, _ = on_changes([change("escalated", "crisis", 2, later)], state, [], p, later)
    state, t2 = on_tick(state, [], {}, p, later + timedelta(minutes=10))
    state, t3 = on_tick(state, [], {}, p, later + timedelta(minutes=15))
    assert [n.alert_id for n in t1 + t2 + t3] == ["inc-a#handoff-1", "inc-a#handoff-2"]
    assert t3[0].level == "crisis"


def test_handoff_ids_stay_unique_across_a_restart() -> None:
    """The hand-off count of the incident's whole life is saved: after a restart at a new
    level, the next page gets a new id (a reused one would be dropped by the outbox)."""
    steps = [Step(timedelta(minutes=15), ("pr-lead",))]
    p = policy(steps=lambda rule, level: steps)
    state, _ = on_changes([change("opened", "watch", 1, T0)], NotifyState(), [], p, T0)
    state, t1 = on_tick(state, [], {}, p, T0 + timedelta(minutes=16))
    later = T0 + timedelta(minutes=20)
    state, _ = on_changes([change("escalated", "crisis", 2, later)], state, [], p, later)
    state = NotifyState.from_json(state.to_json())
    state, t2 = on_tick(state, [], {}, p, later + timedelta(minutes=16))
    assert [n.alert_id for n in t1 + t2] == ["inc-a#handoff-1", "inc-a#handoff-2"]


def test_state_round_trips_through_json() -> None:
    """The notification state survives a restart unchanged."""
    p = policy(repeat=lambda rule: timedelta(minutes=5))
    state, _ = on_changes([change("opened", "crisis", 1, T0)], NotifyState(), [], p, T0)
    state, _ = on_tick(state, [], {"inc-a": Ack("ana", T0)}, p, T0 + timedelta(minutes=1))
    assert NotifyState.from_json(state.to_json()) == state


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["tick", "escalate", "ack", "silence", "unsilence", "restart"]),
        st.integers(min_value=0, max_value=120),
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(EVENTS)
def test_no_alert_id_is_ever_produced_twice(script: list[tuple[str, int]]) -> None:
    """Whatever the sequence of ticks, escalations, acks, silences and restarts (the state
    saved and loaded again), every alert id is produced at most once (the outbox relies on
    it), and nothing is sent while silenced."""
    steps = [Step(timedelta(minutes=10), ("pr-lead",)), Step(timedelta(minutes=30), ("exec",))]
    p = policy(
        repeat=lambda rule: timedelta(minutes=15),
        steps=lambda rule, level: steps,
        inhibit=[InhibitRule(frozenset({"crisis"}), frozenset({"watch"}))],
    )
    now = T0
    silences: list[Silence] = []
    acks: dict[str, Ack] = {}
    state, notices = on_changes(
        [change("opened", "watch", 1, now)], NotifyState(), silences, p, now
    )
    seq, level = 1, "watch"
    for action, minutes in script:
        now += timedelta(minutes=minutes)
        if action == "escalate" and level != "crisis":
            seq, level = seq + 1, {"watch": "elevated", "elevated": "crisis"}[level]
            state, out = on_changes([change("escalated", level, seq, now)], state, silences, p, now)
            notices += out
        elif action == "ack":
            acks.setdefault("inc-a", Ack("ana", now))
        elif action == "silence":
            silences = [Silence("s", now, now + timedelta(minutes=60), "x", "y")]
        elif action == "unsilence":
            silences = []
        elif action == "restart":
            state = NotifyState.from_json(state.to_json())
        state, out = on_tick(state, silences, acks, p, now)
        for n in out:
            if n.kind in ("reminder", "handoff") and any(s.active(now) for s in silences):
                assert not n.sinks
        notices += out
    ids = [n.alert_id for n in notices]
    assert len(ids) == len(set(ids))
    assert sum(n.kind == "acknowledged" for n in notices) <= 1


def test_a_reminder_due_while_muted_is_recorded_once_per_interval() -> None:
    """A reminder that falls due under a silence is recorded as muted (no sinks), once per
    repeat interval however often the tick runs; it goes out as soon as the silence ends."""
    p = policy(repeat=lambda rule: timedelta(minutes=30))
    state, _ = on_changes([change("opened", "watch", 1, T0)], NotifyState(), [], p, T0)
    silence = Silence("sil-1", T0, T0 + timedelta(minutes=75), "ana", "known issue")
    out: list[Notice] = []
    for minutes in range(5, 75, 5):
        state, ticks = on_tick(state, [silence], {}, p, T0 + timedelta(minutes=minutes))
        out += ticks
        state = NotifyState.from_json(state.to_json())  # survives a restart
    assert [(n.alert_id, n.sinks, n.muted) for n in out] == [
        ("inc-a#reminder-1", (), "silenced sil-1"),
        ("inc-a#reminder-2", (), "silenced sil-1"),
    ]
    state, ticks = on_tick(state, [silence], {}, p, T0 + timedelta(minutes=75))
    assert [(n.alert_id, n.sinks, n.muted) for n in ticks] == [
        ("inc-a#reminder-3", ("social",), None)
    ]


@settings(max_examples=200, deadline=None)
@given(
    opened=st.lists(
        st.tuples(st.sampled_from(["watch", "elevated", "crisis"]), st.integers(0, 30)),
        min_size=1,
        max_size=3,
    ),
    repeat=st.sampled_from([None, 7, 20]),
    handoffs=st.lists(st.integers(1, 40), max_size=2),
    silence=st.sampled_from([None, (5, 25), (-10, 40)]),
    inhibit=st.booleans(),
)
def test_nothing_is_sent_or_recorded_before_the_next_tick(
    opened: list[tuple[str, int]],
    repeat: int | None,
    handoffs: list[int],
    silence: tuple[int, int] | None,
    inhibit: bool,
) -> None:
    """Ticking at any minute before ``next_tick`` sends and records nothing and leaves
    the state as it is; after it, ticks go on from the new state."""
    steps = [Step(timedelta(minutes=m), ("pager",)) for m in sorted(handoffs)]
    p = policy(
        repeat=lambda rule: None if repeat is None else timedelta(minutes=repeat),
        steps=lambda rule, level: steps if level != "watch" else [],
        inhibit=[InhibitRule(frozenset({"crisis"}), frozenset({"watch"}))] if inhibit else [],
    )
    silences = (
        []
        if silence is None
        else [
            Silence(
                "s1",
                T0 + timedelta(minutes=silence[0]),
                T0 + timedelta(minutes=silence[1]),
                "ana",
                "",
                level="elevated",
            )
        ]
    )
    state = NotifyState()
    for i, (level, minute) in enumerate(opened):
        at = T0 + timedelta(minutes=minute)
        state, _ = on_changes(
            [change("opened", level, 1, at, inc=f"inc-{i}", rule=f"r{i}")], state, silences, p, at
        )
    ticked = T0 + timedelta(minutes=max(m for _, m in opened))
    state, _ = on_tick(state, silences, {}, p, ticked)
    for minute in range(1, 120):
        now = ticked + timedelta(minutes=minute)
        due = next_tick(state, p, silences, ticked)
        after, notices = on_tick(state, silences, {}, p, now)
        if due is None or now < due:
            assert notices == [], (now, due)
            assert after == state
        else:
            state, ticked = after, now
