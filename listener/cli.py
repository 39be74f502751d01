"""The command line: ``listener run | check | drill | score | backtest | incidents | ack |
silence | config show | report | version``.

The only place that prints to the user, chooses exit codes, or turns a
:class:`~listener.errors.ListenerError` into one clear line (never a traceback).

Exit codes: 0 ok; 1 runtime error (store, network, listen address); 2 invalid
configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from listener import __version__
from listener.errors import ConfigError, ListenerError

DEFAULT_CONFIG = "rules.yaml"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="listener",
        description="Social listening and crisis alerting daemon.",
    )
    p.add_argument("--version", action="version", version=f"listener {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", "-c", help="rules file (default: rules.yaml, env LISTENER_CONFIG)")
    run.add_argument("--state", help="SQLite state file (default: listener.db, env LISTENER_STATE)")
    run.add_argument("--listen", help="metrics/health address (default: 127.0.0.1:9464)")
    run.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    run.add_argument("--log-format", choices=["auto", "json", "console"])

    check = sub.add_parser("check", help="validate a rules file")
    check.add_argument("config", nargs="?", default=None, help="rules file (default: rules.yaml)")
    check.add_argument(
        "--deep",
        action="store_true",
        help="also send a test notification to each sink (or verify its "
        "credentials) and report which are reachable",
    )

    drill = sub.add_parser(
        "drill", help="rehearse a brand crisis through the real pipeline in simulated time"
    )
    drill.add_argument("--config", "-c", help="rules file (default: rules.yaml)")
    drill.add_argument("--brand", help="brand to put in crisis (default: the first brand)")
    drill.add_argument("--state", help="state file for the drill (default: a temporary file)")
    drill.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    drill.add_argument(
        "--quiet-sinks",
        action="store_true",
        help="do not deliver to the configured sinks; only print the timeline",
    )
    drill.add_argument(
        "--report",
        metavar="FILE",
        default="listener-drill-report.html",
        help="write the post-incident report (HTML) of the drill's incidents here "
        "(default: listener-drill-report.html)",
    )
    drill.add_argument(
        "--no-report", action="store_true", help="do not write the post-incident report"
    )

    from listener.backtest import add_arguments as add_backtest_arguments  # light import

    backtest = sub.add_parser(
        "backtest",
        help="replay recorded mentions or a volume series through the rules in simulated time",
    )
    add_backtest_arguments(backtest)

    score = sub.add_parser(
        "score", help="score texts: sentiment, categories, emotion and matched brands (JSON lines)"
    )
    score.add_argument("texts", nargs="*", help="texts to score")
    score.add_argument("--file", "-f", help="one text per line; '-' reads standard input")
    score.add_argument(
        "--config", "-c", help="rules file for brands and scorer (default: rules.yaml)"
    )

    inc = sub.add_parser("incidents", help="list incidents, or show one with its history")
    inc.add_argument(
        "show",
        nargs="?",
        metavar="show",
        choices=["show"],
        help="'show ID' prints one incident's timeline, notifications and deliveries",
    )
    inc.add_argument("incident", nargs="?", help="incident id (with show)")
    inc.add_argument("--status", choices=["open", "resolved", "all"], default="all")
    inc.add_argument("--limit", type=int, default=50)
    inc.add_argument("--json", action="store_true", help="print JSON")
    inc.add_argument("--state", help="state file (default: listener.db, env LISTENER_STATE)")

    ack = sub.add_parser("ack", help="acknowledge an incident: stops reminders and escalation")
    ack.add_argument("incident", help="incident id")
    ack.add_argument("--by", required=True, help="who is on it")
    ack.add_argument("--note", default="", help="what is being done")
    ack.add_argument("--state", help="state file (default: listener.db, env LISTENER_STATE)")

    sil = sub.add_parser("silence", help="mute alerts for a while (add | list | expire)")
    sil_sub = sil.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = sil_sub.add_parser("add", help="add a silence")
    add.add_argument("--brand")
    add.add_argument("--rule")
    add.add_argument("--level")
    add.add_argument("--for", dest="duration", required=True, help="e.g. 2h")
    add.add_argument("--comment", required=True, help="why")
    add.add_argument("--by", required=True, help="who")
    lst = sil_sub.add_parser("list", help="list silences")
    exp = sil_sub.add_parser("expire", help="end a silence now")
    exp.add_argument("silence", help="silence id")
    for sp in (add, lst, exp):
        sp.add_argument("--state", help="state file (default: listener.db, env LISTENER_STATE)")

    cfg = sub.add_parser("config", help="show the effective configuration (secrets redacted)")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = cfg_sub.add_parser(
        "show", help="print the rules file with every default filled in, and the process settings"
    )
    show.add_argument(
        "--config", "-c", help="rules file (default: rules.yaml, env LISTENER_CONFIG)"
    )
    show.add_argument("--format", choices=["yaml", "json"], default="yaml")

    rep = sub.add_parser(
        "report",
        help="write the post-incident report of an incident: timeline chart, lifecycle, "
        "alerts, top mentions and authors",
    )
    rep.add_argument("incident", help="incident id (see `listener incidents`)")
    rep.add_argument(
        "--format",
        choices=["html", "md"],
        help="html (self-contained, chart embedded; the default) or md (GitHub Markdown, "
        "chart written beside --out as a PNG); default from --out's extension",
    )
    rep.add_argument("--out", "-o", help="file to write (default: standard output)")
    rep.add_argument("--state", help="state file (default: listener.db, env LISTENER_STATE)")
    rep.add_argument(
        "--config",
        "-c",
        help="rules file, for the rule's levels and description (default: rules.yaml "
        "when present, env LISTENER_CONFIG)",
    )

    sub.add_parser("version", help="print the version")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "version":
            print(f"listener {__version__}")
            return 0
        if args.command == "check":
            return _check(args.config, deep=args.deep)
        if args.command == "config":
            return _config_show(args)
        if args.command == "run":
            return _run(args)
        if args.command == "drill":
            return _drill(args)
        if args.command == "score":
            return _score(args)
        if args.command == "backtest":
            return _backtest(args)
        if args.command in ("incidents", "ack", "silence"):
            return _incidents(args)
        if args.command == "report":
            return _report(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except ListenerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `listener ... | head`: the reader left early; no traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # for the exit flush
        return 141  # as a shell reports a command ended by SIGPIPE
    return 2  # pragma: no cover - argparse enforces a command


def _config_path(given: str | None) -> str:
    import os

    return given or os.environ.get("LISTENER_CONFIG") or DEFAULT_CONFIG


def _check(path: str | None, *, deep: bool = False) -> int:
    import contextlib

    from listener.components import build_collectors, build_sinks
    from listener.config.load import load_config

    path = _config_path(path)
    config = load_config(path)
    problems = []
    try:  # constructors validate what the schema cannot (e.g. an X query too long)
        for collector in build_collectors(config, path).values():
            with contextlib.suppress(Exception):
                collector.close()
    except ConfigError as exc:
        problems.extend(exc.problems)
    try:
        build_sinks(config, path)
    except ConfigError as exc:
        problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    from listener.config.lint import config_warnings

    for warning in config_warnings(config, path):  # exit 0 still: the file can be used
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"{path}: ok ({len(config.brands)} brands, {len(config.sources)} sources, "
        f"{len(config.rules)} rules, {len(config.sinks)} sinks)"
    )
    if not deep:
        return 0
    return asyncio.run(_deep_check(config, path))


async def _deep_check(config: object, path: str) -> int:
    """Send a test notification through each sink (``send_test``) where it has one, else
    verify the receiver (``healthcheck``); print one line per sink."""
    from listener.components import build_sinks
    from listener.config.schema import Config

    assert isinstance(config, Config)
    failed = 0
    for name, sink in build_sinks(config, path).items():
        test = getattr(sink, "send_test", None)
        try:
            if test is not None:
                await test()
                print(f"sink {name}: reachable (test notification sent)")
            else:
                await sink.healthcheck()
                print(f"sink {name}: reachable")
        except ListenerError as exc:
            failed += 1
            print(f"sink {name}: UNREACHABLE: {exc}")
        finally:
            await sink.aclose()
    return 1 if failed else 0


def _config_show(args: argparse.Namespace) -> int:
    import json

    from listener.config.load import load_config
    from listener.config.secrets import config_secrets
    from listener.config.show import effective, render_yaml
    from listener.settings import Settings

    settings = Settings.from_env(config=args.config)
    config = load_config(settings.config)
    secrets = config_secrets(config)
    if args.format == "json":
        print(json.dumps(effective(config, settings, secrets), indent=2, ensure_ascii=False))
    else:
        print(render_yaml(config, settings, settings.config, secrets), end="")
    return 0


def _run(args: argparse.Namespace) -> int:
    from listener.app import Daemon
    from listener.log import configure_logging
    from listener.settings import Settings

    settings = Settings.from_env(
        config=args.config,
        state=args.state,
        listen=args.listen,
        log_level=args.log_level,
        log_format=args.log_format,
    )
    configure_logging(settings.log_level, settings.log_format)
    return asyncio.run(Daemon(settings).run())


def _drill(args: argparse.Namespace) -> int:
    from listener.config.load import load_config
    from listener.drill import run_drill
    from listener.log import configure_logging

    configure_logging("warning", "console")
    config = load_config(_config_path(args.config))
    return asyncio.run(
        run_drill(
            config,
            brand=args.brand,
            state=args.state,
            seed=args.seed,
            deliver=not args.quiet_sinks,
            out=sys.stdout,
            report=None if args.no_report else args.report,
        )
    )


def _incidents(args: argparse.Namespace) -> int:
    """``incidents``, ``ack`` and ``silence``: work on the state file directly (SQLite
    allows it while the daemon runs; the daemon picks changes up at its next tick)."""
    import json
    from datetime import UTC, datetime
    from pathlib import Path

    from listener import incidents
    from listener.config.duration import parse_duration
    from listener.settings import Settings
    from listener.store import Store

    settings = Settings.from_env(state=args.state)
    if not Path(settings.state).exists():
        raise ListenerError(f"no state file at {settings.state} (pass --state PATH)")
    store = Store.open(settings.state)
    now = datetime.now(UTC)
    try:
        if args.command == "ack":
            incidents.acknowledge(store, args.incident, args.by, now, args.note)
            print(
                f"acknowledged {args.incident} as {args.by}; the daemon announces it to "
                "whoever was alerted and stops reminders"
            )
            return 0
        if args.command == "silence":
            if args.action == "add":
                try:
                    duration = parse_duration(args.duration)
                except ValueError as exc:
                    raise ListenerError(f"--for: {exc}") from None
                silence = incidents.add_silence(
                    store,
                    now=now,
                    duration=duration,
                    by=args.by,
                    comment=args.comment,
                    brand=args.brand,
                    rule=args.rule,
                    level=args.level,
                )
                print(f"{silence.id}: silenced until {silence.ends_at:%Y-%m-%d %H:%M} UTC")
                return 0
            if args.action == "expire":
                if not store.expire_silence(args.silence, now):
                    raise incidents.NotFound(f"no active silence {args.silence!r}")
                print(f"{args.silence}: expired")
                return 0
            for sil in store.silences():
                state = "active" if sil.active(now) else "expired"
                match = (
                    ", ".join(
                        f"{k}={v}"
                        for k, v in (("brand", sil.brand), ("rule", sil.rule), ("level", sil.level))
                        if v
                    )
                    or "everything"
                )
                print(
                    f"{sil.id}  {state:<8} {match}  until {sil.ends_at:%Y-%m-%d %H:%M}  "
                    f"by {sil.created_by}: {sil.comment}"
                )
            return 0
        if args.show:
            if not args.incident:
                raise ListenerError("incidents show needs an incident id")
            detail = incidents.detail(store, args.incident)
            print(json.dumps(detail, indent=2) if args.json else incidents.render_detail(detail))
            return 0
        status = None if args.status == "all" else args.status
        rows = incidents.listing(store, status, args.limit)
        print(json.dumps(rows, indent=2) if args.json else incidents.render_listing(rows))
        return 0
    finally:
        store.close()


def _report(args: argparse.Namespace) -> int:
    """``report ID``: one incident's post-incident report, HTML or Markdown."""
    import os
    from datetime import UTC, datetime
    from pathlib import Path

    from listener.config.load import load_config
    from listener.report import Format, gather, render_document
    from listener.settings import Settings
    from listener.store import Store

    settings = Settings.from_env(state=args.state)
    if not Path(settings.state).exists():
        raise ListenerError(f"no state file at {settings.state} (pass --state PATH)")
    by_name = args.out is not None and args.out.lower().endswith(".md")
    fmt: Format = "md" if args.format == "md" or (args.format is None and by_name) else "html"
    config_path = args.config or os.environ.get("LISTENER_CONFIG")
    if config_path is None and Path(DEFAULT_CONFIG).exists():
        config_path = DEFAULT_CONFIG
    config = load_config(config_path) if config_path else None
    store = Store.open(settings.state)
    try:
        data = gather(store, args.incident, datetime.now(UTC), config)
    finally:
        store.close()
    text, images = render_document([data], fmt, args.out)
    if args.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(args.out)
    try:
        for name, png in images.items():
            (out.parent / name).write_bytes(png)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ListenerError(f"cannot write the report: {exc.filename}: {exc.strerror}") from None
    beside = "".join(f" and {out.parent / name}" for name in images)
    print(f"report on {data.incident.id} written to {out}{beside}")
    return 0


def _score(args: argparse.Namespace) -> int:
    """One JSON line per text, in input order."""
    import json
    from collections.abc import Iterable

    from listener.config.load import load_config
    from listener.matching.brands import BrandMatcher
    from listener.scoring import build_scorer, score_many
    from listener.scoring.categories import CategoryTagger, EmotionDetector

    config = load_config(_config_path(args.config))
    matcher = BrandMatcher(config.brands)
    scorer = build_scorer(config.scoring.sentiment)
    tagger = CategoryTagger(config.categories.custom, defaults=config.categories.defaults)
    emotions = EmotionDetector()
    if args.file and args.texts:
        raise ListenerError("give texts or --file, not both")
    lines: Iterable[str]
    if args.file == "-":
        lines = sys.stdin
    elif args.file:
        try:
            lines = open(args.file, encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as exc:
            raise ListenerError(f"{args.file}: {exc.strerror}") from None
    else:
        lines = args.texts
        if not lines:
            raise ListenerError("nothing to score: give texts or --file FILE ('-' for stdin)")
    out = sys.stdout
    batch: list[str] = []

    def flush() -> None:
        for text, sentiment in zip(batch, score_many(scorer, batch), strict=True):
            record = {
                "text": text,
                "sentiment": sentiment.label,
                "compound": round(sentiment.compound, 4),
                "categories": {h.name: list(h.evidence) for h in tagger.tag(text)},
                "emotion": [h.name for h in emotions.explain(text)],
                "brands": list(matcher.match(text)),
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        batch.clear()

    for line in lines:
        text = line.rstrip("\r\n")
        if text:
            batch.append(text)
        if len(batch) >= 512:
            flush()
    flush()
    out.flush()
    return 0


def _backtest(args: argparse.Namespace) -> int:
    from listener.backtest import run_backtest
    from listener.log import configure_logging

    configure_logging("warning", "console")
    return run_backtest(args, sys.stdout)
