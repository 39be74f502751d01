"""rules.yaml loading: defaults, env interpolation, and precise error messages."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from listener.config.duration import format_duration, parse_duration
from listener.config.load import load_config, load_config_text
from listener.config.schema import SpikeCondition, WebhookSinkConfig
from listener.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """brands:
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


def problems(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "rules.yaml", env or {})
    return [str(p) for p in info.value.problems]


def test_shipped_rules_file_is_valid() -> None:
    """The rules.yaml shipped at the repo root loads without problems."""
    config = load_config(REPO / "rules.yaml", env={})
    assert config.brands[0].name == "GitHub"
    assert config.rules
    assert config.sources
    assert "console" in config.sinks


def test_minimal_config_gets_defaults() -> None:
    """Defaults live in the models: level timers, resolve_after, delivery policy."""
    config = load_config_text(MINIMAL, "rules.yaml", {})
    level = config.rules[0].levels["watch"]
    assert level.for_ == timedelta(0)
    assert config.rules[0].resolve_after == timedelta(minutes=30)
    assert config.rules[0].route_for("watch", config.routes) == ["console"]


def test_env_interpolation_with_default_and_escape() -> None:
    """${VAR} is replaced from the environment, ${VAR:-x} falls back, $$ is a dollar."""
    text = MINIMAL.replace(
        "console: {type: console}",
        'console: {type: console}\n  hook: {type: webhook, url: "${HOOK}", '
        'headers: {X-Price: "$$5", X-Env: "${STAGE:-prod}"}}',
    )
    config = load_config_text(text, "rules.yaml", {"HOOK": "http://127.0.0.1:1/x?token=abc"})
    hook = config.sinks["hook"]
    assert isinstance(hook, WebhookSinkConfig)
    assert hook.url.get_secret_value() == "http://127.0.0.1:1/x?token=abc"
    assert hook.headers["X-Price"].get_secret_value() == "$5"
    assert hook.headers["X-Env"].get_secret_value() == "prod"
    assert "abc" not in repr(config)


def test_missing_env_var_names_variable_path_and_line() -> None:
    """An unset ${VAR} is reported once with its line, path and how to fix it."""
    text = MINIMAL + '  hook: {type: webhook, url: "${HOOK_URL}"}\n'
    (msg,) = problems(text)
    assert msg.startswith("rules.yaml:12: sinks.hook.url: environment variable HOOK_URL is not set")
    assert "export HOOK_URL" in msg


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "when: {type: volume, window: 15m, above: 5}",
            "when: {type: volum, window: 15m, above: 5}",
            "rules.yaml:7: rules[0].levels.watch.when.type: unknown condition type 'volum' "
            "(hint: known condition types: all, anomaly, any, mean_sentiment, negative_share, "
            "not, ramp, seasonal, seasonal_zscore, spike, volume, zscore; "
            "did you mean 'volume'?)",
        ),
        (
            "above: 5}",
            "above: 5, windw: 1h}",
            "rules.yaml:7: rules[0].levels.watch.when.windw: unknown key 'windw' "
            "(hint: known keys: above, category, language, metric, source, type, window; "
            "did you mean 'window'?)",
        ),
        (
            "window: 15m",
            "window: 15 minutes",
            "rules.yaml:7: rules[0].levels.watch.when.window: invalid duration '15 minutes'",
        ),
        (
            "window: 15m",
            "window: 0s",
            "rules.yaml:7: rules[0].levels.watch.when.window: must be more than 0s",
        ),
        (
            "console: {type: console}",
            "console: {type: slak}",
            "rules.yaml:11: sinks.console.type: unknown sink type 'slak' "
            "(hint: known sink types: alertmanager, console, discord, email, opsgenie, pagerduty, "
            "slack, teams, telegram, webhook; "
            "did you mean 'slack'?)",
        ),
        (
            "default: [console]",
            "default: [consol]",
            "rules.yaml:9: routes.default[0]: unknown sink 'consol' "
            "(hint: known sinks: console; did you mean 'console'?)",
        ),
        (
            "  - name: Acme",
            "  - name: Acme\n    aliass: [acme]",
            "rules.yaml:3: brands[0].aliass: unknown key 'aliass'",
        ),
        (
            "watch:\n        when:",
            "watch:\n        for: 5m\n        when:",
            None,
        ),
    ],
)
def test_error_messages(old: str, new: str, expected: str | None) -> None:
    """Each broken file gets one message with file, line, document path and hint."""
    text = MINIMAL.replace(old, new, 1)
    assert text != MINIMAL
    if expected is None:
        load_config_text(text, "rules.yaml", {})
        return
    msgs = problems(text)
    assert len(msgs) == 1, msgs
    assert msgs[0].startswith(expected), msgs[0]


def test_every_problem_is_reported_not_just_the_first() -> None:
    """Independent problems in one file are all listed, in line order."""
    text = MINIMAL.replace("above: 5", "above: 0").replace("name: Acme", "name: Acme\n    x: 1")
    msgs = problems(text)
    assert [m.split(":")[1] for m in msgs] == ["3", "8"]


def test_cross_checks_unknown_brand_route_level_and_duplicates() -> None:
    """References between sections are checked after the schema."""
    text = MINIMAL.replace("  - name: neg\n", "  - name: neg\n    brands: [Acme, Acne]\n")
    text = text.replace(
        "routes:",
        "  - name: neg\n    levels:\n      crit:\n"
        "        when: {type: volume, window: 1m, above: 1}\nroutes:",
    )
    text = text.replace("default: [console]", "default: [console]\n  critcal: [console]")
    msgs = problems(text)
    joined = "\n".join(msgs)
    assert (
        "rules[0].brands[1]: unknown brand 'Acne' (hint: known brands: Acme; did you mean 'Acme'?)"
        in joined
    )
    assert "routes.critcal: no rule has a level named 'critcal'" in joined
    assert "did you mean 'crit'?" in joined
    assert "rules[1].name: duplicate rule name 'neg'" in joined


def test_level_without_route_is_an_error() -> None:
    """A level nobody is told about is a configuration mistake."""
    text = MINIMAL.replace("default: [console]", "watch: [console]").replace(
        "      watch:\n",
        "      crisis:\n        when: {type: volume, window: 1m, above: 9}\n      watch:\n",
    )
    (msg,) = problems(text)
    assert "rules[0].levels.crisis: level 'crisis' has no route" in msg


def test_yaml_syntax_error_has_line() -> None:
    """A YAML syntax error names the line and gives a hint."""
    (msg,) = problems("brands:\n  - name: [Acme\nrules: []\n")
    assert msg.startswith("rules.yaml:3: not valid YAML")
    assert "hint:" in msg


def test_duplicate_yaml_key_is_rejected() -> None:
    """YAML would silently keep the last of two equal keys; we reject it."""
    msgs = problems(MINIMAL + "routes:\n  default: [console]\n")
    assert any("duplicate key 'routes'" in m for m in msgs)


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    """An empty document and a missing file get clear errors."""
    (msg,) = problems("- just\n- a list\n")
    assert "the file must be a mapping" in msg
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_spike_defaults_and_nested_conditions() -> None:
    """Nested all/any/not conditions parse into typed models with defaults."""
    text = MINIMAL.replace(
        "when: {type: volume, window: 15m, above: 5}",
        "when: {type: all, conditions: [{type: spike, window: 15m}, "
        "{type: not, condition: {type: negative_share, window: 1h, above: 0.9}}]}",
    )
    config = load_config_text(text, "rules.yaml", {})
    when = config.rules[0].levels["watch"].when
    spike = when.conditions[0]  # type: ignore[union-attr]
    assert isinstance(spike, SpikeCondition)
    assert (spike.ratio, spike.min_volume, spike.baseline) == (3.0, 10, timedelta(hours=6))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("2d", 172800), (45, 45), ("1.5h", 5400)],
)
def test_parse_duration(text: str | int, seconds: int) -> None:
    """Durations accept seconds or unit strings, and format back compactly."""
    value = parse_duration(text)
    assert value.total_seconds() == seconds
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("bad", ["", "5 minutes", "m5", "-3", -3, True, "1h-5m"])
def test_parse_duration_rejects(bad: object) -> None:
    """Anything else is a ValueError that lists the accepted forms."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


def test_source_cross_checks() -> None:
    """Sources name known brands, and source-health alerts must have a route."""
    text = MINIMAL.replace(
        "rules:\n",
        "sources:\n  news: {type: rss, urls: ['http://x.test/f'], brands: [Acne]}\nrules:\n",
    ).replace("default: [console]", "watch: [console]")
    msgs = problems(text)
    assert any("sources.news.brands[0]: unknown brand 'Acne'" in m for m in msgs)
    text = text.replace("brands: [Acne]", "brands: [Acme]").replace(
        "rules:\n", "source_health: {level: urgent}\nrules:\n", 1
    )
    (msg,) = problems(text)
    assert "routes: source-health alerts have no route" in msg


def test_rss_source_needs_a_feed() -> None:
    """An rss source with neither urls nor feeds is an error on the source."""
    text = MINIMAL.replace("rules:\n", "sources:\n  news: {type: rss}\nrules:\n")
    (msg,) = problems(text)
    assert "sources.news: an rss source needs at least one entry in 'urls' or 'feeds'" in msg


def test_broken_brand_query_has_line_column_and_hint() -> None:
    """A syntax error in a brand query names the line, the path and the column."""
    text = MINIMAL.replace("  - name: Acme\n", '  - name: Acme\n    query: "(acme OR @acme"\n')
    (msg,) = problems(text)
    assert msg.startswith("rules.yaml:3: brands[0].query: expected ')' at column 15")
    assert "hint:" in msg
    text = MINIMAL.replace("  - name: Acme\n", "  - name: Acme\n    exclude: hiring AND\n")
    (msg,) = problems(text)
    assert "brands[0].exclude:" in msg
    assert "column" in msg


def test_digests_are_refused_by_per_incident_sinks() -> None:
    """group_over on a sink that keeps one thread per incident is a clear error."""
    text = MINIMAL + "  pd: {type: pagerduty, routing_key: k, delivery: {group_over: 5}}\n"
    (msg,) = problems(text)
    assert "sinks.pd: delivery.group_over is not supported by pagerduty sinks" in msg
