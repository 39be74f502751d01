"""Reach: estimated readers, comparable across sources."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.model import Author, Engagement, Mention
from listener.scoring.reach import WEIGHTS, reach_score

T0 = datetime(2026, 3, 2, tzinfo=UTC)


def mention(followers: int | None = None, **engagement: int) -> Mention:
    return Mention(
        source="s",
        id="1",
        text="t",
        created_at=T0,
        author=Author(handle="a", followers=followers),
        engagement=Engagement(**engagement),
    )


@pytest.mark.parametrize(
    ("m", "expected"),
    [
        (mention(), 1.0),
        (mention(followers=12000), 12000.0),
        (mention(followers=100, reposts=2, likes=10), 100 + 100 + 30),
        (mention(upvotes=300, comments=40), 3000 + 400),
        (mention(followers=-5, likes=-3), 1.0),
    ],
)
def test_reach_score(m: Mention, expected: float) -> None:
    """Followers count as readers; each engagement signal has its own weight; minimum 1."""
    assert reach_score(m) == expected


def test_amplification_outweighs_likes() -> None:
    """A post reposted 10 times reaches further than one liked 10 times."""
    assert reach_score(mention(reposts=10)) > reach_score(mention(likes=10))


_COUNT = st.none() | st.integers(min_value=-5, max_value=10**9)


@settings(max_examples=200, deadline=None)
@given(
    followers=_COUNT,
    counts=st.fixed_dictionaries(dict.fromkeys(WEIGHTS, _COUNT)),
)
def test_reach_is_the_weighted_sum_of_the_signals(
    followers: int | None, counts: dict[str, int | None]
) -> None:
    """The spelled-out score equals the definition: followers plus each signal times its
    weight (negatives and missing signals count 0), at least 1."""
    m = Mention(
        source="s",
        id="1",
        text="t",
        created_at=T0,
        author=Author(followers=followers),
        engagement=Engagement(**counts),
    )
    engaged = sum(WEIGHTS[name] * max(0, counts[name] or 0) for name in WEIGHTS)
    assert reach_score(m) == max(1.0, float(max(0, followers or 0)) + engaged)
