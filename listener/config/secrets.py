"""The secret values of a configuration: what the log redactor and ``listener config show``
hide.

A secret is any ``SecretStr`` field anywhere in the config, and every value the rules file
took from the environment (``${TOKEN}``, recorded by the loader), wherever it landed: a
token placed in a feed URL is as secret as one in a ``token:`` field.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretStr

from listener.config.schema import Config


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


def config_secrets(config: Config) -> list[str]:
    """The config's ``SecretStr`` values and the values it took from the environment."""
    return [*secret_values(config), *config.from_environment]
