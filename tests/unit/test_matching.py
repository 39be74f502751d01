"""Brand matching: whole words, normalisation, handles, hashtags, exclusions."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.config.schema import BrandConfig
from listener.matching.brands import BrandMatcher, normalise

ACME = BrandConfig(
    name="Acme",
    aliases=["Acme", "Acme Corp"],
    handles=["@AcmeHQ"],
    hashtags=["acmefail"],
    keywords=["roadrunner trap"],
    exclusions=["acme bank"],
)
ATT = BrandConfig(name="AT&T")
CPP = BrandConfig(name="cpp", aliases=["C++"])
CAFE = BrandConfig(name="Café Olé")
BARE = BrandConfig(name="Globex", handles=["globex"], hashtags=["#Globex"])

MATCHER = BrandMatcher([ACME, ATT, CPP, CAFE, BARE])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I love Acme products", ("Acme",)),
        ("acme.", ("Acme",)),
        ("(ACME)", ("Acme",)),
        ("Acmeville is nice", ()),
        ("subacme", ()),
        ("acme_thing", ()),
        ("Acme   Corp\nis down", ("Acme",)),
        ("caught in a Roadrunner  Trap", ("Acme",)),
        ("roadrunner", ()),
        ("ping @acmehq please", ("Acme",)),
        ("ping @AcmeHQ.", ("Acme",)),
        ("AcmeHQ without at", ()),
        ("mail me@acmehq now", ()),
        ("@acmehqx is someone else", ()),
        ("#acmefail again", ("Acme",)),
        ("acmefail without hash", ()),
        ("#acmefailure", ()),
        ("Switched from AT&T today", ("AT&T",)),
        ("at&t", ("AT&T",)),
        ("AT&Tx", ()),
        ("xAT&T", ()),
        ("at t", ()),
        ("Writing C++ since 1998", ("cpp",)),
        ("c++, rust", ("cpp",)),
        ("c++x", ()),
        ("just c", ()),
        ("CAFÉ OLÉ is great", ("Café Olé",)),
        ("cafe ole", ()),
        ("ＡＣＭＥ full width", ("Acme",)),
        ("Ｃ＋＋ full width", ("cpp",)),
        ("@globex and #globex", ("Globex",)),
        ("globex alone", ("Globex",)),
        ("Acme and AT&T and c++", ("Acme", "AT&T", "cpp")),
        ("", ()),
    ],
)
def test_match_table(text: str, expected: tuple[str, ...]) -> None:
    """Each text matches exactly the expected brands, in config order."""
    assert MATCHER.match(text) == expected


def test_decomposed_accents_match_composed_alias() -> None:
    """A decomposed (NFD) text matches an alias written composed."""
    assert MATCHER.match(unicodedata.normalize("NFD", "café olé rocks")) == ("Café Olé",)


def test_exclusion_blocks_only_its_brand() -> None:
    """An exclusion suppresses its own brand even when an alias also occurs, not others."""
    assert MATCHER.match("Acme Bank is not Acme") == ()
    assert MATCHER.match("ACME  BANK and AT&T") == ("AT&T",)
    assert MATCHER.match("acme banking news") == ("Acme",)


def test_name_is_default_alias_and_keywords_do_not_replace_it() -> None:
    """With no aliases the name matches; with aliases only the aliases do."""
    matcher = BrandMatcher(
        [
            BrandConfig(name="Initech", keywords=["tps report"]),
            BrandConfig(name="Brand-X", aliases=["Xcorp"]),
        ]
    )
    assert matcher.match("initech again") == ("Initech",)
    assert matcher.match("my TPS report") == ("Initech",)
    assert matcher.match("Brand-X") == ()
    assert matcher.match("xcorp") == ("Brand-X",)


def test_terms_that_normalise_to_nothing_are_ignored() -> None:
    """A handle of just '@' or a blank alias never matches anything."""
    matcher = BrandMatcher([BrandConfig(name="Empty", aliases=["  "], handles=["@"])])
    assert matcher.match("@ anything at all") == ()
    assert matcher.brand_names == ("Empty",)


def test_normalise() -> None:
    """normalise applies NFKC, casefold and whitespace collapsing."""
    assert normalise("  Straße\t\tＡＢＣ\n ﬁ ") == "strasse abc fi"


WORDS = st.sampled_from(
    [
        "acme",
        "Acme Corp",
        "at&t",
        "c++",
        "café olé",
        "@acmehq",
        "#acmefail",
        "globex",
        "bank",
        "the",
        "Über",
        "straße",
        "ＡＣＭＥ",
        "ﬁne",
        "naïve",
        "x",
        "!",
        ",",
        "123",
    ]
)
SEPARATORS = st.sampled_from([" ", "  ", "\n", "\t", ", ", ". ", "! "])


@st.composite
def texts(draw: st.DrawFn) -> str:
    """Texts built from brand terms, near-miss words and punctuation."""
    words = draw(st.lists(WORDS, max_size=8))
    seps = draw(st.lists(SEPARATORS, min_size=len(words), max_size=len(words)))
    return "".join(w + s for w, s in zip(words, seps, strict=True))


@settings(max_examples=150, deadline=None)
@given(text=texts())
def test_matching_is_stable_under_case_and_nfkc(text: str) -> None:
    """Upper-, lower-, swap-casing or NFKC/NFD-normalising the text never changes the match."""
    expected = MATCHER.match(text)
    for variant in (
        text.upper(),
        text.lower(),
        text.swapcase(),
        unicodedata.normalize("NFKC", text),
        unicodedata.normalize("NFD", text),
    ):
        assert MATCHER.match(variant) == expected


@settings(max_examples=100, deadline=None)
@given(
    before=texts(),
    after=texts(),
    exclusion=st.sampled_from(["acme bank", "ACME BANK", "Acme  Bank"]),
)
def test_text_with_exclusion_never_matches(before: str, after: str, exclusion: str) -> None:
    """A text containing one of a brand's exclusions as a phrase never matches that brand."""
    assert "Acme" not in MATCHER.match(f"{before} {exclusion} {after}")


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=60))
def test_arbitrary_text_never_raises(text: str) -> None:
    """Any Unicode text is matched without error and only to configured brands."""
    assert set(MATCHER.match(text)) <= set(MATCHER.brand_names)
