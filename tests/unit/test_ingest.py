"""The Ingest stage: a batch of mentions → scored mentions, one prepared document each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.config.load import load_config_text
from listener.config.schema import Config
from listener.ingest import UNMATCHED, Ingest, mention_text
from listener.matching.brands import BrandMatcher
from listener.matching.document import Prepared
from listener.model import UNSCORED, Author, Mention, Sentiment
from listener.scoring.categories import CategoryTagger, EmotionDetector

CONFIG = """
brands:
  - name: Acme
    handles: ["@acme"]
    aliases: [Acme, "Acme Cloud"]
  - name: Globex
    query: '{Globex} NEAR/3 (outage OR refund*) OR "globex corp"'
    exclude: hiring
rules: []
"""

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

TEXTS = [
    "@acme your service is terrible and broken, worst outage ever",
    "Acme Cloud is down AGAIN?? I can’t log in, my data is gone",
    "I love Acme, thanks for the quick refund!",
    "Globex outage again, where is my refund",
    "Globex Corp is hiring engineers",
    "nothing to see here",
    "ＡＣＭＥ ＣＬＯＵＤ ｉｓ ｄｏｗｎ",
    "WHY IS ACME STILL BROKEN I AM SO DONE WITH THIS",
    "@acme not worried at all, don't worry about it",
]


@pytest.fixture
def config() -> Config:
    return load_config_text(CONFIG, "rules.yaml", {})


def mention(i: int, text: str, *, title: str | None = None, minutes: int = 0) -> Mention:
    return Mention(
        source="news",
        id=f"m{i}",
        text=text,
        created_at=T0 + timedelta(minutes=minutes),
        author=Author(handle=f"user{i}"),
        title=title,
    )


def test_run_equals_the_steps_one_mention_at_a_time(config: Config) -> None:
    """Each scored mention is what the matcher, scorer, tagger, emotion detector and a
    story index give for that mention alone, in input order."""
    stage = Ingest.build(config)
    reference = Ingest.build(config)
    mentions = [mention(i, t, minutes=i) for i, t in enumerate(TEXTS)]
    scored = stage.run(mentions, T0)
    for m, s in zip(mentions, scored, strict=True):
        text = mention_text(m)
        brands = reference.matcher.match(text, language=m.language, source=m.source)
        assert s.brands == brands
        if not brands:
            assert s.mention == m  # an unmatched mention keeps what its source gave
            assert (s.sentiment, s.categories, s.emotions, s.story) == (UNMATCHED, (), (), None)
            continue
        language = reference.languages.resolve(text, m.language)
        assert s.mention == replace(m, language=language)
        scorer = reference.scorers.scorer_for(language)
        assert s.sentiment == (scorer.score(text) if scorer is not None else UNSCORED)
        assert s.categories == tuple(h.name for h in reference.tagger.tag(text))
        assert s.emotions == reference.emotions.detect(text)
        assert s.story == reference.stories.assign(m).story
    assert any(s.categories for s in scored)
    assert any(s.emotions for s in scored)
    assert {s.brands for s in scored} >= {("Acme",), ("Globex",), ()}


def test_unmatched_mentions_are_not_scored_or_remembered(config: Config) -> None:
    """A mention of no brand is neutral with no story, and a later copy of it that does
    match starts its own story."""
    stage = Ingest.build(config)
    text = "the same words repeated across several posts about nothing much"
    first = stage.run([mention(1, text)], T0)[0]
    assert first.brands == ()
    assert first.sentiment == Sentiment("neutral", 0.0)
    assert first.story is None
    assert len(stage.stories) == 0
    second = stage.run([mention(2, f"@acme {text}", minutes=1)], T0)[0]
    assert second.story == "news:m2"


def test_copies_share_a_story_across_batches(config: Config) -> None:
    """The story index is the stage's state: a copy in a later batch joins the story."""
    stage = Ingest.build(config)
    text = "@acme checkout has been broken for two hours and support is silent"
    stage.run([mention(1, text)], T0)
    copy = stage.run([mention(2, text.upper(), minutes=5)], T0)[0]
    assert copy.story == "news:m1"
    fresh = stage.with_new_stories().run([mention(3, text, minutes=6)], T0)[0]
    assert fresh.story == "news:m3"


def test_title_is_matched_with_the_body(config: Config) -> None:
    """A title not already in the body is read before it (``title. body``)."""
    stage = Ingest.build(config)
    m = mention(1, "service restored for most users", title="Acme Cloud outage")
    assert mention_text(m) == "Acme Cloud outage. service restored for most users"
    assert stage.run([m], T0)[0].brands == ("Acme",)
    same = mention(2, "Acme Cloud outage: details", title="Acme Cloud outage")
    assert mention_text(same) == same.text


class _BatchScorer:
    """A scorer with the batch capability that records the batches it is given."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def score(self, text: str) -> Sentiment:
        raise AssertionError("scored one by one")

    def score_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        self.batches.append(list(texts))
        return [Sentiment("negative", -0.5) for _ in texts]


def test_a_batch_scorer_scores_each_run_in_one_call(config: Config) -> None:
    """A scorer with score_batch gets the matched texts of a run in one call, also after
    a reload (the stage decides how to score once, when it is built)."""
    scorer = _BatchScorer()
    stage = Ingest.build(config, scorer=scorer)
    scored = stage.run([mention(1, "@acme down"), mention(2, "nothing"), mention(3, "Acme!")], T0)
    assert scorer.batches == [["@acme down", "Acme!"]]
    assert [s.sentiment.label for s in scored] == ["negative", "neutral", "negative"]
    stage.run([mention(4, "nothing at all")], T0)
    assert scorer.batches == [["@acme down", "Acme!"]]  # no call for an empty batch
    stage.reconfigure(config).run([mention(5, "@acme again")], T0)
    assert scorer.batches[-1] == ["@acme again"]


def test_reconfigure_keeps_scorer_and_stories(config: Config) -> None:
    """A reload compiles the new brands; the scorer and the stories carry over."""
    stage = Ingest.build(config)
    stage.run([mention(1, "@acme the app is down for everyone in the office today")], T0)
    reloaded = stage.reconfigure(
        load_config_text("brands: [{name: Initech}]\nrules: []\n", "rules.yaml", {})
    )
    assert reloaded.scorers is stage.scorers
    assert reloaded.languages is stage.languages
    assert reloaded.stories is stage.stories
    assert reloaded.matcher.brand_names == ("Initech",)
    assert reloaded.run([mention(2, "@acme is down")], T0)[0].brands == ()


_PIECES = [*"aAcCmMeE xyz'’‘ʼ!?.,#@_-", "ＡＣＭＥ", "é", "e\u0301", "Σ", "ß", "\u00a0", "\t"]
_PIECES += [
    "😡",
    "🙂",
    " acme ",
    " outage ",
    " refund ",
    " worried ",
    " not ",
    " hiring ",
    " globex ",
]
_TEXT = st.lists(st.sampled_from(_PIECES), max_size=20).map("".join)


@settings(max_examples=80, deadline=None)
@given(text=_TEXT)
def test_prepared_document_gives_what_each_reader_gives_alone(text: str) -> None:
    """Matching, tagging and emotions read the one prepared document exactly as they
    read the raw text (Unicode, curly apostrophes, whitespace runs included)."""
    config = load_config_text(CONFIG, "rules.yaml", {})
    matcher = BrandMatcher(config.brands)
    tagger = CategoryTagger()
    emotions = EmotionDetector()
    doc = Prepared(text, "en", "news")
    assert matcher.match_prepared(doc) == matcher.match(text, language="en", source="news")
    assert tagger.tag_prepared(doc) == tagger.tag(text)
    assert emotions.detect_prepared(doc) == emotions.detect(text)
    assert doc.query_document() is doc.query_document()


def test_pinned_mentions_skip_matching_and_are_scored(config: Config) -> None:
    """A pinned mention is about its pinned brand alone, whatever its text says, and is
    scored, tagged and given a story like a matched one; the others are matched."""
    text = "nothing about any brand here, the checkout has been broken for hours"
    pins = {("news", "m1"): "Initech", ("news", "m2"): "Globex"}
    stage = Ingest.build(config, pins=pins)
    pins[("news", "m3")] = "Initech"  # the stage keeps its own copy
    reference = Ingest.build(config)
    scored = stage.run(
        [mention(1, text), mention(2, "@acme is down"), mention(3, text), mention(4, "@acme")],
        T0,
    )
    assert [s.brands for s in scored] == [("Initech",), ("Globex",), (), ("Acme",)]
    english = reference.scorers.scorer_for("en")
    assert english is not None
    assert scored[0].sentiment == english.score(text)
    assert scored[0].sentiment != UNMATCHED
    assert scored[0].categories == tuple(h.name for h in reference.tagger.tag(text))
    assert scored[0].story == "news:m1"
    assert (scored[2].sentiment, scored[2].story) == (UNMATCHED, None)


def test_pins_carry_over_reload_and_new_stories(config: Config) -> None:
    """Reconfiguring the brands or starting new stories keeps what the input pinned;
    the stage the daemon builds pins nothing."""
    assert Ingest.build(config).pins == {}
    stage = Ingest.build(config, pins={("news", "m1"): "Initech"})
    reloaded = stage.reconfigure(load_config_text("brands: [{name: Hooli}]\nrules: []\n", "r", {}))
    for other in (reloaded, stage.with_new_stories()):
        assert other.run([mention(1, "@acme")], T0)[0].brands == ("Initech",)


def test_processor_runs_the_stage_it_is_given(config: Config) -> None:
    """``Processor(stage=...)`` runs that stage (pins included) instead of building one;
    a stage and a scorer together are refused."""
    from listener.metrics import Metrics
    from listener.processor import Processor
    from listener.store import Store

    stage = Ingest.build(config, pins={("news", "m1"): "Globex"})
    store = Store.open(":memory:")
    try:
        processor = Processor(config, store, Metrics(), stage=stage)
        assert processor.stage is stage
        assert not hasattr(processor, "matcher")
        result = processor.ingest("news", [mention(1, "@acme hello")], T0)
        assert result.matched == 1
        assert processor.windows.count("Globex", "total", T0, T0 + timedelta(minutes=1)) == 1
        assert processor.windows.count("Acme", "total", T0, T0 + timedelta(minutes=1)) == 0
        with pytest.raises(TypeError, match="stage or a scorer"):
            Processor(config, store, Metrics(), stage=stage, scorer=_BatchScorer())
    finally:
        store.close()
