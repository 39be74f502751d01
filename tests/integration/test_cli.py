"""The command line as a user runs it: exit codes, one-line errors, the drill."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from listener.cli import main
from listener.config.load import load_config, load_config_text
from listener.drill import run_drill
from listener.errors import UsageError
from tests.support.receiver import WebhookReceiver

REPO = Path(__file__).resolve().parents[2]

BROKEN = """brands:
  - name: Acme
    aliass: [acme]
rules:
  - name: neg
    levels:
      critical:
        when: {type: volum, window: 15m, above: 3}
routes:
  critical: [console]
sinks:
  console: {type: console}
"""


def _condition_types() -> list[str]:
    import typing

    from listener.config.schema import ConditionConfig

    members = typing.get_args(typing.get_args(ConditionConfig)[0])
    return [typing.get_args(m.model_fields["type"].annotation)[0] for m in members]


def listener(
    *args: str, cwd: Path = REPO, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``listener ARGS`` in a subprocess; ``env`` is added to the environment (None values
    of the caller's remove nothing: pass ``USER=""`` to unset it for the command)."""
    import os

    return subprocess.run(
        [sys.executable, "-m", "listener", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=stdin,
    )


def test_check_valid_file_exits_zero() -> None:
    """`listener check` on the shipped rules says ok and exits 0."""
    result = listener("check", "rules.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("rules.yaml: ok (1 brands")
    assert result.stderr == ""  # no warnings either


def test_check_broken_file_lists_problems_without_traceback(tmp_path: Path) -> None:
    """Each problem is one line with file, line, path and hint; exit 2; no traceback."""
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = listener("check", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"error: {path}:3: brands[0].aliass: unknown key 'aliass' (hint: known keys: aliases, "
        "exclude, exclusions, handles, hashtags, keywords, name, query; did you mean 'aliases'?)",
        f"error: {path}:8: rules[0].levels.critical.when.type: unknown condition type 'volum' "
        "(hint: known condition types: " + ", ".join(sorted(_condition_types())) + "; "
        "did you mean 'volume'?)",
    ]
    assert "Traceback" not in result.stderr


def test_check_missing_file_and_run_with_bad_config(tmp_path: Path) -> None:
    """A missing file and an invalid config stop `check` and `run` with exit 2."""
    result = listener("check", str(tmp_path / "none.yaml"))
    assert result.returncode == 2
    assert "file not found" in result.stderr
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = listener("run", "--config", str(path), "--state", str(tmp_path / "s.db"))
    assert result.returncode == 2
    assert "unknown condition type 'volum'" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_with_busy_address_is_one_line(tmp_path: Path) -> None:
    """A listen address in use is a runtime error: one line, exit 1."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = listener("run", "--state", str(tmp_path / "s.db"), "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: cannot listen on")
    assert "Traceback" not in result.stderr


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path: Path) -> None:
    """`listener score --file big | head -1`: the pipe closes under us; no traceback."""
    texts = tmp_path / "texts.txt"
    texts.write_text("GitHub is down again, this is terrible\n" * 20_000)
    proc = subprocess.Popen(
        [sys.executable, "-m", "listener", "score", "--file", str(texts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith(b"{")
    proc.stdout.close()  # what `head -1` does after its line
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err
    assert b"BrokenPipeError" not in err
    assert proc.returncode == 141


def test_version() -> None:
    """`listener version` prints the package version."""
    out = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, out
    try:
        assert main(["version"]) == 0
    finally:
        sys.stdout = sys_stdout
    assert out.getvalue().startswith("listener 0.")


def test_drill_on_shipped_rules_opens_escalates_and_resolves(tmp_path: Path) -> None:
    """The drill with the shipped rules shows the whole lifecycle, exits 0 and leaves the
    post-incident report of its incidents in the current directory."""
    result = listener("drill", "--quiet-sinks", "-c", str(REPO / "rules.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for mark in ("▲ OPENED", "▲ ESCALATED", "crisis", "▼ DE-ESCALATED", "✔ RESOLVED"):
        assert mark in out, out
    assert out.index("▲ OPENED") < out.index("▲ ESCALATED") < out.index("✔ RESOLVED")
    assert "peak crisis" in out
    # the all-clear names the level it ends and the peak, not "RESOLVED watch"
    resolved = next(line for line in out.splitlines() if "✔ RESOLVED" in line)
    assert "all clear (last watch, peak crisis)" in resolved, resolved
    assert "alerts to console: 5 muted" in out  # settled: no later run delivers them
    # the quiet end outlasts every rule's longest window plus its resolve_after
    assert "still open" not in out, out
    assert out.rstrip().endswith("post-incident report: listener-drill-report.html")
    html = (tmp_path / "listener-drill-report.html").read_text()
    sections = list(ET.fromstring(html.split("\n", 1)[1]).iter("section"))
    assert [s.get("id", "").split("-github-")[-1] for s in sections] == [
        "negative-surge",
        "volume-spike",
    ]
    assert all(len(list(s.iter("img"))) == 1 for s in sections)
    assert "DRILL" in "".join(sections[0].itertext())


def test_drill_report_flags_reach_the_drill(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report goes to listener-drill-report.html unless --report FILE or --no-report."""
    seen: list[object] = []

    async def fake_drill(config: object, **kwargs: object) -> int:
        seen.append(kwargs["report"])
        return 0

    monkeypatch.setattr("listener.drill.run_drill", fake_drill)
    monkeypatch.setattr("listener.log.configure_logging", lambda *args: None)
    rules = str(REPO / "rules.yaml")
    assert main(["drill", "-c", rules]) == 0
    assert main(["drill", "-c", rules, "--report", "x.html"]) == 0
    assert main(["drill", "-c", rules, "--no-report"]) == 0
    assert seen == ["listener-drill-report.html", "x.html", None]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as r:
        yield r


async def test_drill_delivers_marked_alerts_to_configured_sinks(
    receiver: WebhookReceiver,
) -> None:
    """The drill delivers through the outbox to real sinks, every alert marked as a drill."""
    text = (REPO / "rules.yaml").read_text()
    text = text.replace("crisis: [console]", "crisis: [console, hook]")
    text = text.replace(
        "sinks:\n", f"sinks:\n  hook: {{type: webhook, url: '{receiver.url()}'}}\n", 1
    )
    config = load_config_text(text, "rules.yaml", {})
    out = io.StringIO()
    code = await run_drill(config, out=out, start=datetime(2026, 1, 5, 9, 0, tzinfo=UTC))
    assert code == 0, out.getvalue()
    bodies = receiver.bodies()
    assert [b["kind"] for b in bodies] == ["escalated", "deescalated", "resolved"]
    assert all(b["drill"] for b in bodies)
    assert all(b["title"].startswith("[DRILL]") for b in bodies)
    assert len(set(receiver.idempotency_keys())) == len(bodies)
    assert "alerts to hook: 3 delivered" in out.getvalue()


@pytest.mark.parametrize(
    ("scenario", "category"),
    [
        ("breach", "security"),
        ("recall", "safety"),
        ("offensive", "offensive"),
        ("rumour", "rumour"),
    ],
)
async def test_each_drill_scenario_is_caught_tagged_and_explained(
    scenario: str, category: str
) -> None:
    """Every crisis the drill rehearses opens an incident on the shipped rules; its
    alerts carry the crisis's category, and an explanation whose drivers lead with the
    crisis's own words (the rumour: and then its correction brings the negative share
    down, so the incident resolves)."""
    from listener.drill import CRISES

    config = load_config(REPO / "rules.yaml")
    out = io.StringIO()
    code = await run_drill(
        config,
        out=out,
        deliver=False,
        scenario=scenario,
        start=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
    )
    text = out.getvalue()
    assert code == 0, text
    assert f"listener drill: {CRISES[scenario].title}, simulated" in text
    assert f"(the {category} category expected: yes)" in text
    whys = [line for line in text.splitlines() if ": Why: " in line]
    assert whys
    lead = [line.split(": Why: ", 1)[1].split(";")[0].lower() for line in whys]
    words = CRISES[scenario].drivers
    assert any(any(w in first for w in words) for first in lead), whys


def test_drill_scenarios_on_the_command_line_are_the_drills() -> None:
    """``--scenario``'s choices (named in listener.cli so the command line loads no
    drill) are exactly the crises the drill knows; an unknown one is a usage error."""
    from listener.cli import DRILL_SCENARIOS
    from listener.drill import CRISES

    assert set(DRILL_SCENARIOS) == set(CRISES)
    result = listener("drill", "--scenario", "flood")
    assert result.returncode == 2
    assert "invalid choice: 'flood'" in result.stderr


async def test_drill_reports_when_rules_miss_the_crisis() -> None:
    """Rules that never fire make the drill exit 1 with an explanation."""
    config = load_config(REPO / "rules.yaml")
    lax = config.model_copy(update={"rules": []})
    out = io.StringIO()
    assert await run_drill(lax, out=out, deliver=False) == 1
    assert "did not open an incident" in out.getvalue()
    with pytest.raises(UsageError, match="unknown brand 'Nope'"):
        await run_drill(config, brand="Nope", out=out, deliver=False)


def test_check_reports_problems_found_when_building_sources(tmp_path: Path) -> None:
    """An X search term too long for the API's query limit is a config error with its line."""
    path = tmp_path / "rules.yaml"
    long_alias = "a" * 80
    path.write_text(
        BROKEN.replace("aliass: [acme]", f"aliases: [{long_alias}]")
        .replace("type: volum", "type: volume")
        .replace(
            "rules:",
            "sources:\n  x:\n    type: twitter\n    bearer_token: t\n"
            "    max_query_length: 64\nrules:",
        )
        .replace("critical: [console]", "default: [console]")
    )
    result = listener("check", str(path))
    assert result.returncode == 2, result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}:5: sources.x: ")
    assert long_alias in line
    assert "Traceback" not in result.stderr


def test_score_texts_file_and_stdin(tmp_path: Path) -> None:
    """`listener score` prints one JSON line per text, from arguments, a file or stdin."""
    result = listener("score", "Is anyone else's GitHub down? outage again", "lovely day")
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert (first["sentiment"], first["brands"]) == ("negative", ["GitHub"])
    assert "outage" in first["categories"]
    assert first["compound"] < 0
    assert (second["brands"], second["categories"]) == ([], {})
    path = tmp_path / "texts.txt"
    path.write_text("GitHub charged me twice, I want a refund\n\n@github thanks, fixed!\n")
    from_file = listener("score", "--file", str(path))
    lines = [json.loads(line) for line in from_file.stdout.splitlines()]
    assert [r["text"] for r in lines] == [
        "GitHub charged me twice, I want a refund",
        "@github thanks, fixed!",
    ]
    assert "pricing" in lines[0]["categories"]
    piped = subprocess.run(
        [sys.executable, "-m", "listener", "score", "--file", "-"],
        input="GitHub is down again\n",
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert json.loads(piped.stdout)["sentiment"] == "negative"
    missing = listener("score", "--file", str(tmp_path / "none.txt"))
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: ")
    assert listener("score").returncode == 2  # nothing to score: a usage error


def test_check_deep_reports_reachable_and_unreachable_sinks(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    """`check --deep` sends a test notification through each sink and says which failed."""
    import socket

    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    path = tmp_path / "rules.yaml"
    path.write_text(
        BROKEN.replace("aliass: [acme]", "aliases: [acme]")
        .replace("type: volum", "type: volume")
        .replace("critical: [console]", "critical: [console, up, down]")
        + f"  up: {{type: webhook, url: '{receiver.url()}'}}\n"
        + f"  down: {{type: webhook, url: 'http://127.0.0.1:{dead}/hook'}}\n"
    )
    result = listener("check", "--deep", str(path))
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert "sink up: reachable (test notification sent)" in lines
    assert any(line.startswith("sink down: UNREACHABLE:") for line in lines)
    assert any(line.startswith("sink console: reachable") for line in lines)
    (test,) = receiver.bodies()
    assert test["drill"] is True


FAILS_AT_RUN_TIME = """brands:
  - name: Acme
sources:
  x: {type: twitter, bearer_token: ""}
routes:
  default: [console]
sinks:
  console: {type: console}
  slack: {type: slack, webhook_url: notaurl}
  hook:
    type: webhook
    url: "http://[::1:19642/"
    headers:
      X-Token: "abc\\r\\nX-Injected: 1"
      "Bad Name": "x"
scoring:
  sentiment: {type: transformers, model: /nonexistent}
"""


def test_check_and_run_refuse_values_that_would_fail_at_run_time(tmp_path: Path) -> None:
    """An empty token, a URL that is not one, a broken IPv6 host, a header that would
    smuggle a line and a missing model directory: one line each, exit 2, no traceback;
    `run` refuses the same file."""
    path = tmp_path / "rules.yaml"
    path.write_text(FAILS_AT_RUN_TIME)
    result = listener("check", str(path))
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert [line.split(" (hint: ")[0] for line in lines] == [
        f"error: {path}:4: sources.x.bearer_token: must not be empty",
        f"error: {path}:9: sinks.slack.webhook_url: not an http:// or https:// URL",
        f"error: {path}:12: sinks.hook.url: not a valid URL: Invalid IPv6 URL",
        f"error: {path}:14: sinks.hook.headers.X-Token: the header value contains a line "
        "break or control character",
        f"error: {path}:15: sinks.hook.headers.Bad Name: 'Bad Name' is not a valid HTTP "
        "header name",
        f"error: {path}:17: scoring.sentiment.model: sentiment model path '/nonexistent' "
        "does not exist",
    ]
    assert all(" (hint: " in line for line in lines)
    result = listener("run", "--config", str(path), "--state", str(tmp_path / "s.db"))
    assert result.returncode == 2
    assert "sinks.hook.url: not a valid URL" in result.stderr
    assert "Traceback" not in result.stderr


WARNS = """brands:
  - name: Acme
    aliases: [Acme]
    query: acme NOT hiring
rules:
  - name: neg
    levels:
      watch:
        when: {type: volume, window: 15m, above: 10}
        exit: {type: volume, window: 15m, above: 5}
routes:
  default: [console]
sinks:
  console: {type: console}
"""


def test_check_prints_warnings_and_exits_zero(tmp_path: Path) -> None:
    """Warnings (an alias that bypasses the query's NOT, an exit that is the when test
    with a lower number) are printed as `warning: file:line: path: ...`; exit stays 0."""
    path = tmp_path / "rules.yaml"
    path.write_text(WARNS)
    result = listener("check", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: ok (1 brands")
    lines = result.stderr.strip().splitlines()
    assert [line.split(": ", 3)[:3] for line in lines] == [
        ["warning", f"{path}:4", "brands[0].query"],
        ["warning", f"{path}:10", "rules[0].levels.watch.exit"],
    ]
    assert "write exclude: 'hiring'" in lines[0]
    assert "once it falls below 5 the level is kept" in lines[1]
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- usage


@pytest.fixture(scope="module")
def incident_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A state file with one real incident (opened, escalated, resolved)."""
    from tests.support.incident_state import build_state

    path = tmp_path_factory.mktemp("state") / "listener.db"
    incident_id, _ = build_state(path)
    return path, incident_id


BAD_USAGE: list[tuple[str, int, str]] = [
    # (arguments, exit code, a fragment of the one line on stderr)
    ("", 2, "required: COMMAND"),
    ("frobnicate", 2, "invalid choice: 'frobnicate'"),
    ("run --listen 127.0.0.1:99999", 2, "invalid listen address '127.0.0.1:99999'"),
    ("run --listen nonsense", 2, "invalid listen address 'nonsense'"),
    ("run --log-level loud", 2, "invalid choice: 'loud'"),
    ("run --log-format xml", 2, "invalid choice: 'xml'"),
    ("check {tmp}/none.yaml", 2, "file not found"),
    ("check {tmp}", 2, "cannot read"),
    ("config show --format toml", 2, "invalid choice: 'toml'"),
    ("config show --config {tmp}/none.yaml", 2, "file not found"),
    ("drill --seed many", 2, "argument --seed"),
    ("drill --leave-open", 2, "--leave-open needs --state FILE"),
    ("drill --brand Nope", 2, "unknown brand 'Nope' (known: GitHub)"),
    ("score", 2, "nothing to score"),
    ("score text --file {tmp}/t.txt", 2, "give texts or --file, not both"),
    ("score --file {tmp}/none.txt", 1, "none.txt"),
    ("score --file {tmp}", 1, "error: "),
    ("score --config {tmp}/none.yaml text", 2, "file not found"),
    ("backtest", 2, "required: file"),
    ("backtest {tmp}/none.jsonl", 1, "file not found"),
    ("backtest {tmp}/m.jsonl --map body=text", 2, "--map applies to CSV mention files"),
    ("backtest {tmp}/m.csv --map body=text", 2, "unknown field 'body'"),
    ("backtest {tmp}/m.jsonl --kind xml", 2, "invalid choice: 'xml'"),
    ("incidents --state {tmp}/none.db", 1, "no state file at"),
    ("incidents --state {tmp}/garbage.db", 1, "cannot open state file"),
    ("incidents show --state {state}", 2, "incidents show needs an incident id"),
    ("incidents show nope --state {state}", 1, "no incident 'nope'"),
    ("incidents --limit 0 --state {state}", 2, "argument --limit"),
    ("incidents --limit lots --state {state}", 2, "argument --limit"),
    ("incidents --status closed --state {state}", 2, "invalid choice: 'closed'"),
    ("incidents hide --state {state}", 2, "invalid choice: 'hide'"),
    ("ack --state {state}", 2, "required: incident"),
    ("ack nope --state {state}", 1, "no incident 'nope'"),
    ("ack {incident} --state {state}", 1, "is resolved"),
    ("ack {incident} --by '' --state {state}", 2, "say who: --by NAME"),
    ("silence", 2, "required: ACTION"),
    ("silence add --brand Acme --for forever --comment x --state {state}", 2, "--for: invalid"),
    ("silence add --brand Acme --for 0s --comment x --state {state}", 2, "positive duration"),
    ("silence add --brand Acme --for 2h --state {state}", 2, "required: --comment"),
    ("silence add --brand Acme --for 2h --comment ' ' --state {state}", 2, "--comment: say why"),
    ("silence add --for 2h --comment x --state {state}", 2, "add --all"),
    ("silence add --all --brand Acme --for 2h --comment x --state {state}", 2, "--all mutes"),
    ("silence expire nope --state {state}", 1, "no active silence 'nope'"),
    ("report", 2, "required: incident"),
    ("report {incident} --state {tmp}/none.db", 1, "no state file at"),
    ("report {incident} --state {state} --format pdf", 2, "invalid choice: 'pdf'"),
    ("report nope --state {state}", 1, "no incident 'nope'"),
    ("report {incident} --state {state} --out {tmp}/t.txt/r.html", 1, "cannot write the report"),
]


@pytest.mark.parametrize(
    ("command", "code", "message"), BAD_USAGE, ids=[c for c, _, _ in BAD_USAGE]
)
def test_bad_usage_is_one_line_with_its_exit_code(
    command: str,
    code: int,
    message: str,
    tmp_path: Path,
    incident_state: tuple[Path, str],
) -> None:
    """Every command with a bad flag value, a missing argument, an unreadable file or a
    missing state file: the documented exit code and one line on stderr, no traceback."""
    import shlex

    state, incident_id = incident_state
    (tmp_path / "t.txt").write_text("GitHub is down\n")
    (tmp_path / "garbage.db").write_text("not a database\n" * 100)
    (tmp_path / "m.jsonl").write_text("")
    (tmp_path / "m.csv").write_text("text,created\nhi,2026-01-01T00:00:00Z\n")
    argv = shlex.split(command.format(tmp=tmp_path, state=state, incident=incident_id))
    result = listener(*argv, env={"USER": "alice"})
    assert "Traceback" not in result.stderr
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    assert message in lines[0]


def _actions(parser: object, prog: str = "listener") -> Iterator[tuple[str, object]]:
    import argparse

    assert isinstance(parser, argparse.ArgumentParser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, f"{prog} {name}")
        else:
            yield prog, action


def test_every_option_of_every_command_has_help() -> None:
    """Each argument and flag of each (sub)command says what it is for."""
    from listener.cli import _parser

    missing = [
        f"{prog} {'/'.join(action.option_strings) or action.dest}"  # type: ignore[attr-defined]
        for prog, action in _actions(_parser())
        if not (action.help or "").strip()  # type: ignore[attr-defined]
    ]
    assert missing == []


def test_every_command_has_a_description_and_examples() -> None:
    """`listener CMD --help` describes the command and ends with examples."""
    import argparse

    from listener.cli import _parser

    def commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    yield from commands(sub)

    for parser in commands(_parser()):
        assert parser.description, parser.prog
        assert (parser.epilog or "").startswith("examples:\n  listener"), parser.prog
    result = listener("backtest", "--help", env={"COLUMNS": "80"})
    assert result.returncode == 0
    for token in ("created_at=tweet_created", "brand=airline", "examples:"):
        assert token in result.stdout  # not broken across lines


ACME_RULES = """brands:
  - name: Acme
rules:
  - name: neg
    levels:
      watch:
        when: {type: volume, window: 15m, above: 10}
routes:
  default: [console]
sinks:
  console: {type: console}
"""


def test_silences_default_to_user_and_a_mute_all_needs_all(tmp_path: Path) -> None:
    """`silence list` says when there are none; --by defaults to $USER; a silence without
    a matcher needs --all off a terminal."""
    from listener.store import Store

    state = str(tmp_path / "s.db")
    Store.open(state).close()
    rules = tmp_path / "rules.yaml"
    rules.write_text(ACME_RULES)
    empty = listener("silence", "list", "--state", state)
    assert (empty.returncode, empty.stdout) == (0, "no silences\n")
    added = listener(
        "silence", "add", "--brand", "Acme", "--for", "2h", "--comment", "maintenance",
        "--state", state, "--config", str(rules), env={"USER": "alice"},
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    everything = listener(
        "silence", "add", "--all", "--for", "1h", "--comment", "migration", "--state", state,
        "--config", str(rules), env={"USER": "bob"},
    )  # fmt: skip
    assert everything.returncode == 0, everything.stderr
    listing = listener("silence", "list", "--state", state).stdout.splitlines()
    assert len(listing) == 2
    assert any("brand=Acme" in line and "by alice: maintenance" in line for line in listing)
    assert any("everything" in line and "by bob: migration" in line for line in listing)
    nobody = listener(
        "silence", "add", "--brand", "Acme", "--for", "2h", "--comment", "x", "--state", state,
        "--config", str(rules), env={"USER": ""},
    )  # fmt: skip
    assert nobody.returncode == 2
    assert "--by NAME" in nobody.stderr


def test_silence_add_checks_brand_rule_and_level_against_the_rules_file(tmp_path: Path) -> None:
    """`silence add` refuses, as POST /silences does, a brand, rule or level the rules
    file does not have (it would silence nothing): exit 2 naming the known ones."""
    from listener.store import Store

    state = str(tmp_path / "s.db")
    Store.open(state).close()
    rules = tmp_path / "rules.yaml"
    rules.write_text(ACME_RULES)
    base = ["silence", "add", "--for", "2h", "--comment", "x", "--by", "ana", "--state", state]
    for extra, field in (
        (["--brand", "Acme Corp"], "unknown brand 'Acme Corp'"),
        (["--rule", "negative-surge"], "unknown rule 'negative-surge'"),
        (["--brand", "Acme", "--level", "crisis"], "unknown level 'crisis'"),
    ):
        refused = listener(*base, *extra, "--config", str(rules))
        assert refused.returncode == 2, refused.stderr
        assert field in refused.stderr
        assert "Traceback" not in refused.stderr
    assert listener("silence", "list", "--state", state).stdout == "no silences\n"
    added = listener(*base, "--brand", "Acme", "--level", "watch", "--config", str(rules))
    assert added.returncode == 0, added.stderr


def test_a_mute_all_silence_is_confirmed_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a terminal, a silence without --brand/--rule/--level asks first; 'n' adds none."""
    from listener.store import Store

    state = str(tmp_path / "s.db")
    Store.open(state).close()
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setenv("USER", "carol")
    answers = iter(["n", "y"])
    prompts: list[str] = []
    monkeypatch.setattr("builtins.input", lambda prompt: prompts.append(prompt) or next(answers))
    argv = ["silence", "add", "--for", "2h", "--comment", "storm", "--state", state]
    assert main(argv) == 1
    assert "not silenced" in capsys.readouterr().err
    assert main(argv) == 0
    assert prompts == ["mute EVERY alert for 2h? [y/N] "] * 2
    (silence,) = Store.open(state).silence_log.select()
    assert (silence.created_by, silence.brand, silence.rule, silence.level) == (
        "carol",
        None,
        None,
        None,
    )


def test_drill_kept_open_in_a_state_file_for_ack_and_report(tmp_path: Path) -> None:
    """`drill --state F --leave-open` stops before the all-clear and keeps the incident,
    marked as a drill, for `incidents`, `ack` (as $USER) and `report`. A sink whose secret
    is unset is noted and not delivered to; its alerts are muted, none left pending."""
    from listener.store import Store

    rules = tmp_path / "rules.yaml"
    text = (REPO / "rules.yaml").read_text()
    text = text.replace("crisis: [console]", "crisis: [console, pager]")
    pager = "  pager: {type: pagerduty, routing_key: '${PD_KEY}'}\n"
    rules.write_text(text.replace("sinks:\n", "sinks:\n" + pager, 1))
    state = tmp_path / "drill.db"
    env = {"USER": "erin"}
    result = listener(
        "drill", "-c", str(rules), "--state", str(state), "--leave-open", "--no-report",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "note: sink 'pager' is unusable: PD_KEY is not set" in result.stderr
    assert "stopped before the all-clear (--leave-open)" in result.stdout
    assert "✔ RESOLVED" not in result.stdout
    listing = listener("incidents", "--state", str(state), "--status", "open", cwd=tmp_path)
    rows = listing.stdout.splitlines()[1:]
    assert rows, listing.stdout
    assert all(row.endswith("[DRILL]") for row in rows), listing.stdout
    incident_id = next(r.split()[0] for r in rows if "negative-surge" in r)
    assert f"{incident_id} is open: try  listener ack {incident_id}" in result.stdout
    store = Store.open(state)
    try:
        assert store.outbox.pending() == {}
        pager = [d for d in store.outbox.deliveries(incident_id) if d.sink == "pager"]
        assert pager
        assert {(d.status, d.last_error) for d in pager} == {("muted", "drill: PD_KEY not set")}
        assert {d.status for d in store.outbox.deliveries(incident_id) if d.sink == "console"} == {
            "delivered"
        }
    finally:
        store.close()
    shown = listener("incidents", "show", incident_id, "--state", str(state), "--json")
    assert json.loads(shown.stdout)["drill"] is True
    acked = listener("ack", incident_id, "--state", str(state), env={"USER": "erin"})
    assert acked.returncode == 0, acked.stderr
    assert f"acknowledged {incident_id} as erin" in acked.stdout
    report = listener("report", incident_id, "--state", str(state), "-c", str(rules),
                      cwd=tmp_path, env=env)  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert report.stdout == ""  # not 170 KB of HTML on the terminal
    written = tmp_path / f"listener-report-{incident_id}.html"
    assert f"written to {written.name}" in report.stderr
    assert written.read_text().startswith("<!DOCTYPE html>")
    again = listener("drill", "-c", str(rules), "--state", str(state), "--leave-open",
                     "--quiet-sinks", "--no-report", cwd=tmp_path, env=env)  # fmt: skip
    assert again.returncode == 0, again.stdout  # its crisis is not taken for duplicates
    later = listener("incidents", "--state", str(state), "--status", "open", cwd=tmp_path)
    (row,) = [r for r in later.stdout.splitlines() if "negative-surge" in r]
    assert row.split()[0] > incident_id  # opened after the first drill's simulated hours


def test_read_only_commands_run_without_sink_secrets(tmp_path: Path) -> None:
    """`score` and `backtest` run with a sink's ${VARIABLE} unset, saying which sink is
    unusable; `check` still reports it as an error; `score` runs with no rules file."""
    import os

    rules = tmp_path / "rules.yaml"
    rules.write_text(
        BROKEN.replace("aliass: [acme]", "aliases: [acme]")
        .replace("type: volum", "type: volume")
        .replace("critical: [console]", "critical: [console, hook]")
        + "  hook: {type: webhook, url: '${HOOK_URL}'}\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "HOOK_URL"}
    score = subprocess.run(
        [sys.executable, "-m", "listener", "score", "-c", str(rules), "acme is down, awful"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert score.returncode == 0, score.stderr
    assert json.loads(score.stdout)["brands"] == ["Acme"]
    assert (
        score.stderr == "note: sink 'hook' is unusable: HOOK_URL is not set (score sends nothing)\n"
    )
    mentions = tmp_path / "m.jsonl"
    mentions.write_text("")
    backtest = subprocess.run(
        [sys.executable, "-m", "listener", "backtest", str(mentions), "-c", str(rules)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert "HOOK_URL is not set" in backtest.stderr
    assert "Traceback" not in backtest.stderr
    check = subprocess.run(
        [sys.executable, "-m", "listener", "check", str(rules)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert check.returncode == 2
    assert "environment variable HOOK_URL is not set" in check.stderr
    bare = tmp_path / "bare"
    bare.mkdir()
    plain = listener("score", "GitHub is down again", cwd=bare)  # no rules.yaml here
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["sentiment"] == "negative"
    assert json.loads(plain.stdout)["brands"] == []
    assert "brands not matched" in plain.stderr
    quiet = listener("-q", "score", "GitHub is down again", cwd=bare)
    assert (quiet.returncode, quiet.stderr) == (0, "")


def test_verbosity_flags_move_the_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    """-v and -q, before or after the command, move the drill's log level from warning."""
    levels: list[str] = []

    async def fake_drill(config: object, **kwargs: object) -> int:
        return 0

    monkeypatch.setattr("listener.drill.run_drill", fake_drill)
    monkeypatch.setattr("listener.log.configure_logging", lambda level, fmt: levels.append(level))
    rules = str(REPO / "rules.yaml")
    for argv in (
        ["drill", "-c", rules],
        ["-v", "drill", "-c", rules],
        ["drill", "-c", rules, "-vv"],
        ["-q", "drill", "-c", rules],
    ):
        assert main(argv) == 0
    assert levels == ["warning", "info", "debug", "error"]


def test_an_unexpected_error_is_one_line_and_its_traceback_needs_v(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug surfaces as one line and exit 1; -v shows its traceback."""

    def broken(args: object) -> int:
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("listener.cli._score", broken)
    assert main(["score", "x"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: unexpected RuntimeError: boom (a bug; run with -v for the traceback and "
        "report it)\n"
    )
    assert main(["-v", "score", "x"]) == 1
    assert "Traceback" in capsys.readouterr().err
