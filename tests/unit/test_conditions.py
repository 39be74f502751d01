"""Rule conditions: volume, spike, negative share, all/any/not, facts and the registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import TypeAdapter

from listener.config.schema import ConditionConfig, Metric
from listener.model import Fact
from listener.rules.conditions import (
    All,
    Check,
    CountView,
    Not,
    Spike,
    Volume,
    build_condition,
    lookback,
)
from listener.rules.conditions import Any as AnyOf
from listener.scoring.velocity import VelocityWindows

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
M15 = timedelta(minutes=15)
H1 = timedelta(hours=1)

CONDITION = TypeAdapter(ConditionConfig)


def cond(data: dict[str, Any]) -> ConditionConfig:
    """Validate a condition config the way rules.yaml does."""
    return CONDITION.validate_python(data)


@dataclass
class RangeView:
    """A CountView answering from counts keyed by (metric, start - NOW, end - NOW)."""

    counts: dict[tuple[Metric, timedelta, timedelta], int] = field(default_factory=dict)
    calls: list[tuple[str, Metric, datetime, datetime]] = field(default_factory=list)

    def count(self, brand: str, metric: Metric, start: datetime, end: datetime) -> int:
        self.calls.append((brand, metric, start, end))
        return self.counts.get((metric, start - NOW, end - NOW), 0)


def current(metric: Metric, n: int, window: timedelta = M15) -> dict[Any, int]:
    """Counts for [NOW - window, NOW)."""
    return {(metric, -window, timedelta(0)): n}


def before(
    metric: Metric, n: int, window: timedelta = M15, baseline: timedelta = H1
) -> dict[Any, int]:
    """Counts for the baseline span [NOW - window - baseline, NOW - window)."""
    return {(metric, -window - baseline, -window): n}


VOLUME = {"type": "volume", "window": "15m", "above": 10}
SPIKE = {"type": "spike", "window": "15m", "baseline": "1h", "ratio": 3, "min_volume": 5}
SHARE = {"type": "negative_share", "window": "15m", "above": 0.3, "min_volume": 10}
ALL = {"type": "all", "conditions": [VOLUME, SHARE]}
ANY = {"type": "any", "conditions": [VOLUME, SHARE]}
NOT = {"type": "not", "condition": VOLUME}
SPIKE_1 = {**SPIKE, "min_volume": 1, "min_baseline": 1}
SPIKE_FLOOR = {**SPIKE, "min_baseline": 2}


def now_(total: int = 0, negative: int = 0, baseline_negative: int = 0) -> dict[Any, int]:
    """Counts over the 15m window and the negative count over the 1h baseline before it."""
    return {
        **current("total", total),
        **current("negative", negative),
        **before("negative", baseline_negative),
    }


CASES: list[tuple[str, dict[str, Any], dict[Any, int], bool]] = [
    ("volume below", VOLUME, now_(negative=9), False),
    ("volume at threshold", VOLUME, now_(negative=10), True),
    ("volume counts negative by default", VOLUME, now_(total=50), False),
    ("volume of total", {**VOLUME, "metric": "total"}, now_(total=50), True),
    ("spike zero baseline floored, under min_volume", SPIKE, now_(negative=4), False),
    ("spike 0 -> 1 never fires", SPIKE_1, now_(negative=1), False),
    ("spike zero baseline at min_volume", SPIKE, now_(negative=5), True),
    ("spike min_baseline floor", SPIKE_FLOOR, now_(negative=5), False),
    ("spike min_baseline floor met", SPIKE_FLOOR, now_(negative=6), True),
    # a baseline of 40 per hour is 10 per 15m, so 30 are needed
    ("spike under ratio", SPIKE, now_(negative=29, baseline_negative=40), False),
    ("spike at ratio", SPIKE, now_(negative=30, baseline_negative=40), True),
    ("spike metric total", {**SPIKE, "metric": "total"}, now_(total=5), True),
    ("share below", SHARE, now_(total=10, negative=2), False),
    ("share at threshold", SHARE, now_(total=10, negative=3), True),
    ("share under min_volume", SHARE, now_(total=9, negative=9), False),
    ("share of nothing", SHARE, now_(), False),
    ("all both", ALL, now_(total=20, negative=10), True),
    ("all one", ALL, now_(total=20, negative=5), False),
    ("any one", ANY, now_(total=20, negative=9), True),
    ("any none", ANY, now_(total=40, negative=9), False),
    ("not holds", NOT, now_(negative=3), True),
    ("not fails", NOT, now_(negative=30), False),
]


@pytest.mark.parametrize(
    ("config", "counts", "holds"),
    [pytest.param(c, n, h, id=name) for name, c, n, h in CASES],
)
def test_condition_table(config: dict[str, Any], counts: dict[Any, int], holds: bool) -> None:
    """Each condition holds exactly when its counts meet its thresholds."""
    check = build_condition(cond(config)).check(RangeView(counts), "acme", NOW)
    assert isinstance(check, Check)
    assert check.holds is holds


def test_volume_reads_its_window() -> None:
    """Volume asks the view for the metric over [now - window, now) of the brand."""
    view = RangeView()
    Volume("total", M15, 3).check(view, "acme", NOW)
    assert view.calls == [("acme", "total", NOW - M15, NOW)]


def test_volume_facts() -> None:
    """Volume reports the count with its threshold under a readable name."""
    check = build_condition(cond(VOLUME)).check(RangeView(current("negative", 12)), "a", NOW)
    assert check.facts == (Fact("negative mentions in 15m", 12, threshold=10),)
    assert str(check.facts[0]) == "negative mentions in 15m = 12 (threshold 10)"


def test_spike_facts() -> None:
    """Spike reports the count (needed count, baseline per window) and the ratio."""
    view = RangeView({**current("negative", 45), **before("negative", 40)})
    check = build_condition(cond(SPIKE)).check(view, "a", NOW)
    assert check.holds
    assert check.facts == (
        Fact("negative mentions in 15m", 45, threshold=30.0, baseline=10.0),
        Fact("negative mentions in 15m vs 1h baseline (ratio)", 4.5, threshold=3),
    )


def test_spike_zero_baseline_is_safe() -> None:
    """With no baseline and no current mentions the spike neither holds nor divides by zero."""
    spike = Spike("negative", M15, H1, ratio=3, min_volume=1, min_baseline=0.5)
    check = spike.check(RangeView(), "a", NOW)
    assert not check.holds
    assert check.facts[1].value == 0
    assert check.facts[0].threshold == 1.5


def test_share_facts() -> None:
    """Negative share reports the share and the total with their thresholds."""
    view = RangeView({**current("total", 20), **current("negative", 8)})
    check = build_condition(cond(SHARE)).check(view, "a", NOW)
    assert check.facts == (
        Fact("negative share in 15m", 0.4, threshold=0.3),
        Fact("mentions in 15m", 20, threshold=10),
    )


def test_combinator_facts() -> None:
    """All shows every child's facts; Any shows those that hold (or all); Not shows its child's."""
    hold = Volume("negative", M15, 1)
    fail = Volume("total", H1, 100)
    view = RangeView({**current("negative", 2), **current("total", 3, H1)})
    assert All((hold, fail)).check(view, "a", NOW) == Check(
        False, (Fact("negative mentions in 15m", 2, 1), Fact("mentions in 1h", 3, 100))
    )
    assert AnyOf((fail, hold)).check(view, "a", NOW) == Check(
        True, (Fact("negative mentions in 15m", 2, 1),)
    )
    assert AnyOf((fail,)).check(view, "a", NOW) == Check(False, (Fact("mentions in 1h", 3, 100),))
    assert Not(fail).check(view, "a", NOW) == Check(True, (Fact("mentions in 1h", 3, 100),))


def test_with_velocity_windows() -> None:
    """Conditions work on real bucketed counts from VelocityWindows."""
    windows = VelocityWindows(retention=timedelta(hours=2))
    for minute in range(60):  # one negative mention a minute for the hour before the window
        windows.add("acme", NOW - M15 - timedelta(minutes=minute + 1), negative=True)
    for second in range(0, 900, 30):  # 30 in the last 15 minutes
        windows.add("acme", NOW - timedelta(seconds=second + 1), negative=True)
    view: CountView = windows
    spike = build_condition(cond({**SPIKE, "ratio": 2}))
    assert spike.check(view, "acme", NOW).holds  # 30 >= 2 * 15
    assert not build_condition(cond({**SPIKE, "ratio": 2.5})).check(view, "acme", NOW).holds


def test_unknown_config_is_rejected() -> None:
    """build_condition refuses unknown config types and lists the known ones."""
    with pytest.raises(ValueError, match="known: AllCondition, AnyCondition"):
        build_condition(object())  # type: ignore[arg-type]


def test_lookback() -> None:
    """lookback is the furthest a condition reads back from now."""
    nested = cond({"type": "all", "conditions": [VOLUME, {"type": "not", "condition": SPIKE}]})
    assert lookback(nested) == M15 + H1
    assert lookback(cond(SHARE)) == M15
