"""The scorer extension point."""

from __future__ import annotations

from typing import Protocol

from listener.model import Sentiment


class Scorer(Protocol):
    """Contract: a pure function of the text (no I/O, no clock). Models are loaded once
    when the scorer is built, never per call."""

    def score(self, text: str) -> Sentiment: ...
