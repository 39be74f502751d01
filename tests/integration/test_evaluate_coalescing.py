"""The Evaluate stage evaluates a (rule, brand) only when something could have changed:
the brand's windows, the read epoch (bucket), a running timer, an open incident or a
warm-up; whatever it skips, its decisions and gauges are those of evaluating everything."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from prometheus_client import generate_latest

import listener.processor as processor_module
from listener.config.load import load_config_text
from listener.metrics import Metrics
from listener.model import Alert
from listener.processor import BUCKET, Plan, Processor, bucket_aligned, read_epoch
from listener.rules.engine import compile_rule
from listener.scoring.velocity import Sample
from listener.store import Store
from listener.store.writes import EvaluateWrite

CONFIG = """
brands:
  - name: Acme
  - name: Globex
  - name: Initech
rules:
  - name: neg
    levels:
      watch:
        when: {type: volume, metric: negative, window: 5m, above: 4}
        keep_firing_for: 3m
      crisis:
        when: {type: volume, metric: negative, window: 5m, above: 12}
        for: 2m
    resolve_after: 4m
  - name: spike
    levels:
      watch:
        when:
          type: all
          conditions:
            - {type: spike, metric: total, window: 5m, baseline: 30m, ratio: 3, min_volume: 6}
            - {type: zscore, metric: total, window: 5m, history: 6, threshold: 2, min_volume: 6}
        for: 1m
    resolve_after: 5m
  - name: odd-window
    levels:
      watch:
        when: {type: volume, metric: total, window: 90s, above: 7}
    resolve_after: 2m
routes:
  default: [ops]
sinks:
  ops: {type: console}
"""

T0 = datetime(2026, 3, 2, 9, 0, 7, tzinfo=UTC)
BRANDS = ("Acme", "Globex", "Initech")


ONE_BRAND_RULE = """
  - name: acme-only
    brands: [Acme, Initech]
    levels:
      watch:
        when: {type: volume, metric: negative, window: 3m, above: 3}
    resolve_after: 2m
"""


def _processor(
    store: Store | None = None, *, readings: bool = True, restricted: bool = False
) -> Processor:
    """A processor on ``store`` (a restart: it loads what the store holds) or a new one;
    ``restricted``: with a rule that applies to two of the brands only."""
    text = CONFIG.replace("\nroutes:", ONE_BRAND_RULE + "routes:") if restricted else CONFIG
    config = load_config_text(text, "rules.yaml", {})
    return Processor(config, store or Store.open(":memory:"), Metrics(), readings=readings)


def _gauges(p: Processor) -> list[str]:
    text = generate_latest(p.metrics.registry).decode()
    # sorted: a series removed and set again is listed last (the order means nothing)
    return sorted(
        line
        for line in text.splitlines()
        if line.startswith(("listener_condition_", "listener_brand_"))
    )


def _decisions(alerts: Sequence[Alert]) -> list[tuple[object, ...]]:
    return [(a.id, a.kind, a.level, a.facts) for a in alerts]


def _spied(p: Processor) -> list[tuple[str, tuple[str, ...]]]:
    """Record, for each rule planned, the brands it must evaluate."""
    evaluated: list[tuple[str, tuple[str, ...]]] = []
    real = p._coalesce

    def spy(rule, brands, *rest, **named):  # type: ignore[no-untyped-def]
        plan = real(rule, brands, *rest, **named)
        due = tuple(b for b, d in zip(brands, plan.due, strict=True) if d)
        evaluated.append((rule.name, due))
        return plan

    p._coalesce = spy  # type: ignore[method-assign]
    return evaluated


@pytest.mark.parametrize(
    ("seed", "readings", "restricted"),
    [(1, True, False), (2, True, False), (3, False, False), (4, False, False), (5, True, True)],
)
def test_coalesced_evaluation_decides_like_evaluating_everything(
    seed: int, readings: bool, restricted: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over a random schedule (bursts, quiet stretches, late counts, ticks several times a
    bucket and across buckets), a processor that skips settled keys raises the same alerts
    with the same facts, keeps the same engine state and shows the same gauges as one that
    evaluates every rule for every brand and sets every gauge at every tick; and it does
    skip (one run has a rule that applies to two of the brands only). A rule fails now
    and then (its gauges go, and come back when it runs again).
    Restarted from its store now and then, it resumes exactly (the engine state it
    writes only when changed, re-encoding only changed keys, is the state it holds)."""
    rng = random.Random(seed)
    failing = {"spike": False}
    real_evaluate = processor_module.evaluate_rule_checks

    def flaky(rule, *rest, **named):  # type: ignore[no-untyped-def]
        if failing.get(rule.name):
            raise RuntimeError("a failing condition")
        return real_evaluate(rule, *rest, **named)

    monkeypatch.setattr(processor_module, "evaluate_rule_checks", flaky)
    coalesced = _processor(readings=readings, restricted=restricted)
    everything = _processor(restricted=restricted)
    everything._coalesce = lambda rule, brands, *_, **__: Plan(  # type: ignore[method-assign]
        np.ones(len(brands), dtype=np.bool_), np.zeros(len(brands), dtype=np.bool_)
    )
    everything.screening = False  # every key checked by the engine, one by one
    skipped = 0
    now = T0
    for i in range(260):
        if i % 40 == 39:
            restarted = _processor(coalesced.store, readings=readings, restricted=restricted)
            assert restarted.state.to_json() == coalesced.state.to_json()
            coalesced = restarted
        now += timedelta(seconds=rng.choice([5, 10, 20, 30, 45, 60, 90, 300, -100]))
        failing["spike"] = rng.random() < 0.06
        if rng.random() < 0.5:
            brand = rng.choice(BRANDS)
            weight = rng.choice([1, 1, 2, 3, 5, 8])
            late = timedelta(seconds=rng.choice([0, 0, 0, 30, 200]))
            sample = Sample(negative=rng.random() < 0.7)
            for p in (coalesced, everything):
                p.windows.add(brand, now - late, sample, weight=weight)
        due = sum(
            int(
                coalesced._coalesce(
                    r, BRANDS, coalesced.state, now, read_epoch(now, BUCKET)
                ).due.sum()
            )
            for r in coalesced.rules
        )
        skipped += len(coalesced.rules) * len(BRANDS) - due
        # every gauge computed and set from nothing: no series kept from an earlier tick
        everything._brand_memo = {}
        everything.metrics.conditions.layout([], ())
        got, expected = coalesced.evaluate(now), everything.evaluate(now)
        assert _decisions(got) == _decisions(expected)
        assert coalesced.state.to_json() == everything.state.to_json()
        if readings:
            assert _gauges(coalesced) == _gauges(everything)
    assert skipped > 0
    opened = list(coalesced.store.incident_log.recent(limit=1000))
    assert opened, "the schedule should open incidents"


def test_a_quiet_brand_is_evaluated_once_per_bucket_and_when_its_windows_change() -> None:
    """A brand with nothing new is skipped within a bucket, evaluated again when now enters
    the next bucket or a count arrives; a rule with a window that is not whole buckets is
    never skipped."""
    p = _processor()
    p.windows.add("Acme", T0 - timedelta(minutes=40), Sample(negative=False))  # warm, kept
    evaluated = _spied(p)
    p.evaluate(T0)
    assert evaluated == [(r.name, BRANDS) for r in p.rules]
    evaluated.clear()
    p.evaluate(T0 + timedelta(seconds=20))  # same bucket, nothing new
    assert evaluated == [("neg", ()), ("spike", ()), ("odd-window", BRANDS)]
    evaluated.clear()
    p.windows.add("Globex", T0 + timedelta(seconds=21), Sample(negative=True))
    p.evaluate(T0 + timedelta(seconds=30))
    assert evaluated[:2] == [("neg", ("Globex",)), ("spike", ("Globex",))]
    evaluated.clear()
    p.evaluate(T0 + timedelta(seconds=60))  # the next bucket: reads move
    assert evaluated[:2] == [("neg", BRANDS), ("spike", BRANDS)]


def test_an_open_incident_resolves_on_time_without_new_counts() -> None:
    """Time-driven transitions stay exact: with nothing new after the burst, the incident
    resolves at exactly resolve_after after its condition cleared."""
    p = _processor()
    p.windows.add("Acme", T0, Sample(negative=True), weight=5)
    alerts = p.evaluate(T0 + timedelta(seconds=10))
    assert [(a.rule, a.kind) for a in alerts] == [("neg", "opened")]
    # the 5m window no longer covers T0's bucket from T0's bucket + 5m on (+1 bucket start)
    now = T0 + timedelta(seconds=10)
    kinds: list[tuple[datetime, str]] = []
    while now < T0 + timedelta(minutes=20):
        now += timedelta(seconds=10)
        kinds += [(now, a.kind) for a in p.evaluate(now) if a.rule == "neg"]
    # last held at 9:04:57 (the last tick whose 5m window covers the 9:00 bucket);
    # keep_firing_for 3m: clear from 9:07:57; resolve_after 4m: resolved at 9:11:57
    assert kinds == [(datetime(2026, 3, 2, 9, 11, 57, tzinfo=UTC), "resolved")]


def test_bucket_aligned_and_read_epoch() -> None:
    """A rule is aligned when every duration it reads by is whole buckets; the read epoch
    changes just after a bucket boundary, not on it."""
    config = load_config_text(CONFIG, "rules.yaml", {})
    aligned = {r.name: bucket_aligned(compile_rule(r), BUCKET) for r in config.rules}
    assert aligned == {"neg": True, "spike": True, "odd-window": False}
    boundary = datetime(2026, 3, 2, 9, 1, tzinfo=UTC)
    assert read_epoch(boundary, BUCKET) == read_epoch(boundary - timedelta(seconds=59), BUCKET)
    assert read_epoch(boundary + timedelta(microseconds=1), BUCKET) == (
        read_epoch(boundary, BUCKET) + 1
    )


def test_the_engine_state_is_written_only_when_it_changed() -> None:
    """An idle tick (nothing new, same bucket) writes no engine state; a tick that changes
    a key writes it, and what it writes is the state the processor holds."""
    p = _processor()
    written: list[str | None] = []
    real = p.store.write_evaluate

    def spy(w: EvaluateWrite) -> None:
        written.append(w.engine_state)
        real(w)

    p.store.write_evaluate = spy  # type: ignore[method-assign]
    p.windows.add("Acme", T0 - timedelta(minutes=40), Sample(negative=False))
    p.evaluate(T0)
    assert written[-1] == p.state.to_json()
    p.evaluate(T0 + timedelta(seconds=20))  # same bucket, nothing new
    assert written[-1] is None
    p.windows.add("Globex", T0 + timedelta(seconds=21), Sample(negative=True), weight=5)
    p.evaluate(T0 + timedelta(seconds=30))  # neg opens for Globex
    assert written[-1] == p.state.to_json()
    assert p.store.load_engine_state() == p.state.to_json()


def test_a_key_whose_state_changed_behind_the_memo_is_evaluated_again() -> None:
    """A key's state replaced from outside the evaluation (an equal state, but not the one
    the memo recorded) is not taken for settled: it is evaluated again in the same bucket,
    and the other keys are still skipped."""
    p = _processor()
    p.windows.add("Acme", T0 - timedelta(minutes=40), Sample(negative=False))
    p.evaluate(T0)
    evaluated = _spied(p)
    keys = dict(p.state.keys)
    old = keys[("neg", "Globex")]
    keys[("neg", "Globex")] = replace(old, timers=dict(old.timers))
    p.state = replace(p.state, keys=keys)
    p.evaluate(T0 + timedelta(seconds=20))
    assert evaluated[:2] == [("neg", ("Globex",)), ("spike", ())]
    evaluated.clear()
    p.evaluate(T0 + timedelta(seconds=30))  # settled again: nothing due
    assert evaluated[:2] == [("neg", ()), ("spike", ())]


def test_handing_a_brand_off_keeps_what_is_settled_of_the_others() -> None:
    """When a brand leaves (and comes back), the others' keys stay settled: the next
    evaluation in the same bucket skips them; the brand adopted back is evaluated."""
    p = _processor()
    p.windows.add("Acme", T0 - timedelta(minutes=40), Sample(negative=False))
    p.evaluate(T0)
    evaluated = _spied(p)
    handed = p.export_brand("Globex")
    p.evaluate(T0 + timedelta(seconds=20))
    assert evaluated[:2] == [("neg", ()), ("spike", ())]
    evaluated.clear()
    p.adopt_brand(handed)
    p.evaluate(T0 + timedelta(seconds=30))
    assert evaluated[:2] == [("neg", ("Globex",)), ("spike", ("Globex",))]


def test_a_failed_evaluation_forgets_what_was_settled() -> None:
    """An evaluation that fails part-way (here: writing to the store) leaves nothing
    settled that the state held does not show: the next one evaluates every key again."""
    p = _processor()
    p.evaluate(T0)
    evaluated = _spied(p)

    def broken(w: EvaluateWrite) -> None:
        raise RuntimeError("disk full")

    real, p.store.write_evaluate = p.store.write_evaluate, broken  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        p.evaluate(T0 + timedelta(seconds=20))
    p.store.write_evaluate = real  # type: ignore[method-assign]
    evaluated.clear()
    p.evaluate(T0 + timedelta(seconds=30))
    assert evaluated[:2] == [("neg", BRANDS), ("spike", BRANDS)]
