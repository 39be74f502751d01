"""The factored alternation: one regex that matches as an ordered alternation does."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.scoring.alternation import factor, parse, source
from listener.scoring.crisis import CRISIS_PATTERNS

# -- random patterns in the subset the module reads ---------------------------------------

_LITERALS = st.text(alphabet="ab 1'", min_size=1, max_size=3).map(re.escape)
_CLASSES = st.sampled_from([r"\d", r"\w", r"\s", r"\S", "[ab]", "[^a ]", "."])
_QUANTIFIERS = st.sampled_from(["?", "*", "+", "{0,2}", "{1,3}", "{2}", "{2,}"])


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(children, min_size=2, max_size=3).map("".join),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: f"(?:{'|'.join(xs)})"),
        st.tuples(children, _QUANTIFIERS, st.booleans()).map(
            lambda t: f"(?:{t[0]}){t[1]}{'?' if t[2] else ''}"
        ),
        st.tuples(st.sampled_from(["(?<!", "(?<="]), _LITERALS, children).map(
            lambda t: f"{t[0]}{t[1]}){t[2]}"
        ),
        st.tuples(children, st.sampled_from(["(?=", "(?!"]), children).map(
            lambda t: f"{t[0]}{t[1]}{t[2]})"
        ),
        st.tuples(st.sampled_from([r"\b", r"\B"]), children).map("".join),
    )


PATTERNS = st.recursive(st.one_of(_LITERALS, _CLASSES), _extend, max_leaves=8)
ALTERNATIVES = st.lists(st.tuples(st.integers(0, 2), PATTERNS), min_size=1, max_size=6)
TEXTS = st.text(alphabet="ab 1'x", max_size=14)
FRAMES = ["(?:{})", r"(?<!\w)(?:{})(?!\w)"]


def _plain(alternatives: list[tuple[int, str]], frame: str, text: str) -> list[object]:
    regex = re.compile(frame.format("|".join(f"({p})" for _, p in alternatives)))
    labels = [label for label, _ in alternatives]
    return [(m.span(), labels[(m.lastindex or 0) - 1]) for m in regex.finditer(text)]


def _factored(alternatives: list[tuple[int, str]], frame: str, text: str) -> list[object]:
    factored = factor(alternatives)
    regex = re.compile(frame.format(factored.source))
    return [(m.span(), factored.labels[(m.lastindex or 0) - 1]) for m in regex.finditer(text)]


@settings(max_examples=750, deadline=None)
@given(alternatives=ALTERNATIVES, text=TEXTS)
def test_factored_alternation_matches_as_the_plain_one(
    alternatives: list[tuple[int, str]], text: str
) -> None:
    """For random patterns (classes, groups, greedy and lazy repeats, look-arounds) and
    texts, the factored regex finds the same spans, and labels them as the alternative
    of the plain alternation that matched, alone and between word boundaries."""
    for frame in FRAMES:
        assert _factored(alternatives, frame, text) == _plain(alternatives, frame, text)


@settings(max_examples=250, deadline=None)
@given(pattern=PATTERNS, text=TEXTS)
def test_source_of_a_parsed_pattern_matches_as_the_pattern(pattern: str, text: str) -> None:
    """Reading a pattern and writing it back gives a regex that matches the same."""
    written = re.compile(source(parse(pattern)))
    assert [m.span() for m in written.finditer(text)] == [
        m.span() for m in re.finditer(pattern, text)
    ]


def test_every_crisis_pattern_is_read() -> None:
    """The reader takes every pattern of the crisis lexicon and writes it back as written
    (up to escapes the engine reads the same)."""
    for _, _, patterns in CRISIS_PATTERNS:
        for pattern in patterns:
            assert re.compile(source(parse(pattern))).pattern


def _labelled(alternatives: list[tuple[str, str]], text: str) -> list[tuple[str, str]]:
    factored = factor(alternatives)
    regex = re.compile(rf"(?<!\w)(?:{factored.source})(?!\w)")
    return [(m.group(), factored.labels[(m.lastindex or 0) - 1]) for m in regex.finditer(text)]


def test_alternatives_are_dispatched_on_their_first_word() -> None:
    """Alternatives that share first letters share a branch; the label says which one
    matched, and at one place the first alternative in order wins."""
    delay, diverted = ("delay", r"delay(?:ed|s)?"), ("other", "diverted")
    bags = ("bags", "delayed bags")
    assert factor([delay, diverted, bags]).source.startswith("d(?:")
    text = "delayed bags, diverted, delays"
    assert _labelled([delay, diverted, bags], text) == [
        ("delayed", "delay"),
        ("diverted", "other"),
        ("delays", "delay"),
    ]
    assert _labelled([bags, diverted, delay], text) == [
        ("delayed bags", "bags"),
        ("diverted", "other"),
        ("delays", "delay"),
    ]


@pytest.mark.parametrize(
    "pattern",
    [r"(a)", r"(?P<x>a)", r"(?i)a", r"a\1", r"\n", r"a**", r"a++", r"*a", r"(?:a", r"a)", r"[ab"],
)
def test_syntax_outside_the_subset_is_refused(pattern: str) -> None:
    """Capturing groups, flags, backreferences and letter escapes are not read: an error
    names the construct instead of a regex that might match differently."""
    with pytest.raises(ValueError, match=re.escape(repr(pattern))):
        parse(pattern)
