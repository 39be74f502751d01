"""Small helpers every collector uses to shape a post's text and counts the same way."""

from __future__ import annotations

from typing import Any

MAX_TEXT_CHARS = 4000
"""A mention's text is cut to this many characters (with an ellipsis)."""


def cap_text(text: str) -> str:
    """``text`` cut to :data:`MAX_TEXT_CHARS`, ending in "…" when cut."""
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[: MAX_TEXT_CHARS - 1].rstrip() + "…"


def _same(text: str) -> str:
    return " ".join(text.split()).casefold()


def join_title(title: str, body: str) -> str:
    """A title and a body (summary, self-text) as one text: a full stop between them
    unless the title already ends a sentence; either alone when the other is empty or
    repeats it.

    Feeds often start the summary with the title (news search feeds put the headline,
    then the publisher, in the summary): a body that starts with the title is the whole
    text, and a body that is only the headline of a ``"Headline - Publisher"`` title,
    with or without the publisher, adds nothing."""
    if not body:
        return title
    if not title:
        return body
    head, said = _same(title), _same(body)
    if said.startswith(head):
        return body
    headline, dash, publisher = title.rpartition(" - ")
    if dash and headline.strip() and said.startswith(_same(headline)):
        rest = said[len(_same(headline)) :].strip(" -–—|·:")
        return title if rest in ("", _same(publisher)) else body
    return title + (" " if title[-1] in ".!?:;…" else ". ") + body


def as_count(value: Any) -> int | None:
    """An API's count (followers, likes) when it is an integer, else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
