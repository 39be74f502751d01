"""A reload whose new configuration cannot be applied keeps the old one's secrets hidden."""

from __future__ import annotations

from pathlib import Path

import pytest

from listener.app import Daemon
from listener.config.load import load_config
from listener.log import REDACTOR
from listener.settings import Settings

RULES = """\
version: 1
brands:
  - name: Acme
sinks:
  hook:
    type: webhook
    url: https://hooks.example.com/{secret}
routes:
  source-health: [hook]
rules: []
"""


async def test_failed_apply_keeps_old_secrets_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES.format(secret="oldsecretpath"))
    daemon = Daemon(Settings.from_env({"LISTENER_CONFIG": str(path)}))
    daemon.config = load_config(path)
    REDACTOR.update(["https://hooks.example.com/oldsecretpath"])
    path.write_text(RULES.format(secret="newsecretpath"))

    async def broken_apply(config: object) -> None:
        raise RuntimeError("a sink could not start")

    monkeypatch.setattr(daemon, "apply", broken_apply)
    try:
        await daemon.reload()
        line = REDACTOR.redact_text(
            "POST https://hooks.example.com/oldsecretpath and https://hooks.example.com/newsecretpath"
        )
        assert "oldsecretpath" not in line  # the old config is still the one running
        assert "newsecretpath" not in line  # and the new one may be half applied
        registry = daemon.metrics.registry
        assert registry.get_sample_value("listener_config_last_reload_successful") == 0
        assert registry.get_sample_value("listener_config_reloads_total", {"outcome": "error"}) == 1
    finally:
        REDACTOR.update([])
