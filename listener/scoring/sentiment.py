"""VADER sentiment: a lexicon scorer, fast and good enough for short social texts.

Contract: :class:`VaderScorer` implements :class:`listener.scoring.base.Scorer`. The
analyser (and its lexicon) is loaded once when the scorer is built; :meth:`score` is a
pure function of the text. Labels follow the VADER convention: ``negative`` when the
compound score is ≤ ``negative_threshold`` (default -0.05), ``positive`` when it is
≥ ``positive_threshold`` (default 0.05), ``neutral`` otherwise.
"""

from __future__ import annotations

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from listener.model import Sentiment, SentimentLabel

__all__ = ["VaderScorer"]


class VaderScorer:
    """Scores texts with one VADER ``SentimentIntensityAnalyzer`` built at construction."""

    __slots__ = ("_analyser", "negative_threshold", "positive_threshold")

    def __init__(self, negative_threshold: float = -0.05, positive_threshold: float = 0.05) -> None:
        if negative_threshold >= positive_threshold:
            raise ValueError(
                f"negative_threshold ({negative_threshold}) must be below "
                f"positive_threshold ({positive_threshold})"
            )
        self.negative_threshold = negative_threshold
        self.positive_threshold = positive_threshold
        self._analyser = SentimentIntensityAnalyzer()

    def score(self, text: str) -> Sentiment:
        """The compound score of ``text`` in [-1, 1] and its label."""
        compound = float(self._analyser.polarity_scores(text)["compound"])
        return Sentiment(label=self.label(compound), compound=compound)

    def label(self, compound: float) -> SentimentLabel:
        """The label for a compound score under this scorer's thresholds."""
        if compound <= self.negative_threshold:
            return "negative"
        if compound >= self.positive_threshold:
            return "positive"
        return "neutral"
