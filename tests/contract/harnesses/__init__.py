"""One module per sink type: ``CONFIG`` (its config class) and ``harness()`` (an async
context manager yielding a :class:`Harness` wired to a loopback receiver). The contract
test runs the same checks against every module found here."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from pydantic import BaseModel

from listener.sinks.base import Sink


@dataclass
class Harness:
    """A sink wired to a receiver: what arrived there, and a way to make it fail."""

    sink: Sink
    delivered: Callable[[], list[str]]
    """What the receiver got, one string per delivered alert (containing the alert id)."""
    break_receiver: Callable[[], None]
    """Make the next send fail the way a broken receiver does."""


HarnessFactory = Callable[[], AbstractAsyncContextManager[Harness]]


def discover() -> dict[type[BaseModel], HarnessFactory]:
    """Every harness module in this package, by the sink config class it covers."""
    found: dict[type[BaseModel], HarnessFactory] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.CONFIG] = module.harness
    return found
