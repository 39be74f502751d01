"""The loopback HTTP server lifecycle that the test fakes share.

A fake subclasses :class:`LoopbackServer`, names its request handler in ``handler_class``
(and, to type ``self.server.owner`` in that handler, a :class:`LoopbackHTTPServer`
subclass in ``server_class``), and calls ``super().__init__()``. ``start()`` binds
``127.0.0.1:0`` and serves from a daemon thread; ``stop()`` sets ``_stopping`` (which
stalled handlers wait on), shuts the server down and closes its socket.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar, Self


class LoopbackHTTPServer(ThreadingHTTPServer):
    """A threading server whose handlers reach their fake as ``self.server.owner``."""

    daemon_threads = True
    owner: Any


class LoopbackServer:
    """A loopback HTTP server run in a daemon thread; a context manager."""

    handler_class: ClassVar[type[BaseHTTPRequestHandler]]
    server_class: ClassVar[type[LoopbackHTTPServer]] = LoopbackHTTPServer
    poll_interval: ClassVar[float] = 0.05
    """How often ``serve_forever`` checks for shutdown."""
    refuse_second_start: ClassVar[bool] = True
    """Whether ``start()`` on a running server raises ``RuntimeError``."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._httpd: LoopbackHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Bind 127.0.0.1:0 and serve in a daemon thread."""
        if self.refuse_second_start and self._httpd is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        httpd = self.server_class(("127.0.0.1", 0), self.handler_class)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": self.poll_interval}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """End stalls, stop serving and close the socket. Idempotent."""
        self._stopping.set()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return int(self._httpd.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"
