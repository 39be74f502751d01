"""What `listener check` catches beyond types: values that would only fail when first
used (errors), and configs that load but do not do what was meant (warnings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from listener.app import Daemon
from listener.config.lint import config_warnings, load_with_warnings
from listener.config.load import load_config, load_config_text
from listener.errors import ConfigError
from listener.matching.brands import BrandMatcher
from listener.matching.query import compile_query
from listener.pipeline import Pipeline
from listener.processor import Processor
from listener.settings import Settings
from listener.store import Store
from tests.unit.test_engine import Step, below, one_rule, run_steps, vol

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
        with_source('{type: reddit, client_id: abc, client_secret: ""}'),
        {},
        "rules.yaml:4: sources.src: 'client_id' is set but 'client_secret' is empty or "
        "missing: the source would read the public feeds (hint: set both client_id and "
        "client_secret, or neither)",
        id="reddit-half-credentials",
    ),
    pytest.param(
        with_source("{type: bluesky, app_password: pw}"),
        {},
        "rules.yaml:4: sources.src: 'app_password' is set but 'handle' is empty or missing",
        id="bluesky-half-credentials",
    ),
    pytest.param(
        with_sink('{type: pagerduty, routing_key: ""}'),
        {},
        "rules.yaml:12: sinks.other.routing_key: must not be empty",
        id="empty-routing-key",
    ),
    pytest.param(
        with_sink('{type: telegram, token: "", chat_id: -1001234567890}'),
        {},
        "rules.yaml:12: sinks.other.token: must not be empty",
        id="empty-telegram-token",
    ),
    pytest.param(
        with_sink('{type: telegram, token: "1:A", chat_id: "#alerts"}'),
        {},
        "rules.yaml:12: sinks.other.chat_id: '#alerts' is not a chat id or @channelname "
        "(hint: write a numeric chat id (e.g. -1001234567890) or a public @channelname",
        id="telegram-bad-chat-id",
    ),
    pytest.param(
        with_sink('{type: telegram, token: "1:A"}'),
        {},
        "rules.yaml:12: sinks.other.chat_id: missing required key 'chat_id'",
        id="telegram-no-chat-id",
    ),
    pytest.param(
        with_sink('{type: opsgenie, api_key: ""}'),
        {},
        "rules.yaml:12: sinks.other.api_key: must not be empty",
        id="empty-opsgenie-key",
    ),
    pytest.param(
        with_sink("{type: opsgenie, api_key: k, priorities: {crisis: P0}}"),
        {},
        "rules.yaml:12: sinks.other.priorities.crisis: Input should be 'P1', 'P2', 'P3', 'P4' "
        "or 'P5'",
        id="opsgenie-bad-priority",
    ),
    pytest.param(
        with_sink("{type: opsgenie, api_key: k, delivery: {group_over: 5}}"),
        {},
        "rules.yaml:12: sinks.other: delivery.group_over is not supported by opsgenie sinks",
        id="opsgenie-no-digests",
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
        with_sink("{type: teams, url: teams.example/workflows}"),
        {},
        "rules.yaml:12: sinks.other.url: not an http:// or https:// URL "
        "(hint: write the whole URL: https://host/path)",
        id="teams-url-not-a-url",
    ),
    pytest.param(
        with_sink("{type: teams}"),
        {},
        "rules.yaml:12: sinks.other.url: missing required key 'url'",
        id="teams-url-missing",
    ),
    pytest.param(
        with_sink('{type: discord, url: "${DISCORD_URL}"}'),
        {"DISCORD_URL": "https://discord.com/api/webhooks/1/T0K\n"},
        "rules.yaml:12: sinks.other.url: the URL contains a space, line break or control character",
        id="discord-url-with-newline",
    ),
    pytest.param(
        with_sink(
            '{type: discord, url: "https://discord.com/api/webhooks/1/t", username: Discord}'
        ),
        {},
        "rules.yaml:12: sinks.other.username: Discord refuses the webhook name 'Discord' "
        "(hint: a name may not contain 'discord' or 'clyde', nor be 'everyone' or 'here')",
        id="discord-username-refused",
    ),
    pytest.param(
        with_sink('{type: discord, url: "https://discord.com/api/webhooks/1/t", avatar_url: x}'),
        {},
        "rules.yaml:12: sinks.other.avatar_url:",
        id="discord-avatar-not-a-url",
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


@pytest.mark.parametrize(
    "source",
    [
        '{type: reddit, client_id: "", client_secret: "${REDDIT_SECRET:-}"}',
        "{type: reddit}",
        '{type: bluesky, handle: "", app_password: ""}',
    ],
)
def test_optional_credentials_left_empty_mean_none(source: str) -> None:
    """Optional credential pairs may both be empty (e.g. ${VAR:-}): the public path."""
    config = load_config_text(with_source(source), "rules.yaml", {})
    assert "src" in config.sources


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


# --------------------------------------------------------------------------- warnings

BRAND_NOT = """brands:
  - name: Acme
    aliases: [Acme]
    query: acme NOT hiring
  - name: Globex
    query: globex NOT (jobs OR career*)
  - name: Initech
    keywords: [initech]
    query: initech AND outage
"""


def warnings_of(text: str) -> list[str]:
    config = load_config_text(text, "rules.yaml", {})
    return [str(w) for w in config_warnings(config, "rules.yaml", text)]


def test_brand_aliases_that_bypass_the_query_not_warn() -> None:
    """A brand matches on its aliases OR its query, so `NOT hiring` in the query does not
    stop an alias match: check warns, naming the fix (exclude)."""
    text = BRAND_NOT + BASE.split("\n", 2)[2]
    assert warnings_of(text) == [
        "rules.yaml:4: brands[0].query: the query's NOT (hiring) does not apply to mentions "
        "matched by the brand's aliases ('Acme'): a brand matches on any of those or on its "
        "query, so a mention with 'Acme' and hiring still matches (hint: to drop such "
        "mentions whatever matched them, write exclude: 'hiring'; or remove the aliases "
        "and let the query alone say what the brand is)"
    ]
    # the behaviour the warning describes
    config = load_config_text(text, "rules.yaml", {})
    matcher = BrandMatcher(config.brands)
    assert matcher.match("Acme is hiring engineers") == ("Acme",)
    assert matcher.match("Globex is hiring: jobs page") == ()


@pytest.mark.parametrize(
    ("brand", "fields"),
    [
        ("keywords: [acme cloud]", "keywords ('acme cloud')"),
        (
            "handles: ['@acme']\n    hashtags: [acmedown]",
            "handles or hashtags ('@acme', 'acmedown')",
        ),
    ],
)
def test_brand_keywords_handles_and_hashtags_also_bypass_the_not(brand: str, fields: str) -> None:
    """Every term list that matches on its own is named in the warning."""
    text = BASE.replace(
        "  - name: Acme\n", f"  - name: Acme\n    {brand}\n    query: acme NOT ad\n"
    )
    (warning,) = warnings_of(text)
    assert f"matched by the brand's {fields}" in warning


def test_brand_warning_suggests_an_exclude_that_works() -> None:
    """The suggested exclude keeps an existing one, is quoted for YAML (a value cannot
    start with # or @) and, written in, drops what the NOT meant to."""
    brand = "  - name: Acme\n    aliases: [Acme]\n    query: 'acme NOT #hiring'\n"
    brand += "    exclude: jobs\n"
    text = BASE.replace("  - name: Acme\n", brand)
    (warning,) = warnings_of(text)
    suggested = warning.split("write exclude: ")[1].split("; or")[0]
    assert suggested == "'(jobs) OR #hiring'"
    fixed = load_config_text(
        text.replace("    exclude: jobs\n", f"    exclude: {suggested}\n"), "rules.yaml", {}
    )
    assert BrandMatcher(fixed.brands).match("Acme is growing #hiring") == ()
    assert BrandMatcher(fixed.brands).match("Acme is down") == ("Acme",)


def test_brand_with_exclude_instead_of_not_does_not_warn() -> None:
    """`exclude` applies to every match: no warning."""
    text = BASE.replace(
        "  - name: Acme\n", "  - name: Acme\n    aliases: [Acme]\n    exclude: hiring\n"
    )
    assert warnings_of(text) == []


def test_query_negated_parts() -> None:
    """Query.negated lists what the query's NOTs apply to, as compiled."""
    assert compile_query("acme NOT (hiring OR jobs) NOT lang:de").negated == (
        "(hiring OR jobs)",
        "lang:de",
    )
    assert compile_query("(acme OR @acme) AND outage").negated == ()


def levels(watch: str) -> str:
    return BASE.replace("        when: {type: volume, window: 15m, above: 5}\n", watch)


def test_exit_same_test_with_a_lower_threshold_warns() -> None:
    """`exit: volume above 5` with `when: volume above 10` leaves only between 5 and 10;
    the warning says so and gives the `not` form that means "leave below 5"."""
    text = levels(
        "        when: {type: volume, window: 15m, above: 10}\n"
        "        exit: {type: volume, window: 15m, above: 5}\n"
    )
    assert warnings_of(text) == [
        "rules.yaml:8: rules[0].levels.watch.exit: exit is the same volume test as when, "
        "looser (above: 5, when: above: 10): exit is tested only once when no longer holds "
        "and the level is left when exit holds, so it is left only if an evaluation finds "
        "the value between 5 and 10; once it falls below 5 the level is kept, and the "
        "incident open, until the value comes back between the two (hint: exit says when to "
        "leave: to stay until the value falls below 5, write 'exit: {type: not, condition: "
        "{type: volume, window: 15m, above: 5}}'; or remove exit to leave as soon as when no "
        "longer holds)"
    ]


@pytest.mark.parametrize(
    ("when", "exit_"),
    [
        ("{type: volume, window: 15m, above: 10}", "{type: volume, window: 15m, above: 10}"),
        ("{type: volume, window: 15m, above: 10}", "{type: volume, window: 15m, above: 20}"),
        (
            "{type: mean_sentiment, window: 1h, below: -0.5}",
            "{type: mean_sentiment, window: 1h, below: -0.7}",
        ),
        ("{type: spike, window: 15m, ratio: 3}", "{type: spike, window: 15m, ratio: 3}"),
    ],
)
def test_exit_same_test_as_tight_as_when_warns_never_left(when: str, exit_: str) -> None:
    """An exit as tight as when (or tighter) cannot hold once when stops holding."""
    (warning,) = warnings_of(levels(f"        when: {when}\n        exit: {exit_}\n"))
    assert "then it cannot hold, so the level is never left" in warning


def test_mean_sentiment_looser_exit_is_the_higher_number() -> None:
    """For mean_sentiment (holds at or below) the looser exit has the higher number."""
    (warning,) = warnings_of(
        levels(
            "        when: {type: mean_sentiment, window: 1h, below: -0.5}\n"
            "        exit: {type: mean_sentiment, window: 1h, below: -0.2}\n"
        )
    )
    assert "between -0.2 and -0.5; once it rises above -0.2 the level is kept" in warning


@pytest.mark.parametrize(
    "exit_",
    [
        "{type: not, condition: {type: volume, window: 15m, above: 5}}",  # hysteresis
        "{type: volume, window: 1h, above: 5}",  # another window: another test
        "{type: volume, metric: total, window: 15m, above: 5}",  # another metric
    ],
)
def test_exit_that_is_another_test_does_not_warn(exit_: str) -> None:
    """The documented hysteresis (`not`) and exits on another series are fine."""
    text = levels(
        f"        when: {{type: volume, window: 15m, above: 10}}\n        exit: {exit_}\n"
    )
    assert warnings_of(text) == []


RESOLVED = ("resolved", "watch")


def test_the_warned_exits_behave_as_the_warnings_say() -> None:
    """The engine does what the warnings say. Exit `above: 5` after when `above: 10`: a
    fall straight to 0 keeps the level until the value comes back between 5 and 10.
    Exit as tight as when: the level is never left. The `not` form leaves below 5."""
    looser = one_rule({"watch": {"when": vol(10), "exit": vol(5)}}, resolve_after="1m")
    opened: Step = (0, 12, [("opened", "watch")])
    run_steps(looser, [opened, (1, 0, []), (60, 0, []), (61, 7, []), (63, 7, [RESOLVED])])
    same = one_rule({"watch": {"when": vol(10), "exit": vol(10)}}, resolve_after="1m")
    run_steps(same, [opened, (1, 7, []), (5, 0, []), (600, 3, [])])
    hysteresis = one_rule({"watch": {"when": vol(10), "exit": below(5)}}, resolve_after="1m")
    run_steps(hysteresis, [opened, (1, 7, []), (60, 7, []), (61, 0, []), (62, 0, [RESOLVED])])


def test_shipped_rules_give_no_warnings() -> None:
    """The shipped rules.yaml loads without warnings."""
    path = REPO / "rules.yaml"
    assert config_warnings(load_config(path, env={}), str(path)) == []


async def test_daemon_logs_each_warning_when_a_config_is_applied(tmp_path: Path) -> None:
    """Startup and reload load the file once and lint that same text (off the event loop
    on reload); apply logs each warning once."""
    path = tmp_path / "rules.yaml"
    path.write_text(
        levels(
            "        when: {type: volume, window: 15m, above: 10}\n"
            "        exit: {type: volume, window: 15m, above: 10}\n"
        )
    )
    daemon = Daemon(Settings.from_env({"LISTENER_CONFIG": str(path)}))
    config, warnings = load_with_warnings(str(path))
    daemon.store = store = Store.open(tmp_path / "s.db")
    daemon.processor = processor = Processor(config, store, daemon.metrics)
    daemon.pipeline = Pipeline(daemon.settings, store, processor, daemon.metrics, daemon.clock)
    try:
        with capture_logs() as logs:
            await daemon.apply(config, warnings)
    finally:
        await daemon.pipeline.stop_delivery()
        store.close()
    logged: list[Any] = [e["warning"] for e in logs if e["event"] == "config_warning"]
    assert len(logged) == 1
    assert logged[0].startswith(f"{path}:8: rules[0].levels.watch.exit: exit is the same")
    assert all(e["log_level"] == "warning" for e in logs if e["event"] == "config_warning")
