"""VADER sentiment scoring and its label thresholds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.model import Sentiment
from listener.scoring.base import Scorer
from listener.scoring.sentiment import VaderScorer

SCORER = VaderScorer()


def test_implements_scorer_protocol() -> None:
    """VaderScorer satisfies the Scorer protocol."""
    scorer: Scorer = SCORER
    assert isinstance(scorer.score("fine"), Sentiment)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("Acme is terrible, worst service ever", "negative"),
        ("I love Acme! Great support.", "positive"),
        ("Acme released a statement", "neutral"),
        ("", "neutral"),
    ],
)
def test_labels(text: str, label: str) -> None:
    """Clearly negative, positive and neutral texts get those labels."""
    assert SCORER.score(text).label == label


@pytest.mark.parametrize(
    ("compound", "label"),
    [
        (-0.05, "negative"),
        (-0.0499, "neutral"),
        (0.0, "neutral"),
        (0.0499, "neutral"),
        (0.05, "positive"),
        (-1.0, "negative"),
        (1.0, "positive"),
    ],
)
def test_default_thresholds_are_inclusive(compound: float, label: str) -> None:
    """Labels use ≤ -0.05 for negative and ≥ 0.05 for positive."""
    assert SCORER.label(compound) == label


def test_custom_thresholds() -> None:
    """Constructor thresholds move the label boundaries."""
    strict = VaderScorer(negative_threshold=-0.5, positive_threshold=0.5)
    assert strict.score("meh").label == "neutral"
    assert strict.score("Acme is terrible, worst service ever").label == "negative"


def test_thresholds_must_be_ordered() -> None:
    """A negative threshold not below the positive one is rejected."""
    with pytest.raises(ValueError, match="below"):
        VaderScorer(negative_threshold=0.1, positive_threshold=0.1)


@settings(max_examples=50, deadline=None)
@given(text=st.text(max_size=80))
def test_score_is_bounded_and_consistent(text: str) -> None:
    """Any text scores in [-1, 1], deterministically, with the label its compound implies."""
    first = SCORER.score(text)
    assert -1.0 <= first.compound <= 1.0
    assert first.label == SCORER.label(first.compound)
    assert SCORER.score(text) == first
