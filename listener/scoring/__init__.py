"""scoring stage: sentiment scorers and velocity windows.

:data:`SCORERS` is the scorer registry (:class:`~listener.registry.Registry`, the shape
every extension point shares); ``ScorerConfig`` in ``listener.config.schema`` is its config
side. :class:`SentimentScorers` routes each language to its scorer (``scoring.sentiment``,
docs/languages.md) and :func:`build_languages` decides mentions' languages
(:mod:`listener.scoring.language`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from listener.config.schema import (
    ANY_LANGUAGE,
    CrisisScoringConfig,
    LanguagesConfig,
    ScorerConfig,
    ScoringConfig,
    TransformersScoringConfig,
    VaderScoringConfig,
)
from listener.model import UNSCORED, Sentiment
from listener.registry import Registry
from listener.scoring.base import BatchScorer, Scorer
from listener.scoring.language import FastTextDetector, Languages


def _crisis(config: CrisisScoringConfig) -> Scorer:
    from listener.scoring.crisis import CrisisScorer

    return CrisisScorer(config.negative_threshold, config.positive_threshold)


def _vader(config: VaderScoringConfig) -> Scorer:
    from listener.scoring.sentiment import VaderScorer

    return VaderScorer(config.negative_threshold, config.positive_threshold)


def _transformers(config: TransformersScoringConfig) -> Scorer:
    from listener.scoring.transformers import TransformersScorer

    return TransformersScorer(
        config.model,
        batch_size=config.batch_size,
        max_length=config.max_length,
        device=config.device,
        label_map=config.label_map,
        local_files_only=config.local_files_only,
        threads=config.threads,
    )


SCORERS: Registry[[], Scorer] = Registry("scorer")
"""Every sentiment scorer: config class → ``builder(config)`` (each imports its model's
module only when built)."""
SCORERS.register(CrisisScoringConfig, _crisis)
SCORERS.register(VaderScoringConfig, _vader)
SCORERS.register(TransformersScoringConfig, _transformers)


def build_scorer(config: ScorerConfig) -> Scorer:
    """The scorer a ``scoring.sentiment`` block describes (models load once, here)."""
    return SCORERS.build(config)


BatchScore = Callable[[Sequence[str]], list[Sentiment]]
"""Texts → their sentiments, in order."""


def batch_scoring(scorer: Scorer) -> BatchScore:
    """How ``scorer`` scores many texts, decided once: in one batch where it supports it
    (:class:`~listener.scoring.base.BatchScorer`: transformers), else one by one. A
    stage keeps this rather than calling :func:`score_many` per batch, because checking a
    ``@runtime_checkable`` protocol takes microseconds (typing's ``__instancecheck__``)."""
    if isinstance(scorer, BatchScorer):
        score_batch = scorer.score_batch

        def batched(texts: Sequence[str]) -> list[Sentiment]:
            return list(score_batch(texts)) if texts else []

        return batched
    score = scorer.score

    def one_by_one(texts: Sequence[str]) -> list[Sentiment]:
        return [score(t) for t in texts]

    return one_by_one


def score_many(scorer: Scorer, texts: Sequence[str]) -> list[Sentiment]:
    """Score texts in one batch where the scorer supports it (transformers), else one by
    one (a one-off call: see :func:`batch_scoring`)."""
    return batch_scoring(scorer)(texts)


@dataclass(frozen=True, slots=True)
class SentimentScorers:
    """Which scorer reads which language, decided once (``scoring.sentiment``).

    ``by_language`` maps a language (normal form) or ``*`` (every other language) to its
    scorer; a mention in a language it does not name (or of unknown language, with no
    ``*``) is :data:`~listener.model.UNSCORED`. One scorer serving several languages is
    one batch per call. ``configs`` is what it was built from (None: scorers given
    directly), so a reload rebuilds only what changed.
    """

    by_language: Mapping[str, Scorer]
    configs: Mapping[str, ScorerConfig] | None = None
    _route: dict[str, int] = field(init=False, repr=False, compare=False)
    _batches: list[BatchScore] = field(init=False, repr=False, compare=False)
    _any: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        scorers: list[Scorer] = []
        route: dict[str, int] = {}
        for language, scorer in self.by_language.items():
            index = next((i for i, s in enumerate(scorers) if s is scorer), None)
            if index is None:
                index = len(scorers)
                scorers.append(scorer)
            route[language] = index
        object.__setattr__(self, "_any", route.pop(ANY_LANGUAGE, None))
        object.__setattr__(self, "_route", route)
        object.__setattr__(self, "_batches", [batch_scoring(s) for s in scorers])

    @classmethod
    def of(cls, scorer: Scorer) -> SentimentScorers:
        """One scorer for every language (a backtest's or a test's own scorer)."""
        return cls(MappingProxyType({ANY_LANGUAGE: scorer}))

    def scorer_for(self, language: str | None) -> Scorer | None:
        """The scorer of ``language`` (None: unscored)."""
        scorer = self.by_language.get(language) if language is not None else None
        return scorer if scorer is not None else self.by_language.get(ANY_LANGUAGE)

    def scores(self, texts: Sequence[str], languages: Sequence[str | None]) -> list[Sentiment]:
        """The sentiment of each text in its language, in order."""
        route, default, batches = self._route, self._any, self._batches
        if not route and default is not None:
            return batches[default](texts)
        groups: dict[int, list[int]] = {}
        for i, language in enumerate(languages):
            k = route.get(language, default) if language is not None else default
            if k is not None:
                groups.setdefault(k, []).append(i)
        if len(groups) == 1 and len(next(iter(groups.values()))) == len(texts):
            return batches[next(iter(groups))](texts)
        out = [UNSCORED] * len(texts)
        for k, indices in groups.items():
            for i, sentiment in zip(indices, batches[k]([texts[i] for i in indices]), strict=True):
                out[i] = sentiment
        return out

    @property
    def uses_model(self) -> bool:
        """Whether a transformers model scores some language (tens of ms a mention on CPU)."""
        return self.configs is not None and any(
            isinstance(c, TransformersScoringConfig) for c in self.configs.values()
        )


def build_scorers(config: ScoringConfig, reuse: SentimentScorers | None = None) -> SentimentScorers:
    """The scorers ``config`` names, each distinct scorer config built once (``fr`` and
    ``de`` on one model load it once); scorers of ``reuse`` built from an equal config are
    kept (a reload loads no model twice)."""
    wanted = config.by_language()
    built: dict[str, Scorer] = {}  # by the config's JSON (a label_map makes it unhashable)
    if reuse is not None and reuse.configs is not None:
        for language, old in reuse.configs.items():
            built.setdefault(old.model_dump_json(), reuse.by_language[language])
    keys = {language: c.model_dump_json() for language, c in wanted.items()}
    for language, key in keys.items():
        if key not in built:
            built[key] = build_scorer(wanted[language])
    return SentimentScorers(
        MappingProxyType({language: built[key] for language, key in keys.items()}),
        MappingProxyType(dict(wanted)),
    )


def build_languages(config: LanguagesConfig, reuse: Languages | None = None) -> Languages:
    """How mentions' languages are decided (``scoring.languages``): the detector's model
    loads here, once (kept from ``reuse`` when it reads the same model file)."""
    detector = None
    if config.detect:
        model = Path(config.model).expanduser() if config.model is not None else None
        if (
            reuse is not None
            and isinstance(reuse.detector, FastTextDetector)
            and reuse.detector.model == model
        ):
            detector = reuse.detector
        else:
            detector = FastTextDetector(model)
    return Languages(detector, config.min_confidence, config.default)
