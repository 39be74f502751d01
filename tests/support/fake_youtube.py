"""A loopback fake of the YouTube Data API v3 ``commentThreads.list`` endpoint.

Built from Google's reference for ``commentThreads.list`` and its error table: the key
is checked (``key=``, else 400 ``keyInvalid``), exactly one of ``videoId`` and
``allThreadsRelatedToChannelId`` must be given, threads come newest first
(``order=time``), at most ``maxResults`` (1–100, default 20) per page with an opaque
``nextPageToken``; ``textFormat=plainText`` serves ``textDisplay`` as plain text, else as
HTML. Errors come in Google's JSON shape (``{"error": {"code", "message", "errors":
[{"message", "domain", "reason"}]}}``): 404 ``videoNotFound`` / ``channelNotFound``,
403 ``commentsDisabled`` for a video added with ``comments=False``, 403
``quotaExceeded`` once :meth:`exhaust` is called::

    with FakeYouTube(key="k") as yt:                     # config: api_url=yt.api_url
        yt.add_video("dQw4w9WgXcQ", channel="UC" + "x" * 22)
        yt.add("Acme broke", video="dQw4w9WgXcQ", author="@bob", published_at=now)
"""

from __future__ import annotations

import base64
import html
from datetime import UTC, datetime
from typing import Any

from tests.support.fake_social import (
    When,
    _Answer,
    _epoch,
    _Fake,
    _int_param,
    _json,
)

PATH = "/youtube/v3"
ENDPOINT = f"{PATH}/commentThreads"

QUOTA_MESSAGE = (
    'The request cannot be completed because you have exceeded your <a href="/youtube/v3/'
    'getting-started#quota">quota</a>.'
)
DISABLED_MESSAGE = (
    'The video identified by the <code><a href="/youtube/v3/docs/commentThreads/list#videoId">'
    "videoId</a></code> parameter has disabled comments."
)
KEY_MESSAGE = "API key not valid. Please pass a valid API key."


def google_error(status: int, reason: str, message: str, domain: str = "global") -> _Answer:
    """An error in the shape Google's APIs answer."""
    error = {"message": message, "domain": domain, "reason": reason}
    return _json(status, {"error": {"code": status, "message": message, "errors": [error]}})


class FakeYouTube(_Fake):
    """``GET /youtube/v3/commentThreads``; see the module docstring."""

    data_paths = (ENDPOINT,)

    def __init__(self, key: str = "test-key") -> None:
        super().__init__()
        self.key = key
        self._videos: dict[str, dict[str, Any]] = {}
        self._threads: list[dict[str, Any]] = []
        self._exhausted = False

    @property
    def api_url(self) -> str:
        """The ``api_url`` to configure: ``http://127.0.0.1:PORT/youtube/v3``."""
        return f"{self.url}{PATH}"

    def add_video(self, video: str, *, channel: str, comments: bool = True) -> None:
        """A video of ``channel``; ``comments=False`` turns its comments off."""
        with self._lock:
            self._videos[video] = {"channel": channel, "comments": comments}

    def add(
        self,
        text: str,
        *,
        video: str,
        published_at: When,
        author: str = "@viewer",
        author_channel: str = "UC" + "a" * 22,
        likes: int = 0,
        replies: int = 0,
    ) -> dict[str, Any]:
        """A top-level comment on ``video`` (added first with :meth:`add_video`). Returns
        the thread as served (``textDisplay`` in HTML)."""
        moment = datetime.fromtimestamp(int(_epoch(published_at)), UTC)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._lock:
            channel = self._videos[video]["channel"]
            number = len(self._threads) + 1
        comment_id = f"Ugz{number:05d}commentAaBbCc"
        thread = {
            "kind": "youtube#commentThread",
            "etag": f"etag{number}",
            "id": comment_id,
            "snippet": {
                "channelId": channel,
                "videoId": video,
                "topLevelComment": {
                    "kind": "youtube#comment",
                    "etag": f"etag{number}c",
                    "id": comment_id,
                    "snippet": {
                        "channelId": channel,
                        "videoId": video,
                        "textDisplay": html.escape(text).replace("\n", "<br>"),
                        "textOriginal": text,
                        "authorDisplayName": author,
                        "authorProfileImageUrl": "https://yt3.ggpht.example/a.jpg",
                        "authorChannelUrl": f"http://www.youtube.com/channel/{author_channel}",
                        "authorChannelId": {"value": author_channel},
                        "canRate": True,
                        "viewerRating": "none",
                        "likeCount": likes,
                        "publishedAt": stamp,
                        "updatedAt": stamp,
                    },
                },
                "canReply": True,
                "totalReplyCount": replies,
                "isPublic": True,
            },
        }
        with self._lock:
            self._threads.append({"thread": thread, "at": moment, "n": number})
        return thread

    def exhaust(self) -> None:
        """Every later request answers 403 ``quotaExceeded`` (the day's quota is spent)."""
        with self._lock:
            self._exhausted = True

    def replenish(self) -> None:
        """The quota is back (a new day): requests are answered again."""
        with self._lock:
            self._exhausted = False

    def _error(self, status: int, message: str) -> _Answer:
        reason = {429: "rateLimitExceeded", 500: "backendError"}.get(status, "unknown")
        return google_error(status, reason, message)

    def _answer(
        self,
        method: str,
        path: str,
        params: dict[str, list[str]],
        headers: dict[str, str],
        body: bytes,
    ) -> _Answer:
        if method != "GET" or path.rstrip("/") != ENDPOINT:
            return google_error(404, "notFound", "Not Found")
        if params.get("key", [""])[0] != self.key:
            return google_error(400, "keyInvalid", KEY_MESSAGE, "usageLimits")
        if self._exhausted:
            return google_error(403, "quotaExceeded", QUOTA_MESSAGE, "youtube.quota")
        if params.get("part", [""])[0] != "snippet":
            return google_error(400, "invalidPart", "part must be snippet", "youtube.part")
        video = params.get("videoId", [""])[0]
        channel = params.get("allThreadsRelatedToChannelId", [""])[0]
        if bool(video) == bool(channel):
            return google_error(400, "missingRequiredParameter", "one filter is required")
        if video:
            known = self._videos.get(video)
            if known is None:
                return google_error(
                    404, "videoNotFound", "The video could not be found.", "youtube.commentThread"
                )
            if not known["comments"]:
                return google_error(
                    403, "commentsDisabled", DISABLED_MESSAGE, "youtube.commentThread"
                )
            found = [t for t in self._threads if t["thread"]["snippet"]["videoId"] == video]
        else:
            if channel not in {v["channel"] for v in self._videos.values()}:
                return google_error(
                    404, "channelNotFound", "The channel could not be found.", "youtube.channel"
                )
            found = [t for t in self._threads if t["thread"]["snippet"]["channelId"] == channel]
        found.sort(key=lambda t: (t["at"], t["n"]), reverse=True)
        size = _int_param(params, "maxResults") or 20
        if not 1 <= size <= 100:
            return google_error(400, "invalidMaxResults", "maxResults must be 1-100")
        token = params.get("pageToken", [""])[0]
        try:
            offset = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
        except ValueError:
            return google_error(400, "invalidPageToken", "The page token is not valid.")
        page = found[offset : offset + size]
        items = [t["thread"] for t in page]
        if params.get("textFormat", ["html"])[0] == "plainText":
            items = [_plain(t) for t in items]
        answer: dict[str, Any] = {
            "kind": "youtube#commentThreadListResponse",
            "etag": "page-etag",
            "pageInfo": {"totalResults": len(page), "resultsPerPage": size},
            "items": items,
        }
        if offset + size < len(found):
            answer["nextPageToken"] = base64.urlsafe_b64encode(str(offset + size).encode()).decode()
        return _json(200, answer)


def _plain(thread: dict[str, Any]) -> dict[str, Any]:
    """The thread with ``textDisplay`` as plain text (``textFormat=plainText``)."""
    top = thread["snippet"]["topLevelComment"]
    snippet = {**top["snippet"], "textDisplay": top["snippet"]["textOriginal"]}
    return {
        **thread,
        "snippet": {**thread["snippet"], "topLevelComment": {**top, "snippet": snippet}},
    }
