"""Brand query language: parser, matching, NEAR, errors, invariants, BrandMatcher use."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.config.schema import BrandConfig
from listener.errors import ListenerError
from listener.matching.brands import BrandMatcher, compile_brand_query
from listener.matching.query import (
    MIN_WILDCARD_PREFIX,
    Document,
    QuerySyntaxError,
    compile_query,
)


def matches(query: str, text: str, language: str | None = None, source: str | None = None) -> bool:
    """Compile ``query`` and test it on ``text``."""
    return compile_query(query).matches(Document.of(text, language=language, source=source))


# --------------------------------------------------------------------------- parser


@pytest.mark.parametrize(
    ("query", "tree"),
    [
        ("acme", "acme"),
        ("ACME", "acme"),
        ("a OR b AND c", "(a OR (b AND c))"),
        ("a AND b OR c", "((a AND b) OR c)"),
        ("(a OR b) AND c", "((a OR b) AND c)"),
        ("a OR b NOT c", "(a OR (b AND NOT c))"),
        ("a NOT b OR c", "((a AND NOT b) OR c)"),
        ("a NOT b NOT c", "(a AND NOT b AND NOT c)"),
        ("NOT a AND b", "(NOT a AND b)"),
        ("a AND NOT b", "(a AND NOT b)"),
        ("NOT NOT a", "NOT NOT a"),
        ("a AND b AND c", "(a AND b AND c)"),
        ("a AND (b AND c)", "(a AND b AND c)"),
        ("a OR (b OR c)", "(a OR b OR c)"),
        ("((a))", "a"),
        ("a NEAR/3 b OR c", "((a NEAR/3 b) OR c)"),
        ("NOT a NEAR/2 b", "NOT (a NEAR/2 b)"),
        ("a NEAR/2f b NEAR/3 c", "((a NEAR/2f b) NEAR/3 c)"),
        ("(a OR b) NEAR/0f (c OR dee*)", "((a OR b) NEAR/0f (c OR dee*))"),
        ('"Acme  Corp" OR {Apple Music}', '("acme corp" OR {Apple Music})'),
        ('"acme"', "acme"),
        ("Refund*", "refund*"),
        ("#AcmeDown*", "#acmedown*"),
        ("@AcmeHQ OR #AcmeFail", "(@acmehq OR #acmefail)"),
        ("{Apple} OR {@Apple}", "({Apple} OR {@Apple})"),
        ("AT&T OR C++ OR e-mail", "(at&t OR c++ OR e-mail)"),
        ("ＡＣＭＥ OR Straße", "(acme OR strasse)"),
        ("lang:EN AND source:Reddit", "(lang:en AND source:reddit)"),
        ("lang:pt_BR", "lang:pt"),
        ("acme AND or AND not", "(acme AND or AND not)"),
        ('acme AND "and"', "(acme AND and)"),
        ("nearby OR NEARLY", "(nearby OR nearly)"),
    ],
)
def test_parse_tree(query: str, tree: str) -> None:
    """Each query compiles to the expected fully parenthesised tree (precedence, grouping)."""
    assert str(compile_query(query)) == tree


def test_query_keeps_its_text() -> None:
    """A compiled query remembers the text it was compiled from."""
    query = compile_query("acme OR globex")
    assert query.text == "acme OR globex"
    assert repr(query) == "Query('acme OR globex')"


@pytest.mark.parametrize(
    ("query", "requires_terms"),
    [
        ("acme", True),
        ("acme NOT hiring", True),
        ("NOT hiring", False),
        ("acme OR NOT hiring", False),
        ("lang:en", False),
        ("NOT lang:en", False),
        ("lang:en AND NOT acme", False),
        ("(lang:en OR lang:de) AND acme", True),
        ("acme NEAR/3 NOT_A_FILTER", True),
    ],
)
def test_requires_terms(query: str, requires_terms: bool) -> None:
    """requires_terms is False exactly when a mention with no words can match."""
    assert compile_query(query).requires_terms is requires_terms


# --------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        # whole words, case and Unicode
        ("acme", "I love ACME products", True),
        ("acme", "Acmeville is nice", False),
        ("acme", "subacme", False),
        ("acme", "acme_thing", False),
        ("acme", "(acme).", True),
        ("acme", "ＡＣＭＥ full width", True),
        ("straße", "STRASSE", True),
        ("café", "cafe\u0301 time", True),
        ("café", "cafe time", False),
        ("fine", "ﬁne day", True),
        ("acme", "#acme is trending", True),
        ("acme", "ask @acme", True),
        # phrases
        ('"acme corp"', "ACME   Corp\nsaid", True),
        ('"acme corp"', "acme, corp", True),
        ('"acme corp"', "corp acme", False),
        ('"acme corp"', "acme big corp", False),
        ('"acme corp"', "acme corporation", False),
        ('"not working"', "it is NOT working again", True),
        ('"at&t outage"', "AT&T, outage!", True),
        ('"i ❤️ acme"', "I ❤️ ACME", True),
        ('"i ❤️ acme"', "I ACME", False),
        # inner punctuation is exact
        ("AT&T", "switched from at&t.", True),
        ("AT&T", "at t", False),
        ("AT&T", "at & t", False),
        ("AT&T", "xat&t", False),
        ("AT&T", "at&tx", False),
        ("C++", "Writing C++ since 1998", True),
        ("C++", "c++x", False),
        (".NET", "I use .NET daily", True),
        (".NET", "asp.net", False),
        ("McDonald's", "McDonald’s fries", True),
        ("e-mail", "send an E-Mail", True),
        ("e-mail", "send an email", False),
        # case-sensitive
        ("{Apple}", "Apple launches", True),
        ("{Apple}", "apple pie", False),
        ("{Apple}", "APPLE", False),
        ("{Apple}", "Applesauce", False),
        ("{Apple Music}", "try Apple  Music", True),
        ("{Apple Music}", "try Apple music", False),
        ("{@Acme}", "cc @Acme", True),
        ("{@Acme}", "cc @acme", False),
        ("{Café}", "Cafe\u0301 Olé", True),
        # wildcards
        ("refund*", "REFUNDED at last", True),
        ("refund*", "refund", True),
        ("refund*", "no refun here", False),
        ("refund*", "#refunds", True),
        ("#acme*", "#AcmeDown", True),
        ("#acme*", "acmedown", False),
        ("@acme*", "ping @acme_support", True),
        # handles and hashtags
        ("@acmehq", "ping @AcmeHQ.", True),
        ("@acmehq", "AcmeHQ without at", False),
        ("@acmehq", "mail me@acmehq now", False),
        ("@acmehq", "@acmehqx", False),
        ("#acmefail", "##acmefail", True),
        ("#acmefail", "#acmefailure", False),
        ("#acmefail", "acmefail", False),
        ("#acme", "❤️#acme", True),
        # symbols
        ("😡", "acme is down 😡😡", True),
        ("😡", "x😡", False),
        ("👍", "great 👍🏽", True),
        ("✈️", "fly ✈ now", True),
        ("✈", "fly ✈️ now", True),
        # operators
        ("acme AND down", "is acme down?", True),
        ("acme AND down", "acme", False),
        ("acme OR globex", "GLOBEX", True),
        ("acme NOT hiring", "acme is hiring", False),
        ("acme NOT hiring", "acme is down", True),
        ("NOT hiring", "anything", True),
        ("NOT NOT acme", "acme", True),
        (
            '("Acme" OR @acme OR #acmedown) AND (outage OR down OR "not working") '
            "NOT (hiring OR giveaway)",
            "#AcmeDown again, app NOT WORKING",
            True,
        ),
        (
            '("Acme" OR @acme OR #acmedown) AND (outage OR down OR "not working") '
            "NOT (hiring OR giveaway)",
            "Acme outage? no, acme giveaway!",
            False,
        ),
        ("acme AND or", "acme or globex", True),
    ],
)
def test_matches_table(query: str, text: str, expected: bool) -> None:
    """Each query matches (or not) the text as the language reference says."""
    assert matches(query, text) is expected


@pytest.mark.parametrize(
    ("query", "language", "source", "expected"),
    [
        ("acme AND lang:en", "en", None, True),
        ("acme AND lang:en", "EN-gb", None, True),
        ("acme AND lang:en", "en_US", None, True),
        ("acme AND lang:en", "eng", None, False),
        ("acme AND lang:en", "de", None, False),
        ("acme AND lang:en", None, None, False),
        ("acme AND NOT lang:en", None, None, True),
        ("acme AND lang:pt-BR", "pt-br", None, True),
        ("acme AND lang:pt-BR", "pt", None, True),
        ("acme AND source:reddit", None, "Reddit", True),
        ("acme AND source:reddit", None, "rss", False),
        ("acme AND source:reddit", None, None, False),
        ("acme AND (source:news OR source:hn)", None, "HN", True),
    ],
)
def test_filters(query: str, language: str | None, source: str | None, expected: bool) -> None:
    """lang: matches the language or its region variants; source: the caller's names."""
    assert matches(query, "acme", language=language, source=source) is expected


def test_source_accepts_several_names() -> None:
    """A Document may carry several source names (e.g. the source's name and its type)."""
    doc = Document.of("acme", source=("eu-reddit", "reddit"))
    assert compile_query("acme AND source:reddit").matches(doc)
    assert compile_query("acme AND source:eu-reddit").matches(doc)
    assert not compile_query("acme AND source:rss").matches(doc)


@pytest.mark.parametrize("gap", range(5))
@pytest.mark.parametrize("n", range(4))
def test_near_distance(n: int, gap: int) -> None:
    """NEAR/n allows at most n words between the sides, in either order; NEAR/nf in order."""
    filler = " ".join(["x"] * gap)
    forward = f"acme {filler} down"
    backward = f"down {filler} acme"
    assert matches(f"acme NEAR/{n} down", forward) is (gap <= n)
    assert matches(f"acme NEAR/{n} down", backward) is (gap <= n)
    assert matches(f"acme NEAR/{n}f down", forward) is (gap <= n)
    assert matches(f"acme NEAR/{n}f down", backward) is False


@pytest.mark.parametrize(
    ("query", "text", "expected"),
    [
        ("acme NEAR/0 down", "acme, down", True),
        ("acme NEAR/1 down", "acme!!! is ... down", True),
        ('"acme corp" NEAR/1f down', "acme corp is down", True),
        ('"acme corp" NEAR/0f down', "acme corp is down", False),
        ("(acme OR globex) NEAR/2 (down OR outage)", "outage hits globex", True),
        ("acme NEAR/2 refund*", "acme refunded me", True),
        ("acme NEAR/0 acme", "acme", False),
        ("acme NEAR/0 acme", "acme acme", True),
        ("acme NEAR/0 acm*", "acme", False),
        ("(acme NEAR/0f corp) NEAR/1 down", "down acme corp", True),
        ("(acme NEAR/0f corp) NEAR/1 down", "acme corp is down", True),
        ("(acme NEAR/0f corp) NEAR/1 down", "acme corp is now down", False),
        ("AT&T NEAR/1 outage", "at&t has outage", True),
        ("acme NEAR/1 😡", "acme down 😡", True),
        ("acme NEAR/0 😡", "acme down 😡", False),
        ("{Acme} NEAR/1 down", "Acme is down", True),
        ("{Acme} NEAR/1 down", "acme is down", False),
    ],
)
def test_near_operands(query: str, text: str, expected: bool) -> None:
    """NEAR takes phrases, wildcards, OR-groups, nested NEARs, symbols and case terms."""
    assert matches(query, text) is expected


def test_document_words_and_terms() -> None:
    """A Document folds words once and knows its hashtags and handles."""
    doc = Document.of("Hello @Acme, #Straße's ＦＵＮ!")
    assert doc.words == ["hello", "acme", "strasse", "s", "fun"]
    assert doc.terms == {"hello", "acme", "@acme", "strasse", "#strasse", "s", "fun"}
    assert doc.case_terms() == {"Hello", "Acme", "@Acme", "Straße", "#Straße", "s", "FUN"}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("query", "message", "position"),
    [
        ("", "empty query", 0),
        ("   ", "empty query", 0),
        ("acme AND", "expected a term after 'AND'", 8),
        ("acme AND )", "expected a term after 'AND'", 9),
        ("AND acme", "expected a term before 'AND'", 0),
        ("acme OR OR b", "expected a term after 'OR'", 8),
        ("NOT", "expected a term after 'NOT'", 3),
        ("acme NOT", "expected a term after 'NOT'", 8),
        ("(acme OR b", "expected ')'", 10),
        ("(acme OR (b AND c)", "expected ')'", 18),
        ("acme OR b)", "unmatched ')'", 9),
        ("()", "empty parentheses", 0),
        ("(AND a)", "expected a term before 'AND'", 1),
        ("acme cloud", "expected an operator before 'cloud'", 5),
        ("acme (b)", "expected an operator before '('", 5),
        ("acme or globex", "expected an operator before 'or'", 5),
        ("acme NEAR b", "NEAR needs a distance", 9),
        ("acme NEAR/x b", "NEAR needs a distance", 10),
        ("acme NEAR/3", "expected a term after 'NEAR/3'", 11),
        ("NEAR/3 b", "expected a term before 'NEAR/3'", 0),
        ("acme NEAR/3 NOT b", "expected a term after 'NEAR/3'", 12),
        (
            "(a AND b) NEAR/3 c",
            "NEAR/3 needs terms, phrases, wildcards or OR-groups of them on both sides",
            0,
        ),
        (
            "a NEAR/3 lang:en",
            "NEAR/3 needs terms, phrases, wildcards or OR-groups of them on both sides",
            9,
        ),
        ("*", f"a wildcard needs at least {MIN_WILDCARD_PREFIX} letters before '*'", 0),
        ("acme OR a*", f"a wildcard needs at least {MIN_WILDCARD_PREFIX} letters before '*'", 8),
        ("re*fund", "a wildcard '*' may only end a term", 2),
        ("at&t*", "a wildcard term must be a single word", 0),
        ('"refund* now"', "wildcards are not allowed in a phrase", 7),
        ("{App*}", "wildcards are not allowed in a case-sensitive term", 4),
        ('acme AND ""', "empty phrase", 9),
        ('"  "', "empty phrase", 0),
        ("{}", "empty term", 0),
        ("{Apple", "unclosed '{'", 0),
        ("acme}", "unexpected '}'", 4),
        ('{"Apple"}', "quotes are not allowed inside '{ }'", 1),
        ('acme OR "acme corp', "unclosed quote", 8),
        ("foo:bar", "unknown filter 'foo:'", 0),
        ("acme AND lang:", "expected a value after 'lang:'", 14),
        ("acme AND source:", "expected a value after 'source:'", 16),
        ("lang:en,de", "unexpected ',' in a lang: value", 7),
        ("-hiring", "'-' does not exclude a term here: '-hiring'", 0),
        ("acme AND &&", "'&&' has no letters or digits", 9),
    ],
)
def test_error_positions(query: str, message: str, position: int) -> None:
    """Each broken query raises QuerySyntaxError with the message, position and a hint."""
    with pytest.raises(QuerySyntaxError) as info:
        compile_query(query)
    error = info.value
    assert (error.message, error.position) == (message, position)
    assert error.hint
    assert error.query == query
    assert str(error) == f"{message} at column {position + 1}"


def test_error_rendering() -> None:
    """An error renders 1-based columns, a caret line and, with context, the brand."""
    with pytest.raises(QuerySyntaxError) as info:
        compile_query("(acme OR globex")
    error = info.value
    assert isinstance(error, ListenerError)
    assert error.column == 16
    assert error.detail == "expected ')' at column 16"
    assert error.hint == "the '(' at column 1 is not closed"
    assert error.pointer() == "(acme OR globex\n" + " " * 15 + "^"
    named = error.with_context("brand 'Acme' query")
    assert str(named) == "brand 'Acme' query: expected ')' at column 16"
    assert (named.message, named.position, named.hint) == (error.message, 15, error.hint)


def test_lowercase_operator_hint() -> None:
    """Lowercase and/or/not/near next to a term get a hint to write them uppercase."""
    for query, operator in [("a or b", "OR"), ("a and b", "AND"), ("a not b", "NOT")]:
        with pytest.raises(QuerySyntaxError) as info:
            compile_query(query)
        assert info.value.hint is not None
        assert info.value.hint.startswith(f"operators are uppercase: write {operator}")
    with pytest.raises(QuerySyntaxError) as info:
        compile_query("a near/3f b")
    assert info.value.hint == "operators are uppercase: write NEAR/3f"


def test_adjacent_terms_hint_suggests_phrase() -> None:
    """Two bare terms side by side suggest the phrase or AND."""
    with pytest.raises(QuerySyntaxError) as info:
        compile_query("acme cloud")
    assert info.value.hint == 'write "acme cloud" for the phrase or acme AND cloud'


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    """Absurd nesting raises QuerySyntaxError instead of RecursionError."""
    with pytest.raises(QuerySyntaxError):
        compile_query("(" * 5000 + "acme" + ")" * 5000)


# --------------------------------------------------------------------------- properties

VOCAB = [
    "acme",
    "Acme",
    "ACME",
    "ＡＣＭＥ",
    "corp",
    "down",
    "outage",
    "hiring",
    "refund",
    "Refunded",
    "Straße",
    "STRASSE",
    "café",
    "cafe\u0301",
    "ﬁne",
    "naïve",
    "Ünïcode",
    "at&t",
    "c++",
    "@AcmeHQ",
    "#AcmeDown",
    "😡",
    "x",
    "123",
]
SEPARATORS = [" ", "  ", "\n", ", ", ". ", "! ", " - "]


@st.composite
def texts(draw: st.DrawFn) -> str:
    """Texts of vocabulary words (case and width variants), separators and punctuation."""
    words = draw(st.lists(st.sampled_from(VOCAB), max_size=10))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(words), max_size=len(words)))
    return "".join(w + s for w, s in zip(words, seps, strict=True))


# case-insensitive queries over the vocabulary, each built from terms whose case varies
QUERY_TEMPLATES = [
    "{0}",
    '"{0} {1}"',
    "{0} AND {1}",
    "{0} OR {1}",
    "{0} NOT {1}",
    "{0} NEAR/1 {1}",
    "{0} NEAR/0f {1}",
    "({0} OR {1}) NEAR/2 {2}",
    "{2}* AND NOT {0}",
]
TERMS = ["acme", "corp", "down", "straße", "café", "fine", "at&t", "c++", "@acmehq", "#acmedown"]


def case_variants(term: str) -> st.SearchStrategy[str]:
    """A term written lower, upper, title or full-width (where NFKC maps it back)."""
    wide = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in term)
    return st.sampled_from([term, term.upper(), term.title(), wide])


@st.composite
def queries(draw: st.DrawFn) -> tuple[str, str]:
    """A query and the same query with its terms' case and width changed."""
    template = draw(st.sampled_from(QUERY_TEMPLATES))
    terms = draw(st.lists(st.sampled_from(TERMS), min_size=3, max_size=3))
    terms[2] = terms[2].lstrip("@#")[:3].ljust(MIN_WILDCARD_PREFIX, "e")
    variants = [draw(case_variants(t)) for t in terms]
    if "&" in terms[2] or "+" in terms[2]:
        terms[2] = variants[2] = "acm"
    return template.format(*terms), template.format(*variants)


def text_variants(text: str) -> list[str]:
    """The text with its case or Unicode normal form changed."""
    return [
        text.upper(),
        text.lower(),
        text.casefold(),
        text.swapcase(),
        unicodedata.normalize("NFKC", text),
        unicodedata.normalize("NFD", text),
        unicodedata.normalize("NFKD", text),
    ]


@settings(max_examples=150, deadline=None)
@given(pair=queries(), text=texts())
def test_normalisation_stability(pair: tuple[str, str], text: str) -> None:
    """A case-insensitive query gives the same answer for case/NFKC variants of the text,
    and its terms' case and width do not matter either."""
    query, variant_query = pair
    compiled = compile_query(query)
    expected = compiled.matches(Document.of(text))
    assert compile_query(variant_query).matches(Document.of(text)) is expected
    for variant in text_variants(text):
        assert compiled.matches(Document.of(variant)) is expected, variant


SUBQUERIES = [
    "acme",
    '"acme corp"',
    "down OR outage",
    "refund*",
    "acme NEAR/2 down",
    "{Acme}",
    "#acmedown",
    "NOT hiring",
    "at&t",
]


@settings(max_examples=150, deadline=None)
@given(a=st.sampled_from(SUBQUERIES), b=st.sampled_from(SUBQUERIES), text=texts())
def test_not_semantics(a: str, b: str, text: str) -> None:
    """A NOT B matches iff A matches and B does not; NOT NOT A is A; De Morgan holds."""
    doc = Document.of(text)

    def m(query: str) -> bool:
        return compile_query(query).matches(doc)

    ma, mb = m(a), m(b)
    assert m(f"({a}) NOT ({b})") is (ma and not mb)
    assert m(f"({a}) AND NOT ({b})") is (ma and not mb)
    assert m(f"NOT ({a})") is (not ma)
    assert m(f"NOT NOT ({a})") is ma
    assert m(f"NOT (({a}) OR ({b}))") is m(f"NOT ({a}) AND NOT ({b})")
    assert m(f"({a}) OR ({b})") is (ma or mb)
    assert m(f"({a}) AND ({b})") is (ma and mb)


WORDS = st.text(alphabet="abcxyzé", min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(
    first=WORDS,
    second=WORDS,
    before=st.text(alphabet="abé1_", min_size=1, max_size=3),
    after=st.text(alphabet="abé1_", min_size=1, max_size=3),
    text=texts(),
)
def test_phrase_and_word_boundaries(
    first: str, second: str, before: str, after: str, text: str
) -> None:
    """A word or phrase never matches inside a longer word; "a b" implies a AND b and
    equals a NEAR/0f b."""
    assert not matches(first, f"{before}{first}")
    assert not matches(first, f"{first}{after}")
    assert not matches(f'"{first} {second}"', f"{before}{first} {second}")
    assert not matches(f'"{first} {second}"', f"{first} {second}{after}")
    assert matches(f'"{first} {second}"', f"{before} {first}, {second} {after}")
    mixed = f"{text} {first} {text} {second} {first} {second}{after}"
    doc = Document.of(mixed)
    phrase = compile_query(f'"{first} {second}"').matches(doc)
    if phrase:
        assert compile_query(f"{first} AND {second}").matches(doc)
    assert phrase is compile_query(f"{first} NEAR/0f {second}").matches(doc)


TEXT_ALPHABET = st.sampled_from(
    [*"aAbB1_ #@&+.,'’-", "\u0301", "\u093e", "क", "ß", "İ", "ﬁ", "😡", "\ufe0f", "\u200d"]
)


@settings(max_examples=200, deadline=None)
@given(text=st.text(alphabet=TEXT_ALPHABET, max_size=30))
def test_document_fast_terms_agree_with_tokens(text: str) -> None:
    """The eager term set equals the words and tags of the token positions, and folding
    keeps the token structure of the case-kept text."""
    doc = Document.of(text)
    for case_sensitive, terms in ((False, doc.terms), (True, doc.case_terms())):
        toks = doc.tokens(case_sensitive)
        indexed = {
            key
            for key, places in toks.index.items()
            if toks.is_word[places[0]] or key != toks.keys[places[0]]
        }
        assert terms == indexed
    folded, kept = doc.tokens(False), doc.tokens(True)
    assert (folded.is_word, folded.glued, folded.wpos) == (kept.is_word, kept.glued, kept.wpos)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=60))
def test_arbitrary_text_never_raises(text: str) -> None:
    """Any Unicode text is evaluated without error by every kind of query."""
    doc = Document.of(text, language="en", source="rss")
    for query in [*SUBQUERIES, '"i ❤️ acme"', "😡 NEAR/2 acm*", "lang:en OR source:rss"]:
        compile_query(query).matches(doc)


QUERY_ALPHABET = st.sampled_from(
    [
        *("acme", " ", "AND", "OR", "NOT", "NEAR/2", "NEAR/1f", "(", ")", '"', "{", "}", "*"),
        *("ab", "lang:en", "foo:", "#", "@", "&", "-", "refund*", "NEAR", "\t"),
    ]
)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(QUERY_ALPHABET, max_size=12))
def test_any_query_compiles_or_reports_a_position(parts: list[str]) -> None:
    """Any query text either compiles or raises QuerySyntaxError inside the text."""
    query = "".join(parts)
    try:
        compiled = compile_query(query)
    except QuerySyntaxError as e:
        error = e
    else:
        compiled.matches(Document.of("acme ab refund"))
        return
    assert 0 <= error.position <= len(query)
    assert error.message


# --------------------------------------------------------------------------- BrandMatcher


def brand(name: str, **fields: object) -> BrandConfig:
    """A BrandConfig from keyword fields."""
    return BrandConfig.model_validate({"name": name, **fields})


MATCHER = BrandMatcher(
    [
        brand(
            "Acme",
            aliases=["Acme Corp"],
            query='(acme OR @acme OR #acmedown) AND (outage OR down OR "not working")',
            exclude="giveaway OR hiring OR (lang:de AND source:reddit)",
            exclusions=["acme bank"],
        ),
        brand("Apple", query="{Apple} NEAR/3 (iphone OR mac* OR store)"),
        brand("Globex"),
        brand("Initech", query="initech AND lang:en"),
    ]
)


@pytest.mark.parametrize(
    ("text", "language", "source", "expected"),
    [
        ("acme is down again", None, None, ("Acme",)),
        ("acme is fine", None, None, ()),
        ("Acme Corp is fine", None, None, ("Acme",)),
        ("#AcmeDown", None, None, ()),
        ("#AcmeDown: app not working", None, None, ("Acme",)),
        ("acme down, giveaway inside", None, None, ()),
        ("Acme Corp is hiring", None, None, ()),
        ("acme bank is down", None, None, ()),
        ("acme ist down", "de", "reddit", ()),
        ("acme ist down", "de", "rss", ("Acme",)),
        ("acme ist down", None, "reddit", ("Acme",)),
        ("Apple store queue", None, None, ("Apple",)),
        ("apple store queue", None, None, ()),
        ("Apple pie", None, None, ()),
        ("The new Apple MacBook", None, None, ("Apple",)),
        ("globex", None, None, ("Globex",)),
        ("initech", "en-US", None, ("Initech",)),
        ("initech", None, None, ()),
        ("Globex and Apple store and acme outage", None, None, ("Acme", "Apple", "Globex")),
    ],
)
def test_brand_matcher_with_queries(
    text: str, language: str | None, source: str | None, expected: tuple[str, ...]
) -> None:
    """query OR aliases include; exclusions and exclude (with its filters) remove."""
    assert MATCHER.match(text, language=language, source=source) == expected


def test_brand_with_query_has_no_implicit_name_alias() -> None:
    """With a query the name is not searched for; listed aliases still are."""
    assert MATCHER.match("Apple") == ()
    assert MATCHER.match("acme") == ()
    with_alias = BrandMatcher([brand("Apple", aliases=["Apple Inc"], query="{Apple} AND iphone")])
    assert with_alias.match("apple inc") == ("Apple",)
    assert with_alias.match("Apple iphone") == ("Apple",)


def test_brand_matcher_without_queries_ignores_filters() -> None:
    """Brands without queries match as before, whatever language or source is given."""
    matcher = BrandMatcher([brand("Acme", exclusions=["acme bank"])])
    assert matcher.match("acme", language="de", source="reddit") == ("Acme",)
    assert matcher.match("acme bank") == ()


def test_exclude_only_brand() -> None:
    """An exclude query without a query filters a brand matched by its aliases."""
    matcher = BrandMatcher([brand("Acme", exclude="NOT lang:en")])
    assert matcher.match("acme", language="en") == ("Acme",)
    assert matcher.match("acme", language="fr") == ()
    assert matcher.match("acme") == ()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"query": "acme AND (down"},
            "brand 'Acme' query: expected ')' at column 15",
        ),
        (
            {"exclude": "hiring OR"},
            "brand 'Acme' exclude: expected a term after 'OR' at column 10",
        ),
        (
            {"query": "NOT hiring"},
            "brand 'Acme' query: the query can match a mention that contains none of its terms"
            " at column 1",
        ),
    ],
)
def test_brand_matcher_reports_broken_queries(fields: dict[str, str], message: str) -> None:
    """A broken query or exclude fails BrandMatcher with the brand and field named."""
    with pytest.raises(QuerySyntaxError) as info:
        BrandMatcher([brand("Globex"), brand("Acme", **fields)])
    assert str(info.value) == message
    assert info.value.hint


def test_compile_brand_query() -> None:
    """compile_brand_query compiles one field (None when unset) and keeps detail/hint."""
    acme = brand("Acme", query="acme NOT hiring", exclude="lang:de")
    query = compile_brand_query(acme, "query")
    assert query is not None
    assert query.text == "acme NOT hiring"
    assert compile_brand_query(brand("Acme"), "exclude") is None
    broken = brand("Acme", query="acme OR")
    with pytest.raises(QuerySyntaxError) as info:
        compile_brand_query(broken, "query")
    assert info.value.detail == "expected a term after 'OR' at column 8"
    assert info.value.context == "brand 'Acme' query"
