"""The secrets of a configuration: one list for the log redactor and `config show`."""

from __future__ import annotations

from pathlib import Path

from listener.config.load import load_config
from listener.config.secrets import config_secrets
from listener.log import Redactor

RULES = """\
version: 1
brands:
  - name: Acme
sources:
  x:
    type: twitter
    bearer_token: ${X_TOKEN}
  feed:
    type: rss
    urls: ["https://example.com/${FEED_KEY}/rss"]
sinks:
  hook:
    type: webhook
    url: https://hooks.example.com/services/hooksecret
    headers: {X-Api-Key: headersecretvalue}
routes:
  source-health: [hook]
rules: []
"""


def test_every_secret_field_and_environment_value(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    env = {"X_TOKEN": "xbearersecret", "FEED_KEY": "feedkeysecret"}
    config = load_config(path, env=env)
    secrets = config_secrets(config)
    for value in (
        "xbearersecret",  # a source's token, not only sinks'
        "feedkeysecret",  # from ${FEED_KEY}, inside a plain URL
        "https://hooks.example.com/services/hooksecret",
        "headersecretvalue",
    ):
        assert value in secrets
    line = Redactor(secrets).redact_text("GET https://example.com/feedkeysecret/rss failed")
    assert "feedkeysecret" not in line


def test_an_escaped_dollar_is_no_secret(tmp_path: Path) -> None:
    """`$${HOME}` is the literal text `${HOME}`, not a value from the environment."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("${FEED_KEY}", "$${HOME}") + "# ${HOME} in a comment\n")
    env = {"X_TOKEN": "xbearersecret", "HOME": "/root"}
    config = load_config(path, env=env)
    assert "/root" not in config_secrets(config)
    assert config.sources["feed"].urls == ["https://example.com/${HOME}/rss"]  # type: ignore[union-attr]
