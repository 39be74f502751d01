"""Languages: codes in one normal form, detection, per-language scoring, ``unscored``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener.config.load import load_config_text
from listener.config.schema import Config, CrisisScoringConfig, TransformersScoringConfig
from listener.errors import ConfigError
from listener.ingest import Ingest
from listener.langcodes import normal_language
from listener.matching.brands import BrandMatcher
from listener.matching.document import Prepared
from listener.matching.query import QuerySyntaxError, compile_query
from listener.metrics import Metrics
from listener.model import UNSCORED, Author, Mention, Sentiment
from listener.processor import Processor
from listener.scoring import SentimentScorers, build_languages, build_scorers
from listener.scoring.language import FastTextDetector, Languages, detection_text
from listener.store import MentionQuery, Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

FRENCH = "Acme a encore perdu ma valise, le service client ne répond jamais, c'est une honte"
GERMAN = "Acme hat schon wieder meinen Koffer verloren und niemand antwortet mir"
SPANISH = "Acme perdió mi maleta otra vez y nadie del servicio al cliente responde"
ENGLISH = "Acme lost my bag again and customer service never answers, this is awful"


def mention(i: int, text: str, language: str | None = None, source: str = "news") -> Mention:
    return Mention(
        source=source,
        id=f"m{i}",
        text=text,
        created_at=T0 + timedelta(seconds=i),
        author=Author(handle=f"user{i}"),
        language=language,
    )


def config(extra: str = "", brands: str = "brands: [{name: Acme}]\n") -> Config:
    return load_config_text(brands + "rules: []\n" + extra, "rules.yaml", {})


@pytest.fixture(scope="module")
def detector() -> FastTextDetector:
    return FastTextDetector()


# --------------------------------------------------------------------------- codes


@pytest.mark.parametrize(
    ("code", "normal"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("en-GB", "en"),
        ("pt_BR", "pt"),
        (" zh-Hant ", "zh"),
        ("in", "id"),  # X's code for Indonesian
        ("iw", "he"),
        ("fil", "fil"),
        ("und", None),
        ("qst", None),  # X: too short to tell
        ("zxx", None),
        ("mul", None),
        ("", None),
        (None, None),
        ("english", None),
        ("e1", None),
    ],
)
def test_codes_have_one_normal_form(code: str | None, normal: str | None) -> None:
    assert normal_language(code) == normal


# --------------------------------------------------------------------------- detection


def test_detection_reads_the_words_not_links_handles_or_punctuation() -> None:
    text = "RT @united Thanks so much!!! #fail https://t.co/x &amp; it's 5pm"
    assert detection_text(text) == "Thanks so much fail it's pm"
    assert len(detection_text("word " * 500)) <= 200


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (FRENCH, "fr"),
        (GERMAN, "de"),
        (SPANISH, "es"),
        (ENGLISH, "en"),
        ("아크미 서비스가 또 다운됐어요 정말 최악입니다", "ko"),
        ("@united Thanks so much!", "en"),  # the '!' alone made fastText say Spanish
    ],
)
def test_the_detector_tells_clear_short_texts(
    detector: FastTextDetector, text: str, code: str
) -> None:
    found = detector.detect(text)
    assert found is not None
    assert found[0] == code
    assert 0.7 <= found[1] <= 1.0


def test_the_detector_gives_nothing_for_texts_without_words(detector: FastTextDetector) -> None:
    for text in ("", "😡😡😡", "https://t.co/abc @acme #", "12:30 !!!"):
        assert detector.detect(text) is None


def test_a_model_file_that_is_not_fasttext_is_a_value_error(tmp_path: Path) -> None:
    bad = tmp_path / "lid.bin"
    bad.write_text("not a model")
    with pytest.raises(ValueError, match="not a fastText model"):
        FastTextDetector(bad)
    with pytest.raises(FileNotFoundError):
        FastTextDetector(tmp_path / "missing.bin")


@dataclass
class _Detector:
    """Says what it was told to, and counts what it was asked."""

    answer: tuple[str, float] | None
    asked: list[str] = field(default_factory=list)

    def detect(self, text: str) -> tuple[str, float] | None:
        self.asked.append(text)
        return self.answer


def test_resolution_order_given_then_detected_then_default() -> None:
    sure, unsure = _Detector(("fr", 0.9)), _Detector(("fr", 0.5))
    assert Languages(sure).resolve("x", "en-GB") == "en"  # the source wins, normalised
    assert sure.asked == []
    assert Languages(sure).resolve("x", "und") == "fr"  # a code that names nothing: detect
    assert Languages(unsure, min_confidence=0.7).resolve("x", None) == "en"
    assert Languages(unsure, min_confidence=0.5).resolve("x", None) == "fr"
    assert Languages(unsure, min_confidence=0.7, default=None).resolve("x", None) is None
    assert Languages(None, default="de").resolve("x", None) == "de"
    assert Languages(_Detector(None)).resolve("😡", None) == "en"


# --------------------------------------------------------------------------- config


def test_one_scorer_reads_the_languages_it_knows() -> None:
    assert set(config().scoring.by_language()) == {"en"}  # crisis: an English lexicon
    assert set(config("scoring: {sentiment: {type: vader}}\n").scoring.by_language()) == {"en"}
    mapped = config(
        "scoring:\n  sentiment:\n    en: {type: crisis}\n    de: {type: vader}\n"
    ).scoring.by_language()
    assert list(mapped) == ["en", "de"]
    assert isinstance(mapped["en"], CrisisScoringConfig)


def test_a_lone_transformers_model_reads_every_language(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    scoring = config(f"scoring: {{sentiment: {{type: transformers, model: '{model}'}}}}\n").scoring
    assert list(scoring.by_language()) == ["*"]
    assert isinstance(scoring.by_language()["*"], TransformersScoringConfig)


@pytest.mark.parametrize(
    ("extra", "where", "message"),
    [
        ("scoring:\n  sentiment:\n    EN: {type: crisis}\n", "rules.yaml:5", "as 'en'"),
        ("scoring:\n  sentiment:\n    en-GB: {type: crisis}\n", "rules.yaml:5", "as 'en'"),
        ("scoring:\n  sentiment:\n    english: {type: crisis}\n", "rules.yaml:5", "not a lan"),
        ("scoring:\n  sentiment:\n    en: {type: crisi}\n", "rules.yaml:5", "scorer type"),
        ("scoring:\n  sentiment: {}\n", "rules.yaml:4", "map of languages"),
        ("scoring:\n  sentiment: crisis\n", "rules.yaml:4", "write {type: crisis}"),
        ("scoring:\n  languages: {default: english}\n", "rules.yaml:4", "not a language"),
        ("scoring:\n  languages: {min_confidence: 1.5}\n", "rules.yaml:4", "less than"),
        ("scoring:\n  languages: {model: /no/lid.bin}\n", "rules.yaml:4", "no model file"),
        ("scoring:\n  languages: {detec: true}\n", "rules.yaml:4", "did you mean 'detect'"),
    ],
)
def test_scoring_mistakes_name_the_line_and_a_hint(extra: str, where: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(extra)
    text = str(caught.value)
    assert text.startswith(where), text
    assert message in text
    assert "hint:" in text or "less than" in text  # pydantic's own bound says enough


def test_a_rule_filter_names_a_language_in_its_normal_form() -> None:
    rule = (
        "rules:\n  - name: fr\n    levels:\n      watch:\n"
        "        when: {type: volume, window: 5m, above: 3, metric: total, language: %s}\n"
        "routes: {default: [ops]}\nsinks: {ops: {type: console}}\n"
    )
    brands = "brands: [{name: Acme}]\n"
    assert load_config_text(brands + rule % "fr", "rules.yaml", {}).rules[0].name == "fr"
    with pytest.raises(ConfigError, match="write the language 'fr-CA' as 'fr'"):
        load_config_text(brands + rule % "fr-CA", "rules.yaml", {})


def test_a_lang_filter_that_is_no_language_is_a_query_error() -> None:
    with pytest.raises(QuerySyntaxError, match="'english' is not a language code"):
        compile_query("acme AND lang:english")
    assert str(compile_query("acme AND lang:pt-BR")) == "(acme AND lang:pt)"


# --------------------------------------------------------------------------- routing


@dataclass
class _Fixed:
    """Gives one sentiment and records each batch it scores."""

    sentiment: Sentiment
    batches: list[list[str]] = field(default_factory=list)

    def score(self, text: str) -> Sentiment:
        return self.score_batch([text])[0]

    def score_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        self.batches.append(list(texts))
        return [self.sentiment for _ in texts]


def test_each_language_goes_to_its_scorer_in_one_batch() -> None:
    english, model = _Fixed(Sentiment("negative", -0.5)), _Fixed(Sentiment("positive", 0.5))
    scorers = SentimentScorers({"en": english, "fr": model, "de": model})
    got = scorers.scores(["a", "b", "c", "d", "e"], ["en", "fr", "ko", "de", None])
    assert got == [english.sentiment, model.sentiment, UNSCORED, model.sentiment, UNSCORED]
    assert english.batches == [["a"]]
    assert model.batches == [["b", "d"]]  # fr and de share the model: one batch


def test_a_star_scorer_takes_every_other_language_and_the_unknown() -> None:
    english, other = _Fixed(Sentiment("negative", -0.5)), _Fixed(Sentiment("neutral", 0.0))
    scorers = SentimentScorers({"en": english, "*": other})
    got = scorers.scores(["a", "b", "c"], ["en", "ko", None])
    assert got == [english.sentiment, other.sentiment, other.sentiment]
    assert scorers.scorer_for("ko") is other
    assert SentimentScorers.of(english).scores(["x", "y"], ["ko", None]) == [english.sentiment] * 2


def test_same_settings_build_one_scorer_and_a_reload_keeps_unchanged_ones() -> None:
    two = "scoring:\n  sentiment:\n    en: {type: vader}\n    de: {type: vader}\n"
    scorers = build_scorers(config(two).scoring)
    assert scorers.by_language["en"] is scorers.by_language["de"]
    three = two + "    fr: {type: crisis}\n"
    rebuilt = build_scorers(config(three).scoring, reuse=scorers)
    assert rebuilt.by_language["en"] is scorers.by_language["en"]
    assert rebuilt.by_language["fr"] is not scorers.by_language["en"]
    languages = build_languages(config().scoring.languages)
    assert build_languages(config().scoring.languages, reuse=languages).detector is (
        languages.detector
    )
    assert build_languages(config("scoring: {languages: {detect: false}}\n").scoring.languages) == (
        Languages(None, 0.7, "en")
    )


# --------------------------------------------------------------------------- the stage


def test_a_mention_in_a_language_without_a_scorer_is_unscored_not_neutral() -> None:
    stage = Ingest.build(config())
    scored = stage.run(
        [mention(1, FRENCH), mention(2, ENGLISH), mention(3, "Acme est en panne", "fr-CA")], T0
    )
    assert [s.mention.language for s in scored] == ["fr", "en", "fr"]
    assert scored[0].sentiment == UNSCORED
    assert scored[1].sentiment.label == "negative"
    assert scored[2].sentiment == UNSCORED
    assert all(s.brands == ("Acme",) for s in scored)
    # tagged and storied like any matched mention
    assert scored[0].story is not None


def test_detection_runs_only_for_the_mentions_that_need_it() -> None:
    asked = _Detector(("fr", 0.99))
    stage = Ingest.build(config())
    stage = Ingest(
        stage.matcher, stage.scorers, Languages(asked), stage.tagger, stage.emotions, stage.stories
    )
    scored = stage.run(
        [mention(1, "nothing to see"), mention(2, "Acme given", "de"), mention(3, "Acme x")], T0
    )
    assert asked.asked == ["Acme x"]  # not the unmatched one, not the one its source named
    assert scored[0].mention.language is None  # an unmatched mention keeps what it had
    assert [s.mention.language for s in scored[1:]] == ["de", "fr"]


def test_lang_queries_see_the_detected_language() -> None:
    brands = (
        "brands:\n  - name: AcmeFR\n    query: 'acme AND lang:fr'\n"
        "  - name: AcmeNotEN\n    query: 'acme AND NOT lang:en'\n"
    )
    stage = Ingest.build(config(brands=brands))
    scored = stage.run([mention(1, FRENCH), mention(2, ENGLISH), mention(3, SPANISH)], T0)
    assert [s.brands for s in scored] == [("AcmeFR", "AcmeNotEN"), (), ("AcmeNotEN",)]
    # without the stage's languages, a query sees only what the source gave
    matcher = BrandMatcher(config(brands=brands).brands)
    assert matcher.match_prepared(Prepared(FRENCH, None, "news")) == ("AcmeNotEN",)


def test_a_language_map_scores_each_language_with_its_scorer() -> None:
    two = "scoring:\n  sentiment:\n    en: {type: crisis}\n    de: {type: vader}\n"
    stage = Ingest.build(config(two))
    scored = stage.run([mention(1, GERMAN), mention(2, FRENCH), mention(3, ENGLISH)], T0)
    vader = stage.scorers.by_language["de"]
    assert scored[0].sentiment == vader.score(GERMAN)
    assert scored[1].sentiment == UNSCORED
    assert scored[2].sentiment == stage.scorers.by_language["en"].score(ENGLISH)


def test_a_reload_that_changes_the_scorers_takes_effect() -> None:
    stage = Ingest.build(config())
    assert stage.run([mention(1, GERMAN)], T0)[0].sentiment == UNSCORED
    reloaded = stage.reconfigure(
        config("scoring:\n  sentiment:\n    en: {type: crisis}\n    de: {type: vader}\n")
    )
    assert reloaded.scorers.by_language["en"] is stage.scorers.by_language["en"]
    assert reloaded.languages is not stage.languages or reloaded.languages == stage.languages
    assert reloaded.run([mention(2, GERMAN)], T0)[0].sentiment.label != "unscored"


# --------------------------------------------------------------------------- counted


def test_unscored_mentions_count_in_volume_not_as_negative_and_are_metered(
    tmp_path: Path,
) -> None:
    rules = (
        "rules:\n  - name: french\n    levels:\n      watch:\n"
        "        when: {type: volume, window: 5m, above: 2, metric: total, language: fr}\n"
        "routes: {default: [ops]}\nsinks: {ops: {type: console}}\n"
    )
    cfg = load_config_text("brands: [{name: Acme}]\n" + rules, "rules.yaml", {})
    store = Store.open(tmp_path / "state.db")
    metrics = Metrics()
    try:
        processor = Processor(cfg, store, metrics)
        also_french = "Acme est encore en panne depuis ce matin, quelle honte"
        mentions = [mention(1, FRENCH), mention(2, also_french), mention(3, ENGLISH)]
        processor.ingest("news", mentions, T0 + timedelta(minutes=1))
        windows, end = processor.windows, T0 + timedelta(minutes=2)
        assert windows.count("Acme", "total", T0, end) == 3
        assert windows.count("Acme", "negative", T0, end) == 1  # the English one
        assert windows.value("Acme", "total", T0, end, language="fr") == 2
        alerts = processor.evaluate(T0 + timedelta(minutes=1))
        assert [a.rule for a in alerts] == ["french"]
        registry = metrics.registry
        assert (
            registry.get_sample_value("listener_mentions_unscored_total", {"language": "fr"}) == 2.0
        )
        assert (
            registry.get_sample_value(
                "listener_mentions_scored_total", {"brand": "Acme", "sentiment": "unscored"}
            )
            == 2.0
        )
        rows = store.mentions.search(MentionQuery(T0, end, sentiment="unscored"))
        assert sorted((r.ref.id, r.language, r.sentiment) for r in rows) == [
            ("m1", "fr", "unscored"),
            ("m2", "fr", "unscored"),
        ]
    finally:
        store.close()


def test_a_mention_in_a_language_keeps_every_other_field() -> None:
    """``in_language`` builds the mention field by field: it must copy every field there is
    (a field added to Mention and forgotten there fails here)."""
    from dataclasses import fields, replace

    from listener.model import Engagement

    full = Mention(
        source="s",
        id="1",
        text="t",
        created_at=T0,
        url="https://x.test/1",
        author=Author(handle="h", display_name="H", followers=3),
        language="de",
        engagement=Engagement(likes=1, reposts=2),
        is_repost=True,
        reposted_id="0",
        title="T",
    )
    assert {f.name for f in fields(Mention)} == set(Mention.__slots__)
    assert full.in_language("fr") == replace(full, language="fr")
    assert full.in_language(None).language is None


def test_a_stored_mention_with_its_language_is_the_same_json() -> None:
    import json

    from listener.store.mentions import _data_json

    cases = [
        {"text": 'a "quoted" é\n'},
        {"text": "x", "language": "fr"},
        {"text": "x", "url": "u"},
        {"text": "x", "language": "en", "title": "t"},
    ]
    for data in cases:
        assert _data_json(data) == json.dumps(data, separators=(",", ":"), ensure_ascii=False)
