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
from typing import TYPE_CHECKING

from listener.langcodes import normal_language
from listener.matching.brands import normalise
from listener.matching.query import Document

if TYPE_CHECKING:
    from listener.scoring.language import Languages

__all__ = ["Prepared"]


class Prepared:
    """A text prepared for matching: ``text`` as given, ``norm`` (normalised), and the
    shared forms built on first need (:meth:`query_document`, ``category_view``).

    ``language`` and ``source`` are what queries' ``lang:``/``source:`` filters test (as
    :meth:`~listener.matching.brands.BrandMatcher.match` takes them). With ``languages``
    (the Ingest stage's :class:`~listener.scoring.language.Languages`), :attr:`language`
    is resolved from the text and the given code on first need (detection runs for
    mentions a ``lang:`` filter or the scorers ask about, once). Not thread-safe to share
    while being filled; one :class:`Prepared` belongs to one mention in one stage.
    """

    __slots__ = (
        "_given",
        "_language",
        "_languages",
        "_query",
        "_resolved",
        "category_view",
        "norm",
        "source",
        "text",
    )

    def __init__(
        self,
        text: str,
        language: str | None = None,
        source: str | Collection[str] | None = None,
        languages: Languages | None = None,
    ) -> None:
        self.text = text
        self._given = language
        self._languages = languages
        self._language: str | None = None
        self._resolved = False
        self.source = source
        self.norm = normalise(text)
        self._query: Document | None = None
        self.category_view: tuple[str, str] | None = None
        """(normalised text with straight apostrophes, its scan: its words between spaces,
        then itself): filled by :mod:`listener.scoring.categories` on first use."""

    @property
    def language(self) -> str | None:
        """The mention's language, normal form (see the class); None when unknown."""
        if not self._resolved:
            languages = self._languages
            self._language = (
                languages.resolve(self.text, self._given)
                if languages is not None
                else normal_language(self._given)
            )
            self._resolved = True
        return self._language

    def query_document(self) -> Document:
        """The query :class:`~listener.matching.query.Document` of the text (built once)."""
        if self._query is None:
            if self._resolved or self._languages is None:
                self._query = Document(self.text, self.language, self.source)
            else:
                self._query = Document(self.text, None, self.source, self._language_of)
        return self._query

    def _language_of(self) -> str | None:
        return self.language
