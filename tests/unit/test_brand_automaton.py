"""The automaton brand matcher decides exactly as the per-brand regex loop it replaced.

The reference is ``tests/support/brand_reference.py`` (the old implementation, kept
verbatim). Targeted cases for the tricky terms, a property test over random brand configs
and texts, the exhaustive checks behind the fast forms (``\\w``, ``\\s``, ASCII case
folding), and the query index: a query is tested only when one of its necessary terms
occurs.
"""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listener.config.schema import BrandConfig
from listener.matching.brands import BrandMatcher, is_word_char, normalise
from listener.matching.query import Document, Query, QuerySyntaxError, compile_query
from tests.support import brand_reference
from tests.support.brand_reference import ReferenceMatcher


def brand(name: str, **fields: object) -> BrandConfig:
    """A BrandConfig from keyword fields."""
    return BrandConfig.model_validate({"name": name, **fields})


def both(brands: list[BrandConfig]) -> tuple[BrandMatcher, ReferenceMatcher]:
    """The new matcher and the reference over the same brands."""
    return BrandMatcher(brands), ReferenceMatcher(brands)


# --------------------------------------------------------------------------- fast forms


def test_word_char_is_exactly_regex_word_over_every_code_point() -> None:
    """is_word_char (the automaton's boundary test) agrees with re's \\w on every code point."""
    word = re.compile(r"\w")
    differ = [
        hex(cp)
        for cp in range(sys.maxunicode + 1)
        if (word.match(chr(cp)) is not None) != is_word_char(chr(cp))
    ]
    assert differ == []


def test_split_whitespace_is_exactly_regex_space_over_every_code_point() -> None:
    """str.split()/strip() (normalise's collapsing) split on exactly what re's \\s matches."""
    space = re.compile(r"\s")
    differ = [
        hex(cp)
        for cp in range(sys.maxunicode + 1)
        if (space.match(chr(cp)) is not None) != chr(cp).isspace()
    ]
    assert differ == []


def test_ascii_casefold_is_lower_and_nfkc_is_identity() -> None:
    """On ASCII, casefold() is lower() and NFKC changes nothing (normalise's fast path)."""
    ascii_chars = "".join(chr(cp) for cp in range(128))
    assert ascii_chars.casefold() == ascii_chars.lower()
    assert unicodedata.normalize("NFKC", ascii_chars) == ascii_chars


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=40) | st.text(alphabet=" \t\n\x1c\x85\u2028aAßẞＡ_", max_size=20))
def test_normalise_equals_the_old_definition(text: str) -> None:
    """normalise returns what the regex-based definition returned, for any text."""
    assert normalise(text) == brand_reference.normalise(text)


# --------------------------------------------------------------------------- targeted cases

TRICKY = [
    brand("AT&T"),
    brand("cpp", aliases=["C++"]),
    brand("dotnet", aliases=[".NET"]),
    brand("Acme", aliases=["acme"], exclusions=["acme bank"]),
    brand("Acme Corp", aliases=["acme corp"]),
    brand("Strasse", aliases=["Straße"]),
    brand("Big S", aliases=["ẞ"]),
    brand("Wide", aliases=["ＷＩＤＥ"], handles=["@ｗｉｄｅ"]),
    brand("Underscore", aliases=["_x"]),
    brand("Emoji", aliases=["🍎"]),
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Switched from AT&T today", ("AT&T",)),
        ("at&t.", ("AT&T",)),
        ("AT&Tx and xAT&T", ()),
        ("I write C++ and c++17", ("cpp",)),
        ("c++x", ()),
        ("moving to .NET core", ("dotnet",)),
        ("asp.net", ()),  # the 'p' before '.net' is a word character
        ("(.net)", ("dotnet",)),
        ("x.NETy", ()),
        ("acme corp rocks", ("Acme", "Acme Corp")),
        ("acme corporation", ("Acme",)),
        ("acmeish", ()),
        ("acme-ish", ("Acme",)),
        ("acme bank and acme corp", ("Acme Corp",)),
        ("STRASSE", ("Strasse",)),  # ß and ẞ casefold to "ss"; "ss" inside a word is no hit
        ("STRAẞE", ("Strasse",)),
        ("Straße", ("Strasse",)),
        ("ẞ", ("Big S",)),
        ("ss", ("Big S",)),
        ("wide and @WIDE", ("Wide",)),
        ("ＷＩＤＥ", ("Wide",)),
        ("@ｗｉｄｅ", ("Wide",)),
        ("a_x", ()),
        ("(_x)", ("Underscore",)),
        ("🍎🍎", ("Emoji",)),
        ("x🍎", ()),  # a word character touches the term: no whole-word hit, as with \w
        ("a🍎b", ()),
        ("x 🍎!", ("Emoji",)),
        ("", ()),
        ("   ", ()),
    ],
)
def test_tricky_terms(text: str, expected: tuple[str, ...]) -> None:
    """Punctuated, overlapping, folded and width-form terms match as the regex loop did."""
    new, old = both(TRICKY)
    assert new.match(text) == expected
    assert old.match(text) == expected


def test_term_shared_by_brands_and_exclusion_of_another() -> None:
    """One term included by two brands and excluded by a third vetoes only the third."""
    config = [
        brand("A", aliases=["acme"]),
        brand("B", keywords=["acme"]),
        brand("C", aliases=["corp"], exclusions=["acme"]),
    ]
    new, old = both(config)
    for text in ("acme corp", "corp", "acme", "acmecorp"):
        assert new.match(text) == old.match(text)
    assert new.match("acme corp") == ("A", "B")
    assert new.match("corp") == ("C",)


def test_results_in_config_order_whatever_the_text_order() -> None:
    """Brands come back in config order, not in the order they occur in the text."""
    new, _ = both([brand("Zeta"), brand("Alpha"), brand("Mid")])
    assert new.match("alpha mid zeta") == ("Zeta", "Alpha", "Mid")


def test_empty_matcher() -> None:
    """A matcher with no brands matches nothing (and backtest subclasses it so)."""
    assert BrandMatcher([]).match("anything") == ()
    assert BrandMatcher([]).brand_names == ()


# --------------------------------------------------------------------------- property

TERMS = [
    "acme",
    "Acme Corp",
    "acme corp",
    "corp",
    "acmeish",
    "AT&T",
    "at",
    "t",
    "C++",
    "c",
    ".NET",
    "net",
    "straße",
    "STRASSE",
    "ẞ",
    "ss",
    "ＡＣＭＥ",
    "ﬁ",
    "fi",
    "café",
    "cafe\u0301",
    "naïve",
    "_acme",
    "e-mail",
    "mail",
    "🍎",
    "✈️",
    "apple pie",
    "Apple",
    "x y",
    "İstanbul",
    "σ",
    "ς",
    "mcdonald’s",
    "mcdonald's",
    "b2b",
    "٣",
    "ǅ",
    "@acme",
    "#acme",
    "a.b",
]
QUERY_WORDS = ["Apple", "ACME", "refund", "outage", "corpus", "acmes", "#acmedown", "X Y", "☕"]
NOISE = st.text(alphabet="aAc1 ._-&+#@'’\u0301\u00a0ßẞ٣²🍎\u200d\ufe0f", max_size=4)
GLUE = st.sampled_from(["", "", "", "", "1", "x", "_", "٣", "²", "é", "\u0301", "-", "@", "#"])
SEPARATORS = ["", " ", "  ", "\n", "\t", ", ", ". ", "!", "-", "_", "\u00a0", "\u2028"]

QUERY_ATOMS = [
    "acme",
    "corp",
    "apple",
    "outage",
    "acm*",
    "corp*",
    "{Apple}",
    "{ACME}",
    '"acme corp"',
    '"apple pie"',
    '"at&t"',
    "c++",
    "@acme",
    "#acme",
    "#acm*",
    "🍎",
    "{🍎}",
    "straße",
    "e-mail",
    '"mcdonald’s"',
    "{X Y}",
    "lang:en",
    "source:reddit",
]


@st.composite
def query_text(draw: st.DrawFn, depth: int = 2) -> str:
    """A query from a small grammar: atoms, AND/OR/NOT, NEAR between atoms, parentheses."""
    if depth == 0 or draw(st.booleans()):
        return draw(st.sampled_from(QUERY_ATOMS))
    op = draw(st.sampled_from(["AND", "OR", "NOT", "PREFIX_NOT", "NEAR/1", "NEAR/2f"]))
    if op == "PREFIX_NOT":
        return f"NOT {draw(query_text(depth - 1))}"
    if op.startswith("NEAR"):
        terms = [a for a in QUERY_ATOMS if ":" not in a]
        return f"({draw(st.sampled_from(terms))} {op} {draw(st.sampled_from(terms))})"
    return f"({draw(query_text(depth - 1))} {op} {draw(query_text(depth - 1))})"


HANDLES = ["acme", "@Acme", "@", "ǅ", "c++"]
HASHTAGS = ["acme", "#ACME", "#", "apple"]


@st.composite
def brand_configs(draw: st.DrawFn) -> list[BrandConfig]:
    """One to six brands with overlapping terms, exclusions and sometimes queries."""
    terms = st.sampled_from(TERMS) | st.text(alphabet="ac .&+ß", min_size=1, max_size=4)
    out: list[BrandConfig] = []
    for i in range(draw(st.integers(1, 6))):
        fields: dict[str, object] = {
            "name": draw(st.sampled_from(TERMS)) + f" {i}",
            "aliases": draw(st.lists(terms, max_size=2)),
            "keywords": draw(st.lists(terms, max_size=2)),
            "handles": draw(
                st.lists(st.sampled_from(["acme", "@Acme", "@", "ǅ", "c++"]), max_size=1)
            ),
            "hashtags": draw(
                st.lists(st.sampled_from(["acme", "#ACME", "#", "apple"]), max_size=1)
            ),
            "exclusions": draw(st.lists(terms, max_size=2)),
        }
        if draw(st.booleans()):
            query = draw(query_text())
            if not compile_query(query).requires_terms:  # refused: keep the config usable
                query = f"({query}) AND {draw(st.sampled_from(QUERY_ATOMS[:-2]))}"
            fields["query"] = query
            if draw(st.booleans()):  # the query alone decides
                for field in ("aliases", "keywords", "handles", "hashtags"):
                    fields[field] = []
        if draw(st.integers(0, 3)) == 0:
            fields["exclude"] = draw(query_text())
        out.append(BrandConfig.model_validate(fields))
    return out


@st.composite
def texts(draw: st.DrawFn) -> str:
    """Texts of the brands' terms, in case variants, with noise and separators."""
    words = st.sampled_from(TERMS + QUERY_WORDS)
    cased = words.flatmap(lambda t: st.sampled_from([t, t, t.upper(), t.title()]))
    glued = st.tuples(GLUE, cased, GLUE).map("".join)
    pieces = draw(st.lists(glued | NOISE, max_size=8))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(pieces), max_size=len(pieces)))
    return "".join(p + s for p, s in zip(pieces, seps, strict=True))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    config=brand_configs(),
    samples=st.lists(
        st.tuples(
            texts(),
            st.sampled_from([None, "en", "de"]),
            st.sampled_from([None, "reddit", "rss"]),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_automaton_decides_exactly_as_the_regex_loop(
    config: list[BrandConfig], samples: list[tuple[str, str | None, str | None]]
) -> None:
    """For random brands and texts the new matcher returns exactly the reference's brands."""
    try:
        old = ReferenceMatcher(config)
    except QuerySyntaxError:
        with pytest.raises(QuerySyntaxError):
            BrandMatcher(config)
        return
    new = BrandMatcher(config)
    for text, language, source in samples:
        expected = old.match(text, language=language, source=source)
        assert new.match(text, language=language, source=source) == expected, text


# --------------------------------------------------------------------------- necessary terms


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ("acme", "ACME!"),
        ("refund*", "refunds please"),
        ("#acme*", "#AcmeDown"),
        ("@acme", "hi @ACME"),
        ("{Apple}", "Apple store"),
        ("{Apple Music} AND source:rss", "on Apple  Music"),
        ('"acme corp" NOT hiring', "Acme, corp"),
        ("😡 OR {☕}", "morning ☕"),
        ("😡", "so 😡"),
        ('"😡 😡"', "😡 😡"),
        ("(acme OR corp) NEAR/1 outage", "outage at corp"),
        ("AT&T", "at&t"),
        ("e-mail AND lang:en", "e-mail me"),
        ("acme OR NOT NOT corp", "corp"),
    ],
)
def test_query_only_brand_matches_through_each_kind_of_necessary_term(
    query: str, text: str
) -> None:
    """A brand decided by its query alone matches through every kind of necessary term
    (word, stem, case-kept text, folded symbol, none), as the reference does."""
    config = [brand("Q", query=query), brand("Other", aliases=["zzz"], query="{Zzz} OR qqq*")]
    new, old = both(config)
    assert new.match(text, language="en", source="rss") == ("Q",)
    assert old.match(text, language="en", source="rss") == ("Q",)
    assert new.match("nothing here", language="en", source="rss") == ()


@pytest.mark.parametrize(
    ("query", "words", "prefixes", "text", "folded"),
    [
        ("acme", {"acme"}, set(), set(), set()),
        ("acme AND outage", {"acme"}, set(), set(), set()),  # either one; the cheaper
        ("acme OR refund*", {"acme"}, {"refund"}, set(), set()),
        ("{Apple} AND lang:en", set(), set(), {"Apple"}, set()),
        ('"acme corp" NOT hiring', {"acme"}, set(), set(), set()),  # the longest word
        ("@acme OR #acmedown*", {"@acme"}, {"#acmedown"}, set(), set()),
        ("(acme OR corp) NEAR/3 outage", {"outage"}, set(), set(), set()),
        ("😡 OR {☕}", set(), set(), {"☕"}, {"😡"}),
        ("AT&T", {"at"}, set(), set(), set()),
        ("{Apple Music} AND source:rss", set(), set(), {"Apple"}, set()),
    ],
)
def test_necessary_terms(
    query: str, words: set[str], prefixes: set[str], text: set[str], folded: set[str]
) -> None:
    """A query's necessary terms are exactly the terms one of which its matches contain."""
    need = compile_query(query).necessary_terms()
    assert need is not None
    assert (need.words, need.prefixes, need.text, need.folded) == (words, prefixes, text, folded)


@pytest.mark.parametrize(
    "query", ["NOT acme", "lang:en", "acme OR NOT hiring", "acme OR lang:en", "NOT (a AND b)"]
)
def test_no_necessary_terms(query: str) -> None:
    """Queries a mention can match without any term give None (always tested)."""
    assert compile_query(query).necessary_terms() is None


@settings(max_examples=400, deadline=None)
@given(
    query=query_text(depth=3),
    text=texts(),
    language=st.sampled_from([None, "en"]),
    source=st.sampled_from([None, "reddit"]),
)
def test_a_matching_document_contains_a_necessary_term(
    query: str, text: str, language: str | None, source: str | None
) -> None:
    """Whenever a query matches a document, one of its necessary terms occurs in it."""
    try:
        compiled: Query = compile_query(query)
    except QuerySyntaxError:
        return
    need = compiled.necessary_terms()
    doc = Document(text, language, source)
    if need is not None and compiled.matches(doc):
        assert need.occur_in(doc)


def test_queries_are_tested_only_when_their_terms_occur() -> None:
    """Of 1,000 brands with queries, a text is tested only against those whose terms occur."""
    config = [
        brand(f"Brand{i}", query=f"brand{i} NEAR/1 (outage OR refund*)", exclude="giveaway")
        for i in range(1000)
    ]
    config.append(brand("Loose", query="acme OR NOT NOT corp"))
    matcher = BrandMatcher(config)
    index = matcher._query_index
    assert index is not None
    doc = Document("brand12 is fine, brand7 outage, acme")
    # Brand7/Brand12 by their words; Loose has no necessary terms: always tested
    assert index.candidates(doc) == {7, 12, 1000}
    assert matcher.match("brand12 is fine, brand7 outage, acme") == ("Brand7", "Loose")
