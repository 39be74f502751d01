"""The command line: ``listener run | check | drill | score | backtest | incidents | ack |
silence | config show | report | version``.

The only place that prints to the user, chooses exit codes, or turns a
:class:`~listener.errors.ListenerError` into one clear line (never a traceback).

Exit codes: 0 ok; 1 runtime error (store, network, listen address); 2 invalid
configuration or usage. A usage error (argparse's or a :class:`UsageError`) is one line
too. ``-v`` shows the traceback of an unexpected error; ``-q`` drops notes and info logs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from listener import __version__
from listener.errors import ConfigError, ListenerError, UsageError
from listener.langcodes import normal_language
from listener.model import SENTIMENT_LABELS
from listener.roles import ROLES

if TYPE_CHECKING:
    from listener.bus import Bus
    from listener.bus.publish import CommandsTopic
    from listener.config.schema import Config
    from listener.settings import Settings

DEFAULT_CONFIG = "rules.yaml"
DRILL_SCENARIOS = ("outage", "breach", "recall", "offensive", "rumour")
"""``listener drill --scenario`` (listener.drill.CRISES, which a test keeps in step): named
here so the command line is built without loading the drill."""
LEVELS = ("debug", "info", "warning", "error")
STATE_HELP = (
    "state file, or distributed mode's postgresql://USER@HOST/DB (default: listener.db, "
    "env LISTENER_STATE)"
)
URL_HELP = (
    "a running listener's API instead of a state file, e.g. http://host:9464 (env "
    "LISTENER_URL; writes need LISTENER_API_TOKEN)"
)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2) and examples kept as written."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see '{self.prog} --help')\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, not {value}")
    return value


def _listen_address(text: str) -> str:
    """``HOST:PORT`` with a port in 0..65535 (``:9464`` listens on every interface; port 0
    takes any free port, which the ``started`` log line names)."""
    from listener.httpapi import parse_listen

    hint = "expected HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:9464"
    try:
        _, port = parse_listen(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid listen address {text!r}: {hint}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid listen address {text!r}: {hint}")
    return text


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _sub(
    sub: argparse._SubParsersAction[_Parser],
    name: str,
    help: str,
    description: str,
    *examples: str,
) -> _Parser:
    """A subcommand with its one-line help, a description and examples."""
    return sub.add_parser(
        name,
        help=help,
        description=textwrap.fill(description, 79),
        epilog=_examples(*examples),
        parents=[_verbosity(suppress=True)],
    )


def _verbosity(*, suppress: bool) -> _Parser:
    """``-v``/``-q``, accepted before and after the command (``listener run -v``)."""
    p = _Parser(add_help=False)
    default = argparse.SUPPRESS if suppress else 0
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default,
        help="more output: info (then debug) logs, tracebacks of unexpected errors",
    )
    p.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=default,
        help="less output: only errors in the logs, no notes on standard error",
    )
    return p


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="listener",
        description="Social listening and crisis alerting daemon.",
        epilog=_examples(
            "listener check rules.yaml",
            "listener run --config rules.yaml",
            "listener drill --quiet-sinks",
            "listener incidents --status open",
        )
        + "\n\nexit codes: 0 ok, 1 runtime error, 2 invalid configuration or usage",
        parents=[_verbosity(suppress=False)],
    )
    p.add_argument(
        "--version", action="version", version=f"listener {__version__}", help="print the version"
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _sub(
        sub,
        "run",
        "run the daemon",
        "Poll the sources, score and match mentions, evaluate the rules and deliver alerts "
        "until SIGINT/SIGTERM; SIGHUP reloads the rules file.",
        "listener run",
        "listener run --config /etc/listener/rules.yaml --state /var/lib/listener/listener.db",
        "LISTENER_LOG_FORMAT=json listener run --listen 0.0.0.0:9464",
        "LISTENER_BUS=kafka://127.0.0.1:9092 listener run --role ingest",
        "LISTENER_BUS=kafka://127.0.0.1:9092 listener run --role deliver "
        "--state postgresql://listener@db/listener",
    )
    run.add_argument("--config", "-c", help="rules file (default: rules.yaml, env LISTENER_CONFIG)")
    run.add_argument(
        "--state",
        help="SQLite state file, or in distributed mode the shared postgresql://USER@HOST/DB "
        "(default: listener.db, env LISTENER_STATE)",
    )
    run.add_argument(
        "--listen",
        type=_listen_address,
        help="metrics/health address HOST:PORT (default: 127.0.0.1:9464, env LISTENER_LISTEN)",
    )
    run.add_argument(
        "--log-level",
        choices=LEVELS,
        help="log events at this level and above (default: info, env LISTENER_LOG_LEVEL; "
        "-v/-q move it)",
    )
    run.add_argument(
        "--log-format",
        choices=["auto", "json", "console"],
        help="json, console, or auto: console on a terminal, else json (default: auto, "
        "env LISTENER_LOG_FORMAT)",
    )
    run.add_argument(
        "--role",
        choices=ROLES,
        help="all: the whole pipeline in this process (embedded mode, the default); "
        "collector, ingest, evaluate, deliver: a worker of distributed mode on LISTENER_BUS "
        "(collector and deliver: with --state postgresql://...; docs/scaling.md; env "
        "LISTENER_ROLE)",
    )

    publish = _sub(
        sub,
        "publish",
        "put mentions on the bus",
        "Put the mentions of a JSON Lines file (the backtest's mention format, one "
        "Mention.to_dict object a line) on the bus's mentions topic (LISTENER_BUS), keyed by "
        "source and id, for distributed mode's ingest workers: a replay, or a feed from "
        "outside. Prints how many were published.",
        "listener publish mentions.jsonl",
        "LISTENER_BUS=kafka://127.0.0.1:9092 listener publish - < mentions.jsonl",
    )
    publish.add_argument("path", help="JSON Lines file of mentions ('-': standard input)")

    tick = _sub(
        sub,
        "tick",
        "put ticks on the bus",
        "Put ticks on the bus's ticks topic (LISTENER_BUS): for every brand of the rules "
        "file, one at each multiple of --every from --from to --to, in time order. An "
        "evaluator runs a brand's rules at each of its ticks: a replay on distributed mode "
        "publishes its mentions, lets them be counted, then publishes the ticks "
        "(evaluators run with LISTENER_TICKER=off; docs/scaling.md).",
        "listener tick --from 2015-02-17T00:00:00Z --to 2015-02-24T00:00:00Z --every 1m",
    )
    tick.add_argument("--config", "-c", help="rules file (default: rules.yaml)")
    tick.add_argument(
        "--from", dest="start", required=True, type=_instant, help="first instant (ISO 8601)"
    )
    tick.add_argument("--to", dest="end", required=True, type=_instant, help="last instant")
    tick.add_argument(
        "--every", type=_duration_arg, default=timedelta(minutes=1), help="step (default: 1m)"
    )

    check = _sub(
        sub,
        "check",
        "validate a rules file",
        "Validate a rules file: every problem on one line with file, line, path and hint "
        "(exit 2). Every ${VARIABLE} the file uses must be set.",
        "listener check rules.yaml",
        "listener check --deep rules.yaml",
    )
    check.add_argument("config", nargs="?", default=None, help="rules file (default: rules.yaml)")
    check.add_argument(
        "--deep",
        action="store_true",
        help="also send a test notification to each sink (or verify its "
        "credentials) and report which are reachable",
    )

    drill = _sub(
        sub,
        "drill",
        "rehearse a brand crisis through the real pipeline in simulated time",
        "Play a scripted crisis (an outage by default; --scenario for a data breach, a "
        "product recall, an offensive post or a rumour) through matching, scoring, windows, "
        "rules, incidents and the configured sinks in simulated time; every alert and "
        "incident is marked as a drill. Exit 1 when the rules miss the crisis.",
        "listener drill --quiet-sinks",
        "listener drill --scenario breach --quiet-sinks",
        "listener drill --state drill.db --leave-open   # then: listener ack ID --state drill.db",
        "listener drill --brand Acme --no-report",
    )
    drill.add_argument("--config", "-c", help="rules file (default: rules.yaml)")
    drill.add_argument("--brand", help="brand to put in crisis (default: the first brand)")
    drill.add_argument(
        "--scenario",
        choices=DRILL_SCENARIOS,
        default="outage",
        help="the crisis to rehearse: outage (default), breach (a data breach), recall (a "
        "product recall), offensive (an offensive post), rumour (a rumour that spreads, "
        "then is corrected)",
    )
    drill.add_argument(
        "--state",
        help="keep the drill's incidents in this state file, for `listener incidents`, "
        "`ack` and `report` (default: a temporary file, thrown away)",
    )
    drill.add_argument("--seed", type=int, default=7, help="random seed (default: 7)")
    drill.add_argument(
        "--quiet-sinks",
        action="store_true",
        help="do not deliver to the configured sinks (their alerts are recorded as muted); "
        "only print the timeline",
    )
    drill.add_argument(
        "--leave-open",
        action="store_true",
        help="stop at the peak, before the all-clear, leaving the incident open in --state "
        "to try `listener ack` and `listener report` on",
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

    backtest = _sub(
        sub,
        "backtest",
        "replay recorded mentions or a volume series through the rules in simulated time",
        "Replay recorded mentions (JSON Lines, or CSV with --map) or a volume series "
        "(timestamp,value) through the same engine in simulated time and report the "
        "incidents the rules would have opened. See docs/backtest.md.",
        "listener backtest mentions.jsonl",
        "listener backtest Tweets.csv --map text=text --map created_at=tweet_created "
        "--map id=tweet_id --map brand=airline",
        "listener backtest volume.csv --rule volume-spike --out scores.csv",
    )
    add_backtest_arguments(backtest)

    score = _sub(
        sub,
        "score",
        "score texts: sentiment, categories, emotion and matched brands (JSON lines)",
        "Score texts: one JSON line each with language, sentiment, crisis categories, "
        "emotion and the brands matched (brands only with a rules file: --config, or "
        "./rules.yaml). The language is detected unless --language gives it; a text in a "
        "language no scorer reads is 'unscored' (docs/languages.md).",
        "listener score 'Is anyone else's GitHub down?'",
        "listener score --file texts.txt",
        "cat texts.txt | listener score --file -",
    )
    score.add_argument("texts", nargs="*", help="texts to score")
    score.add_argument("--file", "-f", help="one text per line; '-' reads standard input")
    score.add_argument(
        "--language", "-l", help="the texts' language (en, fr, ...; default: detected)"
    )
    score.add_argument(
        "--config",
        "-c",
        help="rules file for brands and scorer (default: rules.yaml when present, env "
        "LISTENER_CONFIG; without one, brands are not matched)",
    )

    inc = _sub(
        sub,
        "incidents",
        "list incidents, or show one with its history",
        "List incidents (newest first; drills marked [DRILL]), or show one with its "
        "timeline, notifications and deliveries.",
        "listener incidents --status open",
        "listener incidents show 20260302T101500Z-acme-negative-surge",
        "listener incidents --json --limit 10",
        "listener incidents show 20260302T1015 --url http://listener.internal:9464",
    )
    inc.add_argument(
        "show",
        nargs="?",
        metavar="show",
        choices=["show"],
        help="'show ID' prints one incident's timeline, notifications and deliveries",
    )
    inc.add_argument(
        "incident", nargs="?", help="incident id, or its start when only one id begins so"
    )
    inc.add_argument(
        "--status",
        choices=["open", "resolved", "all"],
        default="all",
        help="list only open or resolved incidents (default: all)",
    )
    inc.add_argument(
        "--limit",
        type=_positive_int,
        default=50,
        help="list at most this many, newest first (default: 50)",
    )
    inc.add_argument("--json", action="store_true", help="print JSON")
    inc.add_argument("--state", metavar="STATE", help=STATE_HELP)
    inc.add_argument("--url", metavar="URL", help=URL_HELP)
    inc.add_argument(
        "--config",
        "-c",
        help="rules file, for the rule's window and the brand's names in 'show' (default: "
        "rules.yaml when present, env LISTENER_CONFIG)",
    )

    ack = _sub(
        sub,
        "ack",
        "acknowledge an incident: stops reminders and escalation",
        "Acknowledge an open incident: the daemon announces it to whoever was alerted and "
        "stops reminders and escalation.",
        "listener ack 20260302T101500Z-acme-negative-surge --note 'status page updated'",
        "listener ack 20260302T101500Z-acme-negative-surge --by alice",
        "listener ack 20260302T1015 --url http://listener.internal:9464",
    )
    ack.add_argument("incident", help="incident id, or its start when only one id begins so")
    ack.add_argument("--by", metavar="NAME", help="who is on it (default: $USER)")
    ack.add_argument("--note", metavar="TEXT", default="", help="what is being done")
    ack.add_argument("--state", metavar="STATE", help=STATE_HELP)
    ack.add_argument("--url", metavar="URL", help=URL_HELP)

    men = _sub(
        sub,
        "mentions",
        "search the stored mentions; export them as CSV or JSON Lines",
        "List the stored mentions the filters select, newest first, or export them all "
        "(--format csv|jsonl, up to 50,000).",
        "listener mentions --brand Acme --sentiment negative --since 6h",
        "listener mentions --search outage --format csv > outage.csv",
        "listener mentions --brand Acme --format jsonl --url http://listener.internal:9464",
    )
    for flag, what in (
        ("brand", "only mentions of this brand"),
        ("source", "only from this source"),
        ("category", "only with this category (outage, pricing, ...)"),
        ("language", "only in this language (en, de, ...)"),
        ("search", "text anywhere in the mention, any case"),
        ("until", "written before this instant (ISO 8601; default now)"),
    ):
        men.add_argument(f"--{flag}", help=what)
    men.add_argument(
        "--sentiment",
        choices=list(SENTIMENT_LABELS),
        help="only this sentiment (unscored: in a language no scorer reads)",
    )
    men.add_argument("--since", default="24h", help="how far back (24h) or an instant")
    men.add_argument("--limit", type=_positive_int, help="at most this many (default 50)")
    men.add_argument(
        "--format", choices=["table", "json", "csv", "jsonl"], default="table", help="output"
    )
    men.add_argument("--state", metavar="STATE", help=STATE_HELP)
    men.add_argument("--url", metavar="URL", help=URL_HELP)

    note = _sub(
        sub,
        "note",
        "put a note on an incident's timeline",
        "Put a note on an incident's timeline (open or resolved): it shows in the console, "
        "`incidents show` and the report.",
        "listener note 20260302T1015 'holding statement posted on X and the status page'",
    )
    note.add_argument("incident", help="incident id, or its start when only one id begins so")
    note.add_argument("text", help="what happened")
    assign = _sub(
        sub,
        "assign",
        "give an incident to someone",
        "Give an incident to someone (on its timeline; the last assignment holds).",
        "listener assign 20260302T1015 'Dana Lee'",
    )
    assign.add_argument("incident", help="incident id, or its start when only one id begins so")
    assign.add_argument("to", help="who has it now")
    for sp in (note, assign):
        sp.add_argument("--by", metavar="NAME", help="who (default: $USER)")
        sp.add_argument("--state", metavar="STATE", help=STATE_HELP)
        sp.add_argument("--url", metavar="URL", help=URL_HELP)

    sil = _sub(
        sub,
        "silence",
        "mute alerts for a while (add | list | expire)",
        "Mute matching alerts for a while, with a reason; list and expire silences.",
        "listener silence add --brand Acme --for 2h --comment 'planned maintenance'",
        "listener silence list",
        "listener silence expire sil-1a2b3c4d",
    )
    sil_sub = sil.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = _sub(
        sil_sub,
        "add",
        "add a silence",
        "Mute alerts matching every given --brand, --rule and --level for a while. Without "
        "any of them the silence mutes everything: confirm on a terminal, or pass --all.",
        "listener silence add --brand Acme --for 2h --comment 'planned maintenance'",
        "listener silence add --rule volume-spike --level watch --for 30m --comment noisy",
        "listener silence add --all --for 1h --comment 'migration' --by alice",
    )
    add.add_argument("--brand", help="mute only alerts about this brand")
    add.add_argument("--rule", help="mute only alerts of this rule")
    add.add_argument("--level", help="mute only alerts at this level")
    add.add_argument(
        "--all",
        action="store_true",
        help="mute every alert (needed without --brand, --rule or --level, off a terminal)",
    )
    add.add_argument("--for", dest="duration", required=True, help="how long, e.g. 30m, 2h, 1d")
    add.add_argument("--comment", metavar="TEXT", required=True, help="why")
    add.add_argument("--by", metavar="NAME", help="who (default: $USER)")
    add.add_argument(
        "--config",
        "-c",
        help="rules file that --brand, --rule and --level are checked against "
        "(default: env LISTENER_CONFIG, else ./rules.yaml when present)",
    )
    lst = _sub(
        sil_sub,
        "list",
        "list silences",
        "List silences, active and expired.",
        "listener silence list",
    )
    exp = _sub(
        sil_sub,
        "expire",
        "end a silence now",
        "End a silence now.",
        "listener silence expire sil-1a2b3c4d",
    )
    exp.add_argument("silence", help="silence id (see `listener silence list`)")
    exp.add_argument(
        "--config",
        "-c",
        help="rules file listing the brands (distributed mode: a silence of every brand "
        "ends for each; default: env LISTENER_CONFIG, else ./rules.yaml when present)",
    )
    for sp in (add, lst, exp):
        sp.add_argument("--state", metavar="STATE", help=STATE_HELP)
        sp.add_argument("--url", metavar="URL", help=URL_HELP)

    cfg = _sub(
        sub,
        "config",
        "show the effective configuration (secrets redacted)",
        "Show the effective configuration, secrets redacted.",
        "listener config show",
        "listener config show --config rules.yaml --format json",
    )
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = _sub(
        cfg_sub,
        "show",
        "print the rules file with every default filled in, and the process settings",
        "Print the rules file with every default filled in, and the process settings from "
        "LISTENER_*; every secret shown as ***.",
        "listener config show --format json",
    )
    show.add_argument(
        "--config", "-c", help="rules file (default: rules.yaml, env LISTENER_CONFIG)"
    )
    show.add_argument(
        "--format", choices=["yaml", "json"], default="yaml", help="yaml or json (default: yaml)"
    )

    rep = _sub(
        sub,
        "report",
        "write the post-incident report of an incident: timeline chart, lifecycle, "
        "alerts, top mentions and authors",
        "Write the post-incident report of an incident: timeline chart, lifecycle, alerts, "
        "top mentions and authors. Written to listener-report-ID.html (or .md) unless --out "
        "says where; --out - writes to standard output. See docs/report.md.",
        "listener report 20260302T101500Z-acme-negative-surge",
        "listener report 20260302T101500Z-acme-negative-surge --out review.md",
        "listener report 20260302T101500Z-acme-negative-surge --format md --out -",
    )
    rep.add_argument("incident", help="incident id (see `listener incidents`)")
    rep.add_argument(
        "--format",
        choices=["html", "md"],
        help="html (self-contained, chart embedded; the default) or md (GitHub Markdown, "
        "chart written beside --out as a PNG); default from --out's extension",
    )
    rep.add_argument(
        "--out",
        "-o",
        help="file to write, '-' for standard output (default: listener-report-ID.html, or .md)",
    )
    rep.add_argument("--state", metavar="STATE", help=STATE_HELP)
    rep.add_argument(
        "--config",
        "-c",
        help="rules file, for the rule's levels and description (default: rules.yaml "
        "when present, env LISTENER_CONFIG)",
    )

    dig = _sub(
        sub,
        "digest",
        "show a scheduled digest as it would be sent (sends nothing)",
        "Show the digest NAME of rules.yaml's digests: as it was or would be sent at its "
        "last fire time before --at (default: now), from the stored mentions and "
        "incidents. Sends nothing; the daemon sends digests on their schedule. See "
        "docs/rules.md#digests.",
        "listener digest morning",
        "listener digest weekly-review --at 2026-12-07T10:00:00Z --format json",
    )
    dig.add_argument("name", help="the digest's name under digests: in rules.yaml")
    dig.add_argument(
        "--at",
        type=_instant,
        help="show the digest of the last fire time before this instant (default: now)",
    )
    dig.add_argument(
        "--format", choices=["text", "json"], default="text", help="text or json (default: text)"
    )
    dig.add_argument("--state", metavar="STATE", help=STATE_HELP)
    dig.add_argument("--config", "-c", help="rules file (default: rules.yaml, env LISTENER_CONFIG)")

    _sub(sub, "version", "print the version", "Print the version.", "listener version")
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
        if args.command == "publish":
            return _publish(args)
        if args.command == "tick":
            return _tick(args)
        if args.command == "drill":
            return _drill(args)
        if args.command == "score":
            return _score(args)
        if args.command == "backtest":
            return _backtest(args)
        if args.command in ("incidents", "ack", "note", "assign", "silence"):
            return _incidents(args)
        if args.command == "mentions":
            return _mentions(args)
        if args.command == "report":
            return _report(args)
        if args.command == "digest":
            return _digest(args)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ListenerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `listener ... | head`: the reader left early; no traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # for the exit flush
        return 141  # as a shell reports a command ended by SIGPIPE
    except Exception as exc:  # a bug: one line, the traceback with -v
        if args.verbose > 0:
            import traceback

            traceback.print_exc()
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
        print(
            f"error: unexpected {detail} (a bug; run with -v for the traceback and report it)",
            file=sys.stderr,
        )
        return 1
    return 2  # pragma: no cover - argparse enforces a command


def _verbosity_of(args: argparse.Namespace) -> int:
    return int(args.verbose) - int(args.quiet)


def _level(args: argparse.Namespace, base: str) -> str:
    """``base`` moved one step down per ``-v`` and one step up per ``-q``."""
    if _verbosity_of(args) == 0 or base not in LEVELS:
        return base
    index = LEVELS.index(base)
    return LEVELS[max(0, min(len(LEVELS) - 1, index - _verbosity_of(args)))]


def _note(args: argparse.Namespace, text: str) -> None:
    """A note for the person at the terminal, on standard error; ``-q`` drops it."""
    if args.quiet <= 0:
        print(f"note: {text}", file=sys.stderr)


def _user(given: str | None, flag: str = "--by") -> str:
    """Who does it: ``--by``, else ``$USER``."""
    who = (given if given is not None else os.environ.get("USER") or "").strip()
    if not who:
        raise UsageError(f"say who: {flag} NAME (default: $USER, which is not set)")
    return who


def _config_path(given: str | None) -> str:
    return given or os.environ.get("LISTENER_CONFIG") or DEFAULT_CONFIG


def _instant(text: str) -> datetime:
    """An argparse type: an ISO 8601 instant with a UTC offset (``Z`` allowed)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 instant (e.g. 2015-02-17T00:00:00Z)"
        ) from None
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (add Z or +00:00)")
    return when.astimezone(UTC)


def _duration_arg(text: str) -> timedelta:
    """An argparse type: a positive duration (``30s``, ``1m``)."""
    from listener.config.duration import parse_duration
    from listener.errors import DurationError

    try:
        value = parse_duration(text)
    except DurationError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError(f"{text!r} is not above 0")
    return value


def _load_for_reading(args: argparse.Namespace, path: str, *, why: str) -> Config:
    """The config for a command that polls no source: sinks and sources whose
    ``${VARIABLE}`` is unset are noted as unusable instead of stopping it."""
    from listener.config.load import load_config_without_secrets

    config, unusable = load_config_without_secrets(path)
    for block, names in unusable.items():
        kind, _, name = block.partition(".")
        unset = ", ".join(names)
        verb = "is" if len(names) == 1 else "are"
        _note(args, f"{kind[:-1]} {name!r} is unusable: {unset} {verb} not set ({why})")
    args.unusable = unusable
    return config


def _config_if_any(args: argparse.Namespace, *, why: str) -> Config | None:
    """The rules file of ``--config`` (or LISTENER_CONFIG, or ./rules.yaml when it
    exists), read as :func:`_load_for_reading` does; None when there is none."""
    path = args.config or os.environ.get("LISTENER_CONFIG")
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    return _load_for_reading(args, path, why=why) if path else None


def _check(path: str | None, *, deep: bool = False) -> int:
    import contextlib

    from listener.components import build_collectors, build_sinks
    from listener.config.lint import load_with_warnings

    path = _config_path(path)
    config, warnings = load_with_warnings(path)
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
    for warning in warnings:  # exit 0 still: the file can be used
        print(f"warning: {warning}", file=sys.stderr)
    digests = f", {len(config.digests)} digests" if config.digests else ""
    print(
        f"{path}: ok ({len(config.brands)} brands, {len(config.sources)} sources, "
        f"{len(config.rules)} rules, {len(config.sinks)} sinks{digests})"
    )
    if not deep:
        return 0
    return asyncio.run(_deep_check(config, path))


async def _deep_check(config: object, path: str) -> int:
    """Send a test notification through each sink (``send_test``) where it has one, else
    verify the receiver (``healthcheck``); print one line per sink."""
    from listener.components import build_sinks
    from listener.config.schema import Config
    from listener.sinks.base import SendsTest

    assert isinstance(config, Config)
    failed = 0
    for name, sink in build_sinks(config, path).items():
        try:
            if isinstance(sink, SendsTest):
                await sink.send_test()
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
        role=args.role,
    )
    try:  # LISTENER_LISTEN is checked like --listen
        _listen_address(settings.listen)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"LISTENER_LISTEN: {exc}") from None
    level = settings.log_level if args.log_level else _level(args, settings.log_level.lower())
    configure_logging(level, settings.log_format)
    if settings.role == "ingest":
        from listener.roles.ingest import IngestWorker

        worker = IngestWorker(_bus(settings), settings.config, state_dir=settings.bus_state)
        return worker.run(settings.listen)
    if settings.role == "evaluate":
        from listener.roles.evaluate import EvaluateWorker

        evaluator = EvaluateWorker(
            _bus(settings),
            settings.config,
            state_dir=settings.bus_state,
            evaluate_every=settings.evaluate_every,
            ticker=settings.ticker,
        )
        return evaluator.run(settings.listen)
    if settings.role == "collector":
        from listener.roles.collect import CollectorWorker

        collector = CollectorWorker(
            _bus(settings),
            settings.config,
            state_dir=settings.bus_state,
            database=settings.state,
            poll_timeout=settings.poll_timeout,
            retention=settings.mention_retention,
            check_every=settings.evaluate_every,
        )
        return collector.run(settings.listen)
    if settings.role == "deliver":
        from listener.roles.deliver import DeliverWorker

        deliverer = DeliverWorker(
            _bus(settings),
            settings.config,
            state_dir=settings.bus_state,
            database=settings.state,
            api_token=settings.api_token,
            console_refresh=settings.console_refresh,
        )
        return deliverer.run(settings.listen)
    return asyncio.run(Daemon(settings).run())


def _bus(settings: Settings) -> Bus:
    from listener.bus import Bus

    if not settings.bus:
        raise UsageError(
            "distributed mode needs LISTENER_BUS (e.g. kafka://127.0.0.1:9092; docs/scaling.md)"
        )
    return Bus.parse(settings.bus)


def _publish(args: argparse.Namespace) -> int:
    from listener.backtest import read_jsonl
    from listener.bus import encode_mention, mention_key
    from listener.bus.publish import produce
    from listener.log import configure_logging
    from listener.settings import Settings

    configure_logging(_level(args, "warning"), "console")
    bus = _bus(Settings.from_env())
    records = read_jsonl("/dev/stdin" if args.path == "-" else args.path)
    messages = [(mention_key(r.mention), encode_mention(r.mention)) for r in records]
    produce(bus, "mentions", messages)
    print(f"published {len(records):,} mentions to {bus.name('mentions')} on {bus.brokers}")
    return 0


def _tick(args: argparse.Namespace) -> int:
    import json

    from listener.bus import tick_message
    from listener.bus.publish import produce
    from listener.config.load import load_config_without_secrets
    from listener.log import configure_logging
    from listener.roles.evaluate import tick_times
    from listener.settings import Settings

    configure_logging(_level(args, "warning"), "console")
    if args.end < args.start:
        raise UsageError("--to is before --from")
    bus = _bus(Settings.from_env())
    config, _ = load_config_without_secrets(_config_path(args.config))  # only its brands
    brands = config.brand_names()
    times = tick_times(args.start - timedelta(microseconds=1), args.end, args.every)
    messages = [
        (brand, json.dumps(tick_message(brand, at)).encode()) for at in times for brand in brands
    ]
    produce(bus, "ticks", messages)
    print(
        f"published {len(times):,} ticks for {len(brands):,} brands to {bus.name('ticks')} "
        f"on {bus.brokers}"
    )
    return 0


def _drill(args: argparse.Namespace) -> int:
    from listener.drill import run_drill
    from listener.log import configure_logging

    if args.leave_open and args.state is None:
        raise UsageError(
            "--leave-open needs --state FILE: the open incident would go with the temporary "
            "state (e.g. --state drill.db)"
        )
    configure_logging(_level(args, "warning"), "console")
    why = "the drill does not deliver to it" if not args.quiet_sinks else "--quiet-sinks"
    config = _load_for_reading(args, _config_path(args.config), why=why)
    mute = {
        block.partition(".")[2]: f"drill: {', '.join(names)} not set"
        for block, names in args.unusable.items()
        if block.startswith("sinks.")
    }
    return asyncio.run(
        run_drill(
            config,
            brand=args.brand,
            state=args.state,
            seed=args.seed,
            deliver=not args.quiet_sinks,
            out=sys.stdout,
            report=None if args.no_report else args.report,
            mute=mute,
            leave_open=args.leave_open,
            scenario=args.scenario,
        )
    )


def _existing_state(state: str) -> None:
    """A state file must exist (a command that reads one must not create an empty one); a
    distributed mode's PostgreSQL database is opened as it is."""
    from listener.store import is_database_url

    if not is_database_url(state) and not Path(state).exists():
        raise ListenerError(f"no state file at {state} (pass --state PATH)")


def _incidents(args: argparse.Namespace) -> int:
    """``incidents``, ``ack`` and ``silence``: work on the state file directly (SQLite
    allows it while the daemon runs; the daemon picks changes up at its next tick)."""
    import json
    from datetime import UTC, datetime

    from listener import incidents
    from listener.settings import Settings
    from listener.store import Store

    if args.command == "incidents" and args.show and not args.incident:
        raise UsageError("incidents show needs an incident id (see `listener incidents`)")
    url = args.url or os.environ.get("LISTENER_URL")
    if url:
        if args.state:
            raise UsageError("give --url or --state, not both")
        return _remote_incidents(args, url)
    settings = Settings.from_env(state=args.state)
    if args.command == "ack":
        by = _user(args.by)
    if args.command == "silence" and args.action == "add":
        duration, by = _silence_args(args)
        _check_silence_scope(args)
    _existing_state(settings.state)
    evaluators = _evaluators(args, settings)
    store = Store.open(settings.state)
    now = datetime.now(UTC)
    try:
        if args.command == "ack":
            done = incidents.acknowledge(store, args.incident, by, now, args.note, evaluators)
            print(_acknowledged(done, by))
            return 0
        if args.command == "note":
            done = incidents.add_note(store, args.incident, _user(args.by), args.text, now)
            print(f"noted on {done}")
            return 0
        if args.command == "assign":
            done = incidents.assign(store, args.incident, args.to, _user(args.by), now)
            print(f"{done} is assigned to {' '.join(args.to.split())}")
            return 0
        if args.command == "silence":
            if args.action == "add":
                silence = incidents.add_silence(
                    store,
                    now=now,
                    duration=duration,
                    by=by,
                    comment=args.comment,
                    brand=args.brand,
                    rule=args.rule,
                    level=args.level,
                    evaluators=evaluators,
                )
                print(f"{silence.id}: silenced until {silence.ends_at:%Y-%m-%d %H:%M} UTC")
                return 0
            if args.action == "expire":
                incidents.expire_silence(store, args.silence, now, evaluators)
                print(f"{args.silence}: expired")
                return 0
            print(
                incidents.render_silences(
                    [incidents.silence_dict(sil, now) for sil in store.silence_log.select()]
                )
            )
            return 0
        if args.show:
            config = _config_if_any(args, why="showing an incident sends nothing")
            detail = incidents.detail(store, args.incident, config, explain=True)
            print(json.dumps(detail, indent=2) if args.json else incidents.render_detail(detail))
            return 0
        status = None if args.status == "all" else args.status
        rows = incidents.listing(store, status, args.limit)
        print(json.dumps(rows, indent=2) if args.json else incidents.render_listing(rows))
        return 0
    finally:
        store.close()


def _mentions(args: argparse.Namespace) -> int:
    """``mentions``: the inbox's query (listener.inbox) on the state file or a running
    listener's API; a table, JSON, or a CSV / JSON Lines export to standard output."""
    import json
    from datetime import UTC, datetime

    from listener import inbox

    params = {
        k: v
        for k, v in {
            "brand": args.brand,
            "source": args.source,
            "sentiment": args.sentiment,
            "category": args.category,
            "language": args.language,
            "q": args.search,
            "since": args.since,
            "until": args.until,
        }.items()
        if v
    }
    export = args.format in ("csv", "jsonl") and args.limit is None
    if args.limit is not None:
        params["limit"] = str(min(args.limit, inbox.PAGE_MAX))
    url = args.url or os.environ.get("LISTENER_URL")
    if url:
        if args.state:
            raise UsageError("give --url or --state, not both")
        from listener.remote import RemoteApi

        api = RemoteApi(url, os.environ.get("LISTENER_API_TOKEN"))
        try:
            if export:
                sys.stdout.write(api.export(params, args.format))
                return 0
            rows = api.mentions(params)
        finally:
            api.close()
    else:
        from listener.errors import RequestError
        from listener.settings import Settings
        from listener.store import Store

        settings = Settings.from_env(state=args.state)
        _existing_state(settings.state)
        try:
            query = inbox.parse_query(params, datetime.now(UTC), export=export)
        except RequestError as exc:
            raise UsageError(str(exc)) from None
        store = Store.open(settings.state)
        try:
            found = inbox.search(store, query)
        finally:
            store.close()
        if export:
            sys.stdout.write((inbox.to_csv if args.format == "csv" else inbox.to_jsonl)(found))
            return 0
        rows = [r.as_dict() for r in found]
    if args.format == "json":
        print(json.dumps(rows, indent=2, ensure_ascii=False))
    elif args.format == "jsonl":
        sys.stdout.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    elif args.format == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(inbox.COLUMNS)
        writer.writerows([inbox.cell(r[c]) for c in inbox.COLUMNS] for r in rows)
    elif not rows:
        print("no mentions match")
    else:
        for r in rows:
            brands = ",".join(r["brands"]) or "-"
            text = " ".join(str(r["text"]).split())[:100]
            print(
                f"{r['created_at'][:16]}  {r['source']:<10} {r['sentiment']:<8} {brands:<12} {text}"
            )
    return 0


def _acknowledged(incident_id: str, by: str) -> str:
    return (
        f"acknowledged {incident_id} as {by}; the daemon announces it to whoever was alerted "
        "and stops reminders"
    )


def _remote_incidents(args: argparse.Namespace, url: str) -> int:
    """``incidents``, ``ack`` and ``silence`` against a running listener's API."""
    import json

    from listener import incidents
    from listener.remote import RemoteApi

    api = RemoteApi(url, os.environ.get("LISTENER_API_TOKEN"))
    try:
        if args.command == "ack":
            by = _user(args.by)
            print(_acknowledged(api.ack(args.incident, by, args.note), by))
            return 0
        if args.command == "note":
            print(f"noted on {api.note(args.incident, _user(args.by), args.text)}")
            return 0
        if args.command == "assign":
            done = api.assign(args.incident, args.to, _user(args.by))
            print(f"{done} is assigned to {' '.join(args.to.split())}")
            return 0
        if args.command == "silence":
            if args.action == "add":
                _, by = _silence_args(args)  # checked here; the scope is checked by the API
                made = api.add_silence(
                    {
                        "brand": args.brand,
                        "rule": args.rule,
                        "level": args.level,
                        "for": args.duration,
                        "comment": args.comment,
                        "by": by,
                    }
                )
                print(f"{made['id']}: silenced until {made['ends_at'][:16].replace('T', ' ')} UTC")
                return 0
            if args.action == "expire":
                api.expire_silence(args.silence)
                print(f"{args.silence}: expired")
                return 0
            print(incidents.render_silences(api.silences()))
            return 0
        if args.show:
            detail = api.incident(args.incident)
            print(json.dumps(detail, indent=2) if args.json else incidents.render_detail(detail))
            return 0
        status = None if args.status == "all" else args.status
        rows = api.incidents(status, args.limit)
        print(json.dumps(rows, indent=2) if args.json else incidents.render_listing(rows))
        return 0
    finally:
        api.close()


def _evaluators(args: argparse.Namespace, settings: Settings) -> CommandsTopic | None:
    """The evaluators to tell of an ack or a silence: those of distributed mode when the
    state is its shared PostgreSQL database (None on a state file: the daemon reads it)."""
    from listener.bus.publish import CommandsTopic
    from listener.store import is_database_url

    changes = args.command == "ack" or (
        args.command == "silence" and args.action in ("add", "expire")
    )
    if not changes or not is_database_url(settings.state):
        return None
    if not settings.bus:
        raise UsageError(
            "the state is distributed mode's database: set LISTENER_BUS too, so that the "
            "evaluators hear of it (docs/scaling.md)"
        )
    path = (args.config if args.command == "silence" else None) or os.environ.get("LISTENER_CONFIG")
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG

    def brands() -> list[str]:
        """The brands a silence of every brand may mute: one command each, for the
        evaluator that holds it."""
        if path is None:
            raise UsageError(
                "a silence of every brand must reach the evaluator of each: pass --config "
                "rules.yaml (or set LISTENER_CONFIG) for the list of brands"
            )
        from listener.config.load import load_config_without_secrets

        config, _ = load_config_without_secrets(path)
        return config.brand_names()

    return CommandsTopic(_bus(settings), brands)


def _check_silence_scope(args: argparse.Namespace) -> None:
    """``silence add``: the same check as ``POST /silences`` (a rule that exists, a brand
    it watches, one of its levels) against the rules file, when there is one to read."""
    from listener.api_models import check_silence_scope
    from listener.errors import InvalidRequest

    path = args.config or os.environ.get("LISTENER_CONFIG")
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    if path is None:
        _note(args, "no rules file: --brand, --rule and --level are not checked")
        return
    config = _load_for_reading(args, path, why="a silence sends nothing")
    try:
        check_silence_scope(config, args.brand, args.rule, args.level)
    except InvalidRequest as exc:
        raise UsageError(f"{exc} (in {path})") from None


def _silence_args(args: argparse.Namespace) -> tuple[timedelta, str]:
    """``silence add``: the duration and who, checked before the state file is touched;
    a silence that mutes everything is confirmed (a terminal) or asked for (``--all``)."""
    from listener.config.duration import parse_duration

    try:
        duration = parse_duration(args.duration)
    except (ValueError, ListenerError) as exc:
        raise UsageError(f"--for: {exc}") from None
    if duration <= timedelta(0):
        raise UsageError(f"--for: a silence needs a positive duration, not {args.duration!r}")
    if not args.comment.strip():
        raise UsageError("--comment: say why (it is shown with every muted alert)")
    by = _user(args.by)
    matchers = (args.brand, args.rule, args.level)
    if args.all and any(matchers):
        raise UsageError("--all mutes everything: leave out --brand, --rule and --level")
    if not args.all and not any(matchers):
        if not sys.stdin.isatty():
            raise UsageError(
                "no --brand, --rule or --level: this would mute every alert (hint: add "
                "--all if that is what you mean)"
            )
        answer = input(f"mute EVERY alert for {args.duration}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise ListenerError("not silenced")
    return duration, by


def _report(args: argparse.Namespace) -> int:
    """``report ID``: one incident's post-incident report, HTML or Markdown, to a file
    (``listener-report-ID.html`` by default) or, with ``--out -``, standard output."""
    import re
    from datetime import UTC, datetime

    from listener.report import Format, gather, render_document
    from listener.settings import Settings
    from listener.store import Store

    settings = Settings.from_env(state=args.state)
    _existing_state(settings.state)
    to_stdout = args.out == "-"
    by_name = args.out is not None and args.out.lower().endswith(".md")
    fmt: Format = "md" if args.format == "md" or (args.format is None and by_name) else "html"
    config = _config_if_any(args, why="a report sends nothing")
    store = Store.open(settings.state)
    try:
        data = gather(store, args.incident, datetime.now(UTC), config)
    finally:
        store.close()
    name = args.out
    if name is None:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", data.incident.id)
        name = f"listener-report-{safe}.{fmt}"
    text, images = render_document([data], fmt, None if to_stdout else name)
    if to_stdout:
        sys.stdout.write(text)
        return 0
    out = Path(name)
    try:
        for image, png in images.items():
            (out.parent / image).write_bytes(png)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ListenerError(f"cannot write the report: {exc.filename}: {exc.strerror}") from None
    beside = "".join(f" and {out.parent / image}" for image in images)
    print(f"report on {data.incident.id} written to {out}{beside}", file=sys.stderr)
    return 0


def _digest(args: argparse.Namespace) -> int:
    """``digest NAME``: the digest of its last fire time before ``--at``, as text or JSON."""
    import json

    from listener.config.duration import format_duration
    from listener.digests import PERIODS, gather, latest_fire, next_fire
    from listener.settings import Settings
    from listener.sinks.text import render_digest_text
    from listener.store import Store

    config = _load_for_reading(args, _config_path(args.config), why="a digest shown sends nothing")
    cfg = config.digests.get(args.name)
    if cfg is None:
        known = ", ".join(sorted(config.digests)) or "none"
        raise UsageError(f"no digest named {args.name!r} in the rules file (digests: {known})")
    at = args.at or datetime.now(UTC)
    fire = latest_fire(cfg, at)
    if fire is None:
        raise UsageError(
            f"digest {args.name!r} had no fire time in the {format_duration(PERIODS[cfg.every])} "
            f"before {at.isoformat()} (its next: {next_fire(cfg, at)})"
        )
    settings = Settings.from_env(state=args.state)
    _existing_state(settings.state)
    store = Store.open(settings.state)
    try:
        digest = gather(store, args.name, cfg, config.brand_names(), fire)
    finally:
        store.close()
    if args.format == "json":
        print(json.dumps(digest.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(render_digest_text(digest))
    return 0


def _score(args: argparse.Namespace) -> int:
    """One JSON line per text, in input order."""
    import json
    from collections.abc import Iterable

    from listener.config.schema import CategoriesConfig, ScoringConfig
    from listener.matching.brands import BrandMatcher
    from listener.scoring import build_languages, build_scorers
    from listener.scoring.categories import CategoryTagger, EmotionDetector

    if args.file and args.texts:
        raise UsageError("give texts or --file, not both")
    if not args.file and not args.texts:
        raise UsageError("nothing to score: give texts or --file FILE ('-' for stdin)")
    path = args.config or os.environ.get("LISTENER_CONFIG")
    if path is None and Path(DEFAULT_CONFIG).exists():
        path = DEFAULT_CONFIG
    matcher: BrandMatcher | None = None
    scoring, categories = ScoringConfig(), CategoriesConfig()
    if path is not None:
        config = _load_for_reading(args, path, why="score sends nothing")
        matcher = BrandMatcher(config.brands)
        scoring, categories = config.scoring, config.categories
    else:
        _note(args, f"no rules file ({DEFAULT_CONFIG} not found, no --config): brands not matched")
    scorers, languages = build_scorers(scoring), build_languages(scoring.languages)
    given: str | None = None
    if args.language is not None:
        given = normal_language(args.language)
        if given is None:
            raise UsageError(
                f"--language {args.language!r} is not a language code: use en, fr, de, ..."
            )
    tagger = CategoryTagger(categories.custom, defaults=categories.defaults)
    emotions = EmotionDetector()
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
    out = sys.stdout
    batch: list[str] = []

    def flush() -> None:
        spoken = [languages.resolve(text, given) for text in batch]
        for text, language, sentiment in zip(
            batch, spoken, scorers.scores(batch, spoken), strict=True
        ):
            record = {
                "text": text,
                "language": language,
                "sentiment": sentiment.label,
                "compound": round(sentiment.compound, 4),
                "categories": {h.name: list(h.evidence) for h in tagger.tag(text)},
                "emotion": [h.name for h in emotions.explain(text)],
                "brands": list(matcher.match(text)) if matcher is not None else [],
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

    configure_logging(_level(args, "warning"), "console")
    config = _load_for_reading(args, _config_path(args.config), why="a backtest delivers nothing")
    return run_backtest(args, sys.stdout, config=config)
