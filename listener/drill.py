"""``listener drill``: rehearse a brand crisis through the real pipeline.

A scripted scenario (a quiet baseline, then complaints that grow, peak and subside:
about an outage by default, or a data breach, a product recall, an offensive post, or a
rumour that spreads and is then corrected, :data:`CRISES`) is generated minute by minute
in simulated time and fed through
the same :class:`~listener.processor.Processor` the daemon uses (matching,
sentiment, windows, rules, incidents) and the same outbox and sinks. Every alert
is marked as a drill, and so is every incident it opens (``listener incidents`` shows
``[DRILL]``). Nothing touches the network unless a configured sink does; alerts for a
sink the drill does not deliver to (``--quiet-sinks``, or a sink whose secret is unset)
are settled as ``muted`` with the reason, so no later ``listener run`` on the same state
file sends them.
"""

from __future__ import annotations

import asyncio
import math
import random
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from listener.clock import ManualClock
from listener.components import build_sinks
from listener.config.schema import BrandConfig, Config
from listener.errors import ListenerError, UsageError
from listener.metrics import Metrics
from listener.model import Alert, Author, Engagement, Mention
from listener.processor import Processor
from listener.rules.engine import max_lookback
from listener.sinks.base import Sink
from listener.sinks.delivery import Deliverer
from listener.sinks.text import explanation_line
from listener.store import Store

STEP = timedelta(minutes=1)
QUIET_SINKS = "drill --quiet-sinks"
"""Why the alerts of a drill that delivers nothing are muted."""


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    minutes: int
    per_minute: float
    negative_share: float


SCENARIO: tuple[Phase, ...] = (
    Phase("quiet baseline", 180, 0.5, 0.10),
    Phase("first complaints", 15, 2.0, 0.60),
    Phase("outage spreads", 20, 6.0, 0.85),
    Phase("peak", 20, 15.0, 0.90),
    Phase("subsiding", 30, 3.0, 0.60),
    Phase("all quiet", 120, 0.5, 0.10),
)
"""The outage's shape; the other crises rename its middle phases (:class:`Crisis`)."""

OTHER = (
    "Trying out the new {name} dashboard today",
    "Love how fast {name} has become lately, great job {handle}",
    "Reading the {name} changelog over coffee",
    "Thanks {handle} for the quick support answer!",
    "{name} meetup tonight, who is coming? {tag}",
    "Migrated our side project to {name} this weekend",
)


@dataclass(frozen=True, slots=True)
class Crisis:
    """One rehearsable crisis: what people say while it grows (``negative``), what the
    rest of the brand's conversation is, and, for a crisis that is answered (a rumour
    corrected), what they say once it is (``after``, from the subsiding phase on). Each
    is written to be tagged with its crisis ``category`` (docs/categories.md) and to give
    the spike explanation something to find (``drivers``: words its explanation should
    lead with)."""

    name: str
    title: str
    category: str
    negative: tuple[str, ...]
    phases: tuple[str, str, str, str]
    """The names of the four middle phases (first complaints, spreads, peak, subsiding)."""
    drivers: frozenset[str]
    after: tuple[str, ...] = ()


CRISES: dict[str, Crisis] = {
    crisis.name: crisis
    for crisis in (
        Crisis(
            "outage",
            "a service outage",
            "outage",
            (
                "{name} is down again?! This is terrible, I can't log in",
                "Worst outage ever. {handle} your service is completely broken",
                "Hey {handle} nothing works, I hate this. Still waiting for an update",
                "{name} failed in the middle of my launch. Awful. {tag}",
                "Is anyone else's {name} broken? Error after error, useless",
                "Ridiculous. Third outage this month. {name} please fix this mess {tag}",
                "Lost two hours of work because {name} crashed. Angry and disappointed",
                "{handle} this is unacceptable, our whole team is blocked. Terrible communication",
            ),
            ("first complaints", "outage spreads", "peak", "subsiding"),
            frozenset({"outage", "down", "broken", "crashed", "error"}),
        ),
        Crisis(
            "breach",
            "a data breach",
            "security",
            (
                "{name} got hacked? My password was leaked, thanks for nothing {handle}",
                "Our customer data was stolen in the {name} breach and nobody told us",
                "{handle} why did I hear about the data breach from the news? {tag}",
                "Just got a phishing email after the {name} breach. Change your passwords",
                "The breach exposed card details. {name} owes everyone an explanation",
                "Hackers are selling leaked {name} accounts, is my data safe? {handle}",
                "Deleting my {name} account after this breach. Stolen data, no apology",
            ),
            ("first reports", "breach confirmed", "peak", "answers trickle out"),
            frozenset({"breach", "leaked", "stolen", "hacked", "data", "password", "passwords"}),
        ),
        Crisis(
            "recall",
            "a product recall",
            "safety",
            (
                "{name} is recalling the charger after fires, mine was melting {handle}",
                "Recall notice from {name}: batteries overheating. Is my home safe?",
                "My kid was burned by the {name} charger. Recall it everywhere now {tag}",
                "{handle} the recall page crashes, how do I return the unsafe charger?",
                "Hazard warning on {name} chargers, they can catch fire. Unplug them",
                "The {name} recall came too late, the charger overheated twice",
            ),
            ("first reports", "recall announced", "peak", "replacements ship"),
            frozenset({"recall", "charger", "chargers", "fire", "fires", "overheating"}),
        ),
        Crisis(
            "offensive",
            "an offensive post",
            "offensive",
            (
                "That {name} ad is racist. Who approved this? {handle}",
                "{handle} delete this tone-deaf post. Offensive and insulting",
                "Unfollowing {name} after that offensive ad. Shameful {tag}",
                "The new {name} campaign mocks disabled people. Disgusting and offensive",
                "{name} marketing team thought this ad was funny? It is racist",
                "Boycott {name} until they apologise for the offensive ad {tag}",
            ),
            ("first reactions", "the post goes viral", "peak", "apology posted"),
            frozenset({"offensive", "racist", "campaign", "post", "tone-deaf", "insulting"}),
        ),
        Crisis(
            "rumour",
            "a rumour that spreads, then is corrected",
            "rumour",
            (
                "BREAKING: {name} is shutting down and deleting all accounts on Friday?!",
                "Heard {name} is shutting down, export your data now {tag}",
                "Is it true {name} is shutting down? {handle} please confirm",
                "My friend at {name} says they are shutting down, rumour is everywhere",
                "{name} shutting down would ruin my business {handle}",
            ),
            ("rumour starts", "rumour spreads", "peak", "correction posted"),
            frozenset({"shutting", "rumour", "deleting", "accounts", "friday"}),
            after=(
                "{name} confirms the shutdown rumour is fake, accounts are safe",
                "Good to hear from {handle}: not shutting down, the post was a hoax",
                "{name} statement: the viral shutdown claim is false {tag}",
                "Relieved, {name} is not going anywhere. Fake news debunked",
            ),
        ),
    )
}
"""Every crisis ``listener drill --scenario NAME`` can rehearse."""


class Scenario:
    """Deterministic mentions for one brand, minute by minute."""

    def __init__(
        self,
        brand: BrandConfig,
        seed: int,
        baseline_minutes: int = 180,
        tail_minutes: int = 120,
        *,
        leave_open: bool = False,
        run: str = "",
        crisis: Crisis | None = None,
    ) -> None:
        self.crisis = crisis or CRISES["outage"]
        middle = [
            replace(phase, name=name)
            for phase, name in zip(SCENARIO[1:-1], self.crisis.phases, strict=True)
        ]
        self.script: tuple[Phase, ...] = (
            replace(SCENARIO[0], minutes=baseline_minutes),
            *middle,
            replace(SCENARIO[-1], minutes=tail_minutes),
        )
        self.answered_from = sum(p.minutes for p in self.script[:4])
        """The minute the crisis is answered (the subsiding phase): ``after`` from then."""
        if leave_open:  # stop at the end of the peak: the incident is open at its height
            self.script = self.script[:4]
        self.prefix = f"drill-{run}-" if run else "drill-"
        """Mention ids are unique per run, so a second drill on one state file is not
        taken for duplicates of the first."""
        self.rng = random.Random(seed)
        self.name = brand.search_terms[0]
        handle = brand.handles[0] if brand.handles else self.name
        self.handle = handle if handle.startswith("@") else f"@{handle}"
        tag = brand.hashtags[0] if brand.hashtags else ""
        self.tag = tag if not tag or tag.startswith("#") else f"#{tag}"
        self.counter = 0

    @property
    def minutes(self) -> int:
        return sum(p.minutes for p in self.script)

    def phases(self) -> Iterator[tuple[int, Phase]]:
        start = 0
        for phase in self.script:
            yield start, phase
            start += phase.minutes

    def phase_at(self, minute: int) -> Phase:
        for start, phase in self.phases():
            if start <= minute < start + phase.minutes:
                return phase
        return self.script[-1]

    def mentions(self, minute: int, at: datetime) -> list[Mention]:
        phase = self.phase_at(minute)
        n = int(phase.per_minute) + (self.rng.random() < phase.per_minute % 1)
        out = []
        for _ in range(n):
            self.counter += 1
            negative = self.rng.random() < phase.negative_share
            calm: tuple[str, ...] = OTHER
            if self.crisis.after and minute >= self.answered_from and self.rng.random() < 0.7:
                calm = self.crisis.after  # the answer is what most of the rest is about
            template = self.rng.choice(self.crisis.negative if negative else calm)
            text = template.format(name=self.name, handle=self.handle, tag=self.tag).strip()
            followers = int(self.rng.paretovariate(1.2) * 50)
            out.append(
                Mention(
                    source="drill",
                    id=f"{self.prefix}{self.counter}",
                    text=text,
                    created_at=at + timedelta(seconds=self.rng.randrange(60)),
                    url=f"https://drill.invalid/mention/{self.counter}",
                    author=Author(
                        handle=f"drill_user{self.rng.randrange(5000)}", followers=followers
                    ),
                    language="en",
                    engagement=Engagement(
                        likes=self.rng.randrange(20), reposts=self.rng.randrange(5)
                    ),
                )
            )
        return out


def _offset(start: datetime, at: datetime) -> str:
    minutes = int((at - start).total_seconds() // 60)
    return f"T+{minutes // 60:02d}:{minutes % 60:02d}"


_MARK = {
    "opened": "▲ OPENED",
    "escalated": "▲ ESCALATED",
    "deescalated": "▼ DE-ESCALATED",
    "resolved": "✔ RESOLVED",
    "reminder": "… REMINDER",
    "acknowledged": "✋ ACKNOWLEDGED",
    "handoff": "⇧ HANDOFF",
}


async def run_drill(
    config: Config,
    *,
    brand: str | None = None,
    state: str | None = None,
    seed: int = 7,
    deliver: bool = True,
    out: TextIO,
    start: datetime | None = None,
    report: str | None = None,
    mute: Mapping[str, str] | None = None,
    leave_open: bool = False,
    scenario: str = "outage",
) -> int:
    """Play the scenario; print the incident timeline. Returns 0 when an incident opened
    and resolved (with ``leave_open``: is still open), 1 when the rules did not catch the
    crisis. Raises :class:`UsageError` for an unknown brand.

    ``deliver=False`` delivers to no sink; ``mute`` names sinks not to deliver to, with
    why (e.g. a secret unset). Their alerts are settled as muted with that reason.
    ``leave_open`` stops at the peak, before the all-clear, leaving the incident open in
    ``state`` for ``listener ack`` and ``listener report``.

    With ``report``, the post-incident report (HTML) of the drill's incidents is written
    to that file, as of the end of the simulated time, before a temporary state goes.

    ``scenario`` names the crisis (:data:`CRISES`: outage, breach, recall, offensive,
    rumour)."""
    crisis = CRISES.get(scenario)
    if crisis is None:
        raise UsageError(f"unknown scenario {scenario!r} (known: {', '.join(CRISES)})")
    chosen = next((b for b in config.brands if brand is None or b.name == brand), None)
    if chosen is None:
        known = ", ".join(b.name for b in config.brands)
        raise UsageError(f"unknown brand {brand!r} (known: {known})")
    muted = dict.fromkeys(config.sinks, QUIET_SINKS) if not deliver else dict(mute or {})
    tmp = tempfile.TemporaryDirectory(prefix="listener-drill-") if state is None else None
    path = state or str(Path(tmp.name if tmp else ".") / "drill.db")
    store = Store.open(path)
    begin = start or _start_after(store, chosen.name)
    clock = ManualClock(begin)
    metrics = Metrics()
    try:
        # the drill's metrics are never scraped: no condition gauges to keep up (the
        # screen then skips the medians only gauges need; decisions are the same)
        processor = Processor(config, store, metrics, drill=True, readings=False)
        usable = {n: c for n, c in config.sinks.items() if n not in muted}
        sinks: dict[str, Sink] = build_sinks(
            config.model_copy(update={"sinks": usable}), "rules.yaml"
        )
        deliverer = Deliverer(
            store, sinks, {n: c.delivery for n, c in config.sinks.items()}, metrics, clock
        )
        # the quiet baseline must be long enough for every rule to warm up
        history = max_lookback(processor.rules) + timedelta(minutes=30)
        # ... and the quiet end long enough for every incident to resolve: a level's
        # `when` may hold until its longest window has passed the crisis, then
        # resolve_after must pass
        settle = max((r.resolve_after + r.window for r in processor.rules), default=timedelta(0))
        settle += timedelta(minutes=60)
        script = Scenario(
            chosen,
            seed,
            max(180, math.ceil(history.total_seconds() / 60)),
            max(120, math.ceil(settle.total_seconds() / 60)),
            leave_open=leave_open,
            run=f"{begin:%Y%m%d%H%M}",
            crisis=crisis,
        )
        total = script.minutes
        print(
            f"listener drill: {crisis.title}, simulated, for brand {chosen.name!r}, "
            f"{total // 60}h{total % 60:02d}m of simulated time from "
            f"{begin:%Y-%m-%d %H:%M} UTC; alerts are marked [DRILL]",
            file=out,
        )
        print(
            f"rules: {', '.join(r.name for r in config.rules) or '(none)'}; sinks: "
            f"{', '.join(sinks) if sinks else '(delivery off)'}"
            + "".join(f"; {n} muted ({why})" for n, why in muted.items() if why != QUIET_SINKS)
            + "\n",
            file=out,
        )
        phase_starts = dict(script.phases())
        alerts: list[Alert] = []
        for minute in range(total):
            now = clock.now()
            if minute in phase_starts:
                p = phase_starts[minute]
                span = f" for {p.minutes // 60}h{p.minutes % 60:02d}m" if p.minutes >= 120 else ""
                why = " (history the rules need to warm up)" if minute == 0 else ""
                print(
                    f"  {_offset(begin, now)}  ── {p.name}{span}{why}: ~{p.per_minute:g} "
                    f"mentions/min, {p.negative_share:.0%} negative",
                    file=out,
                )
            batch = script.mentions(minute, now)
            clock.advance(STEP)
            now = clock.now()
            await asyncio.to_thread(processor.ingest, "drill", batch, now)
            produced = await asyncio.to_thread(processor.evaluate, now)
            if produced:
                await asyncio.to_thread(_settle, store, produced, muted)
            for alert in produced:
                alerts.append(alert)
                why = "; ".join(str(f) for f in alert.facts[:2])
                level = alert.level
                if alert.kind == "resolved":  # an all-clear, not a level: say what it ends
                    level = "clear"
                    peak = alert.peak_level or alert.level
                    why = f"all clear (last {alert.level}, peak {peak}); {why}"
                print(
                    f"  {_offset(begin, now)}  {_MARK[alert.kind]:<15} {level:<9} "
                    f"{alert.rule}  {why}",
                    file=out,
                )
            if produced or minute % 10 == 0:
                await deliverer.drain()
        await deliverer.drain()
        for sink in sinks.values():
            await sink.aclose()
        code = _summary(store, begin, alerts, out, leave_open=leave_open)
        _explained(alerts, crisis, out)
        incidents = sorted({a.incident_id for a in alerts})
        if report is not None and incidents:
            from listener.report.chart import ReportExtraMissing

            try:
                await asyncio.to_thread(
                    _write_report, store, incidents, clock.now(), config, Path(report)
                )
            except ReportExtraMissing as exc:  # the drill's verdict stands without its report
                print(f"\npost-incident report skipped: {exc}", file=out)
            else:
                print(f"\npost-incident report: {report}", file=out)
        if state is not None and incidents:
            _next_steps(store, incidents, state, out)
        return code
    finally:
        store.close()
        if tmp is not None:
            tmp.cleanup()


def _start_after(store: Store, brand: str) -> datetime:
    """Now, or after the brand's last mention in a reused state file: a second drill on
    one file must not replay its crisis over the first one's simulated hours."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    last = store.mentions.last_at(
        brand, datetime(1970, 1, 1, tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    )
    if last is None or last < now:
        return now
    return last.replace(second=0, microsecond=0) + 2 * STEP


def _settle(store: Store, produced: list[Alert], muted: Mapping[str, str]) -> None:
    """Mark the incidents the drill opened; mute what it will not deliver, by reason."""
    ids = sorted({a.incident_id for a in produced})
    store.incident_log.mark_drill(ids)
    reasons: dict[str, list[str]] = {}
    for sink, why in muted.items():
        reasons.setdefault(why, []).append(sink)
    for why, sinks in reasons.items():
        store.outbox.mute_pending(ids, sinks, why)


def _next_steps(store: Store, incidents: list[str], state: str, out: TextIO) -> None:
    """Where the drill's incidents are kept, and what to try on an open one."""
    print(
        f"\nthe drill's incidents are kept in {state}: listener incidents --state {state}", file=out
    )
    for record in (store.incident_log.get(i) for i in incidents):
        if record is not None and record.status == "open":
            print(
                f"{record.id} is open: try  listener ack {record.id} --state {state}"
                f"  and  listener report {record.id} --state {state}",
                file=out,
            )


def _write_report(
    store: Store, incidents: list[str], now: datetime, config: Config, path: Path
) -> None:
    """The HTML report of the drill's incidents, in the order they opened."""
    from listener.report import gather, render_document  # matplotlib: only when asked

    reports = sorted(
        (gather(store, incident_id, now, config) for incident_id in incidents),
        key=lambda r: r.incident.opened_at,
    )
    text, _ = render_document(reports, "html")
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ListenerError(f"cannot write the drill report to {path}: {exc.strerror}") from None


def _explained(alerts: list[Alert], crisis: Crisis, out: TextIO) -> None:
    """What the alerts said: the crisis categories they carried and why each spiked."""
    shown = [a for a in alerts if a.explanation is not None]
    if not alerts:
        return
    categories = sorted({name for a in alerts for name, _ in a.categories})
    expected = "yes" if crisis.category in categories else "NO"
    print(
        f"\ncategories tagged: {', '.join(categories) or 'none'} "
        f"(the {crisis.category} category expected: {expected})",
        file=out,
    )
    for alert in shown:
        assert alert.explanation is not None
        print(f"  {alert.kind} {alert.level}: {explanation_line(alert.explanation, 3)}", file=out)


def _summary(
    store: Store, begin: datetime, alerts: list[Alert], out: TextIO, *, leave_open: bool = False
) -> int:
    incidents = sorted({a.incident_id for a in alerts})
    print("\nincidents:", file=out)
    resolved = still_open = 0
    for incident_id in incidents:
        events = store.incident_log.events(incident_id)
        record = next(
            (r for r in store.incident_log.recent(limit=1000) if r.id == incident_id), None
        )
        if record is None:
            continue
        resolved += record.status == "resolved"
        still_open += record.status == "open"
        end = (
            f"resolved {_offset(begin, record.resolved_at)}" if record.resolved_at else "still open"
        )
        print(
            f"  {incident_id}: {record.rule} for {record.brand}, opened "
            f"{_offset(begin, record.opened_at)} at {events[0].level}, peak {record.peak_level}, "
            f"{end}, {len(events)} events",
            file=out,
        )
        by_sink: dict[str, dict[str, int]] = {}
        for d in store.outbox.deliveries(incident_id):
            by_sink.setdefault(d.sink, {}).setdefault(d.status, 0)
            by_sink[d.sink][d.status] += 1
        for sink, counts in sorted(by_sink.items()):
            summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            print(f"      alerts to {sink}: {summary}", file=out)
    if not incidents:
        print("  none: the configured rules did not open an incident for this crisis", file=out)
        return 1
    if leave_open:
        if still_open:
            print("\nstopped before the all-clear (--leave-open)", file=out)
        return 0 if still_open else 1
    return 0 if resolved else 1
