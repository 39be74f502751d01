"""scoring stage: sentiment scorers and velocity windows."""

from __future__ import annotations

from collections.abc import Sequence

from listener.config.schema import (
    CrisisScoringConfig,
    ScorerConfig,
    TransformersScoringConfig,
    VaderScoringConfig,
)
from listener.model import Sentiment
from listener.scoring.base import Scorer


def build_scorer(config: ScorerConfig) -> Scorer:
    """The scorer a ``scoring.sentiment`` block describes (models load once, here)."""
    if isinstance(config, CrisisScoringConfig):
        from listener.scoring.crisis import CrisisScorer

        return CrisisScorer(config.negative_threshold, config.positive_threshold)
    if isinstance(config, VaderScoringConfig):
        from listener.scoring.sentiment import VaderScorer

        return VaderScorer(config.negative_threshold, config.positive_threshold)
    if isinstance(config, TransformersScoringConfig):
        from listener.scoring.transformers import TransformersScorer

        return TransformersScorer(
            config.model,
            batch_size=config.batch_size,
            max_length=config.max_length,
            device=config.device,
            label_map=config.label_map,
            local_files_only=config.local_files_only,
        )
    raise ValueError(f"unknown scorer config {type(config).__name__}")


def score_many(scorer: Scorer, texts: Sequence[str]) -> list[Sentiment]:
    """Score texts in one batch where the scorer supports it (transformers), else one by one."""
    batch = getattr(scorer, "score_batch", None)
    if batch is not None and texts:
        return list(batch(texts))
    return [scorer.score(t) for t in texts]
