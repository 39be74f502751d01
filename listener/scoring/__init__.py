"""scoring stage: sentiment scorers and velocity windows.

:data:`SCORERS` is the scorer registry (:class:`~listener.registry.Registry`, the shape
every extension point shares); ``ScorerConfig`` in ``listener.config.schema`` is its config
side.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from listener.config.schema import (
    CrisisScoringConfig,
    ScorerConfig,
    TransformersScoringConfig,
    VaderScoringConfig,
)
from listener.model import Sentiment
from listener.registry import Registry
from listener.scoring.base import BatchScorer, Scorer


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
