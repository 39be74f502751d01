"""The HTTP API of a running listener, as the CLI uses it (``listener incidents|ack|silence
--url http://host:9464``): an operator need not exec into the container that holds the
state file (amtool's model). The token comes from ``LISTENER_API_TOKEN``.

Each call answers the API's JSON, or raises a :class:`~listener.errors.ListenerError`
that says what went wrong in words: the server cannot be reached, the token is missing or
refused, or the API's own ``{"error": ...}``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from listener.errors import ListenerError, UsageError

TIMEOUT = 10.0


class RemoteApi:
    """A listener's incident and silence API at ``url``."""

    def __init__(self, url: str, token: str | None, *, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"--url: {url[:200]!r} is not an http(s) URL, e.g. http://host:9464")
        self.url = url.rstrip("/")
        self.token = token
        self._client = httpx.Client(base_url=self.url, timeout=timeout, follow_redirects=False)

    def close(self) -> None:
        self._client.close()

    def incidents(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if status is not None:
            params["status"] = status
        found: list[dict[str, Any]] = self._call("GET", "/incidents", params=params)
        return found

    def incident(self, incident_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._call("GET", f"/incidents/{quote(incident_id, safe='')}")
        return found

    def ack(self, incident_id: str, by: str, note: str) -> str:
        """The id of the incident acknowledged (the API accepts the start of one)."""
        return str(self._act(incident_id, "ack", {"by": by, "note": note})["acknowledged"])

    def note(self, incident_id: str, by: str, text: str) -> str:
        return str(self._act(incident_id, "notes", {"by": by, "text": text})["noted"])

    def assign(self, incident_id: str, to: str, by: str) -> str:
        return str(self._act(incident_id, "assign", {"by": by, "to": to})["assigned"])

    def _act(self, incident_id: str, action: str, body: dict[str, Any]) -> dict[str, Any]:
        done: dict[str, Any] = self._call(
            "POST", f"/incidents/{quote(incident_id, safe='')}/{action}", json=body, write=True
        )
        return done

    def mentions(self, params: dict[str, str]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", "/mentions", params=params)
        return found

    def export(self, params: dict[str, str], fmt: str) -> str:
        """Every mention the filters select, as the API's CSV or JSON Lines file."""
        return self._send("GET", f"/mentions.{fmt}", params=params).text

    def silences(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._call("GET", "/silences")
        return found

    def add_silence(self, body: dict[str, Any]) -> dict[str, Any]:
        made: dict[str, Any] = self._call("POST", "/silences", json=body, write=True)
        return made

    def expire_silence(self, silence_id: str) -> None:
        self._call("DELETE", f"/silences/{quote(silence_id, safe='')}", write=True)

    def _call(self, method: str, path: str, *, write: bool = False, **kwargs: Any) -> Any:
        return self._send(method, path, write=write, **kwargs).json()

    def _send(
        self, method: str, path: str, *, write: bool = False, **kwargs: Any
    ) -> httpx.Response:
        """The API's answer when it is a success; a ListenerError saying what is wrong
        otherwise."""
        headers = {}
        if write:
            if not self.token:
                raise UsageError(
                    f"{method} {path} needs the API token: set LISTENER_API_TOKEN to the daemon's"
                )
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self._client.request(method, path, headers=headers, **kwargs)
        except httpx.HTTPError as exc:
            raise ListenerError(
                f"cannot reach listener at {self.url}: {type(exc).__name__}: {exc}"
            ) from None
        if response.is_success:
            return response
        try:
            body = response.json()
        except ValueError:
            body = None
        said = body.get("error") if isinstance(body, dict) else None
        if response.status_code == 401:
            said = "the API refused the token: set LISTENER_API_TOKEN to the daemon's"
        retry = response.headers.get("retry-after")
        later = f" (try again in {retry}s)" if retry else ""
        raise ListenerError(
            f"{self.url}: {response.status_code} {response.reason_phrase}: "
            f"{said or response.text[:200]}{later}"
        )
