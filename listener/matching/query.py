"""Boolean brand queries: ``("Acme" OR @acme) AND (outage OR down) NOT hiring``.

The language reference is ``docs/queries.md``. In short:

* Terms are whole words, case- and Unicode-insensitive (NFKC + casefold, as
  :func:`listener.matching.brands.normalise`). ``"a b"`` is a phrase (consecutive words;
  punctuation between them is ignored), ``{Apple}`` a case-sensitive term or phrase,
  ``refund*`` a trailing wildcard (at least :data:`MIN_WILDCARD_PREFIX` letters first),
  ``@acme`` / ``#acme`` match only as a handle / hashtag. A term with inner punctuation
  (``AT&T``, ``C++``, ``e-mail``) matches exactly that spelling.
* ``AND``, ``OR``, ``NOT`` (binary ``a NOT b`` = ``a AND NOT b``, and prefix ``NOT a``),
  ``NEAR/n`` (at most ``n`` words between, either order), ``NEAR/nf`` (left first),
  parentheses. Precedence: ``NEAR`` > ``NOT`` > ``AND`` > ``OR``. Operators are uppercase;
  two terms side by side with no operator are an error (write a phrase or ``AND``).
* Filters ``lang:en`` (the mention's language, given by its source or detected:
  :mod:`listener.scoring.language`; codes in their normal form,
  :func:`~listener.langcodes.normal_language`, so ``en`` matches ``en-GB`` and
  ``lang:pt-BR`` is ``lang:pt``; an unknown language never matches) and
  ``source:reddit`` (one of the names the caller gave).

A query is compiled once (:func:`compile_query`) into a small tree evaluated over a
:class:`Document`, the mention prepared once and shared by every brand: its folded text
and set of folded words/tags (so a term test is a set look-up), and, built only when a
phrase, ``NEAR`` or symbol term needs them and its words all occur, token positions.

Mistakes raise :class:`QuerySyntaxError` with the 0-based ``position`` of the mistake in
the query, a ``message`` and a ``hint``; ``str()`` reads ``expected ')' at column 17``
(columns are 1-based for people).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from listener.errors import ListenerError
from listener.langcodes import normal_language

__all__ = [
    "FILTERS",
    "MIN_WILDCARD_PREFIX",
    "Document",
    "NecessaryTerms",
    "Query",
    "QuerySyntaxError",
    "compile_query",
]

MIN_WILDCARD_PREFIX: Final = 3
"""Letters or digits a wildcard term needs before its ``*`` (``ref*`` yes, ``re*`` no)."""

FILTERS: Final = ("lang", "source")
"""The filter names a query may use (``lang:en``, ``source:reddit``)."""

_MAX_FILTER_ATOMS = 10
"""Distinct filters up to which :attr:`Query.requires_terms` is decided exactly."""


# --------------------------------------------------------------------------- errors


class QuerySyntaxError(ListenerError):
    """A query could not be compiled.

    ``message`` says what is wrong, ``position`` is the 0-based index in ``query`` where
    it was noticed (``len(query)`` for "ended too early"), ``hint`` how to fix it.
    ``context`` (e.g. ``brand 'Acme' query``) prefixes ``str()`` when set.
    """

    error_type = "query"

    def __init__(
        self,
        message: str,
        position: int,
        hint: str | None = None,
        *,
        query: str = "",
        context: str | None = None,
    ) -> None:
        self.message = message
        self.position = position
        self.hint = hint
        self.query = query
        self.context = context
        super().__init__(str(self))

    @property
    def column(self) -> int:
        """The 1-based column of the mistake (``position + 1``)."""
        return self.position + 1

    @property
    def detail(self) -> str:
        """``message at column N``, without the context (for a config problem line)."""
        return f"{self.message} at column {self.column}"

    def __str__(self) -> str:
        return f"{self.context}: {self.detail}" if self.context else self.detail

    def with_context(self, context: str) -> QuerySyntaxError:
        """The same error with ``context`` (e.g. ``brand 'Acme' query``) in front."""
        return QuerySyntaxError(
            self.message, self.position, self.hint, query=self.query, context=context
        )

    def pointer(self) -> str:
        """The query and a caret under the mistake, on two lines."""
        line = self.query.replace("\n", " ").replace("\t", " ")
        return f"{line}\n{' ' * self.position}^"


# --------------------------------------------------------------------------- tokens of text

_JOINERS = "\u200c\u200d"  # ZWNJ/ZWJ: inside Persian/Indic words and emoji sequences
# curly apostrophes are "'"; emoji variation selectors go (✈ = ✈️)
_CANONICAL = str.maketrans({"\u2019": "'", "\u2018": "'", "\ufe0e": None, "\ufe0f": None})


@dataclass(frozen=True, slots=True)
class _Patterns:
    tokens: re.Pattern[str]  # (whitespace)(word)|(symbol), for positions
    words: re.Pattern[str]  # a word
    tags: re.Pattern[str]  # a #hashtag or @handle


_patterns: _Patterns | None = None


def _compile_patterns() -> _Patterns:
    """Built on first use (a scan of Unicode for combining marks, about 15 ms).

    A word is a run of ``\\w`` and combining marks (which ``\\w`` lacks, so Indic words
    and decomposed accents stay whole; marks above U+FFFF, of rare historic scripts,
    separate words); a symbol is any other non-space character with
    the marks that follow it (``❤️``). A hashtag/handle is ``#``/``@`` right before a
    word and not itself right after a letter, digit or ``_`` (``me@acme.com`` holds no
    handle; ``❤️#acme`` holds a hashtag)."""
    global _patterns
    if _patterns is None:
        category = unicodedata.category
        # marks of the Basic Multilingual Plane only: with characters above U+FFFF in it
        # a regex class is searched linearly, three times slower on every text
        codes = [cp for cp in range(0x300, 0x10000) if category(chr(cp)).startswith("M")]
        codes += [ord(c) for c in _JOINERS]
        ranges: list[str] = []
        for _, run in itertools.groupby(enumerate(sorted(codes)), lambda p: p[1] - p[0]):
            cps = [cp for _, cp in run]
            ranges.append(f"\\U{cps[0]:08x}-\\U{cps[-1]:08x}")
        marks = "".join(ranges)
        word = rf"\w{marks}"
        _patterns = _Patterns(
            tokens=re.compile(rf"(\s*)(?:([{word}]+)|([^\s{word}][{marks}]*))"),
            # a word starts with \w, or with a mark after whitespace (after a symbol, marks
            # belong to the symbol)
            words=re.compile(rf"\w[{word}]*|(?<!\S)[{marks}][{word}]*"),
            tags=re.compile(rf"[#@](?<!\w[#@])(?=\w)[{word}]+"),
        )
    return _patterns


# ASCII texts (most posts) take faster paths with the same result: no marks to consider
_ASCII_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_ASCII_SPLIT = bytes(b if b in _ASCII_WORD else 0x20 for b in range(256))
_ASCII_TOKENS = re.compile(r"(\s*)(?:(\w+)|(\S))")
_ASCII_TAGS = re.compile(r"[#@](?<!\w[#@])\w+")


def _is_word_char(char: str) -> bool:
    """What ``\\w`` matches."""
    return char.isalnum() or char == "_"


def _terms(text: str) -> set[str]:
    """The words, ``#hashtags`` and ``@handles`` of ``text``."""
    if text.isascii():
        terms = set(text.encode().translate(_ASCII_SPLIT).decode().split())
        if "#" in text or "@" in text:
            terms.update(_ASCII_TAGS.findall(text))
        return terms
    patterns = _compile_patterns()
    terms = set(patterns.words.findall(text))
    if "#" in text or "@" in text:
        terms.update(patterns.tags.findall(text))
    return terms


def _fold(text: str) -> str:
    """The case- and compatibility-insensitive form of NFKC text (a token or a whole text;
    folding never moves a token boundary, so both give the same tokens)."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", text.casefold())


def _prepare(text: str) -> str:
    """NFKC, with curly apostrophes as ``'`` (``McDonald’s`` = ``McDonald's``) and no
    emoji variation selectors."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text).translate(_CANONICAL)


class _Tokens:
    """The tokens of one text, for phrases, NEAR and symbols: words and symbols in order,
    each with whether it is a word, whether it touches the previous token (no whitespace
    between) and its word position (a word's index among the words; a symbol's count of
    words before it); ``index`` maps each token, and ``#tag``/``@handle``, to places."""

    __slots__ = ("glued", "index", "is_word", "keys", "wpos")

    def __init__(self, text: str) -> None:
        tokens = _ASCII_TOKENS if text.isascii() else _compile_patterns().tokens
        keys: list[str] = []
        is_word: list[bool] = []
        glued: list[bool] = []
        wpos: list[int] = []
        index: dict[str, list[int]] = {}
        words = 0
        for t, (space, word, symbol) in enumerate(tokens.findall(text)):
            touching = t > 0 and not space
            if word:
                index.setdefault(word, []).append(t)
                if (
                    touching
                    and (keys[t - 1] == "#" or keys[t - 1] == "@")
                    and not (glued[t - 1] and _is_word_char(keys[t - 2][-1]))
                ):
                    index.setdefault(keys[t - 1] + word, []).append(t)
                keys.append(word)
                is_word.append(True)
                wpos.append(words)
                words += 1
            else:
                index.setdefault(symbol, []).append(t)
                keys.append(symbol)
                is_word.append(False)
                wpos.append(words)
            glued.append(touching)
        self.keys = keys
        self.is_word = is_word
        self.glued = glued
        self.wpos = wpos
        self.index = index

    def __len__(self) -> int:
        return len(self.keys)

    def span(self, first: int, last: int) -> _Span:
        end = self.wpos[last] + 1 if self.is_word[last] else self.wpos[last]
        return (self.wpos[first], end, first, last)

    def free(self, first: int, last: int) -> bool:
        """Whether tokens ``first..last`` touch no word before or after them."""
        if self.glued[first] and self.is_word[first - 1]:
            return False
        after = last + 1
        return not (after < len(self.keys) and self.glued[after] and self.is_word[after])


# A match of part of a query: (first word position, end word position, first token,
# last token). Word positions give NEAR distances; tokens tell overlaps apart.
_Span = tuple[int, int, int, int]


class Document:
    """One mention, prepared once and shared by every query it is tested against.

    Eagerly (C-speed string and regex calls): the NFKC text, its folded form (NFKC +
    casefold) and the set of its folded words, ``#tags`` and ``@handles``, which answer
    most term tests. On first need: the case-kept set (``{Apple}``), a sorted list for
    wildcards, and the token positions (:class:`_Tokens`) for phrases and ``NEAR``.
    """

    __slots__ = (
        "_case_terms",
        "_case_tokens",
        "_language",
        "_resolve",
        "_sorted",
        "_tokens",
        "folded",
        "sources",
        "terms",
        "text",
    )

    def __init__(
        self,
        text: str,
        language: str | None = None,
        source: str | Collection[str] | None = None,
        resolve: Callable[[], str | None] | None = None,
    ) -> None:
        self.text = _prepare(text)
        self.folded = _fold(self.text)
        self.terms = _terms(self.folded)
        self._case_terms: set[str] | None = None
        self._sorted: list[str] | None = None
        self._tokens: _Tokens | None = None
        self._case_tokens: _Tokens | None = None
        self._language = normal_language(language)
        self._resolve = resolve
        """Called for the language on the first ``lang:`` test, when given (a detector
        runs only for mentions a ``lang:`` filter asks about)."""
        if source is None:
            self.sources: frozenset[str] = frozenset()
        elif isinstance(source, str):
            self.sources = frozenset((source.strip().lower(),))
        else:
            self.sources = frozenset(s.strip().lower() for s in source)

    @classmethod
    def of(
        cls,
        text: str,
        language: str | None = None,
        source: str | Collection[str] | None = None,
    ) -> Document:
        """Prepare ``text``; ``language`` is its language code when known (``en``,
        ``pt-BR``), ``source`` the name(s) ``source:`` filters may match (a source's
        configured name and/or its type), compared case-insensitively."""
        return cls(text, language, source)

    @property
    def language(self) -> str | None:
        """The mention's language (normal form), or None when unknown."""
        if self._resolve is not None:
            self._language, self._resolve = self._resolve(), None
        return self._language

    def case_terms(self) -> set[str]:
        """The words, ``#tags`` and ``@handles`` as written (NFKC, case kept)."""
        if self._case_terms is None:
            self._case_terms = _terms(self.text)
        return self._case_terms

    def tokens(self, case_sensitive: bool) -> _Tokens:
        """Token positions of the folded text, or of the case-kept text."""
        if case_sensitive:
            if self._case_tokens is None:
                self._case_tokens = _Tokens(self.text)
            return self._case_tokens
        if self._tokens is None:
            self._tokens = _Tokens(self.folded)
        return self._tokens

    @property
    def words(self) -> list[str]:
        """The folded words, in order (for debugging and tests)."""
        toks = self.tokens(False)
        return [k for k, w in zip(toks.keys, toks.is_word, strict=True) if w]

    def terms_from(self, prefix: str) -> Iterator[str]:
        """Folded terms that start with ``prefix`` (a sorted list is built on first use)."""
        if self._sorted is None:
            self._sorted = sorted(self.terms)
        terms = self._sorted
        i = bisect_left(terms, prefix)
        while i < len(terms) and terms[i].startswith(prefix):
            yield terms[i]
            i += 1


# --------------------------------------------------------------------------- necessary terms


@dataclass(frozen=True, slots=True)
class NecessaryTerms:
    """What must occur in a :class:`Document` for a query to match it: at least one of
    these (:meth:`Query.necessary_terms`). Each kind is implied by the test the query
    itself makes (a case-kept word among the case-kept words is a substring of the
    case-kept text), so a mention with none of them cannot match: never a guess.

    * ``words``: folded words, ``#tags`` and ``@handles``, members of :attr:`Document.terms`;
    * ``prefixes``: wildcard stems (``refund``, ``#acme``), prefixes of some member of
      :attr:`Document.terms`;
    * ``text``: substrings of :attr:`Document.text` (the NFKC, case-kept text), for
      case-sensitive terms and symbols;
    * ``folded``: substrings of :attr:`Document.folded`, for symbols (``😡``).

    A caller that indexes the terms of many queries (``BrandMatcher``) tests only the
    queries one of whose necessary terms occurs.
    """

    words: frozenset[str] = frozenset()
    prefixes: frozenset[str] = frozenset()
    text: frozenset[str] = frozenset()
    folded: frozenset[str] = frozenset()

    def __or__(self, other: NecessaryTerms) -> NecessaryTerms:
        return NecessaryTerms(
            self.words | other.words,
            self.prefixes | other.prefixes,
            self.text | other.text,
            self.folded | other.folded,
        )

    @property
    def cost(self) -> int:
        """How costly the set is to look for: a word is a set look-up, the rest scans."""
        return len(self.words) + 2 * (len(self.prefixes) + len(self.text) + len(self.folded))

    def occur_in(self, doc: Document) -> bool:
        """Whether any of the terms occurs in ``doc`` (one document; an index of many
        queries' terms answers the same question for all at once)."""
        return (
            not self.words.isdisjoint(doc.terms)
            or any(next(doc.terms_from(p), None) is not None for p in self.prefixes)
            or any(t in doc.text for t in self.text)
            or any(t in doc.folded for t in self.folded)
        )


def _cheapest(needs: Iterable[NecessaryTerms | None]) -> NecessaryTerms | None:
    """The cheapest of ``needs`` that is known (any one is necessary), else None."""
    known = [n for n in needs if n is not None]
    return min(known, key=lambda n: n.cost) if known else None


# --------------------------------------------------------------------------- compiled tree


class _Node:
    """A compiled query (sub)expression."""

    __slots__ = ()
    near_ok = False

    def test(self, doc: Document) -> bool:
        raise NotImplementedError

    def spans(self, doc: Document) -> list[_Span]:
        raise NotImplementedError

    def vacuous(self, env: Mapping[tuple[str, str], bool]) -> bool:
        """Whether it matches a mention with no tokens whose filters answer per ``env``."""
        return False

    def filters(self) -> Iterator[tuple[str, str]]:
        yield from ()

    def necessary(self) -> NecessaryTerms | None:
        """Terms of which one occurs in every document :meth:`test` accepts, or None when
        that cannot be said (``NOT``, filters)."""
        return None


class _Key(_Node):
    """One folded word, ``#tag`` or ``@handle``: a set look-up."""

    __slots__ = ("key",)
    near_ok = True
    case_sensitive = False

    def __init__(self, key: str) -> None:
        self.key = key

    def test(self, doc: Document) -> bool:
        return self.key in doc.terms

    def necessary(self) -> NecessaryTerms | None:
        return NecessaryTerms(words=frozenset((self.key,)))

    def spans(self, doc: Document) -> list[_Span]:
        toks = doc.tokens(self.case_sensitive)
        return [toks.span(t, t) for t in toks.index.get(self.key, ())]

    def __str__(self) -> str:
        return self.key


class _CaseKey(_Key):
    """One case-sensitive word, ``#Tag`` or ``@Handle`` (``{Apple}``)."""

    __slots__ = ()
    case_sensitive = True

    def test(self, doc: Document) -> bool:
        return self.key in doc.case_terms()

    def necessary(self) -> NecessaryTerms | None:
        # a case-kept term is a substring of the case-kept text
        return NecessaryTerms(text=frozenset((self.key,)))

    def __str__(self) -> str:
        return f"{{{self.key}}}"


class _SymbolKey(_Node):
    """A symbol term (``😡``, ``$``): it may not touch a word (``(?<!\\w)😡(?!\\w)``)."""

    __slots__ = ("case_sensitive", "key")
    near_ok = True

    def __init__(self, key: str, case_sensitive: bool) -> None:
        self.key = key
        self.case_sensitive = case_sensitive

    def test(self, doc: Document) -> bool:
        if self.key not in (doc.text if self.case_sensitive else doc.folded):
            return False
        toks = doc.tokens(self.case_sensitive)
        return any(toks.free(t, t) for t in toks.index.get(self.key, ()))

    def necessary(self) -> NecessaryTerms | None:
        key = frozenset((self.key,))
        return NecessaryTerms(text=key) if self.case_sensitive else NecessaryTerms(folded=key)

    def spans(self, doc: Document) -> list[_Span]:
        toks = doc.tokens(self.case_sensitive)
        return [toks.span(t, t) for t in toks.index.get(self.key, ()) if toks.free(t, t)]

    def __str__(self) -> str:
        return f"{{{self.key}}}" if self.case_sensitive else self.key


class _Prefix(_Node):
    """A trailing wildcard: any folded word (or ``#tag``/``@handle``) starting with it."""

    __slots__ = ("prefix",)
    near_ok = True

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def test(self, doc: Document) -> bool:
        return next(doc.terms_from(self.prefix), None) is not None

    def necessary(self) -> NecessaryTerms | None:
        return NecessaryTerms(prefixes=frozenset((self.prefix,)))

    def spans(self, doc: Document) -> list[_Span]:
        toks = doc.tokens(False)
        index = toks.index
        return [toks.span(t, t) for key in doc.terms_from(self.prefix) for t in index[key]]

    def __str__(self) -> str:
        return self.prefix + "*"


@dataclass(frozen=True, slots=True)
class _Unit:
    """Tokens that must touch one another (``at&t`` → ``at`` ``&`` ``t``), found from the
    anchor (the first word, else the first token); a symbol at either end may not touch
    a word outside (``c++`` is not in ``c++x``)."""

    pieces: tuple[str, ...]
    words: tuple[bool, ...]
    anchor: int

    def spans(self, toks: _Tokens) -> list[_Span]:
        pieces, anchor, n = self.pieces, self.anchor, len(self.pieces)
        keys, glued, size = toks.keys, toks.glued, len(toks)
        edges = not self.words[0] or not self.words[-1]
        found: list[_Span] = []
        for t in toks.index.get(pieces[anchor], ()):
            first = t - anchor
            last = first + n - 1
            if first < 0 or last >= size:
                continue
            if n > 1 and not (
                keys[first] == pieces[0]
                and all(keys[first + j] == pieces[j] and glued[first + j] for j in range(1, n))
            ):
                continue
            if edges and not toks.free(first, last):
                continue
            found.append(toks.span(first, last))
        return found

    def __str__(self) -> str:
        return "".join(self.pieces)


class _Seq(_Node):
    """A phrase (units at consecutive word positions) or one multi-token term."""

    __slots__ = ("case_sensitive", "quoted", "symbols", "units", "words")
    near_ok = True

    def __init__(self, units: tuple[_Unit, ...], case_sensitive: bool, quoted: bool) -> None:
        self.units = units
        self.case_sensitive = case_sensitive
        self.quoted = quoted
        pieces = [(p, w) for u in units for p, w in zip(u.pieces, u.words, strict=True)]
        self.words = frozenset(p for p, w in pieces if w)
        self.symbols = frozenset(p for p, w in pieces if not w)

    def test(self, doc: Document) -> bool:
        # cheap necessary conditions first: every word occurs, every symbol is in the text
        if self.case_sensitive:
            terms, text = doc.case_terms(), doc.text
        else:
            terms, text = doc.terms, doc.folded
        if not self.words <= terms:
            return False
        for symbol in self.symbols:
            if symbol not in text:
                return False
        return bool(self.spans(doc))

    def necessary(self) -> NecessaryTerms | None:
        # test() needs every word among the terms and every symbol in the text: one will
        # do, the longest (likely the rarest); a case-kept word is in the case-kept text
        if self.words:
            word = frozenset((min(self.words, key=lambda w: (-len(w), w)),))
            return NecessaryTerms(text=word) if self.case_sensitive else NecessaryTerms(words=word)
        symbol = frozenset((min(self.symbols, key=lambda w: (-len(w), w)),))
        return NecessaryTerms(text=symbol) if self.case_sensitive else NecessaryTerms(folded=symbol)

    def spans(self, doc: Document) -> list[_Span]:
        toks = doc.tokens(self.case_sensitive)
        current = self.units[0].spans(toks)
        for unit in self.units[1:]:
            if not current:
                return current
            starts: dict[int, list[_Span]] = {}
            for span in unit.spans(toks):
                starts.setdefault(span[0], []).append(span)
            current = [
                (s, e2, a, b2)
                for s, e, a, b in current
                for _, e2, a2, b2 in starts.get(e, ())
                if a2 > b
            ]
        return current

    def __str__(self) -> str:
        body = " ".join(str(u) for u in self.units)
        if self.case_sensitive:
            return f"{{{body}}}"
        return f'"{body}"' if self.quoted or len(self.units) > 1 else body


class _Filter(_Node):
    __slots__ = ("kind", "value")

    def __init__(self, kind: Literal["lang", "source"], value: str) -> None:
        self.kind = kind
        self.value = value

    def test(self, doc: Document) -> bool:
        if self.kind == "lang":
            lang = doc.language
            return lang == self.value
        return self.value in doc.sources

    def vacuous(self, env: Mapping[tuple[str, str], bool]) -> bool:
        return env[(self.kind, self.value)]

    def filters(self) -> Iterator[tuple[str, str]]:
        yield (self.kind, self.value)

    def __str__(self) -> str:
        return f"{self.kind}:{self.value}"


class _Not(_Node):
    __slots__ = ("child",)

    def __init__(self, child: _Node) -> None:
        self.child = child

    def test(self, doc: Document) -> bool:
        return not self.child.test(doc)

    def vacuous(self, env: Mapping[tuple[str, str], bool]) -> bool:
        return not self.child.vacuous(env)

    def filters(self) -> Iterator[tuple[str, str]]:
        return self.child.filters()

    def __str__(self) -> str:
        return f"NOT {self.child}"


def _cost(node: _Node) -> int:
    if isinstance(node, _Key | _Filter):
        return 0
    return 1 if isinstance(node, _Seq | _Prefix) else 2


class _And(_Node):
    __slots__ = ("children", "order")

    def __init__(self, children: Sequence[_Node]) -> None:
        self.children = tuple(children)
        # tested cheapest first: look-ups and filters, then phrases/wildcards, the rest
        self.order = tuple(sorted(self.children, key=_cost))

    def test(self, doc: Document) -> bool:
        for child in self.order:  # noqa: SIM110 - a loop: no generator on the hot path
            if not child.test(doc):
                return False
        return True

    def vacuous(self, env: Mapping[tuple[str, str], bool]) -> bool:
        return all(child.vacuous(env) for child in self.children)

    def necessary(self) -> NecessaryTerms | None:
        # every child must match: any one child's terms are necessary; take the cheapest
        return _cheapest(child.necessary() for child in self.children)

    def filters(self) -> Iterator[tuple[str, str]]:
        for child in self.children:
            yield from child.filters()

    def __str__(self) -> str:
        return "(" + " AND ".join(str(c) for c in self.children) + ")"


class _Or(_Node):
    __slots__ = ("children", "near_ok")

    def __init__(self, children: Sequence[_Node]) -> None:
        self.children = tuple(children)
        self.near_ok = all(c.near_ok for c in self.children)

    def test(self, doc: Document) -> bool:
        for child in self.children:  # noqa: SIM110 - a loop: no generator on the hot path
            if child.test(doc):
                return True
        return False

    def spans(self, doc: Document) -> list[_Span]:
        return [span for child in self.children for span in child.spans(doc)]

    def vacuous(self, env: Mapping[tuple[str, str], bool]) -> bool:
        return any(child.vacuous(env) for child in self.children)

    def necessary(self) -> NecessaryTerms | None:
        # some child matches: the union, and nothing when one child has none
        union = NecessaryTerms()
        for child in self.children:
            need = child.necessary()
            if need is None:
                return None
            union = union | need
        return union

    def filters(self) -> Iterator[tuple[str, str]]:
        for child in self.children:
            yield from child.filters()

    def __str__(self) -> str:
        return "(" + " OR ".join(str(c) for c in self.children) + ")"


class _Near(_Node):
    """Both sides with at most ``distance`` words between them (``ordered``: left first).
    A match's span covers both sides, so NEARs nest."""

    __slots__ = ("distance", "left", "ordered", "right")
    near_ok = True

    def __init__(self, left: _Node, right: _Node, distance: int, ordered: bool) -> None:
        self.left = left
        self.right = right
        self.distance = distance
        self.ordered = ordered

    def _pairs(self, doc: Document) -> Iterator[_Span]:
        if not (self.left.test(doc) and self.right.test(doc)):
            return
        lefts = self.left.spans(doc)
        rights = sorted(self.right.spans(doc))
        starts = [r[0] for r in rights]
        by_end = sorted(rights, key=lambda r: r[1])
        ends = [r[1] for r in by_end]
        n = self.distance
        for s1, e1, a1, b1 in lefts:
            # right after left: its start within e1 .. e1 + n
            for i in range(bisect_left(starts, e1), bisect_right(starts, e1 + n)):
                s2, e2, a2, b2 = rights[i]
                if a2 > b1:
                    yield (s1, max(e1, e2), a1, b2)
            if self.ordered:
                continue
            # right before left: its end within s1 - n .. s1
            for i in range(bisect_left(ends, s1 - n), bisect_right(ends, s1)):
                s2, e2, a2, b2 = by_end[i]
                if b2 < a1:
                    yield (s2, max(e1, e2), a2, b1)

    def test(self, doc: Document) -> bool:
        return next(self._pairs(doc), None) is not None

    def spans(self, doc: Document) -> list[_Span]:
        return list(self._pairs(doc))

    def vacuous(self, env: Mapping[tuple[str, str], bool]) -> bool:
        return False

    def necessary(self) -> NecessaryTerms | None:
        # _pairs tests both sides first
        return _cheapest((self.left.necessary(), self.right.necessary()))

    def __str__(self) -> str:
        op = f"NEAR/{self.distance}{'f' if self.ordered else ''}"
        return f"({self.left} {op} {self.right})"


# --------------------------------------------------------------------------- the query


@dataclass(frozen=True, slots=True, eq=False)
class Query:
    """A compiled query; :meth:`matches` tests one :class:`Document`."""

    text: str
    _root: _Node

    def matches(self, doc: Document) -> bool:
        """Whether the mention ``doc`` matches this query."""
        return self._root.test(doc)

    @property
    def requires_terms(self) -> bool:
        """False when a mention with no words at all can match (``NOT hiring``,
        ``acme OR NOT lang:en``): such a query only excludes. Decided over every
        combination of its filters' answers (up to 10 distinct filters; beyond, it
        assumes True)."""
        atoms = sorted(set(self._root.filters()))
        if len(atoms) > _MAX_FILTER_ATOMS:
            return True
        for answers in itertools.product((False, True), repeat=len(atoms)):
            if self._root.vacuous(dict(zip(atoms, answers, strict=True))):
                return False
        return True

    @property
    def negated(self) -> tuple[str, ...]:
        """The parts under a ``NOT``, as compiled (``acme NOT (hiring OR jobs)`` →
        ``("(hiring OR jobs)",)``); empty when the query negates nothing."""
        found: list[str] = []
        todo: list[_Node] = [self._root]
        while todo:
            node = todo.pop()
            if isinstance(node, _Not):
                found.append(str(node.child))
            elif isinstance(node, _And | _Or):
                todo.extend(reversed(node.children))
            elif isinstance(node, _Near):
                todo.extend((node.right, node.left))
        return tuple(found)

    def explain(self, doc: Document) -> tuple[str, ...]:
        """Why ``doc`` matches: the parts of the query outside any ``NOT`` that hold for
        it (terms, phrases, wildcards, filters, ``NEAR`` pairs), as compiled, in order."""
        found: list[str] = []
        todo: list[_Node] = [self._root]
        while todo:
            node = todo.pop()
            if isinstance(node, _Not):
                continue
            if isinstance(node, _And | _Or):
                todo.extend(reversed(node.children))
            elif node.test(doc):
                found.append(str(node))
        return tuple(dict.fromkeys(found))

    def necessary_terms(self) -> NecessaryTerms | None:
        """Terms of which at least one occurs in every mention this query matches (so a
        mention with none of them need not be tested), or None when no such set can be
        derived (``NOT acme``, ``lang:en``, ``acme OR NOT hiring``): then every mention
        must be tested. See :class:`NecessaryTerms`."""
        return self._root.necessary()

    def __str__(self) -> str:
        """The query fully parenthesised, terms as compiled (folded): shows precedence."""
        return str(self._root)

    def __repr__(self) -> str:
        return f"Query({self.text!r})"


# --------------------------------------------------------------------------- lexer

_OPERATORS: dict[str, Literal["AND", "OR", "NOT"]] = {"AND": "AND", "OR": "OR", "NOT": "NOT"}
_QUOTES = '"“”'
_SPECIAL = "(){}" + _QUOTES
_NEAR = re.compile(r"NEAR/(\d+)(f?)")
_FILTER = re.compile(r"([A-Za-z]+):")
_FILTER_VALUE = re.compile(r"[A-Za-z0-9_.\-]+")
_NEAR_HINT = "write NEAR/3 (at most 3 words between, either order) or NEAR/3f (left first)"

TokKind = Literal["(", ")", "AND", "OR", "NOT", "NEAR", "TERM", "PHRASE", "CASE", "FILTER", "END"]


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: TokKind
    text: str  # as written (for messages)
    pos: int
    value: str = ""  # phrase/case content, filter value
    number: int = 0  # NEAR distance
    ordered: bool = False  # NEAR/nf


def _lex(query: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(query)

    def fail(message: str, pos: int, hint: str | None = None) -> QuerySyntaxError:
        return QuerySyntaxError(message, pos, hint, query=query)

    while i < n:
        c = query[i]
        if c.isspace():
            i += 1
        elif c in "()":
            toks.append(_Tok("(" if c == "(" else ")", c, i))
            i += 1
        elif c in _QUOTES:
            end = next((j for j in range(i + 1, n) if query[j] in _QUOTES), -1)
            if end < 0:
                raise fail("unclosed quote", i, 'add a closing " after the phrase')
            toks.append(_Tok("PHRASE", query[i : end + 1], i, query[i + 1 : end]))
            i = end + 1
        elif c == "{":
            end = query.find("}", i + 1)
            if end < 0:
                raise fail("unclosed '{'", i, "add a closing '}' after the case-sensitive term")
            toks.append(_Tok("CASE", query[i : end + 1], i, query[i + 1 : end]))
            i = end + 1
        elif c == "}":
            raise fail("unexpected '}'", i, "case-sensitive terms are written {Apple}")
        else:
            j = i
            while j < n and not query[j].isspace() and query[j] not in _SPECIAL:
                j += 1
            toks.append(_word_token(query, query[i:j], i))
            i = j
    toks.append(_Tok("END", "end of query", n))
    return toks


def _word_token(query: str, text: str, pos: int) -> _Tok:
    if text in _OPERATORS:
        return _Tok(_OPERATORS[text], text, pos)
    if text == "NEAR" or text.startswith("NEAR/"):
        m = _NEAR.fullmatch(text)
        if m is None:
            where = pos + 5 if text.startswith("NEAR/") else pos + 4
            raise QuerySyntaxError("NEAR needs a distance", where, _NEAR_HINT, query=query)
        return _Tok("NEAR", text, pos, number=int(m[1]), ordered=bool(m[2]))
    m = _FILTER.match(text)
    if m is not None:
        name, value = m[1], text[m.end() :]
        if name not in FILTERS:
            raise QuerySyntaxError(
                f"unknown filter '{name}:'",
                pos,
                f"filters are {', '.join(f + ':' for f in FILTERS)}; "
                f'to search for text with a colon, quote it: "{text}"',
                query=query,
            )
        if not value:
            raise QuerySyntaxError(
                f"expected a value after '{name}:'",
                pos + m.end(),
                f"write {name}:{'en' if name == 'lang' else 'reddit'} (no space after ':')",
                query=query,
            )
        if _FILTER_VALUE.fullmatch(value) is None:
            bad = next(k for k, ch in enumerate(value) if _FILTER_VALUE.fullmatch(ch) is None)
            raise QuerySyntaxError(
                f"unexpected {value[bad]!r} in a {name}: value",
                pos + m.end() + bad,
                "filter values are letters, digits, '-', '_' and '.'; "
                "combine filters with OR: (lang:en OR lang:de)",
                query=query,
            )
        return _Tok("FILTER", text, pos, value=value)
    return _Tok("TERM", text, pos)


# --------------------------------------------------------------------------- terms


def _units(text: str, pos: int, query: str, what: str) -> tuple[_Unit, ...]:
    """Split a term's or phrase's text into units (whitespace-separated token runs)."""
    pattern = _compile_patterns().tokens
    units: list[_Unit] = []
    for chunk in _prepare(text).split():
        parts = pattern.findall(chunk)
        pieces = tuple(w or s for _, w, s in parts)
        words = tuple(bool(w) for _, w, _s in parts)
        anchor = words.index(True) if any(words) else 0
        units.append(_Unit(pieces, words, anchor))
    if all(_punctuation_only(u) for u in units):
        if not text.strip():
            raise QuerySyntaxError(
                f"empty {what}", pos, f"write something between the {_delims(what)}", query=query
            )
        raise QuerySyntaxError(
            f"{text.strip()!r} has no letters or digits",
            pos,
            'punctuation alone cannot be searched for; put it in a phrase: "at & t"',
            query=query,
        )
    return tuple(units)


def _punctuation_only(unit: _Unit) -> bool:
    """No word and nothing but punctuation (``&``, ``...``): nothing worth a search."""
    return not any(unit.words) and all(
        unicodedata.category(p[0]).startswith("P") for p in unit.pieces
    )


def _delims(what: str) -> str:
    return "quotes" if what == "phrase" else "braces"


def _fold_units(units: tuple[_Unit, ...]) -> tuple[_Unit, ...]:
    return tuple(_Unit(tuple(_fold(p) for p in u.pieces), u.words, u.anchor) for u in units)


def _term_node(units: tuple[_Unit, ...], case_sensitive: bool, quoted: bool) -> _Node:
    if not case_sensitive:
        units = _fold_units(units)
    if len(units) == 1:
        unit = units[0]
        key = _CaseKey if case_sensitive else _Key
        if len(unit.pieces) == 1:
            if unit.words[0]:
                return key(unit.pieces[0])
            return _SymbolKey(unit.pieces[0], case_sensitive)
        if len(unit.pieces) == 2 and unit.pieces[0] in ("#", "@") and unit.words == (False, True):
            return key(unit.pieces[0] + unit.pieces[1])
    return _Seq(units, case_sensitive, quoted)


def _bare_term(tok: _Tok, query: str) -> _Node:
    text, pos = tok.text, tok.pos
    star = text.find("*")
    if star >= 0:
        if star != len(text) - 1:
            raise QuerySyntaxError(
                "a wildcard '*' may only end a term",
                pos + star,
                "write refund* to match refund, refunds, refunded…",
                query=query,
            )
        return _wildcard(text[:-1], pos, query)
    if text.startswith("-") and len(text) > 1:
        raise QuerySyntaxError(
            f"'-' does not exclude a term here: {text!r}",
            pos,
            f"write NOT {text[1:]} (or quote it to search for {text!r})",
            query=query,
        )
    return _term_node(_units(text, pos, query, "term"), case_sensitive=False, quoted=False)


def _wildcard(stem: str, pos: int, query: str) -> _Node:
    sigil = stem[:1] if stem[:1] in ("#", "@") else ""
    body = _prepare(stem[len(sigil) :])
    parts = _compile_patterns().tokens.findall(body)
    if len(parts) > 1 or (parts and not parts[0][1]):
        raise QuerySyntaxError(
            "a wildcard term must be a single word",
            pos,
            f"only letters and digits may come before '*'; quote {stem!r} to match it exactly",
            query=query,
        )
    if len(body) < MIN_WILDCARD_PREFIX:
        raise QuerySyntaxError(
            f"a wildcard needs at least {MIN_WILDCARD_PREFIX} letters before '*'",
            pos,
            "write a longer stem (refund*), or list the words with OR",
            query=query,
        )
    return _Prefix(sigil + _fold(body))


def _quoted_term(tok: _Tok, query: str, case_sensitive: bool) -> _Node:
    what = "case-sensitive term" if case_sensitive else "phrase"
    star = tok.value.find("*")
    if star >= 0:
        raise QuerySyntaxError(
            f"wildcards are not allowed in a {what}",
            tok.pos + 1 + star,
            "list the forms with OR: ({App} OR {Apps})"
            if case_sensitive
            else 'for a phrase ending in a wildcard write "acme" NEAR/0f refund*',
            query=query,
        )
    if case_sensitive and any(q in tok.value for q in _QUOTES):
        raise QuerySyntaxError(
            "quotes are not allowed inside '{ }'",
            tok.pos + 1 + next(k for k, ch in enumerate(tok.value) if ch in _QUOTES),
            "braces already match a phrase: {Apple Music}",
            query=query,
        )
    units = _units(tok.value, tok.pos, query, "phrase" if not case_sensitive else "term")
    return _term_node(units, case_sensitive, quoted=True)


# --------------------------------------------------------------------------- parser

_STARTS: frozenset[str] = frozenset({"(", "TERM", "PHRASE", "CASE", "FILTER", "NOT"})


class _Parser:
    """Recursive descent over :func:`_lex` tokens.

    ::

        query   := or END
        or      := and ("OR" and)*
        and     := not ("AND" not)*
        not     := prefix ("NOT" prefix)*          a NOT b  ==  a AND NOT b
        prefix  := "NOT" prefix | near
        near    := primary ("NEAR/n" primary)*      left-associative; operands: terms,
                                                    phrases, wildcards, OR-groups, NEARs
        primary := TERM | PHRASE | CASE | FILTER | "(" or ")"
    """

    def __init__(self, query: str) -> None:
        self.query = query
        self.toks = _lex(query)
        self.i = 0

    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def fail(self, message: str, pos: int, hint: str | None = None) -> QuerySyntaxError:
        return QuerySyntaxError(message, pos, hint, query=self.query)

    def parse(self) -> _Node:
        if self.tok.kind == "END":
            raise self.fail("empty query", 0, "write at least one term, e.g. acme")
        node = self.parse_or()
        tok = self.tok
        if tok.kind == ")":
            raise self.fail("unmatched ')'", tok.pos, "remove it or add a '(' before")
        if tok.kind != "END":  # pragma: no cover - every other token is consumed above
            raise self.fail(f"unexpected {tok.text!r}", tok.pos)
        return node

    def parse_or(self) -> _Node:
        nodes = [self.parse_and()]
        while self.tok.kind == "OR":
            self.advance_operator()
            nodes.append(self.parse_and())
        return nodes[0] if len(nodes) == 1 else _Or(_flat(nodes, _Or))

    def parse_and(self) -> _Node:
        nodes = [self.parse_not()]
        while True:
            tok = self.tok
            if tok.kind == "AND":
                self.advance_operator()
                nodes.append(self.parse_not())
            elif tok.kind in _STARTS:
                raise self.adjacent(tok)
            else:
                break
        return nodes[0] if len(nodes) == 1 else _And(_flat(nodes, _And))

    def parse_not(self) -> _Node:
        nodes = [self.parse_prefix()]
        while self.tok.kind == "NOT":
            self.advance_operator()
            nodes.append(_Not(self.parse_prefix()))
        return nodes[0] if len(nodes) == 1 else _And(_flat(nodes, _And))

    def parse_prefix(self) -> _Node:
        if self.tok.kind == "NOT":
            self.advance_operator()
            return _Not(self.parse_prefix())
        return self.parse_near()

    def parse_near(self) -> _Node:
        start = self.tok.pos
        node = self.parse_primary()
        while self.tok.kind == "NEAR":
            near = self.tok
            self.check_near_operand(node, start, near)
            self.advance_operator()
            right_pos = self.tok.pos
            right = self.parse_primary()
            self.check_near_operand(right, right_pos, near)
            node = _Near(node, right, near.number, near.ordered)
        return node

    def check_near_operand(self, node: _Node, pos: int, near: _Tok) -> None:
        if not node.near_ok:
            raise self.fail(
                f"{near.text} needs terms, phrases, wildcards or OR-groups of them on both sides",
                pos,
                "move AND/NOT and filters outside: (a OR b) NEAR/3 c AND lang:en",
            )

    def advance_operator(self) -> None:
        """Step over an operator; the next token must be able to start an operand."""
        op = self.tok
        self.i += 1
        nxt = self.tok
        if nxt.kind in _STARTS and not (nxt.kind == "NOT" and op.kind == "NEAR"):
            return
        hint = f"remove the {op.text} or add a term after it"
        if op.kind == "NOT":
            hint = "NOT needs the term to exclude after it: acme NOT hiring"
        elif op.kind == "NEAR" and nxt.kind == "NOT":
            hint = "NEAR takes terms, phrases or OR-groups; write (a NEAR/3 b) NOT c"
        raise self.fail(f"expected a term after {op.text!r}", nxt.pos, hint)

    def parse_primary(self) -> _Node:
        tok = self.tok
        if tok.kind == "(":
            self.i += 1
            first = self.tok
            if first.kind == ")":
                raise self.fail("empty parentheses", tok.pos, "put a term inside: (a OR b)")
            if first.kind in ("AND", "OR", "NEAR"):
                raise self.fail(
                    f"expected a term before {first.text!r}",
                    first.pos,
                    "an operator goes between two terms",
                )
            node = self.parse_or()
            close = self.tok
            if close.kind != ")":
                raise self.fail(
                    "expected ')'",
                    close.pos,
                    f"the '(' at column {tok.pos + 1} is not closed",
                )
            self.i += 1
            return node
        self.i += 1
        if tok.kind == "TERM":
            return _bare_term(tok, self.query)
        if tok.kind == "PHRASE":
            return _quoted_term(tok, self.query, case_sensitive=False)
        if tok.kind == "CASE":
            return _quoted_term(tok, self.query, case_sensitive=True)
        if tok.kind == "FILTER":
            kind, _, value = tok.text.partition(":")
            if kind == "lang":
                code = normal_language(value)
                if code is None:
                    raise self.fail(
                        f"'{value}' is not a language code",
                        tok.pos,
                        "use a two- or three-letter ISO 639 code: lang:en, lang:fr, lang:pt",
                    )
                return _Filter("lang", code)
            return _Filter("source", value.lower())
        self.i -= 1
        if tok.kind == ")":
            raise self.fail("unmatched ')'", tok.pos, "remove it or add a '(' before")
        if tok.kind == "NOT":  # pragma: no cover - parse_prefix takes NOT first
            raise self.fail("unexpected 'NOT'", tok.pos)
        raise self.fail(
            f"expected a term before {tok.text!r}",
            tok.pos,
            "an operator goes between two terms",
        )

    def adjacent(self, tok: _Tok) -> QuerySyntaxError:
        prev = self.toks[self.i - 1]
        lowered = {"and": "AND", "or": "OR", "not": "NOT"}
        for word in (tok, prev):
            if word.kind == "TERM" and word.text in lowered:
                return self.fail(
                    f"expected an operator before {tok.text!r}",
                    tok.pos,
                    f"operators are uppercase: write {lowered[word.text]} "
                    f"(or quote {word.text!r} to search for the word)",
                )
            if word.kind == "TERM" and word.text.lower().startswith("near/"):
                return self.fail(
                    f"expected an operator before {tok.text!r}",
                    tok.pos,
                    f"operators are uppercase: write {word.text.upper().replace('F', 'f')}",
                )
        hint = "terms side by side need an operator: a AND b, or a phrase in quotes"
        if prev.kind == "TERM" and tok.kind == "TERM":
            hint = f'write "{prev.text} {tok.text}" for the phrase or {prev.text} AND {tok.text}'
        return self.fail(f"expected an operator before {tok.text!r}", tok.pos, hint)


def _flat(nodes: list[_Node], kind: type[_And] | type[_Or]) -> list[_Node]:
    out: list[_Node] = []
    for node in nodes:
        if type(node) is kind:
            out.extend(node.children)
        else:
            out.append(node)
    return out


def compile_query(text: str) -> Query:
    """Parse and compile ``text``; raises :class:`QuerySyntaxError` on a mistake."""
    if len(text) > 10_000:
        raise QuerySyntaxError("query longer than 10000 characters", 10_000, query=text)
    try:
        root = _Parser(text).parse()
    except RecursionError:
        raise QuerySyntaxError(
            "query nested too deeply", 0, "use fewer parentheses", query=text
        ) from None
    return Query(text, root)
