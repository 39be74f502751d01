"""Gates of category terms and patterns: what the regex reader reads, and that gating a
custom term or pattern never changes what it tags (against trying it on every text)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from listener.scoring.categories import CategoryError, CategoryTagger
from listener.scoring.gates import EXACT, STEM, SUBSTRING, cost, pattern_clauses, weak

SOURCE = Path(__file__).resolve().parents[2] / "listener" / "scoring"


def gates(pattern: str, *, ignorecase: bool = False) -> list[set[tuple[int, str]]]:
    """The clauses of ``pattern`` as plain sets, in the reader's order."""
    return [set(c) for c in pattern_clauses(pattern, ignorecase=ignorecase)]


# --------------------------------------------------------------------------- the reader


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        # word edges known from the pattern's own ends and from non-word neighbours
        ("down", [{(EXACT, "down")}]),
        ("(?:is|are) down", [{(EXACT, "is"), (EXACT, "are")}, {(EXACT, "down")}]),
        ("recall(?:s|ed)", [{(STEM, "recall")}, {(SUBSTRING, "s"), (SUBSTRING, "ed")}]),
        ("prices?", [{(STEM, "price")}]),
        # an optional group whose every way ends with a space leaves a word start
        (
            "(?:is|was) (?:being |now )?recalled",
            [{(EXACT, "is"), (EXACT, "was")}, {(EXACT, "recalled")}],
        ),
        # a lookaround is zero-width: it does not hide the word edge behind it
        ("afraid(?! not)", [{(EXACT, "afraid")}]),
        (
            "(?<!insult to )injur(?:y|ed)",
            [{(STEM, "injur")}, {(SUBSTRING, "y"), (SUBSTRING, "ed")}],
        ),
        # words in a row, one space or hyphen apart, are one phrase
        ("on hold", [{(EXACT, "on hold")}]),
        ("tone-deaf ads?", [{(STEM, "tone deaf ad")}]),
        ("what, a joke", [{(EXACT, "what")}, {(EXACT, "a joke")}]),
        # inside a word: only a substring
        (r"#\w+outage", [{(SUBSTRING, "#")}, {(SUBSTRING, "outage")}]),
        (r"\?[!?]*\?", [{(SUBSTRING, "?")}]),
        # \b, ^ and $ are word edges
        (r"\bab\w", [{(SUBSTRING, "ab")}]),
        (r"^cve-\d+", [{(EXACT, "cve")}]),
        # one way around every literal: nothing is needed
        ("(?:acme|)down", [{(SUBSTRING, "down")}]),
        ("a*b?", []),
        (r"\d{3}", []),
    ],
)
def test_the_reader_reads_what_every_match_needs(
    pattern: str, expected: list[set[tuple[int, str]]]
) -> None:
    """Each pattern gives the clauses its matches cannot avoid."""
    assert gates(pattern) == expected


def test_a_pattern_with_capitals_is_read_as_case_insensitive() -> None:
    """Ignoring case, literals are read in lower case, as the casefolded text has them,
    but an "i" is not a known literal (it also matches the dotless "ı")."""
    assert gates("ACME Down", ignorecase=True) == [{(EXACT, "acme down")}]
    assert gates("Istanbul", ignorecase=True) == [{(SUBSTRING, "stanbul")}]
    assert gates("Café", ignorecase=True) == [{(STEM, "caf")}]


@pytest.mark.parametrize(
    "pattern",
    [
        "(?i:acme) down",  # scoped flags
        r"(\w+) \1",  # back-reference
        r"\x41cme down",  # hex escape
        r"\u0041cme down",
        "acme{ down",  # a literal "{"
        "acme(?#note) down",  # comment
        "(?P<x>a)(?P=x) down",
        "(?(1)a|b) down",
    ],
)
def test_syntax_outside_the_subset_gives_no_gates(pattern: str) -> None:
    """Syntax the reader does not know makes it give up: no clauses, so the pattern is
    tried on every text."""
    assert pattern_clauses(pattern, ignorecase=False) == []


def test_categories_do_not_use_the_private_regex_parser() -> None:
    """Patterns are read by our own reader, not by the stdlib's private re._parser."""
    for name in ("categories.py", "gates.py"):
        text = (SOURCE / name).read_text()
        assert "_parser" not in text
        assert "sre_parse" not in text


def test_cost_prefers_rare_literals() -> None:
    """A long, uncommon literal is cheaper than common words or one-character ones."""
    rare = frozenset({(EXACT, "recalled")})
    common = frozenset({(EXACT, "is"), (EXACT, "was")})
    short = frozenset({(SUBSTRING, "?")})
    assert weak(common)
    assert weak(short)
    assert not weak(rare)
    assert sorted([common, short, rare], key=cost)[0] == rare


# --------------------------------------------------------------------------- equivalence

# Pieces of patterns: inside the subset (literals, escapes, classes, assertions, groups,
# quantifiers of every kind) and outside it (back-references, inline flags, hex escapes).
LITERALS = st.sampled_from(
    [
        "down", "acme", "is", "can't", "ab", "x", "i", "I", "K", "Down", "ı", "é", "É",
        " ", " ", "-", "'", "#", "😡", r"\?", r"\.", r"\#", r"\ ", "_",
    ]
)  # fmt: skip
CLASSES = st.sampled_from(
    [r"\w", r"\W", r"\d", r"\s", r"\S", r"\D", ".", "[ -]", "[a-z]", "[^a]", "[,.!]", r"[\w']",
     "[A-Z]", "[-a]", "[a-]", r"[\]x]"]
)  # fmt: skip
ASSERTIONS = st.sampled_from(
    [r"\b", r"\B", "^", "$", r"\A", r"\Z", "(?=x)", r"(?!\w)", r"(?<!\w)", "(?<=a)", "(?! n)"]
)
# Unbounded repeats only of literals: a class or group repeated without bound backtracks
# for ages (in both the gated and ungated runs) on texts it does not match.
QUANTIFIERS = st.sampled_from(["", "", "", "?", "{2}", "{1,3}", "{,2}", "{0}", "??", "?+"])
UNBOUNDED = st.sampled_from(["*", "+", "{2,}", "*?", "+?"])
OUTSIDE = st.sampled_from([r"(a)\1", "(?i:acme)", r"\x41", "(?#c)", "{"])


def regexes(depth: int = 2) -> st.SearchStrategy[str]:
    """Regexes built from LITERALS, CLASSES, ASSERTIONS, groups and quantifiers."""
    atom: st.SearchStrategy[str] = st.one_of(
        st.tuples(LITERALS, QUANTIFIERS | UNBOUNDED).map("".join),
        st.tuples(st.one_of(LITERALS, CLASSES, ASSERTIONS), QUANTIFIERS).map("".join),
    )
    if depth > 0:
        group = st.tuples(
            st.sampled_from(["(?:", "(", "(?>"]),
            st.lists(regexes(depth - 1), min_size=1, max_size=3),
            QUANTIFIERS,
        ).map(lambda g: g[0] + "|".join(g[1]) + ")" + g[2])
        atom = st.one_of(atom, group)
    return st.lists(atom, min_size=1, max_size=5).map("".join)


TEXT_PIECES = st.sampled_from(
    [
        "down", "acme", "Acme", "is", "can't", "cant", "ab", "abab", "x", "xx", "i", "ı",
        "İ", "K", "k", "é", "É", "_", "1", "42", "#", "?", "'", "’", "-", "😡", ".", ",",
        "downtown", "acmedown", "ISTANBUL", "ıstanbul", "n", "not",
    ]
)  # fmt: skip
SEPARATORS = st.sampled_from([" ", "", "", "-", ", ", "  ", "\n"])


@st.composite
def texts(draw: st.DrawFn) -> str:
    """Short texts glued from TEXT_PIECES with odd separators."""
    pieces = draw(st.lists(TEXT_PIECES, max_size=8))
    return "".join(piece + draw(SEPARATORS) for piece in pieces)


def tagger_or_none(spec: dict[str, list[str]]) -> CategoryTagger | None:
    """A tagger of one custom category, or None when the definition is refused."""
    try:
        return CategoryTagger({"x": spec}, defaults=False)
    except CategoryError:
        return None


def assert_gating_changes_nothing(tagger: CategoryTagger, samples: list[str]) -> None:
    engine = tagger._engine
    for text in samples:
        assert engine.run(text) == engine.run(text, gated=False), text


PATTERNS = st.one_of(
    st.tuples(regexes(), LITERALS, regexes()).map("".join),  # with a literal to gate on
    regexes(),
    st.tuples(regexes(1), OUTSIDE, regexes(1)).map("".join),
)


@settings(max_examples=300, deadline=None)
@given(PATTERNS, st.lists(texts(), min_size=1, max_size=6))
def test_gated_custom_patterns_tag_as_the_regex_on_every_text(
    pattern: str, samples: list[str]
) -> None:
    """A custom pattern, inside the reader's subset or not, tags exactly the texts that
    trying its regex on every text tags."""
    try:
        re.compile(pattern)
    except re.error:
        assume(False)
    tagger = tagger_or_none({"patterns": [pattern]})
    assume(tagger is not None)
    assert tagger is not None
    # also texts that the pattern's own literals appear in
    samples = [*samples, pattern, pattern.replace("\\", ""), f"x {pattern.upper()} y"]
    assert_gating_changes_nothing(tagger, samples)


TERM_WORDS = st.sampled_from(
    [
        "down", "acme", "can't", "isn't", "refund*", "f*ck*", "#recall*", "e.", "coli", "😡",
        "??", "???*", "abc**", "on", "hold", "tone", "deaf", "x-y", "café", "STRASSE", "ıi",
    ]
)  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(
    st.lists(TERM_WORDS, min_size=1, max_size=3).map(" ".join),
    st.lists(st.lists(TERM_WORDS | TEXT_PIECES, max_size=6).map(" ".join), min_size=1, max_size=6),
)
def test_gated_custom_terms_tag_as_the_regex_on_every_text(term: str, samples: list[str]) -> None:
    """A custom term tags exactly the texts that trying its regex on every text tags."""
    tagger = tagger_or_none({"terms": [term]})
    assume(tagger is not None)
    assert tagger is not None
    assert_gating_changes_nothing(tagger, [*samples, term, term.replace("*", ""), term.upper()])


@pytest.mark.parametrize(
    ("spec", "text", "expected"),
    [
        ({"patterns": ["Istanbul"]}, "flights to ıstanbul", ("x",)),
        ({"patterns": ["(?i:ACME) is down"]}, "acme is down", ("x",)),
        ({"patterns": [r"(\w+) \1 down"]}, "it it down", ("x",)),
        ({"terms": ["???*"]}, "what???", ("x",)),
        ({"terms": ["abc**"]}, "abc and more", ()),
        ({"terms": ["abc**"]}, "abc*def", ("x",)),
    ],
)
def test_custom_patterns_and_terms_outside_the_easy_cases(
    spec: dict[str, list[str]], text: str, expected: tuple[str, ...]
) -> None:
    """Patterns the reader cannot read, a capital I, wildcards on punctuation and a
    literal star before the wildcard tag as their regexes say."""
    tagger = CategoryTagger({"x": spec}, defaults=False)
    assert tuple(h.name for h in tagger.tag(text)) == expected
    assert_gating_changes_nothing(tagger, [text])
