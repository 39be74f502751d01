"""Language codes: the one normal form of a language code everywhere.

A source's ``lang``, a ``sentiment:`` key, a rule's ``language`` filter, a brand query's
``lang:`` and a detector's answer all pass through :func:`normal_language`, so ``en-GB``
from an RSS feed, ``en`` from X and ``EN`` in a rules file are one language.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["normal_language"]

_ALIASES: Final = {"in": "id", "iw": "he", "ji": "yi", "jw": "jv", "mo": "ro"}
"""Withdrawn ISO 639-1 codes some sources still send (X sends ``in`` for Indonesian)."""

_NOT_LANGUAGES: Final = frozenset(
    {"und", "mul", "mis", "zxx", "art", "qst", "qme", "qht", "qam", "xx", "zz", "none"}
)
"""Codes that name no language: undetermined, several, no linguistic content, X's
``qst`` (very short), ``qme`` (media only), ``qht`` (hashtags only), ``qam`` (mentions
only)."""

_CODE: Final = re.compile(r"[a-z]{2,3}")


def normal_language(code: str | None) -> str | None:
    """The normal form of a language code (see the module), or ``None``."""
    if not code:
        return None
    primary = code.strip().lower().replace("_", "-").split("-", 1)[0]
    primary = _ALIASES.get(primary, primary)
    if primary in _NOT_LANGUAGES or _CODE.fullmatch(primary) is None:
        return None
    return primary
