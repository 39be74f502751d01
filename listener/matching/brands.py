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

Cost (:class:`BrandMatcher`): flat in the number of brands. One Aho-Corasick automaton
holds every brand's include terms and exclusions; a text is scanned once and each hit
whose ends pass the whole-word rule marks its brands. A query is tested only for brands
one of whose query's necessary terms (:meth:`~listener.matching.query.Query.necessary_terms`)
occurs, found through a second index over the prepared document; an ``exclude`` query
only for brands otherwise matched.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeVar, cast

import ahocorasick

from listener.config.schema import BrandConfig
from listener.matching.query import (
    Document,
    NecessaryTerms,
    Query,
    QuerySyntaxError,
    compile_query,
)

if TYPE_CHECKING:
    from listener.matching.document import Prepared

__all__ = ["BrandMatcher", "QuerySyntaxError", "compile_brand_query", "is_word_char", "normalise"]

_V = TypeVar("_V")


def normalise(text: str) -> str:
    """NFKC + casefold the text and collapse whitespace runs to single spaces (stripped).

    ``str.split()`` splits on exactly what ``\\s`` matches (``str.isspace()``), and ASCII
    text is its own NFKC form and casefolds as ``lower()``: the fast forms of the same
    function (both checked over every code point in the tests)."""
    if text.isascii():
        return " ".join(text.lower().split())
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


def _term(raw: str, sigil: str = "") -> str | None:
    """Normalise one configured term; with a sigil, strip any given and put one back."""
    term = normalise(raw)
    if sigil:
        term = term.lstrip(sigil).strip()
        return sigil + term if term else None
    return term or None


def is_word_char(char: str) -> bool:
    """What ``\\w`` matches in a ``str`` pattern: ``str.isalnum()`` or ``_`` (checked
    against :mod:`re` over every code point in the tests)."""
    return char.isalnum() or char == "_"


def _scanner(entries: Mapping[str, _V]) -> Callable[[str], Iterator[tuple[int, _V]]] | None:
    """An Aho-Corasick automaton over the non-empty keys of ``entries``: its ``iter``,
    which yields ``(end index, value)`` for every occurrence of every key, overlapping
    ones included; None when there are no keys."""
    if not entries:
        return None
    automaton = ahocorasick.Automaton()
    for key, value in entries.items():
        automaton.add_word(key, value)
    automaton.make_automaton()
    return cast("Callable[[str], Iterator[tuple[int, _V]]]", automaton.iter)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One normalised term in the automaton: its length and the brands (config indices)
    it is an include term or an exclusion of."""

    length: int
    include: tuple[int, ...]
    exclude: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _CompiledBrand:
    name: str
    include: frozenset[str]
    exclude: frozenset[str]
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
        include=frozenset(t for t in terms if t),
        exclude=frozenset(e for e in exclusions if e),
        query=query,
        exclude_query=exclude_query,
    )


def _terms_automaton(
    brands: Sequence[_CompiledBrand],
) -> Callable[[str], Iterator[tuple[int, _Entry]]] | None:
    """One automaton over every brand's include terms and exclusions."""
    include: dict[str, list[int]] = {}
    exclude: dict[str, list[int]] = {}
    for i, brand in enumerate(brands):
        for term in brand.include:
            include.setdefault(term, []).append(i)
        for term in brand.exclude:
            exclude.setdefault(term, []).append(i)
    entries = {
        term: _Entry(len(term), tuple(include.get(term, ())), tuple(exclude.get(term, ())))
        for term in include.keys() | exclude.keys()
    }
    return _scanner(entries)


class _QueryIndex:
    """Which brand queries could match a document: an index over every query's
    :class:`~listener.matching.query.NecessaryTerms` (words: a set intersection;
    wildcard stems, case-kept and folded substrings: one automaton pass each), plus
    the queries for which no such terms exist, tested always."""

    __slots__ = ("_always", "_folded", "_prefixes", "_text", "_word_set", "_words")

    def __init__(self, queries: Mapping[int, Query]) -> None:
        words: dict[str, list[int]] = {}
        prefixes: dict[str, list[int]] = {}
        text: dict[str, list[int]] = {}
        folded: dict[str, list[int]] = {}
        always: list[int] = []
        for i, query in queries.items():
            need: NecessaryTerms | None = query.necessary_terms()
            if need is None:
                always.append(i)
                continue
            for kind, terms in (
                (words, need.words),
                (prefixes, need.prefixes),
                (text, need.text),
                (folded, need.folded),
            ):
                for term in terms:
                    kind.setdefault(term, []).append(i)
        self._always = frozenset(always)
        self._words = {w: tuple(b) for w, b in words.items()}
        self._word_set = frozenset(words)
        # "\0" is in no term: "\0stem" matches only at the start of a term of "\0t1\0t2"
        self._prefixes = _scanner({"\0" + p: tuple(b) for p, b in prefixes.items()})
        self._text = _scanner({t: tuple(b) for t, b in text.items()})
        self._folded = _scanner({t: tuple(b) for t, b in folded.items()})

    def candidates(self, doc: Document) -> set[int]:
        """The brands (config indices) whose query might match ``doc``."""
        found = set(self._always)
        words = self._words
        for word in doc.terms & self._word_set:
            found.update(words[word])
        if self._prefixes is not None and doc.terms:
            for _, brands in self._prefixes("\0" + "\0".join(doc.terms)):
                found.update(brands)
        if self._text is not None:
            for _, brands in self._text(doc.text):
                found.update(brands)
        if self._folded is not None:
            for _, brands in self._folded(doc.folded):
                found.update(brands)
        return found


class BrandMatcher:
    """Matches texts against brands; built once from config, automata and queries
    compiled once (raises :class:`~listener.matching.query.QuerySyntaxError`).

    :meth:`match` normalises the text once and scans it once with one automaton over
    every brand's terms, whatever the number of brands. Brands with a ``query``/
    ``exclude`` share one :class:`~listener.matching.query.Document` of the text; a
    query is tested only when one of its necessary terms occurs in it.
    """

    __slots__ = ("_brands", "_exclude_queries", "_names", "_queries", "_query_index", "_scan")

    def __init__(self, brands: Sequence[BrandConfig]) -> None:
        self._brands: tuple[_CompiledBrand, ...] = tuple(_compile(b) for b in brands)
        self._names = tuple(b.name for b in self._brands)
        self._scan = _terms_automaton(self._brands)
        self._queries: dict[int, Query] = {
            i: b.query for i, b in enumerate(self._brands) if b.query is not None
        }
        self._query_index = _QueryIndex(self._queries) if self._queries else None
        self._exclude_queries: dict[int, Query] = {
            i: b.exclude_query for i, b in enumerate(self._brands) if b.exclude_query is not None
        }

    @property
    def brand_names(self) -> tuple[str, ...]:
        """The configured brand names, in config order."""
        return self._names

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
        from listener.matching.document import Prepared  # document imports this module

        return self.match_prepared(Prepared(text, language, source))

    def match_prepared(self, doc: Prepared) -> tuple[str, ...]:
        """:meth:`match` of a text already prepared (normalised once, its query document
        shared with every other reader of ``doc``)."""
        norm = doc.norm
        hits: list[_Entry] = []
        if self._scan is not None:
            last = len(norm) - 1
            for end, entry in self._scan(norm):
                # the whole-word rule, (?<!\w)term(?!\w), on the hit's two neighbours
                # (is_word_char, inlined)
                start = end - entry.length + 1
                if start > 0:
                    c = norm[start - 1]
                    if c.isalnum() or c == "_":
                        continue
                if end < last:
                    c = norm[end + 1]
                    if c.isalnum() or c == "_":
                        continue
                hits.append(entry)
        plain = self._query_index is None and not self._exclude_queries
        if plain:
            if not hits:
                return ()
            if len(hits) == 1 and not hits[0].exclude:
                return tuple(self._names[i] for i in hits[0].include)  # in config order
        included: set[int] = set()
        excluded: set[int] = set()
        for entry in hits:
            included.update(entry.include)
            excluded.update(entry.exclude)
        found = included - excluded
        if plain:
            return tuple(self._names[i] for i in sorted(found))
        if self._query_index is not None:
            query_doc = doc.query_document()
            queries = self._queries
            for i in self._query_index.candidates(query_doc):
                if i not in included and i not in excluded and queries[i].matches(query_doc):
                    found.add(i)
        if self._exclude_queries and found:
            for i in [i for i in found if i in self._exclude_queries]:
                if self._exclude_queries[i].matches(doc.query_document()):
                    found.discard(i)
        return tuple(self._names[i] for i in sorted(found))
