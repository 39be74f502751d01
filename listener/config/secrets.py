"""The secret values of a configuration: what the log redactor and ``listener config show``
hide.

A secret is any ``SecretStr`` field anywhere in the config, and every value the rules file
takes from the environment (``${TOKEN}``), wherever it lands: a token placed in a feed URL
is as secret as one in a ``token:`` field.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


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


def environment_values(text: str, env: Mapping[str, str] | None = None) -> list[str]:
    """The values of the environment variables a rules file refers to as ``${NAME}``."""
    env = os.environ if env is None else env
    return [env[name] for name in _ENV_REFERENCE.findall(text) if env.get(name)]


def config_secrets(
    config: BaseModel, path: str | Path | None = None, env: Mapping[str, str] | None = None
) -> list[str]:
    """The config's ``SecretStr`` values plus, when ``path`` is given, the values its file
    takes from the environment."""
    out = secret_values(config)
    if path is not None:
        # the file was just loaded; if it went since, its fields still count
        with contextlib.suppress(OSError):
            out += environment_values(Path(path).read_text(encoding="utf-8"), env)
    return out
