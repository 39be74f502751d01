"""The effective configuration, as ``listener config show`` prints it.

Everything the daemon would run with: the rules file with every default filled in and
the process settings from ``LISTENER_*`` variables, with secrets replaced by ``***``.
Secrets are those of :mod:`listener.config.secrets` plus the API token, credentials in
URLs and secret-looking query parameters.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from typing import Any

import yaml

from listener.config.duration import format_duration
from listener.config.schema import Config
from listener.log import REDACTED, Redactor
from listener.settings import Settings


def _settings_dict(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field in fields(settings):
        value = getattr(settings, field.name)
        if isinstance(value, timedelta):
            value = format_duration(value)
        if field.name == "api_token":
            value = REDACTED if value else ""
        out[field.name] = value
    return out


def effective(config: Config, settings: Settings, secrets: list[str]) -> dict[str, Any]:
    """``{"settings": ..., "config": ...}`` with ``secrets`` (see
    :func:`~listener.config.secrets.config_secrets`) and the API token redacted."""
    redactor = Redactor([*secrets, settings.api_token])
    dumped = config.model_dump(mode="json", by_alias=True)

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            # pydantic renders a SecretStr as asterisks of its own; one marker for all
            return REDACTED if value == "**********" else redactor.redact_text(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    return {"settings": _settings_dict(settings), "config": clean(dumped)}


def render_yaml(config: Config, settings: Settings, source: str, secrets: list[str]) -> str:
    """The rules part as a YAML document ``listener check`` accepts (secrets aside), with
    the process settings as a comment block above it."""
    doc = effective(config, settings, secrets)
    lines = [
        f"# effective configuration of {source}, every default filled in; secrets are {REDACTED}",
        "# process settings (LISTENER_* environment, command-line flags, defaults):",
    ]
    lines += [f"#   LISTENER_{k.upper()}={v}" for k, v in doc["settings"].items()]
    body = yaml.safe_dump(doc["config"], sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(lines) + "\n" + body
