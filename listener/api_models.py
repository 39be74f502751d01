"""What the HTTP API's write endpoints accept: strict models, limits and the checks
against the running config. Pure: no I/O, no clock.

Every refusal is an :class:`~listener.errors.InvalidRequest` that names the field and
says what is wrong, so the API answers 400 ``{"error": ..., "field": ...}`` and stores
nothing. The limits are documented in README.md (HTTP) and docs/operations.md.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Iterable
from datetime import timedelta
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from listener.config.duration import format_duration, parse_duration
from listener.config.schema import Config
from listener.errors import InvalidRequest, ListenerError
from listener.rules.source_health import SOURCE_HEALTH

MAX_WHO = 200
"""Longest ``by`` (who acknowledges or silences), in characters."""
MAX_TEXT = 2000
"""Longest ``note`` (acknowledgement) or ``comment`` (silence), in characters."""
MAX_NAME = 200
"""Longest ``brand``, ``rule`` or ``level`` (each must also exist in the running config)."""
MAX_SILENCE = timedelta(days=30)
"""Longest silence: anything longer is a config change (drop the rule or brand)."""
INCIDENT_STATUSES = ("open", "resolved")
"""What ``GET /incidents?status=`` accepts."""

_HINT_NAMES = 20


def _no_control(allowed: str) -> AfterValidator:
    def check(value: str) -> str:
        bad = next((c for c in value if unicodedata.category(c) == "Cc" and c not in allowed), None)
        if bad is not None:
            raise ValueError(f"must not contain control characters (found {bad!r})")
        return value

    return AfterValidator(check)


Who = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_WHO),
    _no_control(""),
]
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=MAX_TEXT), _no_control("\n\t")
]
RequiredText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_TEXT),
    _no_control("\n\t"),
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME), _no_control("")]


def _silence_duration(value: Any) -> timedelta:
    """``for``: a duration string (``2h``, ``1h30m``) or a number of seconds, greater
    than zero and at most :data:`MAX_SILENCE`."""
    accepted = "a duration such as 30m, 2h or 1d, or a number of seconds"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"must be {accepted}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"must be a finite duration: {accepted}")
    if isinstance(value, str) and len(value) > 64:
        raise ValueError(f"must be {accepted}")
    try:
        duration = parse_duration(value)
    except (ValueError, TypeError, ListenerError) as exc:  # whatever it refuses, it says why
        raise ValueError(str(exc)) from None
    except ArithmeticError:  # 1e300 seconds overflows timedelta
        raise ValueError(f"must be {accepted}") from None
    if duration <= timedelta(0):
        raise ValueError("must be longer than zero")
    if duration > MAX_SILENCE:
        raise ValueError(
            f"{value!r} is longer than the maximum {format_duration(MAX_SILENCE)}: for longer, "
            "change the config (drop the rule or the brand) instead of silencing"
        )
    return duration


class ApiModel(BaseModel):
    """Base of every request body: strict types, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class AckRequest(ApiModel):
    """``POST /incidents/ID/ack``."""

    by: Who
    note: Text = ""


class NoteRequest(ApiModel):
    """``POST /incidents/ID/notes``."""

    by: Who
    text: RequiredText


class AssignRequest(ApiModel):
    """``POST /incidents/ID/assign``: ``to`` has it now."""

    by: Who
    to: Who


class SilenceRequest(ApiModel):
    """``POST /silences``: ``brand``, ``rule`` and ``level`` narrow it (absent: any)."""

    duration: Annotated[timedelta, BeforeValidator(_silence_duration), Field(alias="for")]
    by: Who
    comment: RequiredText
    brand: Name | None = None
    rule: Name | None = None
    level: Name | None = None


M = TypeVar("M", bound=ApiModel)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_body(body: bytes, model: type[M]) -> M:
    """The request body as ``model``; :class:`InvalidRequest` naming the field otherwise."""
    try:
        text = body.decode("utf-8") or "{}"
    except UnicodeDecodeError:
        raise InvalidRequest("the body must be UTF-8 JSON", field="body") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidRequest("the body nests too deeply", field="body") from None
    except ValueError as exc:
        raise InvalidRequest(f"the body must be JSON: {exc}", field="body") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object", field="body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc, model) from None


def _invalid(exc: ValidationError, model: type[ApiModel]) -> InvalidRequest:
    known = sorted(f.alias or name for name, f in model.model_fields.items())
    problems: list[tuple[str, str]] = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"])[:80] or "body"
        ctx, kind = error.get("ctx", {}), error["type"]
        if kind == "extra_forbidden":
            message = f"unknown field (known: {', '.join(known)})"
        elif kind == "missing":
            message = "is required"
        elif kind == "string_type":
            message = f"must be a string, not {_json_type(error['input'])}"
        elif kind == "string_too_short":
            message = "must not be empty or blank"
        elif kind == "string_too_long":
            message = f"must be at most {ctx['max_length']} characters"
        elif kind == "value_error":
            message = str(ctx.get("error", error["msg"]))
        else:
            message = error["msg"]
        problems.append((field, message))
    text = "; ".join(f"{field}: {message}" for field, message in problems)
    return InvalidRequest(text, field=problems[0][0])


def _json_type(value: Any) -> str:
    """The JSON name of a parsed JSON value's type (the value itself is never echoed)."""
    names = {dict: "an object", list: "an array", bool: "a boolean", int: "a number"}
    if value is None:
        return "null"
    return names.get(type(value), "a number" if isinstance(value, float) else "a string")


def _unknown(
    field: str, what: str, value: str, known: Iterable[str], rule: str | None = None
) -> InvalidRequest:
    names = sorted(set(known))
    shown = ", ".join(names[:_HINT_NAMES]) + (", …" if len(names) > _HINT_NAMES else "")
    scope = f" for rule {rule!r}" if rule is not None else ""
    return InvalidRequest(
        f"{field}: unknown {what} {value!r}{scope} (known: {shown or 'none'})", field=field
    )


def check_silence_scope(
    config: Config, brand: str | None, rule: str | None, level: str | None
) -> None:
    """A silence must be able to match something: ``rule`` a configured rule (or
    ``source-health``), ``brand`` a brand the rule watches (a source for
    ``source-health``), ``level`` one of the rule's levels. :class:`InvalidRequest`
    naming the known names otherwise."""
    health_levels = {config.source_health.level} | {
        s.health.level for s in config.sources.values() if s.health is not None
    }
    rules = {r.name: r for r in config.rules}
    if rule is not None and rule != SOURCE_HEALTH and rule not in rules:
        raise _unknown("rule", "rule", rule, [*rules, SOURCE_HEALTH])
    if rule == SOURCE_HEALTH:
        brands, levels = set(config.sources), health_levels
    elif rule is not None:
        watched = rules[rule].brands
        brands = set(watched if watched is not None else config.brand_names())
        levels = set(rules[rule].levels)
    else:  # any rule: brands, and sources (source-health puts the source in that place)
        brands = {*config.brand_names(), *config.sources}
        levels = {lv for r in config.rules for lv in r.levels} | health_levels
    if brand is not None and brand not in brands:
        what = "source" if rule == SOURCE_HEALTH else "brand"
        raise _unknown("brand", what, brand, brands, rule)
    if level is not None and level not in levels:
        raise _unknown("level", "level", level, levels, rule)


def check_incident_status(status: str | None) -> None:
    """``GET /incidents?status=``: absent, or one of :data:`INCIDENT_STATUSES`."""
    if status is not None and status not in INCIDENT_STATUSES:
        raise InvalidRequest(
            f"status: must be one of {', '.join(INCIDENT_STATUSES)}, not {status[:80]!r}",
            field="status",
        )


MAX_LIMIT = 1000
"""The most incidents ``GET /incidents`` lists at once."""


def incident_limit(text: str | None) -> int:
    """``GET /incidents?limit=``: how many, newest first (100 when absent, 1 to
    :data:`MAX_LIMIT`)."""
    if text is None:
        return 100
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidRequest(
            f"limit: must be a whole number from 1 to {MAX_LIMIT}, not {text[:20]!r}",
            field="limit",
        )
    return int(text)
