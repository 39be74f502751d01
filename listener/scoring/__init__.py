"""scoring stage: sentiment scorers and velocity windows.

:data:`SCORERS` is the scorer registry (:class:`~listener.registry.Registry`, the shape
every extension point shares); ``ScorerConfig`` in ``listener.config.schema`` is its config
side.
"""

from __future__ import annotations

from collections.abc import Sequence

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


def score_many(scorer: Scorer, texts: Sequence[str]) -> list[Sentiment]:
    """Score texts in one batch where the scorer supports it (transformers), else one by one."""
    if isinstance(scorer, BatchScorer) and texts:
        return list(scorer.score_batch(texts))
    return [scorer.score(t) for t in texts]
