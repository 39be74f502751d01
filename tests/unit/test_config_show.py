"""`listener config show`: the effective configuration, secrets redacted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from listener.cli import main
from listener.config.load import load_config, load_config_text

REPO = Path(__file__).resolve().parents[2]

SECRET_RULES = """\
version: 1
brands:
  - name: Acme
sources:
  feed:
    type: rss
    urls:
      - https://user:pw@example.com/feed?token=abc123&q=acme
      - https://example.com/${FEED_KEY}/rss
sinks:
  hook:
    type: webhook
    url: https://hooks.example.com/services/T000/B000/hooksecret
    headers: {X-Api-Key: headersecretvalue}
routes:
  source-health: [hook]
rules: []
"""


def _show(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    monkeypatch.delenv("LISTENER_CONFIG", raising=False)
    assert main(["config", "show", *args]) == 0
    return capsys.readouterr().out


def test_shipped_rules_round_trip(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The YAML output is the same configuration, loadable again, defaults written out."""
    out = _show(capsys, monkeypatch, "--config", str(REPO / "rules.yaml"))
    assert "interval: " in out
    assert "jitter: " in out
    assert "#   LISTENER_STATE=listener.db" in out
    again = load_config_text(out, "shown.yaml")
    assert again == load_config(REPO / "rules.yaml")


def test_secrets_are_redacted_everywhere(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(SECRET_RULES)
    monkeypatch.setenv("FEED_KEY", "feedkeysecret")
    monkeypatch.setenv("LISTENER_API_TOKEN", "apitokensecret")
    for fmt in ("yaml", "json"):
        out = _show(capsys, monkeypatch, "--config", str(path), "--format", fmt)
        for secret in (
            "hooksecret",
            "headersecretvalue",
            "feedkeysecret",
            "apitokensecret",
            "abc123",
            "user:pw",
        ):
            assert secret not in out, (fmt, secret)
        assert "q=acme" in out  # the rest of the URL stays readable
    doc = json.loads(out)
    assert doc["settings"]["api_token"] == "***"
    assert doc["config"]["sinks"]["hook"]["url"] == "***"
    assert doc["config"]["sinks"]["hook"]["headers"] == {"X-Api-Key": "***"}
    assert doc["config"]["sources"]["feed"]["urls"] == [
        "https://***@example.com/feed?token=***&q=acme",
        "https://example.com/***/rss",
    ]


def test_environment_settings_are_shown(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LISTENER_STATE", "/var/lib/listener/listener.db")
    monkeypatch.setenv("LISTENER_EVALUATE_EVERY", "90")
    out = _show(capsys, monkeypatch, "--config", str(REPO / "rules.yaml"), "--format", "json")
    settings = json.loads(out)["settings"]
    assert settings["state"] == "/var/lib/listener/listener.db"
    assert settings["evaluate_every"] == "1m30s"
    assert settings["api_token"] == ""


def test_broken_file_is_one_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nbrandz: []\n")
    monkeypatch.delenv("LISTENER_CONFIG", raising=False)
    assert main(["config", "show", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "brandz" in err
    assert "Traceback" not in err
