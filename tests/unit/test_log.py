"""Structured logging: JSON off a terminal, and secrets never reach the output."""

from __future__ import annotations

import io
import json
import logging
import os

import pytest
import structlog

from listener.log import REDACTED, Redactor, configure_logging


def test_json_lines_when_not_a_terminal() -> None:
    """Off a terminal each event is one JSON object with level and timestamp."""
    out = io.StringIO()
    configure_logging("info", "auto", stream=out)
    structlog.get_logger("t").info("polled", source="news", new=3)
    line = json.loads(out.getvalue())
    assert line["event"] == "polled"
    assert line["source"] == "news"
    assert line["new"] == 3
    assert line["level"] == "info"
    assert "timestamp" in line


def test_level_filtering() -> None:
    """Events below the configured level are dropped."""
    out = io.StringIO()
    configure_logging("warning", "json", stream=out)
    structlog.get_logger("t").info("quiet")
    structlog.get_logger("t").warning("loud")
    assert "quiet" not in out.getvalue()
    assert "loud" in out.getvalue()


def test_configured_secrets_are_redacted_anywhere() -> None:
    """A configured secret is masked inside any value, nested or not."""
    redact = Redactor(["https://hooks.example.com/T000/B000/XXXX", "tok-123456"])
    event = {
        "event": "send_failed",
        "error": "POST https://hooks.example.com/T000/B000/XXXX failed",
        "nested": {"headers": ["Bearer tok-123456"]},
    }
    out = redact(None, "error", event)
    assert "XXXX" not in json.dumps(out)
    assert "tok-123456" not in json.dumps(out)
    assert out["error"] == f"POST {REDACTED} failed"


def test_secret_looking_keys_and_url_parts_are_redacted() -> None:
    """Keys named like secrets, URL credentials and token query parameters are masked."""
    redact = Redactor()
    out = redact(
        None,
        "info",
        {
            "event": "x",
            "authorization": "Bearer abc",
            "url": "https://user:pw@example.com/feed?token=s3cr3t&q=acme",
            "headers": {"X-Api-Key": "k", "Accept": "json"},
        },
    )
    assert out["authorization"] == REDACTED
    assert "pw" not in out["url"]
    assert "s3cr3t" not in out["url"]
    assert "q=acme" in out["url"]
    assert out["headers"] == {"X-Api-Key": REDACTED, "Accept": "json"}


def test_redaction_in_rendered_output() -> None:
    """The processor is part of the configured chain, before rendering."""
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    from listener.log import REDACTOR

    REDACTOR.update(["super-secret-webhook"])
    try:
        structlog.get_logger("t").warning("oops", error="posting to super-secret-webhook")
    finally:
        REDACTOR.update([])
    assert "super-secret-webhook" not in out.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_console_on_a_terminal_honours_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal the console renderer colours its output, unless NO_COLOR is set."""
    monkeypatch.delenv("NO_COLOR", raising=False)
    coloured = _Terminal()
    configure_logging("info", "auto", stream=coloured)
    structlog.get_logger("t").warning("source failing", source="news")
    assert "\x1b[" in coloured.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")
    plain = _Terminal()
    configure_logging("info", "auto", stream=plain)
    structlog.get_logger("t").warning("source failing", source="news")
    assert "source failing" in plain.getvalue()
    assert "\x1b[" not in plain.getvalue()


def test_a_closed_pipe_is_counted_never_raised() -> None:
    """Writing to a pipe whose reader is gone loses the line, counts it, and raises nothing."""
    from listener.log import WRITE_ERRORS

    read_end, write_end = os.pipe()
    os.close(read_end)
    stream = os.fdopen(write_end, "w")
    lost: list[int] = []
    unsubscribe = WRITE_ERRORS.subscribe(lambda: lost.append(1))
    try:
        configure_logging("info", "json", stream=stream)
        structlog.get_logger("t").info("first")
        structlog.get_logger("t").error("second")
        stream.flush()  # the descriptor now points at /dev/null: nothing left to fail
    finally:
        unsubscribe()
        stream.close()
        configure_logging("info", "json", stream=io.StringIO())
    assert len(lost) == 2


def test_a_closed_stream_object_is_counted_never_raised() -> None:
    """A closed file object (ValueError on write) is survived the same way."""
    from listener.log import WRITE_ERRORS

    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    out.close()
    before = WRITE_ERRORS.count
    structlog.get_logger("t").warning("lost")
    assert WRITE_ERRORS.count == before + 1
    configure_logging("info", "json", stream=io.StringIO())


def test_apscheduler_records_are_structured() -> None:
    """APScheduler's stdlib warnings come out as JSON lines with level and logger; its
    info chatter is dropped."""
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    logger = logging.getLogger("apscheduler.scheduler")
    logger.info("Added job %s", "poll:news")
    logger.warning("Run time of job %r was missed by %s", "poll:news", "0:00:02")
    (line,) = (json.loads(raw) for raw in out.getvalue().splitlines())
    assert line["event"] == "Run time of job 'poll:news' was missed by 0:00:02"
    assert line["level"] == "warning"
    assert line["logger"] == "apscheduler.scheduler"
    assert "timestamp" in line


def test_an_events_own_level_is_kept_as_severity() -> None:
    """A field named level (an incident's) survives as severity; level is the log level."""
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    structlog.get_logger("t").info("silenced", level="critical")
    line = json.loads(out.getvalue())
    assert (line["level"], line["severity"]) == ("info", "critical")
