"""Stories, not copies: group reposts, quotes-of-the-same-text, cross-posts and
syndicated articles so velocity can count distinct stories as well as raw volume.

A mention joins an existing story when, within the index's horizon, it is

* a repost of a mention in the story (``reposted_id``),
* a link to the same canonical URL (tracking parameters, ``www.``, fragments and
  trailing slashes removed), or
* the same text after normalisation (exact), or a near-duplicate of it: MinHash
  signatures over the word set with an estimated Jaccard similarity of at least
  :data:`SIMILARITY`, found through locality-sensitive banding so each lookup
  touches only a few candidates.

Otherwise it starts a new story whose id is its own ``source:id``. Pure and
deterministic; memory is bounded by the horizon (old entries are evicted).
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from listener.matching.brands import normalise
from listener.model import Mention

_URL = re.compile(r"https?://\S+")
_RT_PREFIX = re.compile(r"^(rt|via)\s+@\w+:?\s*", re.I)
_HANDLE = re.compile(r"@\w+")
_NON_WORD = re.compile(r"[^\w#]+")
_TRACKING = re.compile(
    r"^(utm_\w+|fbclid|gclid|dclid|mc_cid|mc_eid|ref|ref_src|ref_url|s|t|si|igshid|cmpid|ocid)$"
)

PERMUTATIONS = 32
ROWS = 4  # rows per band: 8 bands of 4 rows
SIMILARITY = 0.7
MIN_TOKENS = 5
_PRIME = (1 << 61) - 1
_SEEDS = [
    (
        int.from_bytes(hashlib.blake2b(f"a{i}".encode(), digest_size=8).digest(), "big") % _PRIME
        | 1,
        int.from_bytes(hashlib.blake2b(f"b{i}".encode(), digest_size=8).digest(), "big") % _PRIME,
    )
    for i in range(PERMUTATIONS)
]


def canonical_url(url: str) -> str | None:
    """``https://www.Example.com/a/?utm_source=x&id=2#top`` → ``example.com/a?id=2``."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    host = parts.hostname.lower().removeprefix("www.").removeprefix("m.")
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not _TRACKING.match(k.lower())
    ]
    path = parts.path.rstrip("/") or ""
    return urlunsplit(("", host, path, urlencode(sorted(query)), "")).lstrip("/")


def story_text(text: str) -> list[str]:
    """The words that identify a text's story: no URLs, handles, RT prefixes or punctuation."""
    text = _RT_PREFIX.sub("", text.strip())
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    return [t for t in _NON_WORD.split(normalise(text)) if t]


def minhash(tokens: list[str]) -> tuple[int, ...]:
    """A MinHash signature of the token set (:data:`PERMUTATIONS` values)."""
    hashes = [
        int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "big")
        for t in set(tokens)
    ]
    return tuple(min((a * h + b) % _PRIME for h in hashes) for a, b in _SEEDS)


def similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Estimated Jaccard similarity of two signatures."""
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def _bands(signature: tuple[int, ...]) -> list[tuple[int, int]]:
    return [(i, hash(signature[i * ROWS : (i + 1) * ROWS])) for i in range(PERMUTATIONS // ROWS)]


@dataclass(frozen=True, slots=True)
class Assignment:
    """Which story a mention belongs to, and why (``new``, ``repost``, ``url``,
    ``exact`` or ``near``)."""

    story: str
    reason: str

    @property
    def is_copy(self) -> bool:
        return self.reason != "new"


class StoryIndex:
    """Assigns mentions to stories within a sliding ``horizon`` of mention time."""

    def __init__(
        self, horizon: timedelta = timedelta(hours=24), max_entries: int = 200_000
    ) -> None:
        self.horizon = horizon
        self.max_entries = max_entries
        self._by_mention: OrderedDict[str, str] = OrderedDict()
        self._by_url: dict[str, str] = {}
        self._by_text: dict[str, str] = {}
        self._bands: dict[tuple[int, int], list[tuple[tuple[int, ...], str]]] = {}
        self._order: deque[tuple[datetime, str, str | None, str | None, tuple[int, ...] | None]] = (
            deque()
        )

    def __len__(self) -> int:
        return len(self._order)

    def assign(self, mention: Mention) -> Assignment:
        """The story of ``mention``; remembers the mention for later copies."""
        self._evict(mention.created_at)
        key = f"{mention.source}:{mention.id}"
        if key in self._by_mention:
            return Assignment(self._by_mention[key], "repeat")
        tokens = story_text(mention.text)
        text_key = hashlib.blake2b(" ".join(tokens).encode(), digest_size=12).hexdigest()
        url = canonical_url(mention.url) if mention.url else None
        links = [c for c in (canonical_url(u) for u in _URL.findall(mention.text)) if c]
        sig = minhash(tokens) if len(tokens) >= MIN_TOKENS else None
        found = self._find(mention, url, links, text_key, sig)
        story, reason = found if found is not None else (key, "new")
        self._remember(mention, key, story, url, links, text_key, sig, tokens)
        return Assignment(story, reason)

    def _find(
        self,
        mention: Mention,
        url: str | None,
        links: list[str],
        text_key: str,
        sig: tuple[int, ...] | None,
    ) -> tuple[str, str] | None:
        if mention.reposted_id is not None:
            original = f"{mention.source}:{mention.reposted_id}"
            return self._by_mention.get(original, original), "repost"
        for candidate in ([url] if url else []) + links:
            if candidate in self._by_url:
                return self._by_url[candidate], "url"
        if text_key in self._by_text:
            return self._by_text[text_key], "exact"
        if sig is not None:
            best: tuple[float, str] | None = None
            for band in _bands(sig):
                for other, story in self._bands.get(band, ()):
                    score = similarity(sig, other)
                    if score >= SIMILARITY and (best is None or score > best[0]):
                        best = (score, story)
            if best is not None:
                return best[1], "near"
        return None

    def _remember(
        self,
        mention: Mention,
        key: str,
        story: str,
        url: str | None,
        links: list[str],
        text_key: str,
        sig: tuple[int, ...] | None,
        tokens: list[str],
    ) -> None:
        self._by_mention[key] = story
        for candidate in ([url] if url else []) + links:
            self._by_url.setdefault(candidate, story)
        if tokens:
            self._by_text.setdefault(text_key, story)
        if sig is not None:
            for band in _bands(sig):
                self._bands.setdefault(band, []).append((sig, story))
        self._order.append((mention.created_at, key, url, text_key if tokens else None, sig))
        while len(self._order) > self.max_entries:
            self._forget(*self._order.popleft()[1:])

    def _evict(self, now: datetime) -> None:
        cutoff = now - self.horizon
        while self._order and self._order[0][0] < cutoff:
            self._forget(*self._order.popleft()[1:])

    def _forget(
        self, key: str, url: str | None, text_key: str | None, sig: tuple[int, ...] | None
    ) -> None:
        story = self._by_mention.pop(key, None)
        if url is not None and self._by_url.get(url) == story:
            del self._by_url[url]
        if text_key is not None and self._by_text.get(text_key) == story:
            del self._by_text[text_key]
        if sig is not None:
            for band in _bands(sig):
                entries = self._bands.get(band)
                if entries:
                    entries[:] = [e for e in entries if e[0] != sig]
                    if not entries:
                        del self._bands[band]
