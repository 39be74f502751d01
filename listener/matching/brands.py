"""Brand matching: which configured brands a text mentions.

Contract (pure, no I/O):

* Text and terms are normalised the same way (:func:`normalise`): NFKC, casefold,
  NFKC again (casefolding can denormalise), whitespace runs collapsed to one space.
  So ``ＡＣＭＥ``, ``Acme`` and ``ACME`` are the same term; accents are *kept*
  (``café`` ≠ ``cafe``) but composed/decomposed forms are equal.
* A term matches only as a whole word or phrase: it may not be preceded or followed
  by a word character (``(?<!\\w)term(?!\\w)``). This works for terms that start or end
  with non-word characters (``AT&T``, ``C++``, ``.NET``), where ``\\b`` would not.
* Aliases (default: the brand name when there are none) and keywords match as given.
  Handles match only as ``@handle`` and hashtags only as ``#tag``; the config may give
  them with or without the sigil.
* Exclusions use the same whole-phrase rule; a text containing any exclusion of a
  brand never matches that brand (other brands are unaffected).
* Terms that normalise to nothing are ignored; a brand left with no terms never matches.
* ``query`` (a boolean query, ``docs/queries.md``): the brand also matches when it
  matches. A brand with a query has no implicit alias: its name is not searched for
  unless listed in ``aliases`` or the query (else ``Apple`` + a query narrowing it to
  the company would still match every apple pie).
* ``exclude`` (a boolean query): a mention it matches never matches the brand, like an
  exclusion phrase. ``lang:``/``source:`` filters see the ``language``/``source`` given to
  :meth:`BrandMatcher.match`.
* Queries are compiled once, in :class:`BrandMatcher`; a broken one raises
  :class:`~listener.matching.query.QuerySyntaxError` naming the brand. A brand query
  that could match a mention with none of its terms (``NOT hiring``) is refused.
  Mentions are tokenised for queries (:class:`~listener.matching.query.Document`) once,
  only when some brand needs its query or exclude tested.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from listener.config.schema import BrandConfig
from listener.matching.query import Document, Query, QuerySyntaxError, compile_query

__all__ = ["BrandMatcher", "QuerySyntaxError", "compile_brand_query", "normalise"]

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC + casefold the text and collapse whitespace runs to single spaces (stripped)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return _SPACE.sub(" ", folded).strip()


def _term(raw: str, sigil: str = "") -> str | None:
    """Normalise one configured term; with a sigil, strip any given and put one back."""
    term = normalise(raw)
    if sigil:
        term = term.lstrip(sigil).strip()
        return sigil + term if term else None
    return term or None


def _pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any of ``terms`` as a whole word/phrase, or None when empty."""
    unique = sorted(set(terms), key=lambda t: (-len(t), t))
    if not unique:
        return None
    alternation = "|".join(re.escape(t) for t in unique)
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")


@dataclass(frozen=True, slots=True)
class _CompiledBrand:
    name: str
    include: re.Pattern[str] | None
    exclude: re.Pattern[str] | None
    query: Query | None = None
    exclude_query: Query | None = None


def compile_brand_query(brand: BrandConfig, field: Literal["query", "exclude"]) -> Query | None:
    """Compile ``brand.query`` or ``brand.exclude`` (None when not set), as
    :class:`BrandMatcher` does: a :class:`QuerySyntaxError` names the brand and field
    in its ``context``, and its ``detail``/``hint`` fit a config problem line. A
    ``query`` must need some term to occur (``NOT hiring`` alone is refused)."""
    text = brand.query if field == "query" else brand.exclude
    if text is None:
        return None
    context = f"brand {brand.name!r} {field}"
    try:
        query = compile_query(text)
    except QuerySyntaxError as e:
        raise e.with_context(context) from None
    if field == "query" and not query.requires_terms:
        raise QuerySyntaxError(
            "the query can match a mention that contains none of its terms",
            0,
            "a brand query needs terms that must occur: acme NOT hiring, not NOT hiring; "
            "to only exclude mentions, use exclude",
            query=text,
            context=context,
        )
    return query


def _compile(brand: BrandConfig) -> _CompiledBrand:
    query = compile_brand_query(brand, "query")
    exclude_query = compile_brand_query(brand, "exclude")
    # with a query, the name is no implicit alias: the query says what the brand is
    aliases = brand.aliases or ([] if query is not None else [brand.name])
    terms: list[str | None] = [_term(a) for a in aliases]
    terms += [_term(k) for k in brand.keywords]
    terms += [_term(h, "@") for h in brand.handles]
    terms += [_term(h, "#") for h in brand.hashtags]
    exclusions = [_term(e) for e in brand.exclusions]
    return _CompiledBrand(
        name=brand.name,
        include=_pattern(t for t in terms if t),
        exclude=_pattern(e for e in exclusions if e),
        query=query,
        exclude_query=exclude_query,
    )


class BrandMatcher:
    """Matches texts against brands; built once from config, regexes and queries
    compiled once (raises :class:`~listener.matching.query.QuerySyntaxError`).

    :meth:`match` normalises the text once and runs one include regex (and, when the
    brand has exclusions and the include matched, one exclusion regex) per brand. Brands
    with a ``query``/``exclude`` share one :class:`~listener.matching.query.Document`
    of the text, built on first need.
    """

    __slots__ = ("_brands", "_queries")

    def __init__(self, brands: Sequence[BrandConfig]) -> None:
        self._brands: tuple[_CompiledBrand, ...] = tuple(_compile(b) for b in brands)
        self._queries = any(b.query or b.exclude_query for b in self._brands)

    @property
    def brand_names(self) -> tuple[str, ...]:
        """The configured brand names, in config order."""
        return tuple(b.name for b in self._brands)

    def match(
        self,
        text: str,
        *,
        language: str | None = None,
        source: str | Collection[str] | None = None,
    ) -> tuple[str, ...]:
        """Names of the brands ``text`` mentions, in config order (empty when none).

        ``language`` (the mention's language code, when known) and ``source`` (its
        source's name, or several names such as name and type) are what queries'
        ``lang:``/``source:`` filters test; a ``lang:`` filter never matches an unknown
        language.
        """
        norm = normalise(text)
        found: list[str] = []
        if not self._queries:
            for brand in self._brands:
                if brand.include is None or brand.include.search(norm) is None:
                    continue
                if brand.exclude is not None and brand.exclude.search(norm) is not None:
                    continue
                found.append(brand.name)
            return tuple(found)
        doc: Document | None = None
        for brand in self._brands:
            if brand.include is None or brand.include.search(norm) is None:
                if brand.query is None:
                    continue
                if doc is None:
                    doc = Document(text, language, source)
                if not brand.query.matches(doc):
                    continue
            if brand.exclude is not None and brand.exclude.search(norm) is not None:
                continue
            if brand.exclude_query is not None:
                if doc is None:
                    doc = Document(text, language, source)
                if brand.exclude_query.matches(doc):
                    continue
            found.append(brand.name)
        return tuple(found)
