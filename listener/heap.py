"""The garbage collector, set for work over a large heap that lives as long as the run.

The daemon and ``listener backtest`` keep what they load (the config, the models, the
velocity windows, the engine state) for their whole run, and every evaluation allocates
and frees many short-lived objects. With CPython's defaults a full collection traverses
everything alive, and one is due whenever the objects promoted since the last reach a
quarter of those alive: the long-lived heap is traversed again and again for nothing
(measured: a fifth to a quarter of the CPU of a 1,000-brand evaluation tick; the
1,000-brand backtest of ``bench/perf.py`` takes 1.35x less CPU without it).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

FULL_EVERY = 100
"""Collections of the middle generation between full ones (CPython's default: 10)."""


@contextmanager
def settled() -> Iterator[None]:
    """Enter once the long-lived state is loaded: collect what is garbage already, move
    everything alive into the permanent generation (``gc.freeze``: no collection traverses
    it again) and make full collections rarer. Reference counting still frees what the
    state drops; cycles among frozen objects wait for the exit, which gives the frozen
    objects back to the collector and restores its thresholds."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(thresholds[0], thresholds[1], FULL_EVERY)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
