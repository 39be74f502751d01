"""The one reading of a server's "come back later" hint, for sinks and collectors alike.

A hint is only a hint: a value that is not a finite, non-negative number of seconds (or a
valid HTTP-date or reset time) is ignored, and the caller's own backoff applies; a value
larger than :data:`MAX_RETRY_AFTER` is cut to it, so a receiver or source answering
``Retry-After: 1000000000000`` waits one hour, not thirty thousand years (nor overflows a
datetime). Pure: ``now`` is passed in (epoch seconds).
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER = 3600.0
"""The longest wait (seconds) any server's hint can impose."""

_EPOCH_THRESHOLD = 1_000_000_000.0
"""Reset values above this are epoch seconds (GitHub, Bluesky), below it deltas (Reddit)."""

_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def clamp_retry_after(seconds: float | None) -> float | None:
    """``seconds`` cut to :data:`MAX_RETRY_AFTER`; ``None`` when absent, not finite or
    negative (the hint is ignored)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(float(seconds), MAX_RETRY_AFTER)


def _number(value: str | None) -> float | None:
    """A plain decimal number (no sign, exponent or underscores; one too long for a float
    is the largest float), else ``None``."""
    if value is None:
        return None
    value = value.strip()
    if not _NUMBER.fullmatch(value):
        return None
    return min(float(value), sys.float_info.max)


def _until(when: datetime, now: float) -> float | None:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return clamp_retry_after(max(0.0, when.timestamp() - now))
    except (OverflowError, ValueError, OSError):
        return None


def retry_after_value(value: str | None, now: float) -> float | None:
    """Seconds to wait from one ``Retry-After`` value: delay-seconds, or an HTTP-date
    measured from ``now`` (a date in the past means now: 0). Clamped as
    :func:`clamp_retry_after`; ``None`` when absent or unusable."""
    if value is None or not value.strip():
        return None
    seconds = _number(value)
    if seconds is not None:
        return clamp_retry_after(seconds)
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return _until(when, now)


def _reset(value: str | None, now: float, *, epoch: bool | None) -> float | None:
    """A rate-limit reset header: epoch seconds (``epoch=True``), a delta (``False``),
    either by size (``None``: above :data:`_EPOCH_THRESHOLD` means epoch), or an ISO 8601
    time (Mastodon)."""
    if value is None or not value.strip():
        return None
    number = _number(value)
    if number is not None:
        is_epoch = number > _EPOCH_THRESHOLD if epoch is None else epoch
        return clamp_retry_after(max(0.0, number - now) if is_epoch else number)
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return _until(when, now)


def retry_after_from_headers(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds to wait from a response's headers (lower-case keys), the first usable of:
    ``Retry-After`` (seconds or HTTP-date), ``x-rate-limit-reset`` (epoch seconds,
    X/Twitter), ``x-ratelimit-reset`` (seconds, Reddit; epoch seconds when implausibly
    large, GitHub; an ISO 8601 time, Mastodon), ``ratelimit-reset`` (seconds, the IETF
    draft; epoch seconds when implausibly large, Bluesky). ``now`` is epoch seconds.
    Clamped as :func:`clamp_retry_after`; ``None`` when no usable header is present."""
    for found in (
        retry_after_value(headers.get("retry-after"), now),
        _reset(headers.get("x-rate-limit-reset"), now, epoch=True),
        _reset(headers.get("x-ratelimit-reset"), now, epoch=None),
        _reset(headers.get("ratelimit-reset"), now, epoch=None),
    ):
        if found is not None:
            return found
    return None


__all__ = [
    "MAX_RETRY_AFTER",
    "clamp_retry_after",
    "retry_after_from_headers",
    "retry_after_value",
]
