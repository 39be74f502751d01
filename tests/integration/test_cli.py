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


def listener(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "listener", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
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


async def test_drill_reports_when_rules_miss_the_crisis() -> None:
    """Rules that never fire make the drill exit 1 with an explanation."""
    config = load_config(REPO / "rules.yaml")
    lax = config.model_copy(update={"rules": []})
    out = io.StringIO()
    assert await run_drill(lax, out=out, deliver=False) == 1
    assert "did not open an incident" in out.getvalue()
    assert await run_drill(config, brand="Nope", out=out, deliver=False) == 2


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
    assert listener("score").returncode == 1


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
