"""Crisis categories and emotions: built-ins, evidence, custom config, normalisation."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict

from listener.matching.brands import normalise
from listener.matching.document import Prepared
from listener.scoring.categories import (
    DEFAULT_CATEGORIES,
    EMOTION_DEFINITIONS,
    EMOTIONS,
    PATTERN_LABELS,
    SHOUTING,
    CategoryError,
    CategoryHit,
    CategorySpec,
    CategoryTagger,
    EmotionDetector,
    EmotionHit,
    normalise_text,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "categories.md"
TAGGER = CategoryTagger()
EMOTION = EmotionDetector()


def names(text: str, tagger: CategoryTagger = TAGGER) -> tuple[str, ...]:
    """The category names ``text`` is tagged with."""
    return tuple(hit.name for hit in tagger.tag(text))


# --------------------------------------------------------------------------- built-ins

POSITIVES = [
    ("outage", "Is Acme down?"),
    ("outage", "acme is down again for everyone"),
    ("outage", "Acme’s down"),
    ("outage", "servers went down an hour ago"),
    ("outage", "is everything down?"),
    ("outage", "can't log in to my account"),
    ("outage", "cannot sign in"),
    ("outage", "unable to login since 9am"),
    ("outage", "the app keeps crashing"),
    ("outage", "getting a 503 error"),
    ("outage", "error 502 again"),
    ("outage", "#AcmeOutage again"),
    ("outage", "major outage in the EU"),
    ("outage", "Downdetector shows a spike"),
    ("outage", "site not loading"),
    ("security", "Acme confirms data breach"),
    ("security", "my account was hacked"),
    ("security", "passwords leaked online"),
    ("security", "they leaked customer data"),
    ("security", "phishing emails pretending to be Acme"),
    ("security", "CVE-2024-12345 affects the Acme router"),
    ("security", "someone logged into my account"),
    ("security", "is it safe after the breach?"),
    ("safety", "Acme recalls 50,000 space heaters"),
    ("safety", "voluntary recall of baby formula"),
    ("safety", "the stroller was recalled"),
    ("safety", "recall notice for acme kettles"),
    ("safety", "Acme is recalling its chargers"),
    ("safety", "my charger caught fire"),
    ("safety", "found glass in my cereal"),
    ("safety", "got sick after eating acme chips"),
    ("safety", "salmonella outbreak linked to acme"),
    ("safety", "#recall acme kettles"),
    ("safety", "two people injured by the heater"),
    ("legal", "Acme hit with class action lawsuit"),
    ("legal", "we will sue Acme"),
    ("legal", "FTC sues Acme"),
    ("legal", "Acme faces a $5m fine"),
    ("legal", "a record fine for Acme"),
    ("legal", "Acme fined by the regulator"),
    ("legal", "taking them to court"),
    ("legal", "this is illegal"),
    ("offensive", "that ad is so racist"),
    ("offensive", "what a tone-deaf campaign"),
    ("offensive", "Acme pulled the ad after the backlash"),
    ("offensive", "homophobic tweet from acme"),
    ("offensive", "the ad was offensive"),
    ("customer_service", "been on hold for 2 hours"),
    ("customer_service", "customer service hung up on me"),
    ("customer_service", "terrible service at acme"),
    ("customer_service", "my package never arrived"),
    ("customer_service", "nobody answers the phone"),
    ("customer_service", "still waiting for a reply"),
    ("pricing", "Acme charged me twice"),
    ("pricing", "I want a refund"),
    ("pricing", "they raised prices again"),
    ("pricing", "my plan's cost went up"),
    ("pricing", "double-charged for one order"),
    ("pricing", "hidden fees everywhere"),
    ("pricing", "what a rip-off"),
    ("pricing", "way too expensive"),
    ("rumour", "rumour has it acme is closing"),
    ("rumour", "is it true that acme is shutting down?"),
    ("rumour", "that's a fake screenshot"),
    ("rumour", "this is misinformation"),
    ("rumour", "Acme debunks the viral claim"),
    ("rumour", "account impersonating acme support"),
    ("boycott", "#BoycottAcme"),
    ("boycott", "#AcmeBoycott"),
    ("boycott", "#CancelAcme"),
    ("boycott", "boycott acme now"),
    ("boycott", "don't buy from acme"),
    ("boycott", "sign the petition"),
    ("boycott", "taking my business elsewhere"),
    ("boycott", "acme workers are on strike"),
]

NEGATIVES = [
    ("outage", "meet me downtown"),
    ("outage", "download the new app"),
    ("outage", "prices are down 5%"),
    ("outage", "sales are down by a third"),
    ("outage", "I'm down for pizza"),
    ("outage", "calm down everyone"),
    ("outage", "#countdown to launch"),
    ("outage", "this breakdown is great"),
    ("outage", "is it down to me?"),
    ("outage", "upside down cake"),
    ("outage", "#OscarsCountdown"),
    ("security", "life hack: use acme glue"),
    ("security", "hackathon this weekend"),
    ("security", "a breach of contract claim"),
    ("security", "we compromised on price"),
    ("safety", "I recall the day acme launched"),
    ("safety", "if I recall correctly it was fine"),
    ("safety", "can't recall my password"),
    ("safety", "as I recall, the meeting went well"),
    ("safety", "total recall is a great film"),
    ("safety", "lost my bag, to add insult to injury"),
    ("legal", "Sue from marketing says hi"),
    ("legal", "that's fine by me"),
    ("legal", "the food court was busy"),
    ("legal", "a $75 fine for a late change"),
    ("offensive", "the ad was brilliant"),
    ("offensive", "racing car ad"),
    ("customer_service", "the service was restored"),
    ("customer_service", "hold my beer"),
    ("pricing", "a priceless moment"),
    ("pricing", "charged my phone overnight"),
    ("pricing", "feel free to reach out"),
    ("pricing", "left my expensive headphones on board"),
    ("rumour", "true story, acme rocks"),
    ("rumour", "a great Elvis impersonator on board"),
    ("boycott", "buy one get one free"),
    ("boycott", "a striking design"),
    ("boycott", "delayed again? don't buy it"),
    ("boycott", "#CancelledFlight again"),
]


@pytest.mark.parametrize(("category", "text"), POSITIVES)
def test_built_in_category_fires(category: str, text: str) -> None:
    """Each example text is tagged with its category."""
    assert category in names(text)


@pytest.mark.parametrize(("category", "text"), NEGATIVES)
def test_built_in_category_does_not_fire(category: str, text: str) -> None:
    """Near misses (substrings, idioms, other senses) are not tagged with the category."""
    assert category not in names(text)


def test_every_built_in_category_has_examples() -> None:
    """The tables above cover all nine built-in categories, positively and negatively."""
    expected = {
        "outage",
        "security",
        "safety",
        "legal",
        "offensive",
        "customer_service",
        "pricing",
        "rumour",
        "boycott",
    }
    assert set(DEFAULT_CATEGORIES) == expected
    assert {c for c, _ in POSITIVES} == expected
    assert {c for c, _ in NEGATIVES} == expected


def test_recall_needs_product_context() -> None:
    """Bare "recall" (memory) never fires safety; recall with product context does."""
    assert names("I recall that acme recall") == ()
    assert names("Acme recall of 2 million cars") == ("safety",)


def test_neutral_text_has_no_category() -> None:
    """Ordinary brand chatter and the empty text get no category."""
    assert TAGGER.tag("Lovely day at the Acme store, great coffee") == ()
    assert TAGGER.tag("") == ()


def test_names_and_hit_order_follow_the_built_in_order() -> None:
    """names lists the built-ins in order and tag reports hits in that order."""
    assert TAGGER.names == tuple(DEFAULT_CATEGORIES)
    text = "#BoycottAcme: racist ad, data breach, site is down, refund now"
    assert names(text) == ("outage", "security", "offensive", "pricing", "boycott")


# --------------------------------------------------------------------------- evidence


def test_evidence_lists_terms_then_pattern_labels_in_definition_order() -> None:
    """Evidence is the terms and (labelled) built-in patterns that fired, in order."""
    assert TAGGER.tag("Acme charged me twice, I want a REFUND!") == (
        CategoryHit("pricing", ("refund*", "charged twice")),
    )
    assert TAGGER.tag("Is Acme down?? can't log in") == (
        CategoryHit("outage", ("is <x> down", "can't log in")),
    )


def test_evidence_names_each_fired_item_once() -> None:
    """A term that matches several times is listed once."""
    assert TAGGER.tag("refund refunds refunded") == (CategoryHit("pricing", ("refund*",)),)


def test_every_built_in_pattern_has_a_label() -> None:
    """Built-in patterns report a short readable label, never the raw regex."""
    for spec in DEFAULT_CATEGORIES.values():
        for pattern in spec.patterns:
            assert pattern in PATTERN_LABELS
            assert len(PATTERN_LABELS[pattern]) <= 40


# --------------------------------------------------------------------------- custom config


def test_custom_terms_extend_a_built_in_category() -> None:
    """Custom terms add to a built-in category; its defaults keep working."""
    tagger = CategoryTagger({"safety": {"terms": ["melt*"]}})
    assert tagger.tag("the kettle melted") == (CategoryHit("safety", ("melt*",)),)
    assert names("my charger caught fire", tagger) == ("safety",)


def test_replace_drops_the_built_in_terms() -> None:
    """replace: true swaps a built-in category's terms and patterns for the custom ones."""
    tagger = CategoryTagger({"pricing": {"terms": ["tariff*"], "replace": True}})
    assert names("I want a refund", tagger) == ()
    assert tagger.tag("new tariffs") == (CategoryHit("pricing", ("tariff*",)),)


def test_replace_with_nothing_switches_a_category_off() -> None:
    """An empty replacement removes the category from names and results."""
    tagger = CategoryTagger({"rumour": CategorySpec(replace=True)})
    assert "rumour" not in tagger.names
    assert names("rumour has it", tagger) == ()


def test_new_category_comes_after_the_built_ins_in_config_order() -> None:
    """New categories are appended in the order given, with pattern text as evidence."""
    tagger = CategoryTagger(
        {
            "shipping": {"terms": ["late shipment*"], "patterns": [r"shipped (the )?wrong \w+"]},
            "competitor": {"terms": ["Globex"]},
        }
    )
    assert tagger.names[-2:] == ("shipping", "competitor")
    assert tagger.tag("They shipped the wrong size, Globex never did") == (
        CategoryHit("shipping", (r"shipped (the )?wrong \w+",)),
        CategoryHit("competitor", ("Globex",)),
    )


def test_brief_example_patterns_with_groups_work() -> None:
    """Patterns with capturing groups, as people write them, fire as expected."""
    tagger = CategoryTagger(
        {"custom": {"patterns": ["can't (log|sign) in", "charged (me )?twice"]}}, defaults=False
    )
    assert tagger.tag("I can’t sign in and they charged twice") == (
        CategoryHit("custom", ("can't (log|sign) in", "charged (me )?twice")),
    )
    assert tagger.tag("they overcharged me twice") == ()


def test_pattern_with_capitals_is_case_insensitive() -> None:
    """A pattern written with capitals still matches the casefolded text."""
    tagger = CategoryTagger({"wallet": {"patterns": [r"Acme Pay (is )?broken"]}}, defaults=False)
    assert names("ACME PAY IS BROKEN", tagger) == ("wallet",)


def test_pattern_never_starts_or_ends_inside_a_word() -> None:
    """Custom patterns keep the whole-word edge rule, like terms."""
    tagger = CategoryTagger({"x": {"patterns": ["is (it|acme) down"]}}, defaults=False)
    assert names("is acme down", tagger) == ("x",)
    assert names("this acme downloading", tagger) == ()


def test_brand_hashtags_are_custom_terms() -> None:
    """A "#<brand>down" hashtag is configured as a custom outage term, sigil and all."""
    tagger = CategoryTagger({"outage": {"terms": ["#AcmeDown"]}})
    assert tagger.tag("#acmedown again") == (CategoryHit("outage", ("#AcmeDown",)),)
    assert names("#acmedown again") == ()
    assert names("acmedown", tagger) == ()


def test_defaults_off_leaves_only_custom_categories() -> None:
    """defaults=False builds a tagger with just the custom categories."""
    tagger = CategoryTagger({"outage": {"terms": ["kaput"]}}, defaults=False)
    assert tagger.names == ("outage",)
    assert names("acme is down", tagger) == ()
    assert names("acme is kaput", tagger) == ("outage",)


def test_config_models_and_plain_objects_are_accepted() -> None:
    """A pydantic model or any object with terms/patterns/replace can be passed straight in."""

    class Spec(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        terms: list[str] = []
        patterns: list[str] = []
        replace: bool = False

    tagger = CategoryTagger(
        {
            "recall": Spec(patterns=[r"recall(s|ed)? \w+ (kettles?|toasters?)"]),
            "outage": SimpleNamespace(terms=["kaput"], patterns=[], replace=False),
        }
    )
    assert names("Acme recalls its kettles", tagger) == ("safety", "recall")
    assert tagger.tag("acme is kaput, is it down?") == (
        CategoryHit("outage", ("kaput", "is <x> down")),
    )


@pytest.mark.parametrize(
    ("custom", "fragment", "field", "index"),
    [
        (
            {"pricing": {"patterns": ["ok", "charged (me twice"]}},
            "charged (me twice",
            "patterns",
            1,
        ),
        ({"x": {"patterns": ["(refund)?"]}}, "matches the empty string", "patterns", 0),
        ({"x": {"patterns": ["(?i)refund"]}}, "scoped flags", "patterns", 0),
        ({"x": {"patterns": [""]}}, "non-empty string", "patterns", 0),
        ({"x": {"terms": ["ab*"]}}, "at least 3 characters", "terms", 0),
        ({"x": {"terms": "refund"}}, "list of strings", "terms", None),
        ({"x": {"terms": ["ok", 3]}}, "list of strings", "terms", 1),
        ({"x": {"term": ["refund"]}}, "unknown key 'term'", "term", None),
        ({"x": {"terms": ["ok"], "replace": "yes"}}, "true or false", "replace", None),
        ({"x": {}}, "at least one term or pattern", None, None),
    ],
)
def test_unusable_definitions_raise_a_clear_error(
    custom: dict[str, dict[str, object]], fragment: str, field: str | None, index: int | None
) -> None:
    """A broken definition raises CategoryError naming the category, item and location."""
    with pytest.raises(CategoryError) as caught:
        CategoryTagger(custom)
    error = caught.value
    name = next(iter(custom))
    assert str(error).startswith(f"category {name!r}: ")
    assert fragment in str(error)
    assert (error.category, error.field, error.index) == (name, field, index)
    assert isinstance(error, ValueError)


def test_terms_that_normalise_to_nothing_are_ignored() -> None:
    """Blank terms are skipped rather than matching everything."""
    tagger = CategoryTagger({"x": {"terms": ["  ", "-", "kaput"]}}, defaults=False)
    assert names("anything at all", tagger) == ()
    assert names("kaput", tagger) == ("x",)


# --------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ＡＣＭＥ ＩＳ ＤＯＷＮ", "outage"),
        ("REFUND PLEASE", "pricing"),
        ("I can’t log in", "outage"),
        ("I cant log in", "outage"),
        ("tone-deaf and tone  deaf", "offensive"),
        ("DATA\u00a0BREACH", "security"),
    ],
)
def test_case_width_apostrophes_and_spaces_are_normalised(text: str, expected: str) -> None:
    """Case, full-width forms, curly apostrophes and odd spaces do not hide a category."""
    assert expected in names(text)


def test_custom_terms_are_normalised_like_texts() -> None:
    """A custom term with accents or capitals matches any equivalent spelling of the text."""
    tagger = CategoryTagger({"x": {"terms": ["Café Noir", "Straße"]}}, defaults=False)
    assert names(unicodedata.normalize("NFD", "le CAFÉ noir"), tagger) == ("x",)
    assert names("STRASSE", tagger) == ("x",)
    assert names("cafe noir", tagger) == ()


TEXT_PIECES = st.sampled_from(
    ["Acme", "ＡＣＭＥ", "can’t", "Straße", "ﬁne", "café", "\u00a0", "\t", "\n", "  ", "😡", "x"]
)


@settings(max_examples=200, deadline=None)
@given(st.lists(TEXT_PIECES, max_size=8).map("".join))
def test_normalise_text_is_the_brand_matcher_normalisation(text: str) -> None:
    """normalise_text equals the matcher's normalise plus straightened apostrophes."""
    assert normalise_text(text) == normalise(text).replace("’", "'")


# --------------------------------------------------------------------------- emotions

EMOTION_CASES = [
    ("I'm furious with acme", ("anger",)),
    ("This is unacceptable", ("anger",)),
    ("acme 😡", ("anger",)),
    ("🖕🏽 acme", ("anger",)),
    ("wtf acme", ("anger",)),
    ("ACME FIX YOUR BROKEN APP NOW", ("anger",)),
    ("acme is a joke", ("anger",)),
    ("worst service ever", ("anger",)),
    ("I'm not angry, just disappointed", ()),
    ("AWS API DOWN", ()),
    ("THANK YOU SO MUCH, BEST AIRLINE EVER", ()),
    ("YOU GUYS ARE AMAZING 😍", ()),
    ("I love Acme", ()),
    ("shiitake mushrooms", ()),
    ("I'm worried about my data", ("concern",)),
    ("is it safe to use?", ("concern",)),
    ("what happens to my data now", ("concern",)),
    ("scared to fly acme", ("concern",)),
    ("hope everyone is ok", ("concern",)),
    ("not worried at all", ()),
    ("I'm not afraid of them", ()),
    ("I'm afraid not", ()),
    ("anxious to book my trip", ()),
    ("a bit anxious about tomorrow", ("concern",)),
    ("no worries", ()),
    ("don't worry about it", ()),
    ("is it safe to say acme won?", ()),
    ("this is the safe option", ()),
    ("what's going on with acme", ("confusion",)),
    ("anyone know why acme is slow", ("confusion",)),
    ("is it just me or is acme slow", ("confusion",)),
    ("why??", ("confusion",)),
    ("I'm so confused", ("confusion",)),
    ("anyone else having issues", ("confusion",)),
    ("not confused at all", ()),
    ("why?", ()),
    ("I know why", ()),
    ("WTF is going on?? I'm worried", ("anger", "concern", "confusion")),
    ("Lovely day at the Acme store", ()),
    ("", ()),
]


@pytest.mark.parametrize(("text", "expected"), EMOTION_CASES)
def test_emotions(text: str, expected: tuple[str, ...]) -> None:
    """Each text shows exactly the expected emotions, in EMOTIONS order."""
    assert EMOTION.detect(text) == expected


def test_emotion_evidence() -> None:
    """explain names the terms, pattern labels and signals behind each emotion."""
    assert EMOTION.explain("THIS IS ABSOLUTELY UNACCEPTABLE ACME 😡") == (
        EmotionHit("anger", ("unacceptable", "😡", SHOUTING)),
    )
    assert EMOTION.explain("what's going on?? is my data safe") == (
        EmotionHit("concern", ("is my data safe",)),
        EmotionHit("confusion", ("what's going on", "??")),
    )


def test_shouting_needs_several_long_capital_words() -> None:
    """All caps counts as shouting only with four or more mostly-capital words."""
    assert EMOTION.detect("WHY IS IT DOWN AGAIN") == ("anger",)
    assert EMOTION.detect("NASA and AWS and IBM news") == ()
    assert EMOTION.detect("I LOVE IT") == ()
    assert EMOTION.detect("@ACMEHQ @ACMESUPPORT #ACMEDOWN https://ACME.COM/STATUS") == ()


def test_emotion_names_are_the_three_the_team_uses() -> None:
    """Only anger, concern and confusion are ever reported."""
    assert EMOTIONS == ("anger", "concern", "confusion")


# --------------------------------------------------------------------------- gating

VOCABULARY = sorted(
    {
        word
        for spec in DEFAULT_CATEGORIES.values()
        for term in spec.terms
        for word in term.replace("*", "s").split()
    }
    | {
        "down", "downtown", "for", "everyone", "pizza", "is", "are", "it", "it's", "can't",
        "cant", "log", "in", "recalls", "recall", "of", "products", "50,000", "503", "error",
        "$5m", "fine", "#", "@", "?", "??", "!", "-", "'", "’", ",", ".", "😡", "worried",
        "not", "no", "don't", "safe", "what's", "going", "on", "ACME", "NOW", "_x", "café",
        "afraid", "anxious", "so", "insult", "injury", "expensive", "too", "#cancelled",
        "#cancelacme", "joke", "worst", "ever", "just", "me", "why", "anyone", "else",
    }
)  # fmt: skip
SEPARATORS = st.sampled_from([" ", " ", "", "-", ", ", "  "])


@st.composite
def crisis_texts(draw: st.DrawFn) -> str:
    """Texts built from category words, near misses and punctuation, glued oddly."""
    words = draw(st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=10))
    text = "".join(word + draw(SEPARATORS) for word in words)
    return text.upper() if draw(st.booleans()) else text


@settings(max_examples=400, deadline=None)
@given(crisis_texts())
def test_gating_never_changes_a_result(text: str) -> None:
    """The fast gated path gives exactly what trying every term and pattern gives."""
    engine = TAGGER._engine
    assert engine.run(text) == engine.run(text, gated=False)
    emotions = EMOTION._engine
    assert emotions.run(text, negation=True) == emotions.run(text, negation=True, gated=False)


@settings(max_examples=400, deadline=None)
@given(crisis_texts())
def test_names_without_evidence_are_the_names_of_the_hits(text: str) -> None:
    """The paths that skip evidence (categories_prepared, detect, detect_prepared) name
    exactly the hits of tag and explain, shouting included."""
    assert TAGGER.categories_prepared(Prepared(text)) == names(text)
    assert EMOTION.detect(text) == tuple(hit.name for hit in EMOTION.explain(text))
    assert EMOTION.detect_prepared(Prepared(text)) == EMOTION.detect(text)


@pytest.mark.parametrize("pattern", ["(?<=a)", r"x?\b", "(?<=a)(?=b)?"])
def test_a_pattern_that_matches_only_the_empty_string_in_a_text_never_fires(
    pattern: str,
) -> None:
    """An empty match (here at the end of the text) is no match, and looking past it
    ends (it once searched the end of the text forever)."""
    tagger = CategoryTagger({"x": {"patterns": [pattern]}}, defaults=False)
    for text in ["a", "ab", "b", ""]:
        assert tagger._engine.run(text, gated=False) == tagger._engine.run(text)
    assert tagger.tag("a b") == tagger.tag("ba") == ()


# --------------------------------------------------------------------------- docs


def test_docs_list_every_built_in_term_and_pattern() -> None:
    """docs/categories.md shows every built-in term and pattern label (categories, emotions)."""
    text = DOC.read_text()
    for spec in [*DEFAULT_CATEGORIES.values(), *EMOTION_DEFINITIONS.values()]:
        for term in spec.terms:
            assert f"`{term}`" in text, term
        for pattern in spec.patterns:
            assert f"`{PATTERN_LABELS[pattern]}`" in text, pattern


def test_docs_config_example_builds() -> None:
    """The rules.yaml example in docs/categories.md builds a tagger that does what it says."""
    block = re.search(r"```yaml\n(categories:.*?)```", DOC.read_text(), re.S)
    assert block is not None
    config = yaml.safe_load(block.group(1))["categories"]
    tagger = CategoryTagger(config["custom"], defaults=config["defaults"])
    assert "rumour" not in tagger.names
    assert tagger.names[-1] == "shipping"
    assert names("#AcmeDown", tagger) == ("outage",)
    assert names("they shipped the wrong size", tagger) == ("shipping",)
