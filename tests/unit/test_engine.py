"""The rule engine: level timers, incident lifecycle, events and persisted state."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.config.schema import Config, Measure
from listener.errors import StoreError
from listener.model import Fact
from listener.rules.engine import (
    CompiledRule,
    EngineState,
    IncidentEvent,
    compile_rules,
    evaluate,
    evaluate_rule,
    evaluate_rule_checks,
    incident_id,
    max_lookback,
    next_change,
    next_move,
    slug,
)
from listener.rules.source_health import plain_error
from listener.rules.state import KeyState, LevelTimer
from listener.scoring.velocity import Sample, VelocityWindows

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


@dataclass
class FakeView:
    """A CountView whose values are the same for every range (set per step), with a long
    history for every brand (no warm-up)."""

    negative: dict[str, int] = field(default_factory=dict)
    total: dict[str, int] = field(default_factory=dict)

    def value(
        self,
        brand: str,
        measure: Measure,
        start: datetime,
        end: datetime,
        *,
        category: str | None = None,
        source: str | None = None,
        language: str | None = None,
    ) -> float:
        """The negative count for ``negative``, the total count for any other measure."""
        table = self.negative if measure == "negative" else self.total
        return table.get(brand, 0)

    def first_seen(self, brand: str) -> datetime | None:
        """A week before T0 for every brand."""
        return T0 - timedelta(days=7)


def vol(above: int) -> dict[str, Any]:
    """A negative-volume condition over 15m."""
    return {"type": "volume", "window": "15m", "above": above}


def below(above: int) -> dict[str, Any]:
    """Holds when negative volume over 15m is under ``above``."""
    return {"type": "not", "condition": vol(above)}


def make_config(levels: dict[str, Any], **rule: Any) -> Config:
    """A config with brands Acme and Globex and one rule ``neg`` with these levels."""
    return Config.model_validate(
        {
            "brands": [{"name": "Acme"}, {"name": "Globex"}],
            "rules": [{"name": "neg", "levels": levels, **rule}],
        }
    )


def one_rule(levels: dict[str, Any], **rule: Any) -> CompiledRule:
    """Compile the single rule of :func:`make_config`."""
    (compiled,) = compile_rules(make_config(levels, **rule))
    return compiled


WARN = {"when": vol(10)}
CRIT = {"when": vol(50)}
TWO = {"warning": WARN, "critical": CRIT}

Step = tuple[int, int, list[tuple[str, str]]]
"""(minute after T0, negative count for Acme, expected (kind, level) events)."""

LIFECYCLES: list[tuple[str, dict[str, Any], dict[str, Any], list[Step]]] = [
    (
        "opens when when holds",
        {"warning": WARN},
        {},
        [(0, 5, []), (1, 10, [("opened", "warning")]), (2, 12, []), (3, 40, [])],
    ),
    (
        "for delays opening",
        {"warning": {**WARN, "for": "3m"}},
        {},
        [(0, 12, []), (1, 12, []), (2, 12, []), (3, 12, [("opened", "warning")])],
    ),
    (
        "for timer resets when when stops holding",
        {"warning": {**WARN, "for": "3m"}},
        {},
        [(0, 12, []), (2, 0, []), (3, 12, []), (5, 12, []), (6, 12, [("opened", "warning")])],
    ),
    (
        "opens directly at the highest firing level",
        TWO,
        {},
        [(0, 60, [("opened", "critical")]), (1, 60, [])],
    ),
    (
        "escalates, de-escalates and resolves after resolve_after",
        TWO,
        {"resolve_after": "10m"},
        [
            (0, 12, [("opened", "warning")]),
            (1, 60, [("escalated", "critical")]),
            (2, 20, [("deescalated", "warning")]),
            (3, 5, []),
            (12, 5, []),
            (13, 5, [("resolved", "warning")]),
            (14, 5, []),
        ],
    ),
    (
        "resolves from a high level without de-escalating first",
        TWO,
        {"resolve_after": "2m"},
        [
            (0, 60, [("opened", "critical")]),
            (1, 0, []),
            (2, 0, []),
            (3, 0, [("resolved", "critical")]),
        ],
    ),
    (
        "for applies to escalation",
        {"warning": WARN, "critical": {**CRIT, "for": "2m"}},
        {},
        [(0, 60, [("opened", "warning")]), (1, 60, []), (2, 60, [("escalated", "critical")])],
    ),
    (
        "exit gives hysteresis",
        {"warning": WARN, "critical": {**CRIT, "exit": below(30)}},
        {},
        [
            (0, 60, [("opened", "critical")]),
            (1, 40, []),
            (2, 45, []),
            (3, 29, [("deescalated", "warning")]),
            (4, 45, []),
            (5, 55, [("escalated", "critical")]),
        ],
    ),
    (
        "keep_firing_for holds a level after when stops",
        {"warning": WARN, "critical": {**CRIT, "keep_firing_for": "5m"}},
        {},
        [
            (0, 60, [("opened", "critical")]),
            (1, 20, []),
            (4, 20, []),
            (5, 20, [("deescalated", "warning")]),
        ],
    ),
    (
        "keep_firing_for restarts each time when holds again",
        {"warning": {**WARN, "keep_firing_for": "5m"}},
        {"resolve_after": "1m"},
        [
            (0, 12, [("opened", "warning")]),
            (1, 0, []),
            (3, 12, []),
            (7, 0, []),
            (8, 0, []),
            (9, 0, [("resolved", "warning")]),
        ],
    ),
    (
        "exit and keep_firing_for must both be satisfied",
        {"warning": {**WARN, "exit": below(5), "keep_firing_for": "3m"}},
        {"resolve_after": "1m"},
        [
            (0, 12, [("opened", "warning")]),
            (1, 4, []),  # exit holds, but only 1m since when last held
            (2, 8, []),  # 2m since, but exit no longer holds
            (3, 4, []),  # clear from here (3m since when last held, exit holds)
            (4, 4, [("resolved", "warning")]),
        ],
    ),
    (
        "a target while clearing resets clear_since",
        {"warning": WARN},
        {"resolve_after": "5m"},
        [
            (0, 12, [("opened", "warning")]),
            (1, 0, []),
            (4, 12, []),
            (5, 0, []),
            (9, 0, []),
            (10, 0, [("resolved", "warning")]),
        ],
    ),
    (
        "de-escalation can happen while clearing",
        TWO,
        {"resolve_after": "5m"},
        [
            (0, 60, [("opened", "critical")]),
            (1, 0, []),
            (2, 20, [("deescalated", "warning")]),
            (3, 0, []),
            (8, 0, [("resolved", "warning")]),
        ],
    ),
    (
        "re-opens after resolving",
        {"warning": WARN},
        {"resolve_after": "1m"},
        [
            (0, 12, [("opened", "warning")]),
            (1, 0, []),
            (2, 0, [("resolved", "warning")]),
            (3, 12, [("opened", "warning")]),
        ],
    ),
]


def run_steps(
    rule: CompiledRule, steps: list[Step], state: EngineState | None = None
) -> tuple[EngineState, list[IncidentEvent]]:
    """Evaluate each step, checking events, idempotency and JSON round-trips on the way."""
    state = state if state is not None else EngineState()
    view = FakeView()
    events: list[IncidentEvent] = []
    for minute, negative, expected in steps:
        now = T0 + minute * MIN
        view.negative["Acme"] = negative
        new_state, produced = evaluate_rule(rule, ["Acme"], view, state, now)
        assert [(e.kind, e.level) for e in produced] == expected, f"at minute {minute}"
        # the same evaluation from a state that went through JSON gives the same result
        restored = EngineState.from_json(state.to_json())
        assert restored == state
        assert evaluate_rule(rule, ["Acme"], view, restored, now) == (new_state, produced)
        # evaluating again at the same now changes nothing
        assert evaluate_rule(rule, ["Acme"], view, new_state, now) == (new_state, [])
        state = new_state
        events.extend(produced)
    return state, events


@pytest.mark.parametrize(
    ("levels", "rule", "steps"),
    [pytest.param(lv, r, s, id=name) for name, lv, r, s in LIFECYCLES],
)
def test_lifecycle(levels: dict[str, Any], rule: dict[str, Any], steps: list[Step]) -> None:
    """Each sequence of counts produces exactly the expected incident events."""
    run_steps(one_rule(levels, **rule), steps)


def test_event_details_through_a_whole_incident() -> None:
    """Events carry id, seq, previous and peak level, time and the deciding facts."""
    rule = one_rule(TWO, resolve_after="2m")
    steps: list[Step] = [
        (0, 12, [("opened", "warning")]),
        (1, 60, [("escalated", "critical")]),
        (2, 20, [("deescalated", "warning")]),
        (3, 0, []),
        (5, 0, [("resolved", "warning")]),
    ]
    _, events = run_steps(rule, steps)
    iid = "20260302T090000Z-acme-neg"
    assert [(e.incident_id, e.seq, e.alert_id) for e in events] == [
        (iid, n, f"{iid}#{n}") for n in (1, 2, 3, 4)
    ]
    assert [e.previous_level for e in events] == [None, "warning", "critical", "warning"]
    assert [e.peak_level for e in events] == ["warning", "critical", "critical", "critical"]
    assert [e.at for e in events] == [T0, T0 + MIN, T0 + 2 * MIN, T0 + 5 * MIN]
    assert {(e.rule, e.brand) for e in events} == {("neg", "Acme")}
    name = "negative mentions in 15m"
    assert [e.facts for e in events] == [
        (Fact(name, 12, threshold=10),),
        (Fact(name, 60, threshold=50),),
        (Fact(name, 20, threshold=50),),
        (Fact(name, 0, threshold=10),),
    ]


def test_deescalation_facts_come_from_the_exit_condition() -> None:
    """A de-escalation caused by an explicit exit reports the exit's facts."""
    rule = one_rule({"warning": WARN, "critical": {**CRIT, "exit": below(30)}})
    _, events = run_steps(
        rule, [(0, 60, [("opened", "critical")]), (1, 20, [("deescalated", "warning")])]
    )
    assert events[1].facts == (Fact("negative mentions in 15m", 20, threshold=30),)


def test_reopened_incident_gets_a_new_id() -> None:
    """After resolving, the next incident of the same key has a new id and seq 1."""
    rule = one_rule({"warning": WARN}, resolve_after="1m")
    steps: list[Step] = [
        (0, 12, [("opened", "warning")]),
        (1, 0, []),
        (2, 0, [("resolved", "warning")]),
        (3, 12, [("opened", "warning")]),
    ]
    state, events = run_steps(rule, steps)
    assert events[0].incident_id == "20260302T090000Z-acme-neg"
    assert events[2].incident_id == "20260302T090300Z-acme-neg"
    assert events[2].seq == 1
    (inc,) = state.open_incidents()
    assert inc.incident_id == events[2].incident_id
    assert (inc.level, inc.peak_level, inc.opened_at) == ("warning", "warning", T0 + 3 * MIN)


def test_json_round_trip_mid_sequence_continues_identically() -> None:
    """Persisting and restoring the state mid-incident continues with the same events."""
    rule = one_rule(TWO, resolve_after="3m")
    first: list[Step] = [(0, 12, [("opened", "warning")]), (1, 60, [("escalated", "critical")])]
    rest: list[Step] = [
        (2, 0, []),
        (3, 20, [("deescalated", "warning")]),
        (4, 0, []),
        (7, 0, [("resolved", "warning")]),
    ]
    straight, straight_events = run_steps(rule, first + rest)
    middle, first_events = run_steps(rule, first)
    text = middle.to_json()
    assert json.loads(text)["version"] == 1
    resumed, rest_events = run_steps(rule, rest, EngineState.from_json(text))
    assert resumed == straight
    assert first_events + rest_events == straight_events


def test_unknown_state_version_is_a_store_error() -> None:
    """State written by a newer listener is refused with an explanation."""
    with pytest.raises(StoreError, match="newer listener"):
        EngineState.from_json(json.dumps({"version": 2, "keys": []}))


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"keys": []}',
        '{"version": 0, "keys": []}',
        '{"version": 1}',
        '{"version": 1, "keys": [{"rule": "r"}]}',
        '{"version": 1, "keys": [{"rule": "r", "brand": "b", "timers": {}, '
        '"incident": {"id": "x", "level": "w", "peak_level": "w", "opened_at": "nope", '
        '"level_since": "nope", "clear_since": null, "seq": 1}}]}',
    ],
)
def test_malformed_state_is_a_store_error(text: str) -> None:
    """Unreadable or incomplete state is refused with StoreError, never another exception."""
    with pytest.raises(StoreError):
        EngineState.from_json(text)


def test_brands_are_independent_and_filtered_by_rule() -> None:
    """Each brand has its own incident; a rule's brand list limits which brands it sees."""
    config = Config.model_validate(
        {
            "brands": [{"name": "Acme"}, {"name": "Globex"}],
            "rules": [
                {"name": "all-brands", "levels": {"warning": WARN}},
                {"name": "globex-only", "brands": ["Globex"], "levels": {"warning": WARN}},
            ],
        }
    )
    rules = compile_rules(config)
    assert [r.brands for r in rules] == [None, ("Globex",)]
    view = FakeView(negative={"Acme": 12, "Globex": 30})
    state, events = evaluate(rules, config.brand_names(), view, EngineState(), T0)
    assert [(e.rule, e.brand, e.kind) for e in events] == [
        ("all-brands", "Acme", "opened"),
        ("all-brands", "Globex", "opened"),
        ("globex-only", "Globex", "opened"),
    ]
    assert [(o.rule, o.brand) for o in state.open_incidents()] == [
        ("all-brands", "Acme"),
        ("all-brands", "Globex"),
        ("globex-only", "Globex"),
    ]
    view.negative["Acme"] = 0
    later, more = evaluate(rules, config.brand_names(), view, state, T0 + MIN)
    assert more == []
    assert later.get("all-brands", "Acme").incident is not None
    assert later.get("all-brands", "Globex").incident == state.get("all-brands", "Globex").incident


def test_unconfigured_keys_are_untouched_and_prunable() -> None:
    """Keys of rules or brands not evaluated stay as they are until pruned."""
    old_rule = one_rule({"warning": WARN})
    state, _ = evaluate_rule(
        old_rule, ["Acme", "Globex"], FakeView({"Acme": 12}), EngineState(), T0
    )
    other = one_rule({"warning": {"when": vol(1)}})
    other = CompiledRule("other", None, other.levels, other.resolve_after)
    state2, _ = evaluate_rule(other, ["Acme"], FakeView(), state, T0 + MIN)
    assert state2.get("neg", "Acme") == state.get("neg", "Acme")
    assert state2.get("neg", "Globex") == state.get("neg", "Globex")
    assert len(state2.open_incidents()) == 1
    assert set(state2.prune(["other"]).keys) == {("other", "Acme")}
    assert set(state2.prune(["neg", "other"], brands=["Globex"]).keys) == {("neg", "Globex")}
    assert state2.prune(["neg", "other"]) is state2


def test_evaluate_rule_does_not_change_its_input_state() -> None:
    """evaluate_rule returns a new state and leaves the one passed in as it was."""
    rule = one_rule({"warning": WARN})
    before = EngineState()
    text = before.to_json()
    after, _ = evaluate_rule(rule, ["Acme"], FakeView({"Acme": 12}), before, T0)
    assert before.to_json() == text
    assert after != before


def test_renamed_level_of_open_incident() -> None:
    """An incident at a level no longer configured escalates to any firing level or resolves."""
    original = one_rule({"warn": WARN}, resolve_after="1m")
    state, _ = evaluate_rule(original, ["Acme"], FakeView({"Acme": 12}), EngineState(), T0)
    renamed = one_rule({"warning": WARN}, resolve_after="1m")
    state, events = evaluate_rule(renamed, ["Acme"], FakeView({"Acme": 12}), state, T0 + MIN)
    assert [(e.kind, e.level, e.previous_level, e.peak_level) for e in events] == [
        ("escalated", "warning", "warn", "warning")
    ]
    # back to the old config, which does not know "warning": it can only resolve
    state, events = evaluate_rule(original, ["Acme"], FakeView(), state, T0 + 2 * MIN)
    assert events == []
    state, events = evaluate_rule(original, ["Acme"], FakeView(), state, T0 + 3 * MIN)
    assert [(e.kind, e.level, e.facts) for e in events] == [("resolved", "warning", ())]


def test_with_velocity_windows() -> None:
    """The engine opens and resolves on real bucketed counts from VelocityWindows."""
    rule = one_rule({"warning": {"when": vol(3), "for": "1m"}}, resolve_after="5m")
    windows = VelocityWindows(retention=timedelta(hours=1))
    for second in (10, 20, 30):
        windows.add("Acme", T0 + timedelta(seconds=second), Sample(negative=True))
    windows.add("Acme", T0 + timedelta(seconds=40), Sample(negative=False))
    state, events = evaluate_rule(rule, ["Acme"], windows, EngineState(), T0 + MIN)
    assert events == []
    state, events = evaluate_rule(rule, ["Acme"], windows, state, T0 + 2 * MIN)
    assert [(e.kind, e.facts[0].value) for e in events] == [("opened", 3)]
    # the bucket at T0 leaves the 15m window at T0+15m+1s; clear then, resolve 5m later
    state, events = evaluate_rule(rule, ["Acme"], windows, state, T0 + 15 * MIN)
    assert events == []
    state, events = evaluate_rule(
        rule, ["Acme"], windows, state, T0 + 15 * MIN + timedelta(seconds=1)
    )
    assert events == []
    state, events = evaluate_rule(
        rule, ["Acme"], windows, state, T0 + 20 * MIN + timedelta(seconds=1)
    )
    assert [e.kind for e in events] == ["resolved"]


def test_compile_rules_and_lookback() -> None:
    """compile_rules keeps level order and settings; lookback covers when and exit windows."""
    config = make_config(
        {
            "warning": {"when": vol(10), "for": "2m", "keep_firing_for": "1m"},
            "critical": {
                "when": {"type": "spike", "window": "10m", "baseline": "6h"},
                "exit": {"type": "volume", "window": "7h", "above": 1},
            },
        },
        resolve_after="45m",
    )
    (rule,) = compile_rules(config)
    assert [(lv.name, lv.rank) for lv in rule.levels] == [("warning", 0), ("critical", 1)]
    assert rule.levels[0].for_ == 2 * MIN
    assert rule.levels[0].keep_firing_for == MIN
    assert rule.levels[0].exit is None
    assert rule.levels[1].exit is not None
    assert rule.resolve_after == 45 * MIN
    assert rule.lookback == timedelta(hours=7)
    assert max_lookback([rule]) == timedelta(hours=7)
    assert max_lookback([]) == timedelta(0)
    assert rule.distinct_lookback == timedelta(0)
    assert max_lookback([rule], distinct=True) == timedelta(0)


def test_distinct_lookback_covers_voice_and_story_conditions() -> None:
    """A rule's distinct_lookback is the furthest any of its conditions reads voices/stories."""
    voices = {"type": "volume", "metric": "negative_voices", "window": "2h", "above": 5}
    stories = {"type": "spike", "metric": "stories", "window": "10m", "baseline": "1h"}
    rule = one_rule({"warning": {"when": voices}, "critical": {"when": vol(50), "exit": stories}})
    assert rule.distinct_lookback == timedelta(hours=2)
    assert max_lookback([rule], distinct=True) == timedelta(hours=2)


def test_warm_up_keeps_a_new_brand_from_spiking() -> None:
    """A spike on a brand first seen less than its look-back ago opens nothing; later it does."""
    spike = {"type": "spike", "window": "15m", "baseline": "1h", "min_volume": 5}
    rule = one_rule({"warning": {"when": spike}})
    windows = VelocityWindows(retention=timedelta(hours=3))
    for second in range(0, 600, 30):  # 20 negative mentions in the first 10 minutes
        windows.add("Acme", T0 + timedelta(seconds=second), Sample(negative=True))
    state, events = evaluate_rule(rule, ["Acme"], windows, EngineState(), T0 + 10 * MIN)
    assert events == []
    assert state.get("neg", "Acme").timers["warning"].since is None
    later = T0 + 75 * MIN
    for second in range(0, 600, 30):
        windows.add("Acme", later - timedelta(seconds=second + 1), Sample(negative=True))
    state, events = evaluate_rule(rule, ["Acme"], windows, state, later)
    assert [(e.kind, e.facts[0].value) for e in events] == [("opened", 20)]


def test_incident_ids_and_slugs() -> None:
    """Incident ids are the UTC opening second, the brand slug and the rule slug."""
    assert slug("AT&T  Mobile!") == "at-t-mobile"
    assert slug("***") == "-"
    assert incident_id(T0 + timedelta(seconds=5.5), "Neg.Volume", "Café") == (
        "20260302T090005Z-caf-neg-volume"
    )


RANDOM_RULES = [
    one_rule(TWO, resolve_after="3m"),
    one_rule(
        {
            "low": {"when": vol(5), "for": "2m"},
            "mid": {"when": vol(20), "exit": below(10), "keep_firing_for": "2m"},
            "high": {"when": vol(60), "for": "1m", "keep_firing_for": "3m"},
        },
        resolve_after="2m",
    ),
]


@settings(max_examples=60, deadline=None)
@given(
    rule_index=st.sampled_from([0, 1]),
    steps=st.lists(
        st.tuples(st.integers(min_value=0, max_value=4), st.integers(min_value=0, max_value=80)),
        max_size=30,
    ),
)
def test_random_sequences_keep_lifecycle_invariants(
    rule_index: int, steps: list[tuple[int, int]]
) -> None:
    """For any count sequence, events form valid incident lifecycles, idempotently."""
    rule = RANDOM_RULES[rule_index]
    rank = {level.name: level.rank for level in rule.levels}
    state, view, now = EngineState(), FakeView(), T0
    last: dict[str, IncidentEvent] = {}
    open_id: str | None = None
    for gap, negative in steps:
        now += gap * MIN
        view.negative["Acme"] = negative
        new_state, events = evaluate_rule(rule, ["Acme"], view, state, now)
        assert evaluate_rule(rule, ["Acme"], view, new_state, now) == (new_state, [])
        restored = EngineState.from_json(state.to_json())
        assert evaluate_rule(rule, ["Acme"], view, restored, now) == (new_state, events)
        assert len(events) <= 1
        for event in events:
            prev = last.get(event.incident_id)
            if event.kind == "opened":
                assert prev is None
                assert open_id is None
                assert (event.seq, event.previous_level) == (1, None)
                open_id = event.incident_id
            else:
                assert prev is not None
                assert event.incident_id == open_id
                assert event.seq == prev.seq + 1
                assert event.previous_level == prev.level
                if event.kind == "escalated":
                    assert rank[event.level] > rank[prev.level]
                elif event.kind == "deescalated":
                    assert rank[event.level] < rank[prev.level]
                else:
                    assert event.level == prev.level
                    open_id = None
            expected_peak = max(
                [event.level] + ([prev.peak_level] if prev else []), key=rank.__getitem__
            )
            assert event.peak_level == expected_peak
            last[event.incident_id] = event
        state = new_state
        assert [o.incident_id for o in state.open_incidents()] == ([open_id] if open_id else [])


@pytest.mark.parametrize(
    ("message", "plain"),
    [
        ("https://feeds.example.com/rss: HTTP 503", "HTTP 503 from feeds.example.com"),
        ("https://f.example/x: timed out after 10s", "timed out after 10s (f.example)"),
        (
            "https://f.example/x: HTTP 429 rate limited, retry after 30s",
            "HTTP 429 from f.example (rate limited, retry after 30s)",
        ),
        (
            "https://f.example/x: ConnectError: [Errno 111] Connection refused",
            "Connection refused (f.example)",
        ),
        ("X API timed out (ReadTimeout)", "X API timed out"),
        ("", "unexpected error"),
    ],
)
def test_source_errors_in_plain_words(message: str, plain: str) -> None:
    """A source's last error reads as words in its health alert: status and host, no
    library class names."""
    assert plain_error(message) == plain


def test_evaluate_rule_checks_returns_each_levels_when_check() -> None:
    """The checks returned are those of every level's ``when`` for each brand the rule
    applies to, equal to checking them afresh; the state and events are evaluate_rule's."""
    rule = one_rule(
        {"warning": {"when": vol(3)}, "critical": {"when": vol(5), "for": "1m"}},
        resolve_after="5m",
    )
    windows = VelocityWindows(retention=timedelta(hours=1))
    for second in (10, 20, 30, 40):
        windows.add("Acme", T0 + timedelta(seconds=second), Sample(negative=True))
    now = T0 + MIN
    state, events, checks = evaluate_rule_checks(
        rule, ["Acme", "Other"], windows, EngineState(), now
    )
    assert (state, events) == evaluate_rule(rule, ["Acme", "Other"], windows, EngineState(), now)
    assert set(checks) == {"Acme", "Other"}
    for brand, made in checks.items():
        assert made == tuple(level.when.check(windows, brand, now) for level in rule.levels)
    assert [c.holds for c in checks["Acme"]] == [True, False]
    assert rule.levels[0].leaves == ("volume",)


LEVEL_SPECS = st.lists(
    st.tuples(
        st.integers(0, 4),  # for, minutes
        st.integers(0, 8),  # keep_firing_for, minutes
        st.booleans(),  # an exit condition
    ),
    min_size=1,
    max_size=3,
)


@settings(max_examples=200, deadline=None)
@given(
    specs=LEVEL_SPECS,
    resolve_after=st.integers(1, 12),
    counts=st.lists(st.integers(0, 70), max_size=25),
    totals=st.lists(st.integers(0, 6), min_size=60, max_size=60),
)
def test_a_key_changes_nothing_before_its_next_change_while_no_level_holds(
    specs: list[tuple[int, int, bool]], resolve_after: int, counts: list[int], totals: list[int]
) -> None:
    """After a stretch of negative counts, with none from then on (no level holds; all
    mentions, which exits read, still come and go), evaluating the key at any minute
    before ``next_change`` gives no event and leaves its state as it is; once nothing is
    due, it never changes again."""
    rule = _spec_rule(specs, resolve_after)
    view = FakeView()
    state = EngineState()
    for minute, count in enumerate(counts):
        view.negative["Acme"] = view.total["Acme"] = count
        state, _ = evaluate_rule(rule, ["Acme"], view, state, T0 + minute * MIN)
    view.negative["Acme"] = 0  # quiet from now on: no level holds
    evaluated = T0 + (len(counts) - 1) * MIN
    for minute, total in enumerate(totals, start=len(counts)):
        view.total["Acme"] = total
        now = T0 + minute * MIN
        due = next_change(rule, state.keys.get(("neg", "Acme")), evaluated)
        after, events = evaluate_rule(rule, ["Acme"], view, state, now)
        if due is None or now < due:
            assert events == []
            assert _decides_as(rule, after.get("neg", "Acme"), state.get("neg", "Acme"))
        else:
            state, evaluated = after, now


@settings(max_examples=200, deadline=None)
@given(
    specs=LEVEL_SPECS,
    resolve_after=st.integers(1, 12),
    counts=st.lists(st.integers(0, 70), max_size=25),
    held=st.integers(0, 70),
    totals=st.lists(st.integers(0, 6), min_size=40, max_size=40),
)
def test_a_key_decides_as_it_did_before_its_next_move_while_its_levels_hold_as_they_did(
    specs: list[tuple[int, int, bool]],
    resolve_after: int,
    counts: list[int],
    held: int,
    totals: list[int],
) -> None:
    """After a stretch of negative counts, with the count then kept at ``held`` (every
    level's ``when`` holds as it did; all mentions, which exits read, still come and go),
    evaluating the key at any minute before ``next_move`` gives no event and the state the
    evaluation it was last evaluated at left, but for the holding levels' ``last_held``
    (that minute); at ``next_move`` it is evaluated. The same state's ``next_move`` is the
    same whenever the levels hold so."""
    rule = _spec_rule(specs, resolve_after)
    view = FakeView()
    state = EngineState()
    for minute, count in enumerate(counts):
        view.negative["Acme"] = view.total["Acme"] = count
        state, _ = evaluate_rule(rule, ["Acme"], view, state, T0 + minute * MIN)
    view.negative["Acme"] = held
    start = len(counts)
    state, _ = evaluate_rule(rule, ["Acme"], view, state, T0 + start * MIN)  # the new pattern
    evaluated = T0 + start * MIN
    holding = {level.name for level in rule.levels if held >= 10 + 20 * level.rank}
    for minute, total in enumerate(totals, start=start + 1):
        view.total["Acme"] = total
        now = T0 + minute * MIN
        key = state.keys.get(("neg", "Acme"))
        due = next_move(rule, key, evaluated)
        after, events = evaluate_rule(rule, ["Acme"], view, state, now)
        if due is None or now < due:
            assert events == []
            moved = after.get("neg", "Acme")
            assert moved.incident == state.get("neg", "Acme").incident
            for level in rule.levels:
                old = state.get("neg", "Acme").timers.get(level.name) or LevelTimer()
                new = moved.timers.get(level.name) or LevelTimer()
                if level.name in holding:
                    assert new == LevelTimer(since=old.since, last_held=now)
                else:
                    assert new == old
        else:
            state, evaluated = after, now


def _spec_rule(specs: list[tuple[int, int, bool]], resolve_after: int) -> CompiledRule:
    """A rule of LEVEL_SPECS levels: level i holds at 10 + 20·i negative mentions in 15m,
    with its ``for`` and ``keep_firing_for`` (minutes), and an exit (few mentions at all)."""
    calm = {
        "type": "not",
        "condition": {"type": "volume", "metric": "total", "window": "15m", "above": 3},
    }
    levels = {
        f"l{i}": {
            "when": vol(10 + 20 * i),
            **({"for": f"{f}m"} if f else {}),
            **({"keep_firing_for": f"{k}m"} if k else {}),
            **({"exit": calm} if exit else {}),
        }
        for i, (f, k, exit) in enumerate(specs)
    }
    return one_rule(levels, resolve_after=f"{resolve_after}m")


def _decides_as(rule: CompiledRule, a: KeyState, b: KeyState) -> bool:
    """Whether two states of a key decide alike: the same incident, and the same timer
    per level (a level without one has a stopped timer that never held)."""
    return a.incident == b.incident and all(
        (a.timers.get(level.name) or LevelTimer()) == (b.timers.get(level.name) or LevelTimer())
        for level in rule.levels
    )
