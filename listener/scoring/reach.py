"""Reach: one number per mention for "how many people might see this".

Sources report different things: X, Mastodon and Bluesky have followers and
reposts/likes/replies; Reddit and Hacker News have upvotes and comment counts but no
audience; news feeds have neither. Each signal is turned into *estimated readers* with a
per-signal weight, so the result is comparable across sources:

* followers are readers as they are;
* a repost or quote shows the post to another audience (×50), a reply or comment draws
  readers into the thread (×10), a like or upvote stands for readers who engaged (×10
  for upvotes, which drive ranking on Reddit/HN; ×3 for likes);
* every mention counts at least 1.

The weights are round numbers on purpose: reach orders authors and mentions within an
incident and weights negative volume (``metric: negative_reach``), it does not claim an
exact audience.
"""

from __future__ import annotations

from listener.model import Mention

WEIGHTS = {
    "reposts": 50.0,
    "quotes": 50.0,
    "replies": 10.0,
    "comments": 10.0,
    "upvotes": 10.0,
    "likes": 3.0,
}


_REPOSTS, _QUOTES, _REPLIES, _COMMENTS, _UPVOTES, _LIKES = (
    WEIGHTS[name] for name in ("reposts", "quotes", "replies", "comments", "upvotes", "likes")
)


def reach_score(mention: Mention) -> float:
    """Estimated readers of a mention (≥ 1). The signals are read as attributes in one
    tuple: it runs for every mention, and a generator over :data:`WEIGHTS` with
    ``getattr`` cost three times as much (the sums are of whole numbers times whole
    weights, so the order does not change the result)."""
    e = mention.engagement
    engaged = 0.0
    for count, weight in (
        (e.reposts, _REPOSTS),
        (e.quotes, _QUOTES),
        (e.replies, _REPLIES),
        (e.comments, _COMMENTS),
        (e.upvotes, _UPVOTES),
        (e.likes, _LIKES),
    ):
        if count:
            engaged += weight * max(0, count)
    return max(1.0, float(max(0, mention.author.followers or 0)) + engaged)
