"""Reach: estimated readers, comparable across sources."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from listener.model import Author, Engagement, Mention
from listener.scoring.reach import reach_score

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
