"""The brand matcher as it was before the automaton: one include regex (and one exclusion
regex) per brand, every query tested. Kept as the reference the automaton matcher
(:class:`listener.matching.brands.BrandMatcher`) must agree with exactly; the property
tests in ``tests/unit/test_matching.py`` and ``bench/matching.py`` compare the two.

The old ``normalise`` (regex whitespace collapsing, no ASCII fast path) is kept too, so
the comparison covers normalisation as well; queries are compiled by the shipped
``compile_brand_query`` (unchanged) and tested one by one, as before.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from listener.config.schema import BrandConfig
from listener.matching.brands import compile_brand_query
from listener.matching.query import Document, Query

_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """NFKC + casefold the text and collapse whitespace runs to single spaces (stripped)."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return _SPACE.sub(" ", folded).strip()


def _term(raw: str, sigil: str = "") -> str | None:
    term = normalise(raw)
    if sigil:
        term = term.lstrip(sigil).strip()
        return sigil + term if term else None
    return term or None


def _pattern(terms: Iterable[str]) -> re.Pattern[str] | None:
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


def _compile(brand: BrandConfig) -> _CompiledBrand:
    query = compile_brand_query(brand, "query")
    exclude_query = compile_brand_query(brand, "exclude")
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


class ReferenceMatcher:
    """The per-brand regex loop: cost linear in the number of brands."""

    def __init__(self, brands: Sequence[BrandConfig]) -> None:
        self._brands = tuple(_compile(b) for b in brands)
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
        """Names of the brands ``text`` mentions, in config order."""
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
