"""Loading rules.yaml for commands that deliver nothing: unset sink secrets are noted."""

from __future__ import annotations

from pathlib import Path

import pytest

from listener.config.load import load_config_without_secrets
from listener.errors import ConfigError

RULES = """
brands:
  - name: Acme
rules:
  - name: neg
    levels:
      watch:
        when: {type: volume, window: 15m, above: 3}
routes:
  watch: [console, pager, hook]
sinks:
  console: {type: console}
  pager: {type: pagerduty, routing_key: "${PD_KEY}"}
  hook: {type: webhook, url: "${HOOK_URL:-http://127.0.0.1:1/hook}"}
"""


def test_unset_sink_secrets_make_the_sink_unusable_not_the_file(tmp_path: Path) -> None:
    """A sink whose ${VARIABLE} is unset is reported, the rest of the config is real."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    config, unusable = load_config_without_secrets(path, env={})
    assert unusable == {"sinks.pager": ["PD_KEY"]}
    assert [r.name for r in config.rules] == ["neg"]
    assert config.sinks["hook"].url.get_secret_value() == "http://127.0.0.1:1/hook"  # type: ignore[union-attr]
    config, unusable = load_config_without_secrets(path, env={"PD_KEY": "k"})
    assert unusable == {}


def test_unset_variables_elsewhere_are_still_errors(tmp_path: Path) -> None:
    """Outside sinks and sources an unset variable stops the command as before."""
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.replace("- name: Acme", "- name: ${BRAND}"))
    with pytest.raises(ConfigError, match="environment variable BRAND is not set"):
        load_config_without_secrets(path, env={})
