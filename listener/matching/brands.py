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
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from listener.config.schema import BrandConfig

__all__ = ["BrandMatcher", "normalise"]

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


def _compile(brand: BrandConfig) -> _CompiledBrand:
    terms: list[str | None] = [_term(a) for a in (brand.aliases or [brand.name])]
    terms += [_term(k) for k in brand.keywords]
    terms += [_term(h, "@") for h in brand.handles]
    terms += [_term(h, "#") for h in brand.hashtags]
    exclusions = [_term(e) for e in brand.exclusions]
    return _CompiledBrand(
        name=brand.name,
        include=_pattern(t for t in terms if t),
        exclude=_pattern(e for e in exclusions if e),
    )


class BrandMatcher:
    """Matches texts against brands; built once from config, regexes compiled once.

    :meth:`match` normalises the text once and runs one include regex (and, when the
    brand has exclusions and the include matched, one exclusion regex) per brand.
    """

    __slots__ = ("_brands",)

    def __init__(self, brands: Sequence[BrandConfig]) -> None:
        self._brands: tuple[_CompiledBrand, ...] = tuple(_compile(b) for b in brands)

    @property
    def brand_names(self) -> tuple[str, ...]:
        """The configured brand names, in config order."""
        return tuple(b.name for b in self._brands)

    def match(self, text: str) -> tuple[str, ...]:
        """Names of the brands ``text`` mentions, in config order (empty when none)."""
        norm = normalise(text)
        found: list[str] = []
        for brand in self._brands:
            if brand.include is None or brand.include.search(norm) is None:
                continue
            if brand.exclude is not None and brand.exclude.search(norm) is not None:
                continue
            found.append(brand.name)
        return tuple(found)
