"""Durations in config: ``90s``, ``15m``, ``1h30m``, ``2d`` or a number of seconds.

:func:`parse_duration` is the one place that decides what a duration may be: not
negative, finite, and at most :data:`MAX_DURATION`. Everything that reads a duration
(rules.yaml, ``LISTENER_*`` settings, ``silence add --for``, ``POST /silences``) calls it
and gets a :class:`~listener.errors.DurationError` with a hint on anything else.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from listener.errors import DurationError

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_SECONDS = re.compile(r"\d+(?:\.\d+)?")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

MAX_DURATION = timedelta(days=365)
"""The longest duration anything accepts: longer than every legitimate window, baseline,
retention or delivery age, and far enough from the calendar's ends that ``now ± d`` (even
``(history + 1) × window`` of a z-score rule) stays representable."""

_FORMS = "a number of seconds or a string such as 30s, 15m, 1h30m, 2d"


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _checked(seconds: float, value: Any) -> timedelta:
    if math.isnan(seconds):
        raise DurationError(f"invalid duration {_shown(value)}: not a number", f"write {_FORMS}")
    if seconds < 0:
        raise DurationError(
            f"invalid duration {_shown(value)}: cannot be negative", f"write {_FORMS}"
        )
    if seconds > MAX_DURATION.total_seconds():  # also inf, and numbers too large for a float
        raise DurationError(
            f"invalid duration {_shown(value)}: longer than the maximum of 365d",
            "durations are at most 365d, or 52w",
        )
    return timedelta(seconds=seconds)


def parse_duration(value: Any) -> timedelta:
    """Parse a duration of at most :data:`MAX_DURATION`.

    Raise :class:`~listener.errors.DurationError` (a ``ValueError``) with the accepted
    forms on anything else: other types, negative, non-finite or too long values.
    """
    if isinstance(value, timedelta):
        return _checked(value.total_seconds(), value)
    if isinstance(value, bool):
        raise DurationError(f"invalid duration {_shown(value)}", f"write {_FORMS}")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an int too large for a float
            seconds = math.inf
        return _checked(seconds, value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if _SECONDS.fullmatch(text):  # "90" from an environment variable: seconds
            return _checked(float(text), value)
        pos, total = 0, 0.0
        for m in _PART.finditer(text):
            if m.start() != pos:
                break
            total += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if text and pos == len(text):
            return _checked(total, value)
    raise DurationError(f"invalid duration {_shown(value)}", f"write {_FORMS}")


def format_duration(value: timedelta) -> str:
    """The shortest readable form: ``timedelta(minutes=90)`` → ``1h30m``."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]
