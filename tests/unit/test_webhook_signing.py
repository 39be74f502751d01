"""Webhook signatures (sign/verify, replay window) and the published JSON Schema."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import typing
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from listener.clock import ManualClock
from listener.config.schema import WebhookSinkConfig
from listener.model import Ack, AlertKind, Fact
from listener.sinks.webhook import (
    SCHEMA_ID,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WebhookSink,
    make_test_alert,
    render_webhook,
    sign,
    verify,
)
from tests.support.receiver import WebhookReceiver, sample_alert

REPO = Path(__file__).resolve().parents[2]
SCHEMA_FILE = REPO / "schema" / "alert.v1.json"
SECRET = "whsec-Sup3rS3cret"
T0 = 1_772_442_000
"""2026-03-02T09:00:00Z in unix seconds."""
BODY = b'{"schema":"listener.alert/v1","id":"alert-0001"}'
KINDS: tuple[AlertKind, ...] = typing.get_args(AlertKind)


def signed_headers(secret: str = SECRET, timestamp: int = T0, body: bytes = BODY) -> dict[str, str]:
    """The two signature headers a sink would send for ``body`` at ``timestamp``."""
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


# --------------------------------------------------------------------------- sign / verify


def test_sign_is_hmac_sha256_over_timestamp_dot_body() -> None:
    """The signature is sha256= and the hex HMAC-SHA256 of "<timestamp>.<body>"."""
    expected = hmac.new(SECRET.encode(), f"{T0}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, T0, BODY) == f"sha256={expected}"
    assert sign(SECRET.encode(), T0, BODY) == sign(SECRET, T0, BODY)


def test_verify_accepts_a_genuine_request() -> None:
    """A request signed with the shared secret verifies, now or within the window."""
    headers = signed_headers()
    verify(SECRET, headers, BODY, now=T0)
    verify(SECRET, headers, BODY, now=T0 + 300)
    verify(SECRET, headers, BODY, now=T0 - 300)
    verify(SECRET, headers, BODY, now=datetime.fromtimestamp(T0 + 10, UTC))


def test_verify_ignores_header_name_case() -> None:
    """Header names are matched in any case, as HTTP frameworks hand them over."""
    headers = {k.lower(): v for k, v in signed_headers().items()}
    verify(SECRET, headers, BODY, now=T0)
    verify(SECRET, {k.upper(): v for k, v in headers.items()}, BODY, now=T0)


def test_verify_accepts_any_of_several_signatures() -> None:
    """A comma-separated signature list verifies when one matches (secret rotation)."""
    headers = signed_headers()
    other = sign("old-secret", T0, BODY)
    headers[SIGNATURE_HEADER] = f"{other}, {headers[SIGNATURE_HEADER]}"
    verify(SECRET, headers, BODY, now=T0)


def test_verify_rejects_a_tampered_body() -> None:
    """Changing one byte of the body breaks the signature."""
    with pytest.raises(ValueError, match="signature mismatch"):
        verify(SECRET, signed_headers(), BODY.replace(b"0001", b"0002"), now=T0)


def test_verify_rejects_the_wrong_secret() -> None:
    """A signature made with another secret does not verify."""
    with pytest.raises(ValueError, match="signature mismatch"):
        verify("not-the-secret", signed_headers(), BODY, now=T0)


def test_verify_rejects_a_moved_timestamp() -> None:
    """The timestamp is signed: replaying an old body with a fresh timestamp fails."""
    headers = signed_headers(timestamp=T0 - 3600)
    headers[TIMESTAMP_HEADER] = str(T0)
    with pytest.raises(ValueError, match="signature mismatch"):
        verify(SECRET, headers, BODY, now=T0)


def test_verify_rejects_stale_and_future_timestamps() -> None:
    """Outside the tolerance a genuine signature is refused as a replay (or a bad clock)."""
    headers = signed_headers()
    with pytest.raises(ValueError, match="stale request"):
        verify(SECRET, headers, BODY, now=T0 + 301)
    with pytest.raises(ValueError, match="in the future"):
        verify(SECRET, headers, BODY, now=T0 - 301)
    with pytest.raises(ValueError, match="stale request"):
        verify(SECRET, headers, BODY, now=T0 + 61, tolerance=60)


TS, SIG = TIMESTAMP_HEADER, SIGNATURE_HEADER


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, f"missing {TS}"),
        ({TS: str(T0)}, f"missing {SIG}"),
        ({TS: "soon", SIG: "sha256=00"}, f"malformed {TS}"),
        ({TS: "-5", SIG: "sha256=00"}, f"malformed {TS}"),
        ({TS: str(T0), SIG: "md5=abc"}, f"malformed {SIG}"),
        ({TS: str(T0), SIG: "sha256=" + "é" * 64}, f"malformed {SIG}"),
    ],
)
def test_verify_rejects_missing_or_malformed_headers(headers: dict[str, str], message: str) -> None:
    """Missing or malformed signature headers are a ValueError naming the header."""
    with pytest.raises(ValueError, match=message):
        verify(SECRET, headers, BODY, now=T0)


def test_verify_errors_never_contain_the_secret() -> None:
    """No rejection message quotes the secret."""
    attempts = [
        (signed_headers(), BODY + b" ", T0),
        (signed_headers(), BODY, T0 + 10_000),
        (signed_headers(secret="x"), BODY, T0),
    ]
    for headers, body, now in attempts:
        with pytest.raises(ValueError, match=r".") as info:
            verify(SECRET, headers, body, now=now)
        assert SECRET not in str(info.value)


# --------------------------------------------------------------------------- the sink signs


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A loopback webhook receiver."""
    with WebhookReceiver() as r:
        yield r


def make_sink(url: str, clock: ManualClock, **extra: Any) -> WebhookSink:
    """A signing webhook sink for ``url`` on ``clock``."""
    config = WebhookSinkConfig.model_validate(
        {"type": "webhook", "url": url, "secret": SECRET, **extra}
    )
    return WebhookSink("hook", config, clock=clock)


async def test_signed_request_verifies_at_the_receiver(
    receiver: WebhookReceiver, clock: ManualClock
) -> None:
    """What the receiver got (timestamp, signature, exact body bytes) passes verify()."""
    sink = make_sink(receiver.url(), clock)
    try:
        await sink.send(sample_alert(), "alert-0001")
    finally:
        await sink.aclose()
    [request] = receiver.accepted
    now = clock.now().timestamp()
    assert request.headers["x-listener-timestamp"] == str(int(now))
    verify(SECRET, request.headers, request.raw, now=now)
    assert request.headers["idempotency-key"] == "alert-0001"
    with pytest.raises(ValueError, match="stale"):
        verify(SECRET, request.headers, request.raw, now=now + 3600)


async def test_each_attempt_is_signed_afresh(receiver: WebhookReceiver, clock: ManualClock) -> None:
    """A retry carries a new timestamp and signature but the same Idempotency-Key."""
    receiver.respond(503)
    sink = make_sink(receiver.url(), clock)
    alert = sample_alert()
    try:
        with pytest.raises(Exception, match="HTTP 503"):
            await sink.send(alert, alert.id)
        clock.advance(timedelta(seconds=90))
        await sink.send(alert, alert.id)
    finally:
        await sink.aclose()
    first, second = receiver.requests
    assert (
        int(second.headers["x-listener-timestamp"]) - int(first.headers["x-listener-timestamp"])
        == 90
    )
    assert first.headers["x-listener-signature"] != second.headers["x-listener-signature"]
    assert first.idempotency_key == second.idempotency_key == alert.id
    assert first.raw == second.raw
    verify(SECRET, second.headers, second.raw, now=clock.now())


async def test_configured_headers_cannot_replace_the_signature(
    receiver: WebhookReceiver, clock: ManualClock
) -> None:
    """Signature headers always come from the sink, whatever the config says."""
    forged = {TIMESTAMP_HEADER: "1", SIGNATURE_HEADER: "sha256=" + "0" * 64}
    sink = make_sink(receiver.url(), clock, headers=forged)
    try:
        await sink.send(sample_alert(), "k")
    finally:
        await sink.aclose()
    [request] = receiver.accepted
    verify(SECRET, request.headers, request.raw, now=clock.now())


async def test_no_secret_no_signature(receiver: WebhookReceiver, clock: ManualClock) -> None:
    """Without a secret no signature headers are sent."""
    config = WebhookSinkConfig.model_validate({"type": "webhook", "url": receiver.url()})
    sink = WebhookSink("hook", config, clock=clock)
    try:
        await sink.send(sample_alert(), "k")
    finally:
        await sink.aclose()
    [request] = receiver.accepted
    assert "x-listener-signature" not in request.headers
    assert "x-listener-timestamp" not in request.headers


async def test_send_test_posts_a_signed_drill(
    receiver: WebhookReceiver, clock: ManualClock
) -> None:
    """send_test() posts one signed test alert that says it is a drill."""
    sink = make_sink(receiver.url(), clock)
    try:
        await sink.send_test()
    finally:
        await sink.aclose()
    [request] = receiver.accepted
    verify(SECRET, request.headers, request.raw, now=clock.now())
    doc = request.json
    assert doc["drill"] is True
    assert doc["title"].startswith("[DRILL] TEST: listener")
    assert request.idempotency_key == doc["id"]
    assert "hook" in doc["incident_id"]


# --------------------------------------------------------------------------- JSON Schema


def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return loaded


def _strict(schema: Any) -> Any:
    """A copy of ``schema`` with every ``additionalProperties`` set to false."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "additionalProperties" in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def _validators() -> list[Draft202012Validator]:
    schema = _schema()
    checker = Draft202012Validator.FORMAT_CHECKER
    return [
        Draft202012Validator(schema, format_checker=checker),
        Draft202012Validator(_strict(schema), format_checker=checker),
    ]


def _alerts() -> Iterator[tuple[str, Any]]:
    base = sample_alert()
    for kind in KINDS:
        previous = "high" if kind in ("escalated", "deescalated") else None
        yield kind, replace(base, kind=kind, id=f"inc-0001#{kind}", previous_level=previous)
    yield "resolved", replace(base, kind="resolved", previous_level="high", peak_level="critical")
    yield "drill", sample_alert(drill=True)
    yield "bare", replace(base, facts=(), top_mentions=())
    yield "non-finite", replace(base, facts=(Fact("z", float("nan"), baseline=float("inf")),))
    yield (
        "rich",
        replace(
            base,
            kind="acknowledged",
            ack=Ack("dana", base.at, "on it"),
            categories=(("outage", 12),),
            route=("social", "pr-lead"),
        ),
    )
    yield "test", make_test_alert("hook", base.at)


def test_the_schema_is_valid_draft_2020_12() -> None:
    """schema/alert.v1.json is itself a valid draft 2020-12 schema for listener.alert/v1."""
    schema = _schema()
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema"]["const"] == SCHEMA_ID
    assert schema["additionalProperties"] is True


def test_the_schema_lists_exactly_what_render_webhook_sends() -> None:
    """Every rendered key is a required, documented property, and nothing else is listed."""
    schema = _schema()
    doc = render_webhook(sample_alert())
    assert set(schema["properties"]) == set(doc) == set(schema["required"])
    fact, mention = schema["$defs"]["fact"], schema["$defs"]["mention"]
    assert set(fact["properties"]) == set(doc["facts"][0]) == set(fact["required"])
    assert set(mention["properties"]) == set(doc["top_mentions"][0]) == set(mention["required"])
    assert schema["properties"]["kind"]["enum"] == list(KINDS)


@pytest.mark.parametrize(("label", "alert"), list(_alerts()), ids=lambda v: str(v)[:20])
def test_rendered_documents_validate(label: str, alert: Any) -> None:
    """render_webhook's output for every kind (and edge cases) validates, even strictly."""
    doc = json.loads(json.dumps(render_webhook(alert), allow_nan=False))
    for validator in _validators():
        validator.validate(doc)


def test_the_schema_catches_broken_documents() -> None:
    """The schema is not vacuous: a wrong kind, a missing field or a bad type fails."""
    good = render_webhook(sample_alert())
    validator = _validators()[0]
    broken: list[dict[str, Any]] = []
    wrong_kind = copy.deepcopy(good)
    wrong_kind["kind"] = "exploded"
    broken.append(wrong_kind)
    missing = copy.deepcopy(good)
    del missing["incident_id"]
    broken.append(missing)
    bad_type = copy.deepcopy(good)
    bad_type["top_mentions"][0]["followers"] = "many"
    broken.append(bad_type)
    other_version = copy.deepcopy(good)
    other_version["schema"] = "listener.alert/v2"
    broken.append(other_version)
    for doc in broken:
        with pytest.raises(ValidationError):
            validator.validate(doc)
    extra = {**good, "future_field": 1}
    validator.validate(extra)
    with pytest.raises(ValidationError):
        _validators()[1].validate(extra)
