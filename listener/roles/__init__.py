"""The roles of distributed mode (``listener run --role ROLE``, ``docs/scaling.md``): each
runs one stage of the pipeline as a worker of a consumer group on the message bus
(:mod:`listener.bus`), so that workers of a role share its work and take over from one
another. ``all`` (the default) is embedded mode, :class:`listener.app.Daemon`.

* ``collector`` (:mod:`listener.roles.collect`): the sources, each polled by one collector
  at a time → raw mentions keyed by source and id, cursors in the shared state;
* ``ingest`` (:mod:`listener.roles.ingest`): raw mentions → the Ingest stage → scored
  mentions keyed by brand;
* ``evaluate`` (:mod:`listener.roles.evaluate`): scored mentions and ticks, keyed by
  brand → the Evaluate stage, its state in Quix Streams state → alerts keyed by incident;
* ``deliver`` (:mod:`listener.roles.deliver`): alerts → the shared state in PostgreSQL
  (incidents, notices, the delivery ledger) → the sinks, one sender at a time.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

Role = Literal["all", "collector", "ingest", "evaluate", "deliver"]
ROLES: Final[tuple[Role, ...]] = get_args(Role)

__all__ = ["ROLES", "Role"]
