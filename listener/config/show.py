"""The effective configuration, as ``listener config show`` prints it.

Everything the daemon would run with: the rules file with every default filled in and
the process settings from ``LISTENER_*`` variables, with secrets replaced by ``***``.
A secret is any ``SecretStr`` field of the config, the API token, every value the file
takes from the environment (``${TOKEN}``, wherever it is placed: a feed URL too), plus
credentials in URLs and secret-looking query parameters.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import fields
from datetime import timedelta
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr

from listener.config.duration import format_duration
from listener.config.schema import Config
from listener.log import REDACTED, Redactor
from listener.settings import Settings


def secret_values(model: Any) -> list[str]:
    """Every ``SecretStr`` value anywhere inside a pydantic model (lists, dicts too)."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            out.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(model)
    return out


_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def environment_values(text: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The values of the environment variables a rules file refers to as ``${NAME}``."""
    env = os.environ if env is None else env
    return [env[name] for name in _ENV_REFERENCE.findall(text) if env.get(name)]


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


def effective(
    config: Config, settings: Settings, from_environment: list[str] | None = None
) -> dict[str, Any]:
    """``{"settings": ..., "config": ...}`` with every secret redacted; ``from_environment``
    are the values the file took from ``${VARIABLES}`` (see :func:`environment_values`)."""
    redactor = Redactor([*secret_values(config), settings.api_token, *(from_environment or [])])
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


def render_yaml(
    config: Config, settings: Settings, source: str, from_environment: list[str] | None = None
) -> str:
    """The rules part as a YAML document ``listener check`` accepts (secrets aside), with
    the process settings as a comment block above it."""
    doc = effective(config, settings, from_environment)
    lines = [
        f"# effective configuration of {source}, every default filled in; secrets are {REDACTED}",
        "# process settings (LISTENER_* environment, command-line flags, defaults):",
    ]
    lines += [f"#   LISTENER_{k.upper()}={v}" for k, v in doc["settings"].items()]
    body = yaml.safe_dump(doc["config"], sort_keys=False, allow_unicode=True, width=100)
    return "\n".join(lines) + "\n" + body
