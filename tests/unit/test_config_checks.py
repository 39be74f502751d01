"""What `listener check` catches beyond types: values that would only fail when first
used (errors), and configs that load but do not do what was meant (warnings)."""

from __future__ import annotations

from pathlib import Path

import pytest
from structlog.testing import capture_logs

from listener.app import Daemon
from listener.config.load import load_config, load_config_text
from listener.errors import ConfigError
from listener.settings import Settings

REPO = Path(__file__).resolve().parents[2]

BASE = """brands:
  - name: Acme
rules:
  - name: neg
    levels:
      watch:
        when: {type: volume, window: 15m, above: 5}
routes:
  default: [console]
sinks:
  console: {type: console}
"""


def with_sink(sink: str) -> str:
    return BASE + f"  other: {sink}\n"


def with_source(source: str) -> str:
    return BASE.replace("rules:", f"sources:\n  src: {source}\nrules:", 1)


def with_model(model: str) -> str:
    return BASE + f"scoring:\n  sentiment: {{type: transformers, model: {model!r}}}\n"


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "rules.yaml", env or {})
    return [str(p) for p in info.value.problems]


# --------------------------------------------------------------------------- errors

INVALID = [
    pytest.param(
        with_source('{type: twitter, bearer_token: ""}'),
        {},
        "rules.yaml:4: sources.src.bearer_token: must not be empty (hint: an empty ${VARIABLE}",
        id="empty-bearer-token",
    ),
    pytest.param(
        with_source('{type: twitter, bearer_token: "${X_TOKEN}"}'),
        {"X_TOKEN": "   "},
        "rules.yaml:4: sources.src.bearer_token: must not be empty",
        id="blank-bearer-token-from-env",
    ),
    pytest.param(
        with_source('{type: twitter, bearer_token: "${X_TOKEN}"}'),
        {"X_TOKEN": "tok\n"},
        "rules.yaml:4: sources.src.bearer_token: contains a line break, control character or "
        "surrounding spaces (hint: a value from ${VARIABLE} often ends with a line break",
        id="bearer-token-with-newline",
    ),
    pytest.param(
        with_sink('{type: pagerduty, routing_key: ""}'),
        {},
        "rules.yaml:12: sinks.other.routing_key: must not be empty",
        id="empty-routing-key",
    ),
    pytest.param(
        with_sink('{type: slack, token: "", channel: "#x"}'),
        {},
        "rules.yaml:12: sinks.other.token: must not be empty",
        id="empty-slack-token",
    ),
    pytest.param(
        with_sink('{type: webhook, url: "https://h.example/x", secret: ""}'),
        {},
        "rules.yaml:12: sinks.other.secret: must not be empty",
        id="empty-webhook-secret",
    ),
    pytest.param(
        with_sink('{type: email, host: smtp.example, from: a@b.c, to: [d@e.f], password: ""}'),
        {},
        "rules.yaml:12: sinks.other.password: must not be empty",
        id="empty-email-password",
    ),
    pytest.param(
        with_sink("{type: slack, webhook_url: notaurl}"),
        {},
        "rules.yaml:12: sinks.other.webhook_url: not an http:// or https:// URL "
        "(hint: write the whole URL: https://host/path)",
        id="slack-webhook-not-a-url",
    ),
    pytest.param(
        with_sink('{type: webhook, url: "http://[::1:19642/"}'),
        {},
        "rules.yaml:12: sinks.other.url: not a valid URL: Invalid IPv6 URL (hint: an IPv6 "
        "host goes in brackets (http://[::1]:8080/); a port is a number up to 65535)",
        id="webhook-invalid-ipv6",
    ),
    pytest.param(
        with_sink('{type: webhook, url: "http://hooks.example:99999/"}'),
        {},
        "rules.yaml:12: sinks.other.url: not a valid URL: Port out of range 0-65535",
        id="webhook-port-out-of-range",
    ),
    pytest.param(
        with_sink('{type: webhook, url: "https:///path"}'),
        {},
        "rules.yaml:12: sinks.other.url: the URL has no host",
        id="webhook-no-host",
    ),
    pytest.param(
        with_sink('{type: webhook, url: "${HOOK}"}'),
        {"HOOK": "https://hooks.example/T0K\n"},
        "rules.yaml:12: sinks.other.url: the URL contains a space, line break or control "
        "character (hint: a value from ${VARIABLE} often ends with a line break",
        id="webhook-url-with-newline",
    ),
    pytest.param(
        with_sink('{type: webhook, url: "https://h.example/", headers: {X-Token: "a\\nb"}}'),
        {},
        "rules.yaml:12: sinks.other.headers.X-Token: the header value contains a line break or "
        "control character (hint: a value from ${VARIABLE} often ends with a line break",
        id="header-value-newline",
    ),
    pytest.param(
        with_sink('{type: webhook, url: "https://h.example/", headers: {X-Token: "tok "}}'),
        {},
        "rules.yaml:12: sinks.other.headers.X-Token: the header value begins or ends with a space",
        id="header-value-trailing-space",
    ),
    pytest.param(
        with_sink('{type: webhook, url: "https://h.example/", headers: {X-Name: "café"}}'),
        {},
        "rules.yaml:12: sinks.other.headers.X-Name: the header value is not ASCII",
        id="header-value-not-ascii",
    ),
    pytest.param(
        with_sink('{type: alertmanager, url: "https://am.example", headers: {"X Auth:": "t"}}'),
        {},
        "rules.yaml:12: sinks.other.headers.X Auth:: 'X Auth:' is not a valid HTTP header name "
        "(hint: a header name is letters, digits and !#$%&'*+-.^_`|~ (no spaces or colons))",
        id="header-name-not-a-token",
    ),
    pytest.param(
        with_source('{type: rss, urls: ["http://[::1:19642/feed"]}'),
        {},
        "rules.yaml:4: sources.src.urls[0]: not a valid URL: Invalid IPv6 URL",
        id="feed-url-invalid-ipv6",
    ),
    pytest.param(
        with_model("/nonexistent"),
        {},
        "rules.yaml:13: scoring.sentiment.model: sentiment model path '/nonexistent' does not "
        "exist (hint: give a directory written by save_pretrained",
        id="model-absolute-path-missing",
    ),
    pytest.param(
        with_model("./models/none"),
        {},
        "rules.yaml:13: scoring.sentiment.model: sentiment model path './models/none' does not "
        "exist",
        id="model-relative-path-missing",
    ),
    pytest.param(
        with_model("~/no-such-listener-model"),
        {},
        "rules.yaml:13: scoring.sentiment.model: sentiment model path "
        "'~/no-such-listener-model' does not exist",
        id="model-home-path-missing",
    ),
    pytest.param(
        with_model("../no/such/model"),
        {},
        "rules.yaml:13: scoring.sentiment.model: sentiment model path '../no/such/model' "
        "does not exist",
        id="model-parent-path-missing",
    ),
]


@pytest.mark.parametrize(("text", "env", "expected"), INVALID)
def test_values_that_would_fail_at_run_time_are_errors(
    text: str, env: dict[str, str], expected: str
) -> None:
    """Each value that only the first request or model load would trip over is a config
    problem with file, line, path and hint."""
    found = problems(text, env)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found[0]


def test_url_problems_never_repeat_the_secret() -> None:
    """A webhook URL carries its token: the message names the problem, not the value."""
    text = with_sink('{type: webhook, url: "http://[::1:19642/T0PSECRET", headers: {A: "s3\\n"}}')
    (url, header) = sorted(problems(text), key=lambda p: "url" not in p)
    assert "Invalid IPv6 URL" in url
    assert "T0PSECRET" not in url
    assert "s3" not in header


def test_model_directory_must_hold_a_saved_model(tmp_path: Path) -> None:
    """A local model path must be a directory with a config.json; a file or an empty
    directory is refused, a saved model directory passes."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty").mkdir()
    assert "is not a directory" in problems(with_model(str(tmp_path / "file")))[0]
    assert "has no config.json" in problems(with_model(str(tmp_path / "empty")))[0]
    (tmp_path / "empty" / "config.json").write_text("{}")
    config = load_config_text(with_model(str(tmp_path / "empty")), "rules.yaml", {})
    assert config.scoring.sentiment.type == "transformers"


@pytest.mark.parametrize(
    "model", ["cardiffnlp/twitter-roberta-base-sentiment-latest", "distilbert"]
)
def test_hub_ids_are_not_paths(model: str) -> None:
    """A hub id (name or org/name) is not checked against the file system (or the network)."""
    config = load_config_text(with_model(model), "rules.yaml", {})
    assert config.scoring.sentiment.model == model  # type: ignore[union-attr]


def test_valid_urls_headers_and_credentials_pass() -> None:
    """Bracketed IPv6 hosts, ports, tokens, tab-separated and empty header values load."""
    text = BASE + (
        '  hook: {type: webhook, url: "http://[::1]:19642/x?a=b", secret: "s e"}\n'
        '  am: {type: alertmanager, url: "https://am.example:9093", '
        'headers: {Authorization: "Bearer t", X-Empty: "", X-Tab: "a\\tb"}}\n'
        '  pd: {type: pagerduty, routing_key: "R0UT1NG"}\n'
        "  slack: {type: slack, webhook_url: https://hooks.slack.com/services/T/B/X}\n"
    )
    config = load_config_text(text, "rules.yaml", {})
    assert set(config.sinks) == {"console", "hook", "am", "pd", "slack"}


def test_an_unset_variable_is_reported_once() -> None:
    """An unset ${VAR} is one problem (the variable), not also an empty credential."""
    found = problems(with_source('{type: twitter, bearer_token: "${X_TOKEN}"}'))
    assert found == [
        "rules.yaml:4: sources.src.bearer_token: environment variable X_TOKEN is not set "
        "(hint: export X_TOKEN=... before starting, or write ${X_TOKEN:-default})"
    ]


async def test_reload_refuses_a_value_that_would_fail_at_run_time(tmp_path: Path) -> None:
    """SIGHUP with such a value keeps the old config and counts a rejected reload."""
    path = tmp_path / "rules.yaml"
    path.write_text(BASE)
    daemon = Daemon(Settings.from_env({"LISTENER_CONFIG": str(path)}))
    daemon.config = old = load_config(path)
    path.write_text(with_sink("{type: slack, webhook_url: notaurl}"))
    with capture_logs() as logs:
        await daemon.reload()
    assert daemon.config is old
    rejected = [e["problem"] for e in logs if e["event"] == "reload_rejected"]
    assert rejected == [
        f"{path}:12: sinks.other.webhook_url: not an http:// or https:// URL "
        "(hint: write the whole URL: https://host/path)"
    ]
    registry = daemon.metrics.registry
    assert registry.get_sample_value("listener_config_reloads_total", {"outcome": "error"}) == 1
