r"""An ordered regex alternation rewritten so that the engine reads each word once.

``(?:p0|p1|...)`` over a few hundred phrase patterns is slow in CPython's engine: at every
position it tries every alternative in turn. :func:`factor` returns an equivalent regex
(the same matches, found in the same order of preference) whose alternatives are grouped by
the characters of their first word, as a trie: ``delay(?:ed|s)?|diverted|delayed bags``
becomes ``d(?:elay(?:(?:ed|s)?|ed bags)|iverted)``, so at a word the engine follows its
letters down one branch and then tries only the alternatives that can begin with it.

It reads the pattern syntax the crisis lexicon uses (literals, escapes, classes, ``(?:``
groups, look-arounds, greedy and lazy quantifiers), with a small reader of its own rather
than the standard library's private parser, and refuses anything else (capturing groups,
flags, backreferences) with :class:`ValueError`.

Which alternative matched: each one ends in an empty capturing group, and
:attr:`Factored.labels` gives the label of group ``n`` at ``labels[n - 1]``, so the label
of a match is ``labels[match.lastindex - 1]``.

How: the *derivative* of a pattern by a character ``c`` is a pattern that matches ``s``
exactly where the pattern matches ``c + s``, with the same preference among its choices
(an optional part is tried before skipping it when greedy, after when lazy). A group of
alternatives whose matches begin with a word character is split by that character into
``c(?:derivatives by c, in order)`` branches; alternatives that begin with different
characters can never match at the same place, so only the order within a branch matters.
The splitting stops at the end of the first word (a continuation that may match nothing or
begins with a non-word character is written out as it is; so is one past :data:`MAX_DEPTH`
characters), which keeps the regex about as large as the alternation itself.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final, Generic, TypeVar

__all__ = ["Factored", "factor", "parse", "source"]

L = TypeVar("L", bound=Hashable)


# -- the syntax tree ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Char:
    """One literal character."""

    char: str


@dataclass(frozen=True, slots=True)
class Class:
    r"""One character out of a set, kept as written: ``\d``, ``\S``, ``.``, ``[- ]``."""

    source: str

    def has(self, char: str) -> bool:
        return _class_regex(self.source).fullmatch(char) is not None


@dataclass(frozen=True, slots=True)
class Look:
    r"""A zero-width assertion: a look-around (``opener`` one of ``(?=``, ``(?!``, ``(?<=``,
    ``(?<!``; ``body`` its pattern) or an anchor (``\b``, ``\B``, ``^``, ``$``; no body)."""

    opener: str
    body: Alt | None = None

    @property
    def behind(self) -> bool:
        return self.opener.startswith("(?<")


@dataclass(frozen=True, slots=True)
class Alt:
    """Alternatives, tried in order: ``(?:a|b)``."""

    options: tuple[Seq, ...]


@dataclass(frozen=True, slots=True)
class Repeat:
    """``item`` matched ``low`` to ``high`` times (``None``: no limit), greedy or lazy."""

    item: Node
    low: int
    high: int | None
    lazy: bool


Node = Char | Class | Look | Alt | Repeat
Seq = tuple[Node, ...]


@cache
def _class_regex(source: str) -> re.Pattern[str]:
    return re.compile(source)


# -- reading and writing patterns ---------------------------------------------------------

_QUANTIFIER = re.compile(r"\{(\d+)(?:(,)(\d*))?\}")
_CLASS_ESCAPES = frozenset("wWdDsS")
_ANCHOR_ESCAPES = frozenset("bB")
_OPENERS = ("(?:", "(?=", "(?!", "(?<=", "(?<!")


def parse(pattern: str) -> Alt:
    """The syntax tree of ``pattern``; :class:`ValueError` for syntax outside the subset
    this module reads (it names the construct and where it is)."""
    reader = _Reader(pattern)
    tree = reader.alternatives()
    if reader.at < len(pattern):
        raise reader.error("unbalanced ')'")
    return tree


class _Reader:
    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.at = 0

    def error(self, what: str) -> ValueError:
        return ValueError(f"{what} at position {self.at} of {self.pattern!r}")

    def peek(self, text: str) -> bool:
        return self.pattern.startswith(text, self.at)

    def alternatives(self) -> Alt:
        options = [self.sequence()]
        while self.peek("|"):
            self.at += 1
            options.append(self.sequence())
        return Alt(tuple(options))

    def sequence(self) -> Seq:
        items: list[Node] = []
        while self.at < len(self.pattern) and not self.peek("|") and not self.peek(")"):
            items.append(self.quantified(self.atom()))
        return tuple(items)

    def atom(self) -> Node:
        pattern, at = self.pattern, self.at
        char = pattern[at]
        if char == "(":
            opener = next((o for o in _OPENERS if self.peek(o)), None)
            if opener is None:
                raise self.error("capturing group, named group or flag (unsupported)")
            self.at += len(opener)
            body = self.alternatives()
            if not self.peek(")"):
                raise self.error("missing ')'")
            self.at += 1
            return body if opener == "(?:" else Look(opener, body)
        if char == "[":
            end = at + 1
            if pattern.startswith("^", end):
                end += 1
            if pattern.startswith("]", end):
                end += 1  # a "]" first in a class is a literal
            while end < len(pattern) and pattern[end] != "]":
                end += 2 if pattern[end] == "\\" else 1
            if end >= len(pattern):
                raise self.error("missing ']'")
            self.at = end + 1
            return Class(pattern[at : end + 1])
        if char == "\\":
            if at + 1 >= len(pattern):
                raise self.error("trailing backslash")
            escaped = pattern[at + 1]
            self.at += 2
            if escaped in _CLASS_ESCAPES:
                return Class(f"\\{escaped}")
            if escaped in _ANCHOR_ESCAPES:
                return Look(f"\\{escaped}")
            if escaped.isalnum() or escaped == "_":
                raise self.error(f"escape \\{escaped} (unsupported)")
            return Char(escaped)
        if char in "*+?{" and (char != "{" or _QUANTIFIER.match(pattern, at)):
            raise self.error(f"nothing to repeat before {char!r}")
        self.at += 1
        if char == ".":
            return Class(".")
        if char in "^$":
            return Look(char)
        return Char(char)

    def quantified(self, node: Node) -> Node:
        pattern, at = self.pattern, self.at
        if at >= len(pattern):
            return node
        char = pattern[at]
        high: int | None
        if char in "?*+":
            low, high = {"?": (0, 1), "*": (0, None), "+": (1, None)}[char]
            self.at += 1
        elif (braces := _QUANTIFIER.match(pattern, at)) is not None:
            low = int(braces[1])
            high = low if braces[2] is None else int(braces[3]) if braces[3] else None
            self.at = braces.end()
        else:
            return node
        if isinstance(node, Look):
            raise self.error("repeated assertion (unsupported)")
        lazy = self.peek("?")
        if lazy:
            self.at += 1
        if self.peek("+") or self.peek("*") or self.peek("?") or self.peek("{"):
            raise self.error("possessive or doubled quantifier (unsupported)")
        return Repeat(node, low, high, lazy)


def source(tree: Alt | Seq) -> str:
    """The regex source of a syntax tree (of an :class:`Alt`, without a group around it):
    ``parse`` then ``source`` gives a pattern that matches exactly as the original."""
    if isinstance(tree, Alt):
        return "|".join(source(option) for option in tree.options)
    return "".join(_node_source(node) for node in tree)


def _node_source(node: Node) -> str:
    if isinstance(node, Char):
        return re.escape(node.char)
    if isinstance(node, Class):
        return node.source
    if isinstance(node, Look):
        return node.opener if node.body is None else f"{node.opener}{source(node.body)})"
    if isinstance(node, Alt):
        return f"(?:{source(node)})"
    item = _node_source(node.item)
    if isinstance(node.item, Repeat):
        item = f"(?:{item})"
    low, high = node.low, node.high
    if (low, high) == (0, 1):
        quantifier = "?"
    elif (low, high) == (0, None):
        quantifier = "*"
    elif (low, high) == (1, None):
        quantifier = "+"
    elif low == high:
        quantifier = f"{{{low}}}"
    else:
        quantifier = f"{{{low},{'' if high is None else high}}}"
    return f"{item}{quantifier}{'?' if node.lazy else ''}"


# -- first characters and derivatives -----------------------------------------------------

Head = str | Class  # what a match can begin with: a literal character or a class

MAX_DEPTH: Final = 24
"""How many leading characters are dispatched on at most."""


def _heads(seq: Seq) -> frozenset[Head] | None:
    """The literal characters and classes a match of ``seq`` can begin with; ``None`` when
    it can match the empty string or begins with an assertion other than a look-behind
    (those are not moved past a character: see :func:`_derive`)."""
    if not seq:
        return None
    node, rest = seq[0], seq[1:]
    if isinstance(node, Char):
        return frozenset({node.char})
    if isinstance(node, Class):
        return frozenset({node})
    if isinstance(node, Look):
        return _heads(rest) if node.behind else None
    if isinstance(node, Alt):
        found: set[Head] = set()
        for option in node.options:
            heads = _heads(option + rest)
            if heads is None:
                return None
            found |= heads
        return frozenset(found)
    if node.high == 0:
        return _heads(rest)
    first = _heads((node.item,))
    if first is None:
        return None
    if node.low > 0:
        return first
    then = _heads(rest)
    return None if then is None else first | then


def _derive(seq: Seq, char: str) -> list[Seq]:
    """The continuations of ``seq`` after ``char``, in order of preference: ``s`` matches
    one of them exactly where ``seq`` matches ``char + s`` (``seq`` has heads, see
    :func:`_heads`, so it matches no empty string and starts with no look-ahead)."""
    if not seq:
        return []
    node, rest = seq[0], seq[1:]
    if isinstance(node, Char):
        return [rest] if node.char == char else []
    if isinstance(node, Class):
        return [rest] if node.has(char) else []
    if isinstance(node, Look):
        # a look-behind before ``char`` holds where the same look-behind, with ``char``
        # appended to its body, holds after it (its body keeps a fixed width)
        assert node.behind
        assert node.body is not None
        body = Alt(tuple((*option, Char(char)) for option in node.body.options))
        return [(Look(node.opener, body), *tail) for tail in _derive(rest, char)]
    if isinstance(node, Alt):
        if not any(_heads(option) is None for option in node.options):
            # no option can be empty: the continuation is one group, and ``rest`` is
            # written once after it
            options = [d for option in node.options for d in _derive(option, char)]
            return [(Alt(tuple(options)), *rest)] if options else []
        return [d for option in node.options for d in _derive(option + rest, char)]
    if node.high == 0:
        return _derive(rest, char)
    high = None if node.high is None else node.high - 1
    again: Seq = (Repeat(node.item, max(node.low - 1, 0), high, node.lazy),) if high != 0 else ()
    taken = [(*d, *again, *rest) for d in _derive((node.item,), char)]
    if node.low > 0:
        return taken
    skipped = _derive(rest, char)
    return skipped + taken if node.lazy else taken + skipped


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


# -- the factored alternation -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Factored(Generic[L]):
    """A factored alternation: ``source`` (no group around it) and the label of each of
    its capturing groups, ``labels[n - 1]`` for group ``n``."""

    source: str
    labels: tuple[L, ...]


def factor(alternatives: Sequence[tuple[L, str]]) -> Factored[L]:
    """``(label, pattern)`` pairs as one regex equivalent to ``p0|p1|...``: wherever that
    alternation matches (given what surrounds it) this one matches the same span, and the
    label of the capturing group that closed last is the label of the alternative that
    matched there. Compile it without flags that change which characters a literal
    matches (``IGNORECASE``): branches are told apart by their literal first characters."""
    labels: list[L] = []
    items = [(label, option) for label, pattern in alternatives for option in _options(pattern)]
    return Factored(_alternation(items, labels, 0), tuple(labels))


def _options(pattern: str) -> tuple[Seq, ...]:
    return parse(pattern).options


def _alternation(items: list[tuple[L, Seq]], labels: list[L], depth: int) -> str:
    r"""The source of ``items`` (label, pattern) as one alternation, in order: runs of
    items that begin with a word character are dispatched on it (:func:`_branches`),
    the others written out as they are, so that the order of preference holds. ``depth``:
    the characters dispatched on so far; at :data:`MAX_DEPTH` the rest is written out
    (a word such as ``\d+`` can be any length)."""
    parts: list[str] = []
    leaves: list[tuple[L, Seq]] = []  # consecutive items written out as they are
    run: list[tuple[L, Seq, frozenset[Head]]] = []  # consecutive items to dispatch

    def flush_run() -> None:
        if len(run) == 1:
            leaves.append(run[0][:2])
        elif run:
            flush_leaves()
            parts.append(_branches(run, labels, depth))
        run.clear()

    def flush_leaves() -> None:
        parts.extend(_leaves(leaves, labels))
        leaves.clear()

    for label, seq in items:
        heads = _heads(seq)
        if (
            depth < MAX_DEPTH
            and heads is not None
            and all(isinstance(h, Class) or _is_word(h) for h in heads)
        ):
            run.append((label, seq, heads))
        else:
            flush_run()
            leaves.append((label, seq))
    flush_run()
    flush_leaves()
    return "|".join(parts)


def _branches(run: list[tuple[L, Seq, frozenset[Head]]], labels: list[L], depth: int) -> str:
    """``run`` dispatched on its first character: one ``c(?:...)`` branch per literal
    first character (with every item that can begin with it), then, for a character no
    branch names, the items that begin with a class, written out as they are."""
    chars = sorted({h for _, _, heads in run for h in heads if isinstance(h, str)})
    branches = []
    for char in chars:
        derived = [(label, d) for label, seq, _ in run for d in _derive(seq, char)]
        branches.append(f"{re.escape(char)}(?:{_alternation(derived, labels, depth + 1)})")
    classed = [(label, seq, heads) for label, seq, heads in run if not all(map(_is_str, heads))]
    if classed:
        # tried only where no branch above matched: an item that begins with a class holding
        # that branch's character already failed there, inside the branch
        sets = sorted({h.source for _, _, heads in classed for h in heads if isinstance(h, Class)})
        written = _leaves([(label, seq) for label, seq, _ in classed], labels)
        branches.append(f"(?={'|'.join(sets)})(?:{'|'.join(written)})")
    return "|".join(branches)


def _is_str(head: Head) -> bool:
    return isinstance(head, str)


def _leaves(items: list[tuple[L, Seq]], labels: list[L]) -> list[str]:
    """Items written out as they are, each run of one label closed by one empty group."""
    parts: list[str] = []
    start = 0
    while start < len(items):
        label = items[start][0]
        end = start + 1
        while end < len(items) and items[end][0] == label:
            end += 1
        sources = [source(seq) for _, seq in items[start:end]]
        body = sources[0] if len(sources) == 1 else f"(?:{'|'.join(sources)})"
        labels.append(label)
        parts.append(f"{body}()")
        start = end
    return parts
