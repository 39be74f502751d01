"""A loopback fake of Apple's App Store customer reviews feed (RSS as JSON).

Serves ``/{country}/rss/customerreviews/page={n}/id={app_id}/sortby=mostrecent/json``
in Apple's legacy shape, every value wrapped as ``{"label": ...}``, with its quirks: a
page with one review has ``entry`` as an object, a page with none has no ``entry``, and
(``app_entry=True``) page 1 starts with the app's own entry (``im:name``, no
``im:rating``) as older feeds did. Times are written with a ``-07:00`` offset, as Apple
writes them::

    with FakeAppStore() as store:                     # config: api_url=store.url
        store.add_app("1234", countries=("us", "gb"))
        store.add("1234", "us", "Crashes on launch", "Since the update…", rating=1,
                  updated=now - timedelta(hours=1))

An unknown app or country answers 404, a page outside 1–10 answers 400. Failures are
scripted with :meth:`~tests.support.fake_social._Fake.fail` (``rate_limit``,
``server_error``, ``stall``, ``truncated``) plus :meth:`throttle` (Apple's 403).
"""

from __future__ import annotations

import re
from collections import deque
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.support.fake_social import _Answer, _Fake, _json

PACIFIC = timezone(timedelta(hours=-7))
FEED_PATH = re.compile(
    r"^/(?P<country>[a-z]{2})/rss/customerreviews(?:/page=(?P<page>\d+))?"
    r"/id=(?P<app>\d+)(?:/sortby=(?P<sort>\w+))?/json$"
)
PAGE_SIZE = 50


def _l(value: object) -> dict[str, Any]:
    return {"label": str(value)}


class FakeAppStore(_Fake):
    """Apple's customer reviews feed; see the module docstring."""

    data_paths = ("/",)

    def __init__(self, *, app_entry: bool = False) -> None:
        super().__init__()
        self.app_entry = app_entry
        self._apps: dict[str, set[str]] = {}
        self._reviews: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._throttles: deque[int] = deque()
        self._next_id = 11223344556

    def add_app(self, app_id: str, countries: tuple[str, ...] = ("us",)) -> None:
        """Make ``app_id`` known in ``countries`` (with no reviews yet)."""
        with self._lock:
            self._apps.setdefault(app_id, set()).update(countries)

    def add(
        self,
        app_id: str,
        country: str,
        title: str,
        content: str,
        *,
        rating: int = 5,
        updated: datetime,
        author: str = "Reviewer",
        version: str = "5.2.1",
        votes: int = 0,
        review_id: str | None = None,
        link: str | None = None,
    ) -> dict[str, Any]:
        """Add a review (the app becomes known in ``country``); returns the entry as served."""
        with self._lock:
            self._apps.setdefault(app_id, set()).add(country)
            self._next_id += 1
            number = review_id or str(self._next_id)
        entry: dict[str, Any] = {
            "author": {
                "uri": _l(f"https://itunes.apple.com/{country}/reviews/id{abs(hash(author))}"),
                "name": _l(author),
                "label": "",
            },
            "updated": _l(updated.astimezone(PACIFIC).isoformat()),
            "im:rating": _l(rating),
            "im:version": _l(version),
            "id": _l(number),
            "title": _l(title),
            "content": {"label": content, "attributes": {"type": "text"}},
            "link": {
                "attributes": {
                    "rel": "related",
                    "href": link
                    or f"https://itunes.apple.com/{country}/review?id={app_id}&type=Purple%20Software",
                }
            },
            "im:voteSum": _l(votes),
            "im:contentType": {"attributes": {"term": "Application", "label": "Application"}},
            "im:voteCount": _l(votes),
        }
        with self._lock:
            self._reviews.setdefault((app_id, country), []).append(
                {"entry": entry, "at": updated, "id": number}
            )
        return entry

    def throttle(self, *, times: int = 1) -> None:
        """Answer the next ``times`` requests with 403, as Apple throttles."""
        with self._lock:
            self._throttles.extend([403] * times)

    def _error(self, status: int, message: str) -> _Answer:
        return _Answer(status, message.encode(), content_type="text/html; charset=UTF-8")

    def _answer(
        self,
        method: str,
        path: str,
        params: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> _Answer:
        if self._throttles:
            return self._error(self._throttles.popleft(), "Forbidden")
        match = FEED_PATH.match(path)
        if method != "GET" or match is None:
            return self._error(404, "Not Found")
        country, app_id = match["country"], match["app"]
        page = int(match["page"] or 1)
        if country not in self._apps.get(app_id, set()):
            return self._error(404, "Not Found")
        if not 1 <= page <= 10:
            return self._error(400, "CustomerReviews RSS page depth is limited to 10")
        reviews = sorted(
            self._reviews.get((app_id, country), []), key=lambda r: (r["at"], r["id"]), reverse=True
        )
        served = [r["entry"] for r in reviews[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]]
        if self.app_entry and page == 1:
            served.insert(0, self._app(app_id, country))
        base = f"https://itunes.apple.com/{country}/rss/customerreviews"
        feed: dict[str, Any] = {
            "author": {"name": _l("iTunes Store"), "uri": _l("http://www.apple.com/itunes/")},
            "updated": _l(datetime.now(PACIFIC).replace(microsecond=0).isoformat()),
            "rights": _l("Copyright 2008 Apple Inc."),
            "title": _l("iTunes Store: Customer Reviews"),
            "icon": _l("http://itunes.apple.com/favicon.ico"),
            "link": [
                {"attributes": {"rel": "alternate", "type": "text/html", "href": base}},
                {"attributes": {"rel": "self", "href": f"{base}/page={page}/id={app_id}/json"}},
            ],
            "id": _l(f"{base}/page={page}/id={app_id}/sortby=mostrecent/json"),
        }
        if len(served) == 1:
            feed["entry"] = served[0]
        elif served:
            feed["entry"] = served
        return _json(200, {"feed": feed})

    @staticmethod
    def _app(app_id: str, country: str) -> dict[str, Any]:
        return {
            "im:name": _l("Acme"),
            "rights": _l("© Acme Inc."),
            "im:price": {"label": "Get", "attributes": {"amount": "0.00", "currency": "USD"}},
            "id": {"label": f"https://apps.apple.com/{country}/app/acme/id{app_id}"},
            "title": _l("Acme - Acme Inc."),
            "link": {"attributes": {"rel": "alternate", "type": "text/html", "href": "x"}},
            "im:artist": _l("Acme Inc."),
            "category": {"attributes": {"term": "Productivity", "label": "Productivity"}},
            "im:releaseDate": _l("2020-01-01T00:00:00-07:00"),
        }
