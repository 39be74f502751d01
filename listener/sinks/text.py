"""Text shaping the sinks share: one printable line, cut to a limit."""

from __future__ import annotations


def clean_line(value: object) -> str:
    """One line of printable text: whitespace collapsed, control characters (ANSI escapes
    hidden in a mention's text, say) replaced, so nothing can drive a terminal or break a
    header."""
    text = " ".join(str(value).split())
    return "".join(ch if ch.isprintable() else " " for ch in text)


def cut(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in "…" when cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)].rstrip() + "…"


def one_line(text: str, limit: int) -> str:
    """Whitespace collapsed, then cut to ``limit``."""
    return cut(" ".join(text.split()), limit)


def excerpt(value: object, limit: int) -> str:
    """:func:`clean_line`, then cut to ``limit``."""
    return cut(clean_line(value), limit)
