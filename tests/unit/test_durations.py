"""Durations have one documented range (0 to 365d), enforced by parse_duration everywhere."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from listener.config.duration import MAX_DURATION, parse_duration
from listener.config.schema import Config
from listener.errors import ConfigError, DurationError, ListenerError
from listener.processor import retention_for
from listener.rules.engine import EngineState, compile_rules, evaluate_rule
from listener.scoring.velocity import Sample, VelocityWindows
from listener.settings import Settings

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("text", ["365d", "52w", "8760h", 365 * 86400, timedelta(days=365)])
def test_maximum_is_accepted(text: object) -> None:
    """Up to 365 days is a duration."""
    assert parse_duration(text) <= MAX_DURATION == timedelta(days=365)


@pytest.mark.parametrize(
    "value",
    [
        "366d",
        "53w",
        "3000000d",
        "99999999999d",
        "1" + "0" * 400,
        "9" * 400 + "s",
        1e300,
        math.inf,
        10**400,
        timedelta(days=366),
    ],
)
def test_longer_than_the_maximum_is_a_duration_error(value: object) -> None:
    """Too long (or infinite) is one clear error, a ListenerError and a ValueError."""
    with pytest.raises(DurationError) as info:
        parse_duration(value)
    assert isinstance(info.value, ListenerError)
    assert isinstance(info.value, ValueError)
    assert info.value.message.endswith("longer than the maximum of 365d")
    assert info.value.hint == "durations are at most 365d, or 52w"
    assert len(str(info.value)) < 200  # a 400-digit number is cut short in the message


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (math.nan, "not a number"),
        (-1, "cannot be negative"),
        (-math.inf, "cannot be negative"),
        (timedelta(seconds=-1), "cannot be negative"),
        ("1e300", r"1e300. \(hint: write a number of seconds or a string such as 30s"),
        ("-5s", "write a number of seconds"),
    ],
)
def test_not_a_usable_duration(value: object, words: str) -> None:
    """NaN, negative values and other forms are DurationErrors saying what is wrong."""
    with pytest.raises(DurationError, match=words):
        parse_duration(value)


@pytest.mark.parametrize("variable", ["MENTION_RETENTION", "EVALUATE_EVERY", "VACUUM_EVERY"])
@pytest.mark.parametrize("value", ["3000000d", "99999999999d", "1" + "0" * 400, "nan"])
def test_out_of_range_settings_are_config_errors(variable: str, value: str) -> None:
    """LISTENER_* durations out of range are a ConfigError naming the variable."""
    with pytest.raises(ConfigError) as info:
        Settings.from_env({f"LISTENER_{variable}": value})
    (problem,) = info.value.problems
    assert problem.path == f"LISTENER_{variable}"
    assert problem.message.startswith("invalid duration")


def test_evaluate_every_must_be_positive() -> None:
    """Evaluating rules every 0s is refused."""
    with pytest.raises(ConfigError, match="LISTENER_EVALUATE_EVERY: must be more than 0s"):
        Settings.from_env({"LISTENER_EVALUATE_EVERY": "0"})


MAX = "365d"
CONDITIONS: list[dict[str, Any]] = [
    {"type": "volume", "window": MAX, "above": 1},
    {"type": "spike", "window": MAX, "baseline": MAX, "min_volume": 1},
    {"type": "zscore", "window": MAX, "history": 1000, "min_volume": 1},
    {"type": "seasonal", "window": "7d", "period": "7d", "seasons": 8, "min_volume": 1},
    {"type": "ramp", "window": MAX, "steps": 100, "min_volume": 1},
    {"type": "negative_share", "window": MAX, "above": 0.1, "min_volume": 1},
    {"type": "mean_sentiment", "window": MAX, "below": 0.5, "min_volume": 1},
]


def test_rules_at_the_maximum_evaluate() -> None:
    """Every condition and timer at the maximum (and the longest history) evaluates: the
    look-back ((1000 + 1) × 365d) stays within the calendar, so no rule dies at run time."""
    timers = {"keep_firing_for": MAX, "escalate": [{"after": MAX, "route": ["console"]}]}
    config = Config.model_validate(
        {
            "brands": [{"name": "Acme"}],
            "rules": [
                {
                    "name": f"r{i}",
                    "levels": {"watch": {"when": when, "for": "0s" if i == 0 else MAX, **timers}},
                    "resolve_after": MAX,
                    "repeat_every": MAX,
                }
                for i, when in enumerate(CONDITIONS)
            ],
        }
    )
    rules = compile_rules(config)
    windows = VelocityWindows(retention=retention_for(rules))
    windows.add("Acme", NOW - timedelta(minutes=3), Sample(negative=True))
    states = [EngineState() for _ in rules]
    kinds: list[str] = []
    for now in (NOW, NOW + MAX_DURATION, NOW + 2 * MAX_DURATION + timedelta(days=1)):
        windows.prune(now)
        for i, rule in enumerate(rules):
            states[i], events = evaluate_rule(rule, ["Acme"], windows, states[i], now)
            kinds += [e.kind for e in events]
    assert kinds[0] == "opened"
    assert kinds[-1] == "resolved"
