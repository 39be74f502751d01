"""The typed writes: one per stage, each applied in one transaction by one method
(:meth:`listener.store.Store.write_ingest`, :meth:`~listener.store.Store.write_evaluate`).
A crash (even ``kill -9``) leaves either the whole write or none of it: no mention
counted twice, no alert lost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from listener.collectors.base import Cursor
from listener.model import Alert, ScoredMention
from listener.store.windows import BucketRow


@dataclass(frozen=True, slots=True)
class IngestWrite:
    """What ingesting one batch from one source changed.

    ``mentions``: every mention of the batch not stored before (matched or not: a stored
    mention is never counted again); ``cursor``: ``(source, cursor)`` to resume from, saved
    with them; ``buckets``: the window buckets that changed; ``kv``: small values that
    changed with the batch (quiet periods of backfilled brands).
    """

    now: datetime
    mentions: Sequence[ScoredMention] = ()
    cursor: tuple[str, Cursor] | None = None
    buckets: Sequence[BucketRow] = ()
    kv: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EvaluateWrite:
    """What one evaluation changed.

    ``engine_state``: the rule engine's state (JSON); ``events``: rule-engine
    ``IncidentEvent``s; ``notices``: the notification policy's ``Notice``s; ``outbox``:
    each alert with the sinks it is routed to; ``buckets``: window buckets that changed
    (those a prune stripped); ``prune_buckets_before``: drop buckets older than this start,
    of ``prune_brands`` only when given (the brands the windows dropped buckets of: the
    store holds no bucket the windows do not); ``kv``: other state (the notification state).
    """

    now: datetime
    engine_state: str | None = None
    events: Sequence[Any] = ()
    notices: Sequence[Any] = ()
    outbox: Sequence[tuple[Alert, Sequence[str]]] = ()
    buckets: Sequence[BucketRow] = ()
    prune_buckets_before: int | None = None
    prune_brands: Sequence[str] | None = None
    kv: Mapping[str, str] = field(default_factory=dict)

    def empty(self) -> bool:
        """Whether applying it would change nothing."""
        return (
            self.engine_state is None
            and not self.events
            and not self.notices
            and not self.outbox
            and not self.buckets
            and (self.prune_buckets_before is None or self.prune_brands == ())
            and not self.kv
        )


@dataclass(frozen=True, slots=True)
class BrandWrite:
    """A brand's Evaluate state leaving or joining this store (a hand-off between workers).

    Every stored bucket of ``brand`` is dropped, then ``buckets`` (its buckets when it
    joins, none when it leaves) are written; ``engine_state`` (JSON) and ``kv`` (the
    notification state, quiet periods, the brands released) are the whole values after
    the change.
    """

    brand: str
    engine_state: str
    buckets: Sequence[BucketRow] = ()
    kv: Mapping[str, str] = field(default_factory=dict)
