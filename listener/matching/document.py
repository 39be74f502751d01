"""One mention's text, prepared once and read by every matcher of the Ingest stage.

:class:`Prepared` holds the text as given, its normalised form
(:func:`~listener.matching.brands.normalise`: NFKC, casefold, whitespace runs
collapsed), which the brand automaton scans, and two
forms built on first need and then shared: the query
:class:`~listener.matching.query.Document` (brand ``query``/``exclude``) and the category
view (the normalised text with straight apostrophes and its words between spaces), which the
crisis-category tagger and the emotion detector both read
(:mod:`listener.scoring.categories` fills it). So a mention is normalised once and
tokenised once for queries and once for categories, however many brands, categories and
emotions look at it.

Not shared, on purpose: the sentiment scorer reads the text as written (VADER's rules
depend on case and punctuation), and story fingerprints read it without URLs and
handles (:func:`~listener.matching.stories.story_text`).
"""

from __future__ import annotations

from collections.abc import Collection

from listener.matching.brands import normalise
from listener.matching.query import Document

__all__ = ["Prepared"]


class Prepared:
    """A text prepared for matching: ``text`` as given, ``norm`` (normalised), and the
    shared forms built on first need (:meth:`query_document`, ``category_view``).

    ``language`` and ``source`` are what queries' ``lang:``/``source:`` filters test (as
    :meth:`~listener.matching.brands.BrandMatcher.match` takes them). Not thread-safe to
    share while being filled; one :class:`Prepared` belongs to one mention in one stage.
    """

    __slots__ = ("_query", "category_view", "language", "norm", "source", "text")

    def __init__(
        self,
        text: str,
        language: str | None = None,
        source: str | Collection[str] | None = None,
    ) -> None:
        self.text = text
        self.language = language
        self.source = source
        self.norm = normalise(text)
        self._query: Document | None = None
        self.category_view: tuple[str, str] | None = None
        """(normalised text with straight apostrophes, its scan: its words between spaces,
        then itself): filled by :mod:`listener.scoring.categories` on first use."""

    def query_document(self) -> Document:
        """The query :class:`~listener.matching.query.Document` of the text (built once)."""
        if self._query is None:
            self._query = Document(self.text, self.language, self.source)
        return self._query
