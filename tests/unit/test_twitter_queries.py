"""X search queries built from brand config: terms, exclusions, filters and splitting."""

from __future__ import annotations

import itertools

import pytest

from listener.collectors.twitter import build_queries
from listener.config.schema import BrandConfig


def brand(**fields: object) -> BrandConfig:
    values: dict[str, object] = {"name": "Acme"}
    values.update(fields)
    return BrandConfig.model_validate(values)


def test_name_is_the_default_term() -> None:
    """A brand without aliases is searched by its name alone, without parentheses."""
    assert build_queries(brand(), max_length=512) == ["Acme"]


def test_aliases_keywords_handles_and_hashtags_are_ored_in_order() -> None:
    """Aliases, keywords, handles (@) and hashtags (#) are OR'ed in config order."""
    b = brand(
        aliases=["Acme", "Acme Corp"],
        keywords=["acmephone"],
        handles=["@AcmeSupport", "acme"],
        hashtags=["#AcmeFail", "acmenews"],
    )
    assert build_queries(b, max_length=512) == [
        '(Acme OR "Acme Corp" OR acmephone OR @AcmeSupport OR @acme OR #AcmeFail OR #acmenews)'
    ]


def test_exclusions_become_negated_words_and_phrases() -> None:
    """A one-word exclusion becomes -word and a phrase becomes -"a phrase"."""
    b = brand(exclusions=["roadrunner", "acme road", "wile-e"])
    assert build_queries(b, max_length=512) == ['Acme -roadrunner -"acme road" -"wile-e"']


def test_retweet_and_language_filters() -> None:
    """-is:retweet and lang: follow the exclusions; several languages are OR'ed."""
    b = brand(aliases=["Acme", "ACME Inc"], exclusions=["cartoon"])
    assert build_queries(b, max_length=512, exclude_retweets=True, languages=["en"]) == [
        '(Acme OR "ACME Inc") -cartoon -is:retweet lang:en'
    ]
    assert build_queries(b, max_length=512, languages=["EN", "de", "en"]) == [
        '(Acme OR "ACME Inc") -cartoon (lang:en OR lang:de)'
    ]


def test_duplicate_terms_are_dropped_case_insensitively() -> None:
    """X search ignores case, so a term repeated in another case is asked for once."""
    b = brand(aliases=["Acme", "ACME"], keywords=["acme", "rockets"])
    assert build_queries(b, max_length=512) == ["(Acme OR rockets)"]


def test_or_as_a_term_is_quoted() -> None:
    """An alias that reads as the OR operator is quoted so it stays a term."""
    assert build_queries(brand(aliases=["OR", "Acme"]), max_length=512) == ['("OR" OR Acme)']


def test_long_brands_are_split_with_filters_repeated() -> None:
    """Past max_length the terms are split over queries, each repeating exclusions and
    filters, every term present exactly once, in order."""
    keywords = [f"keyword{i:02d}" for i in range(40)]
    b = brand(keywords=keywords, exclusions=["cartoon show"])
    queries = build_queries(b, max_length=100, exclude_retweets=True, languages=["en", "fr"])
    assert len(queries) > 1
    suffix = '-"cartoon show" -is:retweet (lang:en OR lang:fr)'
    seen: list[str] = []
    for query in queries:
        assert len(query) <= 100
        assert query.endswith(" " + suffix)
        core = query[: -len(suffix) - 1]
        seen.extend(core.strip("()").split(" OR "))
    assert seen == ["Acme", *keywords]
    assert build_queries(b, max_length=100, exclude_retweets=True, languages=["en", "fr"]) == (
        queries
    )


def test_split_fills_each_query() -> None:
    """A split query is only started when the next term would not fit."""
    b = brand(keywords=[f"k{i}" for i in range(30)])
    queries = build_queries(b, max_length=64)
    for query, following in itertools.pairwise(queries):
        next_term = following.strip("()").split(" OR ")[0]
        assert len(query[:-1] + " OR " + next_term + ")") > 64


def test_a_term_that_cannot_fit_is_an_error_naming_it() -> None:
    """A single term longer than the room left by the filters raises ValueError naming it."""
    b = brand(keywords=["x" * 70], exclusions=["cartoon"])
    with pytest.raises(ValueError, match="x" * 70):
        build_queries(b, max_length=64)


def test_invalid_handle_and_hashtag_are_errors() -> None:
    """A handle or hashtag with characters X does not allow raises ValueError naming it."""
    with pytest.raises(ValueError, match="acme support"):
        build_queries(brand(handles=["acme support"]), max_length=512)
    with pytest.raises(ValueError, match="acme-fail"):
        build_queries(brand(hashtags=["#acme-fail"]), max_length=512)


def test_invalid_language_is_an_error() -> None:
    """A language that is not a code raises ValueError instead of corrupting the query."""
    with pytest.raises(ValueError, match="en gb"):
        build_queries(brand(), max_length=512, languages=["en gb"])
