"""The Ingest stage: a batch of :class:`~listener.model.Mention` →
:class:`~listener.model.ScoredMention`.

Contract:

* **Pure but for stories.** :meth:`Ingest.run` is a function of the mentions and the
  prepared (compiled once, immutable) matcher, scorer, category tagger and emotion
  detector. Its one piece of state is the :class:`~listener.matching.stories.StoryIndex`,
  which remembers recent mentions so later copies join their story; it is keyed by
  mention time, never by the clock. No I/O, no store, no metrics, no clock.
* **One prepared document per mention.** Each text (title and body, as the daemon has
  always joined them) is normalised once into a
  :class:`~listener.matching.document.Prepared`; brand terms, brand queries, crisis
  categories and emotions all read that one document.
* **Order and shape.** The output has one :class:`ScoredMention` per input mention, in
  input order. A mention that matches no brand gets ``brands=()``, a neutral 0.0
  sentiment, no categories, emotions or story, and is neither scored nor remembered by
  the story index (a copy of it can still be found by a later matched mention only
  through the mentions that were matched). Every mention, matched or not, carries its
  reach (:func:`~listener.scoring.reach.reach_score`), computed here once.
* **Language, decided here once.** A matched mention's language is the one its source
  gives (normal form: ``en-GB`` → ``en``), else the one detected, else
  ``scoring.languages.default`` (:class:`~listener.scoring.language.Languages`), and it
  is stored in the mention's ``language``: rules' ``language`` filters, brand queries'
  ``lang:``, the inbox and the scorer read that one decision. Detection runs for the
  mentions that need it (matched ones, and those a ``lang:`` filter asks about); an
  unmatched mention keeps what its source gave. A matched mention is scored by its
  language's scorer (:class:`~listener.scoring.SentimentScorers`), or is ``unscored``
  when no scorer reads its language: counted in volume, never as neutral.
* **Deduplication and counting are not here.** The caller hands over mentions not seen
  before (the store knows which), and counts the scored ones into windows (Evaluate).
* **Pinned brands.** A mention whose key is in :attr:`Ingest.pins` is about the brand
  pinned there alone and skips brand matching (``listener backtest`` of an export whose
  rows name their brand); everything else about it (score, tags, story) is as for a
  matched mention. The daemon and the drill pin nothing.
* **Parallel-safe** for the matcher, scorer and taggers (they hold no mutable state);
  the story index makes one :class:`Ingest` sequential. Workers that split a stream by
  key each own an :class:`Ingest` (:meth:`with_new_stories`) and so their own stories.

Stories stay in Ingest rather than Evaluate: a story is a property of the mention (its
``story`` field is stored with it and counted per brand by the windows), it is decided
across brands (a copy of a post about two brands is one story for both), and it needs
the same normalised tokens the rest of this stage reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from types import MappingProxyType
from typing import TYPE_CHECKING

from listener.matching.brands import BrandMatcher
from listener.matching.document import Prepared
from listener.matching.stories import StoryIndex
from listener.model import Mention, ScoredMention, Sentiment
from listener.scoring import SentimentScorers, build_languages, build_scorers
from listener.scoring.base import Scorer
from listener.scoring.categories import CategoryTagger, EmotionDetector
from listener.scoring.language import Languages
from listener.scoring.reach import reach_score

if TYPE_CHECKING:
    from listener.config.schema import Config, ScoringConfig

__all__ = ["UNMATCHED", "Ingest", "Pins", "mention_text"]

Pins = Mapping[tuple[str, str], str]
"""Mention key (``(source, id)``, :attr:`Mention.key`) → the one brand it is about."""

UNMATCHED = Sentiment("neutral", 0.0)
"""The sentiment of a mention that matches no brand (it is never scored)."""


def mention_text(mention: Mention) -> str:
    """The text matched and scored: the title, then the body, unless the body has it."""
    title = mention.title
    return f"{title}. {mention.text}" if title and title not in mention.text else mention.text


@dataclass(frozen=True, slots=True)
class Ingest:
    """Match, score, tag and assign stories to a batch of new mentions (see the module).

    Build once with :meth:`build`; on a config reload, :meth:`reconfigure` compiles the
    new brands and categories, keeps the stories, and rebuilds only the scorers and the
    language detector whose settings changed (a model loads once).
    """

    matcher: BrandMatcher
    scorers: SentimentScorers
    languages: Languages
    tagger: CategoryTagger
    emotions: EmotionDetector
    stories: StoryIndex
    pins: Pins = field(default_factory=lambda: MappingProxyType({}))
    """Mentions whose brand the input already names (see the module): not matched."""
    scoring: ScoringConfig | None = None
    """The ``scoring`` block the scorers and languages were built from (None: a scorer
    was given to :meth:`build`, and a reload keeps it)."""

    @classmethod
    def build(
        cls,
        config: Config,
        *,
        scorer: Scorer | None = None,
        stories: StoryIndex | None = None,
        pins: Pins | None = None,
    ) -> Ingest:
        """The stage ``config`` describes; ``scorer`` overrides ``scoring.sentiment`` (it
        then scores every language); ``pins`` names the brand of mentions that skip
        matching (kept as a copy)."""
        scoring = config.scoring
        return cls(
            matcher=BrandMatcher(config.brands),
            scorers=SentimentScorers.of(scorer) if scorer is not None else build_scorers(scoring),
            languages=build_languages(scoring.languages),
            tagger=CategoryTagger(config.categories.custom, defaults=config.categories.defaults),
            emotions=EmotionDetector(),
            stories=stories if stories is not None else StoryIndex(),
            pins=MappingProxyType(dict(pins or {})),
            scoring=scoring if scorer is None else None,
        )

    def reconfigure(self, config: Config) -> Ingest:
        """This stage with ``config``'s brands, categories and scoring (same stories and
        pins; a scorer or detector whose settings did not change is kept)."""
        changes: dict[str, object] = {}
        scoring = config.scoring
        if self.scoring is not None and scoring != self.scoring:
            changes.update(
                scorers=build_scorers(scoring, reuse=self.scorers),
                languages=build_languages(scoring.languages, reuse=self.languages),
                scoring=scoring,
            )
        return replace(
            self,
            matcher=BrandMatcher(config.brands),
            tagger=CategoryTagger(config.categories.custom, defaults=config.categories.defaults),
            **changes,  # type: ignore[arg-type]
        )

    def with_new_stories(self) -> Ingest:
        """This stage with an empty story index (for another worker or a fresh replay)."""
        return replace(self, stories=StoryIndex(self.stories.horizon, self.stories.max_entries))

    def run(self, mentions: Sequence[Mention], now: datetime) -> list[ScoredMention]:
        """One :class:`ScoredMention` per mention, in order (see the module's contract).

        ``now`` is the batch's processing time; no decision here depends on it (stories
        follow mention time), it is part of the signature so that every stage is a
        function of ``(input, state, now)``.
        """
        del now  # see the docstring
        matcher, languages = self.matcher, self.languages
        docs = [Prepared(mention_text(m), m.language, m.source, languages) for m in mentions]
        pins = self.pins
        brands_of = (
            [
                (pin,) if (pin := pins.get(m.key)) is not None else matcher.match_prepared(doc)
                for m, doc in zip(mentions, docs, strict=True)
            ]
            if pins
            else [matcher.match_prepared(doc) for doc in docs]
        )
        matched = [d for d, b in zip(docs, brands_of, strict=True) if b]
        sentiments = iter(
            self.scorers.scores([d.text for d in matched], [d.language for d in matched])
        )
        stories = iter(
            self.stories.assign_many([m for m, b in zip(mentions, brands_of, strict=True) if b])
        )
        tag, detect = self.tagger.categories_prepared, self.emotions.detect_prepared
        out: list[ScoredMention] = []
        for m, doc, brands in zip(mentions, docs, brands_of, strict=True):
            if not brands:
                out.append(ScoredMention(m, brands, UNMATCHED, reach=reach_score(m)))
                continue
            sentiment = next(sentiments)
            story = next(stories).story
            categories = tag(doc)
            language = doc.language
            if language != m.language:
                m = m.in_language(language)
            out.append(
                ScoredMention(
                    m, brands, sentiment, categories, detect(doc), story=story, reach=reach_score(m)
                )
            )
        return out
