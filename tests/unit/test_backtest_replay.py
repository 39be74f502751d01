"""A mention replay evaluates only the steps at which something can change
(listener.backtest._replay): what it decides must be what evaluating every step decides,
to the incident change, the alert and the muted reminder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listener import backtest
from listener.backtest import MentionRecord, replay_mentions
from listener.config.load import load_config_text
from listener.model import Author, Mention, Sentiment
from listener.store import EvaluateWrite, Store

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
HANDLES = ("acme", "globex", "initech")
LEVELS = ("watch", "high", "crisis")


class _Words:
    """A sentiment scorer for tests: 'broken' is negative, 'great' positive."""

    def score(self, text: str) -> Sentiment:
        if "broken" in text:
            return Sentiment("negative", -0.6)
        if "great" in text:
            return Sentiment("positive", 0.6)
        return Sentiment("neutral", 0.0)


def _m(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda m: f"{m}m")


VOLUME = st.builds(
    lambda m, w, a, f: {"type": "volume", "metric": m, "window": w, "above": a, **f},
    st.sampled_from(["total", "negative", "positive", "voices"]),
    _m(2, 15),
    st.integers(1, 6),
    st.sampled_from([{}, {}, {"source": "x"}]),
)

LEAVES = st.one_of(
    VOLUME,
    VOLUME,
    st.builds(
        lambda m, w, b, r, v, d, warm: {
            "type": "spike",
            "metric": m,
            "window": w,
            "baseline": b,
            "ratio": r,
            "min_volume": v,
            "direction": d,
            "warmup": warm,
        },
        st.sampled_from(["total", "negative"]),
        _m(2, 10),
        _m(10, 60),
        st.sampled_from([1.5, 2, 3]),
        st.integers(1, 4),
        st.sampled_from(["up", "up", "down"]),
        st.booleans(),
    ),
    st.builds(
        lambda m, w, h, t, v, d, tr, c, warm: {
            "type": "zscore",
            "metric": m,
            "window": w,
            "history": h,
            "threshold": t,
            "min_volume": v,
            "direction": d,
            "transform": tr,
            "center": c,
            "warmup": warm,
            "min_deviation": 0.5,
        },
        st.sampled_from(["total", "negative"]),
        _m(1, 5),
        st.integers(2, 10),
        st.sampled_from([1, 2, 3]),
        st.integers(1, 4),
        st.sampled_from(["up", "up", "down"]),
        st.sampled_from(["none", "none", "sqrt"]),
        st.sampled_from(["mean", "mean", "median"]),
        st.booleans(),
    ),
    st.builds(
        lambda w, a, v: {"type": "negative_share", "window": w, "above": a, "min_volume": v},
        _m(2, 15),
        st.sampled_from([0.3, 0.5, 0.75]),
        st.integers(1, 4),
    ),
)

CONDITIONS = st.one_of(
    LEAVES,
    LEAVES,
    st.builds(
        lambda cs: {"type": "all", "conditions": cs}, st.lists(LEAVES, min_size=1, max_size=3)
    ),
    st.builds(
        lambda cs: {"type": "any", "conditions": cs}, st.lists(LEAVES, min_size=1, max_size=3)
    ),
    st.builds(lambda c: {"type": "not", "condition": c}, LEAVES),
)

LEVEL = st.fixed_dictionaries(
    {"when": CONDITIONS},
    optional={
        "for": _m(1, 5),
        "keep_firing_for": _m(1, 10),
        "exit": LEAVES,
        "escalate": st.lists(
            st.fixed_dictionaries({"after": _m(2, 20), "route": st.just(["pager"])}),
            min_size=1,
            max_size=2,
        ),
    },
)

RULE = st.fixed_dictionaries(
    {
        "levels": st.lists(LEVEL, min_size=1, max_size=3),
        "resolve_after": _m(1, 20),
    },
    optional={
        "repeat_every": _m(3, 30),
        "brands": st.sampled_from([["Acme"], ["Globex", "Initech"]]),
    },
)

MENTIONS = st.lists(
    st.tuples(
        st.integers(0, 5),  # burst: mentions gather in six half-hours
        st.integers(0, 20),  # minutes into it
        st.integers(0, 59),  # seconds
        st.sampled_from([*HANDLES, "hooli", "nobody"]),  # hooli: pinned by the file
        st.sampled_from(["broken", "broken", "great", "fine"]),
        st.integers(0, 3),  # author
        st.sampled_from(["x", "y"]),  # source
    ),
    min_size=20,
    max_size=150,
)


def _config(rules: list[dict[str, Any]], inhibit: bool) -> Any:
    """The rules, their levels named ``watch``, ``high``, ``crisis`` in order; with
    ``inhibit``, an open incident above ``watch`` mutes a brand's ``watch`` alerts."""
    above = sorted({LEVELS[i] for rule in rules for i in range(1, len(rule["levels"]))})
    notifications = (
        {"inhibit": [{"source": above, "target": ["watch"]}]} if inhibit and above else {}
    )
    text = json.dumps(
        {
            "brands": [{"name": h.title(), "handles": [f"@{h}"]} for h in HANDLES],
            "rules": [
                {
                    "name": f"r{i}",
                    "levels": dict(zip(LEVELS, rule["levels"], strict=False)),
                    **{k: v for k, v in rule.items() if k != "levels"},
                }
                for i, rule in enumerate(rules)
            ],
            "routes": {"default": ["ops"]},
            "sinks": {"ops": {"type": "console"}, "pager": {"type": "console"}},
            "notifications": notifications,
        }
    )
    return load_config_text(text, "rules.yaml", {})


def _records(mentions: list[tuple[int, int, int, str, str, int, str]]) -> list[MentionRecord]:
    records = []
    for i, (burst, minute, second, handle, word, author, source) in enumerate(mentions):
        at = T0 + timedelta(minutes=30 * burst + minute, seconds=second)
        text = f"@{handle} is {word}"
        key = str(i % 140)  # a few keys repeat: the processor counts each once
        mention = Mention(source, key, text, at, author=Author(f"u{author}"))
        records.append(MentionRecord(mention, i + 1, "Hooli" if handle == "hooli" else None))
    return records


@contextmanager
def _recording(into: list[tuple[object, ...]]) -> Iterator[None]:
    """Record every incident event and notice (sent or muted) the processor writes, with
    its time."""
    write = Store.write_evaluate

    def recorded(store: Store, w: EvaluateWrite) -> None:
        into.extend((e.alert_id, e.kind, e.at, e.facts) for e in w.events)
        into.extend((n.alert_id, n.kind, w.now, n.sinks, n.muted) for n in w.notices)
        write(store, w)

    with mock.patch.object(Store, "write_evaluate", recorded):
        yield


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rules=st.lists(RULE, min_size=1, max_size=2),
    inhibit=st.booleans(),
    mentions=MENTIONS,
    stretch=st.integers(2, 40),
    probe=st.integers(1, 8),
)
def test_skipping_steps_decides_what_evaluating_every_step_decides(
    rules: list[dict[str, Any]],
    inhibit: bool,
    mentions: list[tuple[int, int, int, str, str, int, str]],
    stretch: int,
    probe: int,
) -> None:
    """On a random stream and random rules (spike, z-score, volume, negative share;
    all/any/not; escalation levels with for, keep_firing_for and exits; hand-offs,
    reminders and inhibition), replaying with skipped steps, in segments read step by
    step or ahead, gives the incident changes, alerts and muted notices of evaluating
    every step."""
    config = _config(rules, inhibit)
    records = _records(mentions)
    everything: list[tuple[object, ...]] = []
    with _recording(everything):
        full = replay_mentions(records, config, scorer=_Words(), every_step=True)
    skipped: list[tuple[object, ...]] = []
    with (
        _recording(skipped),
        mock.patch.object(backtest, "_STRETCH", stretch),
        mock.patch.object(backtest, "_PROBE", probe),
    ):
        fast = replay_mentions(records, config, scorer=_Words())
    assert [c.to_dict() for c in fast.changes] == [c.to_dict() for c in full.changes]
    assert skipped == everything


def _volume(window: str, above: int) -> dict[str, Any]:
    return {"type": "volume", "metric": "total", "window": window, "above": above}


def _burst(start: int, minutes: int, per_minute: int, key: str) -> list[MentionRecord]:
    """``per_minute`` mentions of Acme in each of ``minutes`` minutes from ``start``."""
    return [
        MentionRecord(
            Mention("x", f"{key}{m}-{i}", "@acme is broken", T0 + timedelta(minutes=m, seconds=i)),
            1,
        )
        for m in range(start, start + minutes)
        for i in range(per_minute)
    ]


SCENARIOS: dict[str, tuple[list[dict[str, Any]], list[MentionRecord], set[str]]] = {
    # held for 2 of 'for: 5m', a quiet gap, held again: the timer restarts after the gap
    "a level timer stops in a quiet step": (
        [{"levels": [{"when": _volume("1m", 2), "for": "5m"}], "resolve_after": "3m"}],
        _burst(10, 2, 2, "a") + _burst(14, 7, 2, "b") + _burst(60, 1, 1, "c"),
        {"opened", "resolved"},
    ),
    # 'high' keeps firing 8m after its burst, then moves down to 'watch', which resolves
    "keep_firing_for ends, the incident moves down, then resolves": (
        [
            {
                "levels": [
                    {"when": _volume("20m", 1)},
                    {"when": _volume("2m", 4), "keep_firing_for": "8m"},
                ],
                "resolve_after": "6m",
            }
        ],
        _burst(10, 1, 1, "a") + _burst(11, 1, 4, "b") + _burst(80, 1, 1, "c"),
        {"opened", "escalated", "deescalated", "resolved"},
    ),
    # an incident held open by keep_firing_for hands off and reminds while nothing holds
    "hand-offs and reminders fall due in quiet steps": (
        [
            {
                "levels": [
                    {
                        "when": _volume("1m", 3),
                        "keep_firing_for": "40m",
                        "escalate": [{"after": "7m", "route": ["pager"]}],
                    }
                ],
                "resolve_after": "9m",
                "repeat_every": "11m",
            }
        ],
        _burst(10, 1, 3, "a") + _burst(120, 1, 1, "b"),
        {"opened", "handoff", "reminder", "resolved"},
    ),
    # a steady stream holds 'watch' for many steps: 'high' fires after its 'for' while
    # both hold unchanged, and 'watch' keeps firing 4m after it last held, then resolves
    "a steady hold escalates after its for and keeps firing after it stops": (
        [
            {
                "levels": [
                    {"when": _volume("5m", 2), "keep_firing_for": "4m"},
                    {"when": _volume("5m", 4), "for": "3m"},
                ],
                "resolve_after": "5m",
                "repeat_every": "9m",
            }
        ],
        _burst(10, 30, 1, "a") + _burst(90, 1, 1, "c"),
        {"opened", "escalated", "deescalated", "reminder", "resolved"},
    ),
    # 'high' of r1 mutes r0's 'watch' incident: its reminders are recorded as muted
    "muted reminders fall due in quiet steps": (
        [
            {
                "levels": [{"when": _volume("1m", 1), "keep_firing_for": "50m"}],
                "resolve_after": "5m",
                "repeat_every": "7m",
            },
            {
                "levels": [
                    {"when": _volume("1m", 100)},
                    {"when": _volume("1m", 2), "keep_firing_for": "30m"},
                ],
                "resolve_after": "5m",
            },
        ],
        _burst(10, 1, 2, "a") + _burst(120, 1, 1, "b"),
        {"opened", "reminder", "resolved"},
    ),
}


@contextmanager
def _paced(mode: str, stretch: int) -> Iterator[None]:
    """Replay every segment ``ahead`` or ``steps`` (see ``backtest._Pace``), of
    ``stretch`` steps."""

    def start(pace: Any) -> None:
        pace.mode, pace.size = mode, pace.span

    with (
        mock.patch.object(backtest, "_STRETCH", stretch),
        mock.patch.object(backtest._Pace, "__post_init__", start),
        mock.patch.object(backtest._Pace, "after", return_value=None),
    ):
        yield


@pytest.mark.parametrize("mode", ["ahead", "steps"])
@pytest.mark.parametrize("name", SCENARIOS)
def test_what_time_alone_changes_falls_on_the_same_steps(name: str, mode: str) -> None:
    """Each time-driven change (a timer stopping, keep_firing_for ending, resolution,
    hand-off, reminder, muted reminder) happens at the step it happens at when every step
    is evaluated, although the replay skips steps."""
    rules, records, kinds = SCENARIOS[name]
    config = _config(rules, inhibit=True)
    everything: list[tuple[object, ...]] = []
    with _recording(everything):
        full = replay_mentions(records, config, scorer=_Words(), every_step=True)
    assert kinds <= {str(x[1]) for x in everything}
    if name.startswith("muted"):
        assert any(str(x[-1]).startswith("inhibited") for x in everything)
    skipped: list[tuple[object, ...]] = []
    with _recording(skipped), _paced(mode, 7), _Calls() as calls:
        fast = replay_mentions(records, config, scorer=_Words())
    assert [c.to_dict() for c in fast.changes] == [c.to_dict() for c in full.changes]
    assert skipped == everything
    steps = (records[-1].mention.created_at - T0) // timedelta(minutes=1) - 9
    assert len(calls.at) < steps


class _Calls:
    """Records the ``now`` of every evaluation while in use."""

    def __init__(self) -> None:
        self.at: list[datetime] = []
        self._patch: Any = None

    def __enter__(self) -> _Calls:
        from listener.processor import Processor

        evaluate = Processor.evaluate

        def counted(processor: Processor, now: datetime, sources: Any = None) -> Any:
            self.at.append(now)
            return evaluate(processor, now, sources)

        self._patch = mock.patch.object(Processor, "evaluate", counted)
        self._patch.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._patch.__exit__(*exc)


def test_a_steady_hold_is_evaluated_where_something_can_change() -> None:
    """Thirty minutes of one mention a minute hold a level unchanged for more than twenty
    steps: read ahead, they are evaluated where the holding starts, where its ``for`` is
    reached, at its reminder and at the last step before it stops (it keeps firing after),
    not at every step, and decide what evaluating every step decides."""
    rules, records, _ = SCENARIOS[
        "a steady hold escalates after its for and keeps firing after it stops"
    ]
    config = _config(rules, inhibit=False)
    full = replay_mentions(records, config, scorer=_Words(), every_step=True)
    with _paced("ahead", 200), _Calls() as calls:
        fast = replay_mentions(records, config, scorer=_Words())
    assert [c.to_dict() for c in fast.changes] == [c.to_dict() for c in full.changes]
    during = [
        at for at in calls.at if T0 + timedelta(minutes=14) < at <= T0 + timedelta(minutes=39)
    ]
    assert 0 < len(during) <= 6, during


def test_a_quiet_replay_skips_its_quiet_steps() -> None:
    """A day of one mention an hour opens nothing, and is evaluated at far fewer steps
    than it has (the last step of each segment, the steps a level might hold at)."""
    config = _config(
        [{"levels": [{"when": _volume("5m", 3)}], "resolve_after": "10m"}], inhibit=False
    )
    records = [
        MentionRecord(Mention("x", str(h), "@acme is fine", T0 + timedelta(hours=h)), h + 1)
        for h in range(24)
    ]
    with _Calls() as calls:
        result = replay_mentions(records, config, scorer=_Words())
    assert result.changes == []
    assert len(calls.at) < 10  # of 1,381 steps


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules=st.lists(RULE, min_size=1, max_size=2), mentions=MENTIONS)
def test_a_replay_decides_the_same_without_writing_its_window_buckets(
    rules: list[dict[str, Any]], mentions: list[tuple[int, int, int, str, str, int, str]]
) -> None:
    """A backtest does not encode and write the window buckets to its throwaway store
    (``persist_windows=False``); its changes are those of a replay that writes them."""
    from listener.processor import Processor

    config = _config(rules, False)
    records = _records(mentions)
    written: list[int] = []
    write = Store.write_ingest

    def counting(store: Store, *writes: Any) -> None:
        written.extend(len(w.buckets) for w in writes)
        write(store, *writes)

    with mock.patch.object(Store, "write_ingest", counting):
        lean = replay_mentions(records, config, scorer=_Words())
    assert written
    assert not any(written)

    init = Processor.__init__

    def persisting(self: Processor, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **{**kwargs, "persist_windows": True})

    written.clear()
    with (
        mock.patch.object(Processor, "__init__", persisting),
        mock.patch.object(Store, "write_ingest", counting),
    ):
        kept = replay_mentions(records, config, scorer=_Words())
    if kept.changes:  # something was counted: the persisting replay wrote its buckets
        assert any(written)
    assert [c.to_dict() for c in lean.changes] == [c.to_dict() for c in kept.changes]
