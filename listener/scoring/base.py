"""The scorer extension point.

Optional capabilities are ``@runtime_checkable`` protocols beside :class:`Scorer`, checked
with ``isinstance``: :class:`BatchScorer` scores many texts in one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from listener.model import Sentiment


@runtime_checkable
class Scorer(Protocol):
    """Contract: a pure function of the text (no I/O, no clock). Models are loaded once
    when the scorer is built, never per call."""

    def score(self, text: str) -> Sentiment: ...


@runtime_checkable
class BatchScorer(Protocol):
    """Optional: ``score_batch`` scores texts in one call (a model's batch), giving the
    same sentiments, in order, as ``score`` one by one."""

    def score_batch(self, texts: Sequence[str]) -> Sequence[Sentiment]: ...
