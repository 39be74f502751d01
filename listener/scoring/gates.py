"""Gates: literals a text must contain before a category term or pattern can match it.

:mod:`listener.scoring.categories` tries a term's or pattern's regex on a text only when
the text passes the item's gates, so that a text is not searched by hundreds of regexes.
A gate is one of

* ``(EXACT, words)``: the text has this word (a whole ``\\w+`` run), or these words in a
  row with only non-word characters between them (``"on hold"``);
* ``(STEM, words)``: the same, but the last word of the text only starts with the last
  given (at least :data:`MIN_STEM` characters in all);
* ``(SUBSTRING, literal)``: the normalised text contains ``literal``.

A :data:`Clause` is a set of gates one of which every match satisfies; an item's clauses
all hold for every match. Gates only ever skip a regex that cannot match, so they never
change a result, only how often a regex is tried (the tests check this against trying
every regex on every text).

This module reads a pattern's clauses from its source with a small parser of its own,
for the part of Python's regex syntax that category patterns use: literals, escaped
punctuation, ``.``, ``\\w \\W \\d \\D \\s \\S``, character classes, ``\\b \\B \\A \\Z ^ $``,
groups ``(...)``, ``(?:...)``, ``(?P<name>...)``, ``(?>...)``, lookarounds (read as
zero-width, their content ignored), alternation and every quantifier (greedy, lazy or
possessive). Anything else (inline flags, back-references, conditionals, ``\\x``/``\\u``
escapes, a literal ``{``, nested sets) makes the reader give up: such a pattern has no
clauses and is tried on every text, which is slower but still exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from listener.errors import ListenerError

__all__ = [
    "COMMON",
    "EXACT",
    "MIN_STEM",
    "STEM",
    "SUBSTRING",
    "Clause",
    "Gate",
    "cost",
    "is_word",
    "pattern_clauses",
    "weak",
]

# Gate kinds: a whole word, a word's start, a substring of the normalised text.
EXACT, STEM, SUBSTRING = 0, 1, 2
Gate = tuple[int, str]
Clause = frozenset[Gate]
MIN_STEM = 3

_WORD = re.compile(r"\w+")

# Words too common to be worth gating on when the term or pattern offers a rarer one
# (frequent English words, and the pieces of links that fill social media texts).
COMMON = frozenset(
    [
        "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "back",
        "be", "been", "before", "being", "but", "by", "can", "co", "com", "could", "did", "do",
        "does", "for", "from", "get", "gets", "getting", "go", "going", "got", "had", "has", "have",
        "how", "http", "https", "i", "if", "in", "into", "is", "it", "it's", "its", "just", "like",
        "me", "more", "my", "no", "not", "now", "of", "on", "one", "or", "our", "out", "over", "so",
        "some", "than", "that", "the", "their", "them", "then", "there", "they", "this", "to",
        "too", "up", "us", "very", "was", "we", "were", "what", "when", "which", "who", "why",
        "will", "with", "would", "www", "you", "your",
    ]
)  # fmt: skip


def is_word(char: str) -> bool:
    """Whether ``char`` is a regex word character (``\\w``: alphanumeric or ``_``)."""
    return char.isalnum() or char == "_"


def weak(clause: Clause) -> bool:
    """Whether ``clause`` is likely to hold for most texts: it has a literal of fewer than
    three characters, or one made only of :data:`COMMON` words."""
    return any(len(v.strip()) < MIN_STEM or COMMON.issuperset(v.split()) for _, v in clause)


def cost(clause: Clause) -> tuple[bool, int, int, list[Gate]]:
    """Lower is likelier to rule a text out: not :func:`weak`, then the longest shortest
    literal, then the fewest alternatives (the sorted gates break ties, so the choice is
    deterministic)."""
    shortest = min(len(v.strip()) for _, v in clause)
    return (weak(clause), -shortest, len(clause), sorted(clause))


def cheapest(clauses: list[Clause]) -> Clause:
    """The clause of ``clauses`` with the lowest :func:`cost`."""
    return min(clauses, key=cost)


# --------------------------------------------------------------------------- parsing
#
# A pattern is parsed into a small tree: a character (a literal, or a class known only by
# whether it may match word and non-word characters), a zero-width assertion, a sequence,
# an alternation or a repetition.


class _Unsupported(ListenerError):
    """Syntax outside the subset the reader knows (never leaves this module: the pattern
    then has no clauses)."""


@dataclass(frozen=True, slots=True)
class _Char:
    literal: str | None  # the character it matches, as it appears in normalised text
    word: bool  # may match a word character
    nonword: bool  # may match a non-word character


@dataclass(frozen=True, slots=True)
class _Assert:
    edge: bool  # \b ^ $ \A \Z: the position is never inside a word (others: unknown)


@dataclass(frozen=True, slots=True)
class _Seq:
    items: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Alt:
    options: tuple[_Node, ...]


@dataclass(frozen=True, slots=True)
class _Repeat:
    item: _Node
    least: int
    most: int | None  # None: unbounded


_Node = _Char | _Assert | _Seq | _Alt | _Repeat

_ANY = _Char(None, word=True, nonword=True)
_CLASSES = {  # escape → (may match a word character, may match a non-word character)
    "w": (True, False),
    "d": (True, False),  # digits are word characters
    "W": (False, True),
    "s": (False, True),
    "D": (True, True),
    "S": (True, True),
}
_CONTROL = {"n": "\n", "t": "\t", "r": "\r", "f": "\f", "v": "\v", "a": "\a"}
_BRACES = re.compile(r"\{(\d*)(,?)(\d*)\}")
_WIDE_RANGE = 256  # a class range wider than this is taken to hold both kinds of character


class _Parser:
    def __init__(self, source: str, *, ignorecase: bool) -> None:
        self.source = source
        self.pos = 0
        self.ignorecase = ignorecase

    def peek(self) -> str:
        return self.source[self.pos] if self.pos < len(self.source) else ""

    def take(self) -> str:
        char = self.peek()
        if not char:
            raise _Unsupported
        self.pos += 1
        return char

    def expect(self, char: str) -> None:
        if self.take() != char:
            raise _Unsupported

    def parse(self) -> _Node:
        node = self.alternation()
        if self.pos != len(self.source):
            raise _Unsupported
        return node

    def alternation(self) -> _Node:
        options = [self.sequence()]
        while self.peek() == "|":
            self.pos += 1
            options.append(self.sequence())
        return options[0] if len(options) == 1 else _Alt(tuple(options))

    def sequence(self) -> _Node:
        items: list[_Node] = []
        while self.peek() not in ("", "|", ")"):
            items.append(self.quantified(self.atom()))
        return _Seq(tuple(items))

    def quantified(self, atom: _Node) -> _Node:
        char = self.peek()
        if char in ("*", "+", "?"):
            self.pos += 1
            least, most = {"*": (0, None), "+": (1, None), "?": (0, 1)}[char]
        elif char == "{":
            braces = _BRACES.match(self.source, self.pos)
            if braces is None:
                raise _Unsupported  # a literal "{"
            low, comma, high = braces.groups()
            if not comma and not low:
                raise _Unsupported  # "{}" is two literals
            self.pos = braces.end()
            least = int(low or 0)
            most = (int(high) if high else None) if comma else least
        else:
            return atom
        if self.peek() in ("?", "+"):  # lazy or possessive: the same matches, or fewer
            self.pos += 1
        return _Repeat(atom, least, most)

    def atom(self) -> _Node:
        char = self.take()
        if char == "(":
            return self.group()
        if char == "[":
            return self.char_class()
        if char == "\\":
            return self.escape()
        if char == ".":
            return _ANY
        if char in ("^", "$"):
            return _Assert(edge=True)
        if char in ("*", "+", "?", "{"):
            raise _Unsupported
        return self.literal(char)

    def literal(self, char: str) -> _Char:
        if self.ignorecase and (char in ("i", "I") or not char.isascii()):
            # Ignoring case, "i" also matches the dotless "ı" that normalised text keeps,
            # and a non-ASCII character may match several others: not a known literal.
            return _Char(None, word=True, nonword=not char.isascii())
        if self.ignorecase:
            char = char.lower()  # normalised text is casefolded
        return _Char(char, word=is_word(char), nonword=not is_word(char))

    def group(self) -> _Node:
        source, pos = self.source, self.pos
        zero_width = False
        if source.startswith(("?:", "?>"), pos):
            self.pos += 2
        elif source.startswith(("?=", "?!"), pos):
            self.pos += 2
            zero_width = True
        elif source.startswith(("?<=", "?<!"), pos):
            self.pos += 3
            zero_width = True
        elif source.startswith("?P<", pos):
            end = source.find(">", pos)
            if end < 0:
                raise _Unsupported
            self.pos = end + 1
        elif source.startswith("?", pos):
            raise _Unsupported  # flags, comments, back-references, conditionals
        inner = self.alternation()
        self.expect(")")
        return _Assert(edge=False) if zero_width else inner

    def escape(self) -> _Node:
        char = self.take()
        if char in _CLASSES:
            word, nonword = _CLASSES[char]
            return _Char(None, word=word, nonword=nonword)
        if char in ("b", "A", "Z"):
            return _Assert(edge=True)
        if char == "B":
            return _Assert(edge=False)
        if char in _CONTROL:
            return self.literal(_CONTROL[char])
        if char.isascii() and char.isalnum():
            raise _Unsupported  # \x \u \N, back-references, octal
        return self.literal(char)

    def char_class(self) -> _Char:
        negated = self.peek() == "^"
        if negated:
            self.pos += 1
        word = nonword = False
        first = True
        while True:
            char = self.peek()
            if char == "]" and not first:
                self.pos += 1
                break
            first = False
            low = self.class_item()
            if isinstance(low, tuple):
                word, nonword = word or low[0], nonword or low[1]
                continue
            high = low
            if self.peek() == "-" and self.source[self.pos + 1 : self.pos + 2] not in ("]", ""):
                self.pos += 1
                end = self.class_item()
                if isinstance(end, tuple):
                    raise _Unsupported
                high = end
            kinds = _range_kinds(low, high)
            word, nonword = word or kinds[0], nonword or kinds[1]
        if negated:
            return _ANY  # known only as "not these": may be anything
        return _Char(None, word=word, nonword=nonword)

    def class_item(self) -> str | tuple[bool, bool]:
        """One character of a class, or the kinds a class escape (``\\w``...) may match."""
        char = self.take()
        if char == "[":
            raise _Unsupported  # set operations and nested sets
        if char != "\\":
            return char
        char = self.take()
        if char in _CLASSES:
            return _CLASSES[char]
        if char == "b":
            return "\b"
        if char in _CONTROL:
            return _CONTROL[char]
        if char.isascii() and char.isalnum():
            raise _Unsupported
        return char


def _range_kinds(low: str, high: str) -> tuple[bool, bool]:
    """Whether the characters from ``low`` to ``high`` (and, ignoring case, their other
    cases, which are of the same kind) hold word and non-word characters."""
    if ord(high) - ord(low) > _WIDE_RANGE:
        return True, True
    kinds = [is_word(chr(c)) for c in range(ord(low), ord(high) + 1)]
    return any(kinds), not all(kinds)


# --------------------------------------------------------------------------- reading
#
# Whether a literal starts or ends a word depends on its neighbours, so the reader tracks
# one fact about positions: "never inside a word" (not between two word characters). It
# holds at the start and end of every match (the left edge is the tagger's rule, the
# right edge the regex's own), after and before a non-word character, and at \b ^ $.


def _ends(node: _Node, before: bool) -> bool:
    """Whether the position after any match of ``node`` is never inside a word, given
    whether the position before it is (``before``)."""
    if isinstance(node, _Char):
        return not node.word
    if isinstance(node, _Assert):
        return before or node.edge
    if isinstance(node, _Seq):
        for item in node.items:
            before = _ends(item, before)
        return before
    if isinstance(node, _Alt):
        return all(_ends(option, before) for option in node.options)
    if node.most == 0:
        return before
    # every repetition ends as the first does (or better); none at all leaves ``before``
    return _ends(node.item, before) and (node.least > 0 or before)


def _starts(node: _Node, after: bool) -> bool:
    """Whether the position before any match of ``node`` is never inside a word, given
    whether the position after it is (``after``)."""
    if isinstance(node, _Char):
        return not node.word
    if isinstance(node, _Assert):
        return after or node.edge
    if isinstance(node, _Seq):
        for item in reversed(node.items):
            after = _starts(item, after)
        return after
    if isinstance(node, _Alt):
        return all(_starts(option, after) for option in node.options)
    if node.most == 0:
        return after
    return _starts(node.item, after) and (node.least > 0 or after)


def _clauses(node: _Node, left: bool, right: bool) -> list[Clause]:
    """Clauses every match of ``node`` satisfies, given whether the positions before and
    after it are never inside a word."""
    if isinstance(node, _Seq):
        return _sequence(node.items, left, right)
    if isinstance(node, _Alt):
        chosen: list[Clause] = []
        for option in node.options:
            found = _clauses(option, left, right)
            if not found:  # one way around every literal: nothing is needed
                return []
            chosen.append(cheapest(found))
        return [frozenset().union(*chosen)]
    if isinstance(node, _Repeat):
        if node.least == 0:
            return []
        # the first repetition is followed by another one or by what follows them all
        after = right if node.most == 1 else right and _starts(node.item, True)
        return _clauses(node.item, left, after)
    if isinstance(node, _Char) and node.literal is not None:
        return _run(node.literal, left, right)
    return []


def _sequence(items: tuple[_Node, ...], left: bool, right: bool) -> list[Clause]:
    befores: list[bool] = []
    edge = left
    for item in items:
        befores.append(edge)
        edge = _ends(item, edge)
    afters: list[bool] = [False] * len(items)
    edge = right
    for k in range(len(items) - 1, -1, -1):
        afters[k] = edge
        edge = _starts(items[k], edge)
    found: list[Clause] = []
    k = 0
    while k < len(items):
        end = k
        literals: list[str] = []
        while end < len(items) and isinstance(item := items[end], _Char) and item.literal:
            literals.append(item.literal)
            end += 1
        if literals:  # a run of literals: read together, so words inside it show
            found += _run("".join(literals), befores[k], afters[end - 1])
            k = end
        else:
            found += _clauses(items[k], befores[k], afters[k])
            k += 1
    return found


def _run(text: str, left: bool, right: bool) -> list[Clause]:
    """The clauses a run of literals gives, knowing whether its ends are never inside a
    word: a gate for each phrase in it (words in a row, one space or hyphen apart) whose
    start (and end) shows, else the run itself (unless it is only spaces)."""
    found: list[Clause] = []
    phrase: list[re.Match[str]] = []
    for m in [*_WORD.finditer(text), None]:
        if m is not None and phrase and text[phrase[-1].end() : m.start()] in (" ", "-"):
            phrase.append(m)
            continue
        if phrase and not (phrase[0].start() > 0 or left):
            del phrase[0]  # its start does not show; the next word's does (after a space)
        if phrase:
            words = " ".join(w[0] for w in phrase)
            if phrase[-1].end() < len(text) or right:
                found.append(frozenset({(EXACT, words)}))
            elif len(words) >= MIN_STEM:
                found.append(frozenset({(STEM, words)}))
            elif len(phrase) > 1:
                found.append(frozenset({(EXACT, " ".join(w[0] for w in phrase[:-1]))}))
        phrase = [m] if m is not None else []
    if found or not text.strip():  # a space alone is in nearly every text
        return found
    return [frozenset({(SUBSTRING, text)})]


def pattern_clauses(pattern: str, *, ignorecase: bool) -> list[Clause]:
    """Clauses that every match of ``pattern`` (searched in normalised text, starting and
    ending where no word is cut, with ``ignorecase`` as it is compiled) satisfies; ``[]``
    when the pattern needs no literal or uses syntax outside the subset."""
    try:
        tree = _Parser(pattern, ignorecase=ignorecase).parse()
    except _Unsupported:
        return []
    return list(dict.fromkeys(_clauses(tree, left=True, right=True)))
