"""One evaluation tick of the Evaluate stage at 10 / 100 / 1,000 brands × 10 rules.

Usage (from the repository root)::

    .venv/bin/python bench/evaluate.py [--brands 10,100,1000] [--repeat 3]

Each brand gets 3 days (and 2 hours, so the 3-day rules are past warm-up) of counts (a
weighted sample every 5 minutes; a few with a source and a category) in the daemon's own
windows, quiet enough that no rule holds,
then the daemon's ``Processor.evaluate`` runs 10 rules (20 leaf conditions: volume,
spike up and down, zscore mean / median / sqrt, seasonal, ramp, negative share with a
source filter, mean sentiment, voices) over every brand. Printed per size:

* ``full``: a tick right after new counts reached every brand (every brand evaluated);
* ``idle``: the tick after it, in the same bucket, with nothing new (what coalescing saves);
* ``1%``: a tick after new counts reached 1% of the brands, in the same bucket.

Works against older code too (``PYTHONPATH=/path/to/old/checkout``): only the Processor,
Store and VelocityWindows APIs that main already had are used. Timings are ms per tick,
best of ``--repeat``; no tick's result is checked here (the tests do that).
"""

# ruff: noqa: E501  (the rules below are YAML flow mappings, one condition a line)
from __future__ import annotations

import argparse
import gc
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

BRAND_RULES = """
version: 1
brands: [{brands}]
rules:
  - name: volume-spike
    levels:
      watch:
        when:
          type: all
          conditions:
            - {{type: zscore, metric: total, window: 30m, history: 144, threshold: 5, min_volume: 10}}
            - {{type: spike, metric: total, window: 30m, baseline: 3d, ratio: 2, min_volume: 10}}
        for: 10m
  - name: negative-surge
    levels:
      watch:
        when: {{type: volume, metric: negative, window: 15m, above: 10}}
      elevated:
        when: {{type: spike, metric: negative, window: 15m, baseline: 6h, ratio: 4, min_volume: 25}}
        for: 5m
  - name: crisis
    levels:
      crisis:
        when:
          type: all
          conditions:
            - {{type: volume, metric: negative, window: 15m, above: 80}}
            - {{type: negative_share, window: 15m, above: 0.6, min_volume: 50}}
  - name: robust
    levels:
      watch:
        when:
          type: all
          conditions:
            - {{type: zscore, metric: negative, window: 1h, history: 48, threshold: 4, min_volume: 5, center: median}}
            - {{type: volume, metric: negative, window: 1h, above: 5}}
  - name: seasonal
    levels:
      watch:
        when:
          type: all
          conditions:
            - {{type: seasonal, metric: total, window: 1h, period: 1d, seasons: 2, ratio: 3, min_volume: 10}}
            - {{type: volume, metric: total, window: 1h, above: 10}}
  - name: ramp
    levels:
      watch:
        when:
          type: any
          conditions:
            - {{type: ramp, metric: negative, window: 10m, steps: 3, growth: 2, min_volume: 5}}
            - {{type: mean_sentiment, window: 30m, below: -0.5, min_volume: 10}}
  - name: drop
    levels:
      watch:
        when:
          type: all
          conditions:
            - {{type: spike, metric: total, window: 1h, baseline: 1d, ratio: 4, min_volume: 10, direction: down}}
            - {{type: volume, metric: total, window: 6h, above: 1}}
  - name: sqrt-z
    levels:
      watch:
        when:
          type: all
          conditions:
            - {{type: zscore, metric: total, window: 15m, history: 96, threshold: 4, min_volume: 5, transform: sqrt}}
            - {{type: spike, metric: negative, window: 15m, baseline: 2h, ratio: 3, min_volume: 5}}
  - name: news-share
    levels:
      watch:
        when:
          type: all
          conditions:
            - {{type: negative_share, window: 30m, above: 0.5, min_volume: 5, source: news}}
            - {{type: volume, metric: reach, window: 30m, above: 1000}}
  - name: voices
    levels:
      watch:
        when:
          type: all
          conditions:
            - {{type: volume, metric: voices, window: 1h, above: 20}}
            - {{type: volume, metric: negative_voices, window: 1h, above: 10}}
routes:
  default: [console]
sinks:
  console: {{type: console}}
"""

DAYS = 3
NOW = datetime(2026, 3, 4, 12, 0, 30, tzinfo=UTC)


def build(n: int) -> tuple[Any, list[str]]:
    from listener.config.load import load_config_text
    from listener.metrics import Metrics
    from listener.processor import Processor
    from listener.store import Store

    brands = [f"brand{i:04d}" for i in range(n)]
    listed = ", ".join(f"{{name: {b}}}" for b in brands)
    config = load_config_text(BRAND_RULES.format(brands=listed), "bench.yaml")
    processor = Processor(config, Store.open(":memory:"), Metrics())
    return processor, brands


def warm(processor: Any, brands: list[str]) -> None:
    from listener.scoring.velocity import Sample

    windows = processor.windows
    plain = Sample(negative=False, positive=True, compound=0.3, reach=10.0)
    neg = Sample(negative=True, compound=-0.6, reach=5.0)
    news = Sample(negative=False, compound=0.1, reach=50.0, source="news", categories=("outage",))
    start = NOW - timedelta(days=DAYS, hours=2)
    for b, brand in enumerate(brands):
        at = start
        i = b
        while at < NOW:
            windows.add(brand, at, plain, weight=3 + i % 5)
            if i % 3 == 0:
                windows.add(brand, at, neg)
            if i % 7 == 0:
                windows.add(brand, at, news)
            i += 1
            at += timedelta(minutes=5)
    windows.drain_dirty()


def touch(processor: Any, brands: list[str], at: datetime) -> None:
    from listener.scoring.velocity import Sample

    sample = Sample(negative=True, compound=-0.5, reach=1.0, author="x:someone")
    for brand in brands:
        processor.windows.add(brand, at, sample)


def tick(processor: Any, now: datetime) -> float:
    began = time.perf_counter()
    processor.evaluate(now)
    return (time.perf_counter() - began) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--brands", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    print(f"python {sys.version.split()[0]}; 10 rules, 20 leaf conditions; {DAYS} days warmed")
    print(f"{'brands':>7} {'full ms':>9} {'idle ms':>9} {'1% ms':>9} {'full µs/brand':>14}")
    for n in (int(x) for x in args.brands.split(",")):
        processor, brands = build(n)
        warm(processor, brands)
        processor.evaluate(NOW - timedelta(minutes=1))  # first tick: state, gauges
        gc.collect()
        full, idle, some = [], [], []
        for r in range(args.repeat):
            now = NOW + timedelta(minutes=r)
            touch(processor, brands, now - timedelta(seconds=1))
            full.append(tick(processor, now))
            idle.append(tick(processor, now + timedelta(seconds=10)))
            touch(processor, brands[: max(1, n // 100)], now + timedelta(seconds=15))
            some.append(tick(processor, now + timedelta(seconds=20)))
        best = min(full)
        print(f"{n:>7} {best:>9.1f} {min(idle):>9.1f} {min(some):>9.1f} {best * 1000 / n:>14.0f}")
        del processor
        gc.collect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
