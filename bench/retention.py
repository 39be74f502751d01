"""Retention benchmark: the SQLite state file stays bounded while mentions keep coming.

    .venv/bin/python bench/retention.py [--days 120] [--per-day 1000] [--retention 30d]
                                        [--vacuum-every 7d] [--no-retention] [--state PATH]
                                        [--step 10m] [--data ../shared/data] [--synthetic]
                                        [--seed 1]

Simulates ``--days`` of one brand's mentions (Acme; ``--per-day`` a day on average, with
a day/night cycle, from three sources: ``x`` 55 %, ``reddit`` 30 %, ``news`` 15 %) on a
simulated clock (``listener.clock.ManualClock``; the wall clock only times the work).
Every ``--step`` each source hands the mentions written since its last poll to the
daemon's real :class:`~listener.processor.Processor` over a real :class:`~listener.store.Store`
on disk (matching, the default crisis scorer, categories, stories, windows, one commit
per poll), then the rules are evaluated. About 12 % of the ordinary mentions are
complaints. Every 20 days (from day 10) a 90-minute surge of complaints opens an incident
of the bench's ``negative-surge`` rule that resolves within the hour after it ends: its
evidence (the brand's mentions from 30 h before it opened to 2 h after it resolved) is
kept past retention.

Every simulated hour the daemon's own housekeeping job runs: ``Housekeeping.run`` of a
:class:`~listener.housekeeping.Housekeeping` built as the daemon builds it from these
settings (``mention_retention``, ``vacuum_every``) around the same store and clock, so the
prune (with the daemon's
retention, at least ``EVIDENCE_BEFORE``) and the ``VACUUM`` when due are exactly the
daemon's, in its order. Only the timing of ``Store.mentions.prune`` and ``Store.vacuum``
is added, by subclasses of the store and its mentions.

Texts: ``x`` posts are sampled from the airline tweets (``twitter-airline-sentiment/
Tweets.csv`` under ``--data``, read in place; complaints from the crowd's negative
tweets, the rest from its neutral and positive ones; the airline handles become
``@acme``) when the file is there, synthesized otherwise or with ``--synthetic``;
``reddit`` comments and ``news`` items (a title and a summary) are always synthesized
(Zipf-distributed words), with lengths drawn around 100, 350 and 450 characters.

Prints per simulated week: mentions stored, mentions kept only as evidence (collected
before the prune cutoff), incidents, the state file's size (database + WAL) after that
hour's housekeeping, its WAL, and the largest hourly size since the previous row; at the
end mentions ingested per second, the incidents, the peak size, the steady-state size
(mean of the hourly sizes over the last 4 weeks), the final size over the size at day =
retention, the size without retention (the database pages in use per mention at day =
retention, before any mention was pruned, times the mentions ingested; measured with
``--no-retention``, which keeps the weekly ``VACUUM``), the evidence an incident keeps,
how long each prune and each ``VACUUM`` took, and SQLite's ``integrity_check`` (exit
status 1 unless ``ok``).

The default 1,000 mentions a day take about 3 minutes on one core (the Processor ingests
some 800 mentions/s: scoring, stories and one fsync'd commit per poll); sizes scale with
``--per-day`` (5,000 a day runs about five times as long).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import math
import random
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from statistics import mean

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from listener.clock import ManualClock  # noqa: E402 - needs the repository root on the path
from listener.config.duration import parse_duration  # noqa: E402
from listener.config.load import load_config_text  # noqa: E402
from listener.housekeeping import Housekeeping  # noqa: E402
from listener.log import configure_logging  # noqa: E402
from listener.metrics import Metrics  # noqa: E402
from listener.model import Author, Engagement, Mention  # noqa: E402
from listener.processor import Processor  # noqa: E402
from listener.settings import Settings  # noqa: E402
from listener.store import (  # noqa: E402
    EVIDENCE_AFTER,
    EVIDENCE_BEFORE,
    IncidentRecord,
    Store,
)
from listener.store.core import Database  # noqa: E402
from listener.store.mentions import Mentions  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data"
MIB = 1024 * 1024
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, 00:00 UTC
SOURCES = (("x", 0.55), ("reddit", 0.30), ("news", 0.15))
NEGATIVE_SHARE = 0.12
POSITIVE_SHARE = 0.25
INCIDENT_EVERY = timedelta(days=20)
FIRST_INCIDENT = timedelta(days=10, hours=14)
SURGE = timedelta(minutes=90)

CONFIG = """
brands:
  - name: Acme
    aliases: ["Acme"]
    handles: ["@acme"]
rules:
  - name: negative-surge
    description: Complaints about Acme at four times their recent rate.
    levels:
      watch:
        when: {type: spike, metric: negative, window: 15m, baseline: 6h, ratio: 4, min_volume: 25}
        for: 5m
        keep_firing_for: 10m
      crisis:
        when:
          type: all
          conditions:
            - {type: volume, metric: negative, window: 15m, above: 80}
            - {type: negative_share, window: 15m, above: 0.6, min_volume: 50}
        keep_firing_for: 15m
    resolve_after: 30m
routes:
  watch: [console]
  crisis: [console]
sinks:
  console: {type: console}
"""

_COMMON = (
    "the a an and or but so to of in on at for with from about after before over under "
    "this that these those it its we our you your they their i my me he she his her "
    "is are was were be been have has had do does did not no yes can will would should "
    "new old first last next other same big small long short early late today yesterday "
    "week month year morning evening night update release version app site account order "
    "team support store price plan product service feature page report customer user "
    "people company market launch review phone laptop cloud data system "
    "says said think know see look find use make take give tell ask try need want "
    "still just also really even only again already maybe probably here there now then "
    "anyone someone everyone something nothing thread question answer post comment "
    "city country office home work school travel weather news story video photo link"
)
COMMON = _COMMON.split()
_SYLLABLES = "ka lo mi re tu sa ve no pi da ri el on an ter gra bel sto min cor lux fen dra vo"
SYLLABLES = _SYLLABLES.split()
VOCABULARY = 20_000
"""Words of synthesized text: the common ones above, then made-up words, drawn by a
Zipf law (rank r with weight 1/(r + 2.7)), so texts share stop words as real ones do."""
POSITIVE = (
    "love the new update",
    "great job team",
    "really helpful support",
    "works perfectly now",
    "best experience so far",
    "thank you, that was fast",
    "impressed by the quality",
    "happy with the upgrade",
)
NEGATIVE = (
    "this is terrible",
    "completely broken again",
    "worst support ever",
    "so frustrated with this",
    "awful experience, never again",
    "still down and nobody answers",
    "charged twice and no refund",
    "the app keeps crashing, useless",
)
AIRLINES = re.compile(
    r"@(united|americanair|southwestair|delta|usairways|virginamerica|jetblue)\b", re.IGNORECASE
)


@dataclass
class Timings:
    prune: list[float] = field(default_factory=list)
    vacuum: list[float] = field(default_factory=list)


class TimedStore(Store):
    """The real store; only the time of each prune and ``VACUUM`` is recorded."""

    timings: Timings

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.mentions = TimedMentions(db, self)

    def vacuum(self, now: datetime) -> None:
        started = time.perf_counter()
        try:
            super().vacuum(now)
        finally:
            self.timings.vacuum.append(time.perf_counter() - started)


class TimedMentions(Mentions):
    """The store's mentions; each prune is timed into the store's timings."""

    def __init__(self, db: Database, store: TimedStore) -> None:
        super().__init__(db)
        self.store = store

    def prune(self, before: datetime) -> int:
        started = time.perf_counter()
        try:
            return super().prune(before)
        finally:
            self.store.timings.prune.append(time.perf_counter() - started)


class Texts:
    """Mention texts of the three sources, synthesized or (``x``) sampled from real tweets."""

    def __init__(self, rng: random.Random, tweets: Path | None) -> None:
        self.rng = rng
        words = list(COMMON)
        made = random.Random(0)
        while len(words) < VOCABULARY:
            word = "".join(made.choices(SYLLABLES, k=made.randint(2, 4)))
            if word not in words[-50:]:
                words.append(word)
        self.words = words
        self.cum_weights = list(accumulate(1 / (rank + 2.7) for rank in range(len(words))))
        self.real: dict[bool, list[str]] = {}
        if tweets is not None:
            with tweets.open(newline="", encoding="utf-8") as f:
                for row in csv.DictReader(f):
                    text = " ".join(AIRLINES.sub("@acme", row["text"]).split())
                    if "@acme" not in text.lower():
                        text = f"@acme {text}"
                    self.real.setdefault(row["airline_sentiment"] == "negative", []).append(text)

    def _words(self, length: int) -> str:
        """About ``length`` characters of made-up prose (words average about 6 with a space)."""
        k = max(2, length // 6)
        return " ".join(self.rng.choices(self.words, cum_weights=self.cum_weights, k=k))

    def _length(self, mean_chars: float, low: int, high: int) -> int:
        drawn = self.rng.lognormvariate(math.log(mean_chars) - 0.18, 0.6)
        return max(low, min(high, int(drawn)))

    def _tone(self, negative: bool) -> str:
        if negative:
            return self.rng.choice(NEGATIVE)
        if self.rng.random() < POSITIVE_SHARE / (1 - NEGATIVE_SHARE):
            return self.rng.choice(POSITIVE)
        return ""

    def text(self, source: str, negative: bool) -> tuple[str, str | None]:
        """(text, title) of one mention."""
        if source == "x" and self.real:
            return self.rng.choice(self.real[negative]), None
        tone = self._tone(negative)
        if source == "x":
            body = self._words(self._length(100, 10, 240))
            return f"@acme {body} {tone}".strip(), None
        if source == "reddit":
            body = self._words(self._length(350, 20, 3000))
            cut = self.rng.randrange(len(body) + 1)
            return f"{body[:cut]} Acme {tone} {body[cut:]}".strip(), None
        title = f"Acme {self._words(self._length(60, 20, 110))}"
        return f"{self._words(self._length(380, 80, 1200))} {tone}".strip(), title


class Traffic:
    """The brand's mentions: a day/night cycle, and a surge of complaints now and then."""

    def __init__(self, per_day: float, texts: Texts, rng: random.Random) -> None:
        self.per_day = per_day
        self.texts = texts
        self.rng = rng
        self.count = 0
        self.users = [f"user{i}" for i in range(20_000)]

    def _rate(self, at: datetime) -> float:
        """Mentions a second at ``at``: busiest around 15:00 UTC, quietest around 03:00."""
        hour = at.hour + at.minute / 60
        return self.per_day / 86_400 * (1 + 0.6 * math.sin(2 * math.pi * (hour - 9) / 24))

    def _surge(self, at: datetime) -> float:
        """Extra complaints a second at ``at`` (a surge every INCIDENT_EVERY)."""
        since = (at - START - FIRST_INCIDENT) % INCIDENT_EVERY
        if at - START < FIRST_INCIDENT or since >= SURGE:
            return 0.0
        return max(600.0, self.per_day * 0.16) / SURGE.total_seconds()

    def _count(self, expected: float) -> int:
        if expected <= 0:
            return 0
        return max(0, round(self.rng.gauss(expected, math.sqrt(expected))))

    def poll(self, source: str, share: float, start: datetime, end: datetime) -> list[Mention]:
        """What ``source`` has for the brand, written in [start, end)."""
        seconds = (end - start).total_seconds()
        ordinary = self._count(self._rate(start) * share * seconds)
        surge_share = {"x": 0.7, "reddit": 0.2, "news": 0.1}[source]
        complaints = self._count(self._surge(start) * surge_share * seconds)
        out = []
        for i in range(ordinary + complaints):
            negative = i >= ordinary or self.rng.random() < NEGATIVE_SHARE
            text, title = self.texts.text(source, negative)
            self.count += 1
            n = self.count
            # a few loud authors write 30 % of the mentions, anyone the rest
            user = self.users[min(len(self.users) - 1, int(self.rng.paretovariate(1.2)) - 1)]
            user = user if self.rng.random() < 0.3 else self.rng.choice(self.users)
            out.append(
                Mention(
                    source=source,
                    id=f"{source}-{n}",
                    text=text,
                    title=title,
                    created_at=start + timedelta(seconds=self.rng.random() * seconds),
                    url=f"https://{source}.example.test/acme/{n}",
                    author=Author(handle=user, followers=int(self.rng.paretovariate(1.1) * 50)),
                    language="en",
                    engagement=Engagement(likes=self.rng.randrange(20), replies=n % 3),
                )
            )
        return out


def _mib(n: float) -> str:
    return f"{n / MIB:.1f}"


def _span(d: timedelta) -> str:
    """``30d``, ``7d``, ``10m``, ``1d12h``."""
    seconds, out = int(d.total_seconds()), ""
    for unit, size in (("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            out += f"{seconds // size}{unit}"
            seconds %= size
    return out or "0"


def _wal(store: Store) -> int:
    wal = Path(f"{store.path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def _used(store: Store) -> int:
    """Bytes of the database's pages in use: no WAL, no free pages."""
    pages = store._read("PRAGMA page_count")[0][0] - store._read("PRAGMA freelist_count")[0][0]
    return int(pages * store._read("PRAGMA page_size")[0][0])


def _kept(store: Store, cutoff: datetime) -> int:
    """Mentions collected before the prune cutoff that are still stored: evidence."""
    rows = store._read(
        "SELECT COUNT(*) FROM mentions WHERE collected_at < ?", (cutoff.timestamp(),)
    )
    return int(rows[0][0])


def _evidence(store: Store, incident: IncidentRecord) -> int:
    """The brand's stored mentions an incident keeps (:meth:`Mentions.prune`)."""
    if incident.resolved_at is None:
        return 0
    start = incident.opened_at - EVIDENCE_BEFORE
    end = incident.resolved_at + EVIDENCE_AFTER
    return sum(c.mentions for c in store.mentions.source_counts(incident.brand, start, end))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--days", type=int, default=120, help="simulated days (default 120)")
    parser.add_argument("--per-day", type=int, default=1000, help="mentions a day (default 1000)")
    parser.add_argument(
        "--retention", type=parse_duration, default=Settings().mention_retention, help="default 30d"
    )
    parser.add_argument(
        "--vacuum-every", type=parse_duration, default=Settings().vacuum_every, help="default 7d"
    )
    parser.add_argument(
        "--no-retention", action="store_true", help="never prune (VACUUM still runs when due)"
    )
    parser.add_argument("--state", type=Path, help="state file (default: in a temporary dir)")
    parser.add_argument(
        "--step", type=parse_duration, default=timedelta(minutes=10), help="poll interval"
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--synthetic", action="store_true", help="synthesize the x posts too")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.days < 1 or args.per_day < 1 or args.step <= timedelta(0):
        parser.error("--days, --per-day and --step must be positive")
    if timedelta(hours=1) % args.step:
        parser.error("--step must divide an hour")
    if args.state is not None and args.state.exists():
        parser.error(f"{args.state} exists: remove it or name another file")

    tweets = args.data / "twitter-airline-sentiment" / "Tweets.csv"
    if args.synthetic:
        tweets_used = None
    elif tweets.exists():
        tweets_used = tweets
    else:
        print(f"note: {tweets} not found; x posts are synthesized")
        tweets_used = None
    configure_logging("warning", "console")  # the daemon's info lines (pruned, vacuumed) off
    if args.state is not None:
        return run(args, args.state, tweets_used)
    with tempfile.TemporaryDirectory(prefix="listener-retention-") as tmp:
        return run(args, Path(tmp) / "state.db", tweets_used)


def run(args: argparse.Namespace, path: Path, tweets: Path | None) -> int:
    days: int = args.days
    nominal: timedelta = args.retention
    # the daemon has no "never": with --no-retention a retention longer than the run
    retention = timedelta(days=days + 365) if args.no_retention else nominal
    settings = Settings(
        state=str(path), mention_retention=retention, vacuum_every=args.vacuum_every
    )
    clock = ManualClock(START)
    opened = TimedStore.open(path)
    assert isinstance(opened, TimedStore)
    store = opened
    store.timings = Timings()
    metrics = Metrics()
    housekeeping = Housekeeping(  # as Daemon.run builds it, around this store and clock
        store,
        metrics,
        clock,
        retention=settings.mention_retention,
        vacuum_every=settings.vacuum_every,
    )
    processor = Processor(load_config_text(CONFIG, "bench/retention.py", {}), store, metrics)
    rng = random.Random(args.seed)
    traffic = Traffic(args.per_day, Texts(rng, tweets), rng)
    cutoff_age = max(retention, EVIDENCE_BEFORE)  # what Housekeeping.run prunes before
    reference = max(nominal, EVIDENCE_BEFORE)  # "day = retention", as the daemon stretches it
    print(
        f"{days} days of Acme, {args.per_day:,} mentions/day ("
        + ", ".join(f"{s} {share:.0%}" for s, share in SOURCES)
        + f") polled every {_span(args.step)}; x texts "
        + (f"sampled from {tweets}" if tweets else "synthesized")
        + "\nretention "
        + ("none (--no-retention)" if args.no_retention else _span(retention))
        + (f" (the daemon prunes at {_span(cutoff_age)})" if cutoff_age > retention else "")
        + f", VACUUM every {_span(args.vacuum_every)}: Housekeeping.run every hour"
        + f"\nstate file: {path}\n"
    )
    print(
        f"{'day':>4} {'stored':>9} {'evidence':>9} {'incidents':>9} {'size MiB':>9} "
        f"{'WAL MiB':>8} {'week max':>9}"
    )

    hourly: list[tuple[float, int]] = []  # (day, bytes) after each housekeeping
    ingest_s = 0.0
    ingested = 0
    at_retention: tuple[int, int, int] | None = None  # (bytes, bytes in use, mentions) then
    week_max = 0
    started = time.perf_counter()
    steps_per_hour = timedelta(hours=1) // args.step
    end = START + timedelta(days=days)
    with asyncio.Runner() as runner:
        step = 0
        while True:
            now = clock.now()
            if step % steps_per_hour == 0:  # the daemon's hourly job; its first run at start
                runner.run(housekeeping.run())
                size = store.size_bytes()
                day = (now - START) / timedelta(days=1)
                hourly.append((day, size))
                week_max = max(week_max, size)
                if at_retention is None and now - START >= reference:
                    at_retention = (size, _used(store), store.mentions.count())
                if (step and (now - START) % timedelta(days=7) == timedelta(0)) or now >= end:
                    print(
                        f"{day:>4.0f} {store.mentions.count():>9,} "
                        f"{_kept(store, now - cutoff_age):>9,} "
                        f"{len(store.incidents(limit=1000)):>9} {_mib(size):>9} "
                        f"{_mib(_wal(store)):>8} {_mib(week_max):>9}",
                        flush=True,
                    )
                    week_max = 0
            if now >= end:
                break
            later = clock.advance(args.step)
            for source, share in SOURCES:
                batch = traffic.poll(source, share, now, later)
                began = time.perf_counter()
                processor.ingest(source, batch, later)
                ingest_s += time.perf_counter() - began
                ingested += len(batch)
            processor.evaluate(later)
            step += 1
    elapsed = time.perf_counter() - started

    final = hourly[-1][1]
    peak_day, peak = max(hourly, key=lambda h: h[1])
    incidents = sorted(store.incidents(limit=1000), key=lambda i: i.opened_at)
    print()
    print(f"mentions ingested     {ingested:,} in {elapsed:.0f} s")
    print(
        f"ingest rate           {ingested / ingest_s:,.0f} mentions/s in Processor.ingest, "
        f"{ingested / elapsed:,.0f} mentions/s with evaluate, housekeeping and the bench"
    )
    print(
        f"incidents             {len(incidents)}"
        + ": " * bool(incidents)
        + ", ".join(
            f"{i.opened_at:%m-%d %H:%M}-{i.resolved_at:%H:%M} {i.peak_level}"
            if i.resolved_at
            else f"{i.opened_at:%m-%d %H:%M} open"
            for i in incidents
        )
    )
    print(f"peak size             {_mib(peak)} MiB (day {peak_day:.1f})")
    if days >= 28:
        steady = mean(size for day, size in hourly if day > days - 28)
        print(f"steady-state size     {_mib(steady)} MiB (mean of the hourly sizes, last 28 days)")
    print(f"final size            {_mib(final)} MiB ({store.mentions.count():,} mentions stored)")
    if at_retention is not None:
        size, used, stored = at_retention
        per_mention = used / max(1, stored)
        print(
            f"final / day {reference / timedelta(days=1):<5g}     {final / size:.2f} "
            f"({_mib(final)} / {_mib(size)} MiB at day {reference / timedelta(days=1):g}, "
            "before any mention was pruned)"
        )
        if not args.no_retention:
            print(
                f"no retention          ~{_mib(per_mention * ingested)} MiB extrapolated "
                f"({ingested:,} mentions x {per_mention:,.0f} bytes, the pages in use per "
                f"mention at day {reference / timedelta(days=1):g}; measure: --no-retention)"
            )
        kept = _kept(store, clock.now() - cutoff_age)
        each = [_evidence(store, i) for i in incidents if i.resolved_at is not None]
        if kept and each:
            print(
                f"evidence              {kept:,} mentions kept past retention; an incident "
                f"keeps ~{mean(each):,.0f} (~{_mib(per_mention * mean(each))} MiB) for good"
            )
    if args.no_retention:
        print(f"no retention          {_mib(final)} MiB measured (this run)")
    t = store.timings
    print(
        f"prune                 {len(t.prune)} runs, max {max(t.prune) * 1000:.0f} ms, "
        f"mean {mean(t.prune) * 1000:.1f} ms"
    )
    if t.vacuum:
        print(
            f"VACUUM                {len(t.vacuum)} runs, max {max(t.vacuum) * 1000:.0f} ms, "
            f"mean {mean(t.vacuum) * 1000:.0f} ms"
        )
    integrity = store._read("PRAGMA integrity_check")[0][0]
    print(f"integrity_check       {integrity}")
    store.close()
    return 0 if integrity == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
