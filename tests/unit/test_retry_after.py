"""The one parser of servers' retry hints: clamped to an hour, garbage ignored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from listener.errors import RateLimited, SinkUnavailable
from listener.retry_after import (
    MAX_RETRY_AFTER,
    clamp_retry_after,
    retry_after_from_headers,
    retry_after_value,
)

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("30", 30.0),
        (" 0 ", 0.0),
        ("2.5", 2.5),
        ("1000000000000", MAX_RETRY_AFTER),
        ("9" * 400, MAX_RETRY_AFTER),
        ("Mon, 02 Mar 2026 09:01:30 GMT", 90.0),
        ("Mon, 02 Mar 2026 08:00:00 GMT", 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER),
        ("-5", None),
        ("nan", None),
        ("inf", None),
        ("1e400", None),
        ("1_000", None),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_value(value: str | None, expected: float | None) -> None:
    """Delay-seconds and HTTP-dates are read; huge ones are cut to the cap; garbage is None."""
    assert retry_after_value(value, NOW) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "7", "x-rate-limit-reset": str(NOW + 100)}, 7.0),
        ({"retry-after": "garbage", "x-rate-limit-reset": str(int(NOW) + 100)}, 100.0),
        ({"x-rate-limit-reset": "1000000000000000"}, MAX_RETRY_AFTER),
        ({"x-rate-limit-reset": str(int(NOW) - 100)}, 0.0),
        ({"x-ratelimit-reset": "42"}, 42.0),
        ({"x-ratelimit-reset": str(int(NOW) + 60)}, 60.0),
        ({"x-ratelimit-reset": "2026-03-02T09:02:00.000Z"}, 120.0),
        ({"x-ratelimit-reset": "99999999999999999999"}, MAX_RETRY_AFTER),
        ({"ratelimit-reset": "15"}, 15.0),
        ({"ratelimit-reset": str(int(NOW) + 90)}, 90.0),
        ({"ratelimit-reset": "1000000000000"}, MAX_RETRY_AFTER),
        ({"ratelimit-reset": "-1"}, None),
        ({}, None),
    ],
)
def test_retry_after_from_headers(headers: dict[str, str], expected: float | None) -> None:
    """Every rate-limit header a source uses goes through the same clamp."""
    assert retry_after_from_headers(headers, NOW) == expected


@pytest.mark.parametrize(
    ("given", "kept"),
    [(5.0, 5.0), (1e12, MAX_RETRY_AFTER), (float("inf"), None), (float("nan"), None), (-1, None)],
)
def test_errors_clamp_whatever_they_are_given(given: float, kept: float | None) -> None:
    """RateLimited and SinkError clamp retry_after however it was computed."""
    assert clamp_retry_after(given) == kept
    assert RateLimited("x", given).retry_after == kept
    assert SinkUnavailable("x", retry_after=given).retry_after == kept
