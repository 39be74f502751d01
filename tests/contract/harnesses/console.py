"""Contract harness: the console sink writing JSON lines to a StringIO."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from listener.config.schema import ConsoleSinkConfig
from listener.sinks.console import ConsoleSink
from tests.contract.harnesses import Harness

CONFIG = ConsoleSinkConfig


@asynccontextmanager
async def harness() -> AsyncIterator[Harness]:
    stream = io.StringIO()
    sink = ConsoleSink("out", ConsoleSinkConfig(type="console", format="json"), stream=stream)
    yield Harness(sink, lambda: stream.getvalue().splitlines(), stream.close)
    await sink.aclose()
