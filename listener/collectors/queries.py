"""Brand → what to ask a search API for. Pure."""

from __future__ import annotations

from collections.abc import Sequence

from listener.config.schema import BrandConfig, SourceBase


def brands_for(source: SourceBase, brands: Sequence[BrandConfig]) -> list[BrandConfig]:
    """The brands a source searches for: all, or those named in its ``brands``."""
    if source.brands is None:
        return list(brands)
    wanted = set(source.brands)
    return [b for b in brands if b.name in wanted]


def quoted(term: str) -> str:
    """A search term, quoted when it has spaces or punctuation."""
    term = term.replace('"', "")
    return f'"{term}"' if any(not c.isalnum() for c in term) else term


def simple_query(brand: BrandConfig) -> str:
    """An OR-query of the brand's aliases and keywords for plain search engines
    (news search, Hacker News, Reddit search); precise matching happens afterwards
    in the matcher, which also applies exclusions."""
    terms = list(dict.fromkeys([*brand.search_terms, *brand.keywords]))
    return " OR ".join(quoted(t) for t in terms)
