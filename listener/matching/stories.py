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

The signature is computed for all :data:`PERMUTATIONS` at once with numpy: each distinct
word is hashed once to 32 bits (CRC-32, a fixed standard: stable across processes and
platforms, unlike the salted ``hash()`` of a ``str``), then permuted by multiply-add
modulo 2**64, ``a * x + b`` on ``uint64`` (Dietzfelbinger's multiply-add-shift family,
whose high 32 bits are pairwise independent on 32-bit keys: as universal as the
mod-prime scheme it replaced; ``a`` is made odd, so each permutation is injective on the
words and two signatures agree at a position exactly when the same word is the minimum
there). Unsigned wraparound is exact integer arithmetic, so signatures do not
depend on the CPU, the BLAS or the thread count (``tests/unit/test_stories.py`` checks them
against the same scheme in plain Python integers and pins a few values).

It replaced ``(a * h + b) mod (2**61 - 1)`` over a 64-bit BLAKE2b per word, in Python
integers, with the same :data:`PERMUTATIONS`, bands and :data:`SIMILARITY`. On the
airline tweets (14,485 mentions, one core, both in one run, best of three, busy 2-core
host), ``bench/stories.py --check --against 9647ec6 --seed-families 8`` gives:

=====================  ==========================  ==========================
figure                 before (mod 2**61 - 1)      now (uint64 multiply-add)
=====================  ==========================  ==========================
µs per ``minhash``     143                         12.3 (11.6x)
µs per ``assign``      168                         44.4 (3.8x)
near-duplicates        130                         111
precision / recall     80.0% / 89.7%               84.7% / 81.2%
8 seed draws: near     97-131, mean 115            100-129, mean 115
8 seed draws: P / R    84.5% / 83.5%               84.3% / 84.0%
=====================  ==========================  ==========================

Precision: flagged mentions whose story holds an earlier mention with exact Jaccard >=
0.7 on the word sets; recall: mentions with such an earlier mention (not already an exact
or URL copy) that were flagged. The change of scheme moved 61 of 14,485 mentions, all
through the near-duplicate flag: 35 near before are new now, 16 new before are near, 9
near joined another story, and 1 exact copy followed its original; the exact and URL
counts are unchanged. Across seed draws the two schemes are indistinguishable: the
difference between 130 and 111 is the spread of a 32-value estimate (standard deviation
0.08 at a Jaccard of 0.7), not the hash family.

:meth:`StoryIndex.assign_many` (what the ingest stage calls) prepares a whole batch before
it walks the mentions in order: the words of every text in a few passes over one joined
string (:func:`story_words`), their signatures in one numpy pass, and the signature and
band-key bytes made by numpy. Per mention, one ``dict.setdefault`` per band both finds the
mentions that share a band key and puts the mention's own entry in. The decisions are
those of assigning one mention at a time (``tests/unit/test_stories.py`` checks them
against a plain reference index). On the airline tweets in the ingest stage's batches of
100, ``bench/stories.py --check --against 2312b7a --batch 100`` gives 22.8 µs per mention
before (words, a BLAKE2b key and bands per text) and 14.0 µs now (1.6x, CPU time on a
shared 2-core host), with no decision differing.
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import accumulate, chain, repeat
from operator import eq
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt

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


def _seed(label: str) -> int:
    return int.from_bytes(hashlib.blake2b(label.encode(), digest_size=8).digest(), "big")


# one (a, b) per permutation: a odd (a bijection of the 64-bit integers), b any
SEEDS: tuple[tuple[int, int], ...] = tuple(
    (_seed(f"a{i}") | 1, _seed(f"b{i}")) for i in range(PERMUTATIONS)
)
_A: npt.NDArray[np.uint64] = np.array([a for a, _ in SEEDS], dtype=np.uint64)
_B: npt.NDArray[np.uint64] = np.array([b for _, b in SEEDS], dtype=np.uint64)
_crc32 = zlib.crc32


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
    # most links have no query (urlencode of none is ""): a fifth of the time saved
    encoded = urlencode(sorted(query)) if query else ""
    return urlunsplit(("", host, path, encoded, "")).lstrip("/")


def story_text(text: str) -> list[str]:
    """The words that identify a text's story: no URLs, handles, RT prefixes or punctuation."""
    text = _RT_PREFIX.sub("", text.strip())
    text = _URL.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    return list(filter(None, _NON_WORD.split(normalise(text))))


_SEPARATOR = "\n\x01\n"
"""Between the texts of a batch in :func:`story_words`. ``\\x01`` marks the boundary: no
pattern here matches it (it is neither a word character nor white space), and NFKC and
case folding keep it. The newlines keep every match inside its own text: a URL's ``\\S+``
and a handle's ``\\w+`` stop at them, and Unicode normalisation never composes a newline
with its neighbours."""
_WORD_BYTES = frozenset(
    b"#\x01_" + bytes(range(48, 58)) + bytes(range(65, 91)) + bytes(range(97, 123))
)
_GAPS = bytes(b if b in _WORD_BYTES or b >= 0x80 else 0x20 for b in range(256))
"""A ``bytes.translate`` table: the ASCII bytes that are not a word character (``\\w``),
``#`` or the batch marker become spaces; the rest, UTF-8 of other characters included,
stay."""


def _fold(text: str) -> str:
    """The text as :func:`~listener.matching.brands.normalise` folds it (ASCII: lower
    case), spaces aside; a text with other characters comes back as its words already,
    split by the slower Unicode-aware pattern."""
    if text.isascii():
        return text.lower()
    return " ".join(filter(None, _NON_WORD.split(normalise(text))))


def story_words(texts: Sequence[str]) -> list[bytes]:
    """Each text's :func:`story_text` words, UTF-8 encoded and joined by single spaces
    (``b""`` for none): ``" ".join(story_text(t)).encode()`` for each ``t``."""
    return list(map(b" ".join, _word_lists(texts)))


def _word_lists(texts: Sequence[str]) -> list[list[bytes]]:
    """Each text's :func:`story_text` words, UTF-8 encoded.

    The URL and handle patterns, the splitting into words and the encoding run once over
    the batch, its texts joined by :data:`_SEPARATOR`, instead of once a text (they were
    most of the index's cost); an ASCII text's words are split by a byte table rather
    than a pattern."""
    if not texts:
        return []
    joined = _SEPARATOR.join(map(_RT_PREFIX.sub, repeat(""), map(str.strip, texts)))
    if joined.count("\x01") != len(texts) - 1:  # a text holds the marker itself: one by one
        return [[word.encode() for word in story_text(t)] for t in texts]
    joined = _HANDLE.sub(" ", _URL.sub(" ", joined))
    folded = "\x01".join(map(_fold, joined.split("\x01"))).encode()
    return list(map(bytes.split, folded.translate(_GAPS).split(b"\x01")))


def minhash(tokens: list[str]) -> tuple[int, ...]:
    """A MinHash signature of the (non-empty) token set: for each of the
    :data:`PERMUTATIONS` seeds ``(a, b)``, the least ``(a * crc32(t) + b) mod 2**64`` over
    the tokens ``t`` (CRC-32 of the UTF-8 bytes: stable everywhere, never salted)."""
    if not tokens:
        raise ValueError("minhash of an empty token set")
    hashes = {_crc32(t.encode()) for t in tokens}
    words = np.fromiter(hashes, dtype=np.uint64, count=len(hashes)).reshape(-1, 1)
    permuted = words * _A  # (words x permutations), wraps modulo 2**64
    permuted += _B
    signature: list[int] = permuted.min(axis=0).tolist()
    return tuple(signature)


def minhash_many(token_lists: Sequence[list[str]]) -> list[tuple[int, ...]]:
    """:func:`minhash` of each (non-empty) token list, all permuted in one numpy pass (the
    same values: the rows of one matrix, each signature the minimum over its own rows)."""
    if not token_lists:
        return []
    return [tuple(row) for row in _signatures(token_lists).tolist()]


def _signatures(token_lists: Sequence[list[str]]) -> npt.NDArray[np.uint64]:
    """The signatures of (a non-empty list of non-empty) token lists, one row each."""
    hash_sets = [set(map(_crc32, map(str.encode, tokens))) for tokens in token_lists]
    counts = [len(h) for h in hash_sets]
    if not all(counts):
        raise ValueError("minhash of an empty token set")
    words = np.fromiter(chain.from_iterable(hash_sets), dtype=np.uint64, count=sum(counts))
    return _minimums(words, counts)


def _word_signatures(word_lists: Sequence[list[bytes]]) -> npt.NDArray[np.uint64]:
    """:func:`_signatures` of (a non-empty list of non-empty) word lists as
    :func:`_word_lists` gives them: the words of the whole batch hashed in one pass,
    repeats kept (a minimum does not change for a repeated value)."""
    counts = list(map(len, word_lists))
    words = chain.from_iterable(word_lists)
    return _minimums(np.fromiter(map(_crc32, words), dtype=np.uint64, count=sum(counts)), counts)


def _minimums(words: npt.NDArray[np.uint64], counts: list[int]) -> npt.NDArray[np.uint64]:
    """Per run of ``counts`` word hashes, the least ``a * x + b`` over its words ``x``, for
    each permutation ``(a, b)``: one signature a row."""
    # (permutations x all words), wrapping modulo 2**64: the minimum of each run is then
    # taken along the rows' contiguous memory (a third faster than down the columns)
    permuted = _A.reshape(-1, 1) * words
    permuted += _B.reshape(-1, 1)
    # where each run starts, summed in Python: numpy's cumsum costs more than it saves on
    # the small batches of a backtest (a mention or two a simulated minute)
    starts = list(accumulate(counts[:-1], initial=0))
    signatures: npt.NDArray[np.uint64] = np.minimum.reduceat(permuted, starts, axis=1).T
    return np.ascontiguousarray(signatures)


def similarity(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    """Estimated Jaccard similarity of two signatures (of the same length)."""
    if len(a) != len(b):
        raise ValueError(f"signatures of different lengths ({len(a)} and {len(b)})")
    agree: int = sum(map(eq, a, b))
    return agree / len(a)


BANDS = PERMUTATIONS // ROWS
Signature = bytes
"""A signature as the index keeps it: its :data:`PERMUTATIONS` ``uint64`` values as
bytes (compared, hashed and sliced fast, and no work for the garbage collector)."""
Band = bytes
Bucket = tuple[tuple[Signature, str], ...]
"""The ``(signature, key)`` of the remembered mentions that share one band key, oldest
first (tuples of bytes and str: nothing for the garbage collector to track). An entry
names its mention rather than its story: while the entry is in the index so is its
mention (forgetting the mention takes out the entry), with the story it was given."""
_WIDTH = PERMUTATIONS * 8
_BAND_WIDTH = ROWS * 8


def _signed(signatures: npt.NDArray[np.uint64]) -> list[tuple[Signature, tuple[Band, ...]]]:
    """Each signature row (C-contiguous) as bytes with its LSH keys: per band, its
    :data:`ROWS` values (the values themselves, not a hash of them, so candidates are
    exactly the signatures that agree on a whole band)."""
    # viewed as raw (void) fields of a row's or a band's width, numpy makes the bytes
    # objects itself: five times faster than slicing them out of one bytes in Python
    rows: list[Signature] = signatures.view(f"V{_WIDTH}").ravel().tolist()
    bands: list[Band] = signatures.view(f"V{_BAND_WIDTH}").ravel().tolist()
    keyed = zip(*[iter(bands)] * BANDS, strict=True)  # each BANDS in a row: one row's keys
    return list(zip(rows, keyed, strict=True))


def _similarity(a: Signature, b: Signature) -> float:
    """:func:`similarity` of two signatures as the index keeps them (the same value)."""
    return _similarity_to(memoryview(a).cast("Q"), b)


def _similarity_to(values: memoryview, b: Signature) -> float:
    """:func:`_similarity` of the signature whose values are ``values`` (cast once for
    all the candidates of a look-up) and ``b``."""
    agree: int = sum(map(eq, values, memoryview(b).cast("Q")))
    return agree / PERMUTATIONS


@dataclass(frozen=True, slots=True)
class Assignment:
    """Which story a mention belongs to, and why (``new``, ``repost``, ``url``,
    ``exact``, ``near`` or ``repeat``)."""

    story: str
    reason: str

    @property
    def is_copy(self) -> bool:
        return self.reason != "new"


_Remembered = tuple[datetime, str, tuple[str, ...], bytes | None, Bucket | None, tuple[Band, ...]]
"""What the index must undo when it forgets a mention: when it was made, its key, its
canonical URLs (its own and the links in its text), its words (``None`` when it has none)
and, for a signed text, the bucket it added to its bands with those band keys."""
_UNSIGNED: tuple[None, tuple[Band, ...]] = (None, ())


class StoryIndex:
    """Assigns mentions to stories within a sliding ``horizon`` of mention time."""

    def __init__(
        self, horizon: timedelta = timedelta(hours=24), max_entries: int = 200_000
    ) -> None:
        self.horizon = horizon
        self.max_entries = max_entries
        self._by_mention: dict[str, str] = {}
        self._by_url: dict[str, str] = {}
        self._by_text: dict[bytes, str] = {}  # story_words → story
        self._bands: list[dict[Band, Bucket]] = [{} for _ in range(BANDS)]
        self._order: deque[_Remembered] = deque()

    def __len__(self) -> int:
        return len(self._order)

    def assign(self, mention: Mention) -> Assignment:
        """The story of ``mention``; remembers the mention for later copies."""
        return self.assign_many([mention])[0]

    def assign_many(self, mentions: Sequence[Mention]) -> list[Assignment]:
        """:meth:`assign` each mention in order (the same stories), with the words
        (:func:`story_words`), signatures and links of the whole batch found in one pass."""
        raw = [m.text for m in mentions]
        word_lists = _word_lists(raw)
        counts = list(map(len, word_lists))
        long = [words for words, n in zip(word_lists, counts, strict=True) if n >= MIN_TOKENS]
        signed = iter(_signed(_word_signatures(long)) if long else ())
        texts = map(b" ".join, word_lists)
        order, forget, horizon = self._order, self._forget, self.horizon
        by_mention, enter, find = self._by_mention, self._enter, self._find
        out: list[Assignment] = []
        for mention, text, n, links in zip(
            mentions, texts, counts, map(_URL.findall, raw), strict=True
        ):
            sig, bands = next(signed) if n >= MIN_TOKENS else _UNSIGNED
            cutoff = mention.created_at - horizon
            while order and order[0][0] < cutoff:
                forget(order.popleft())
            key = f"{mention.source}:{mention.id}"
            story = by_mention.get(key)
            if story is not None:
                out.append(Assignment(story, "repeat"))
                continue
            url = canonical_url(mention.url) if mention.url else None
            urls = [url] if url else []
            if links:
                urls += filter(None, map(canonical_url, links))
            bucket, held = enter(key, sig, bands) if sig is not None else (None, None)
            story, reason = find(mention, urls, text, sig, bucket, held) or (key, "new")
            self._remember(mention.created_at, key, story, urls, text, bucket, bands, held)
            out.append(Assignment(story, reason))
        return out

    def _enter(
        self, key: str, sig: Signature, bands: tuple[Band, ...]
    ) -> tuple[Bucket, list[Bucket] | None]:
        """A bucket of the mention's own entry, put in at each of its band keys that no
        other mention holds: one pass over the bands serves the look-up and the usual case
        of remembering. With it, what each band key held before (that bucket where none),
        or ``None`` when no other mention holds any of them. (Another bucket never equals
        this one: no entry names a mention that is not remembered.)"""
        bucket = ((sig, key),)
        held = list(map(dict.setdefault, self._bands, bands, [bucket] * BANDS))
        return bucket, None if held.count(bucket) == BANDS else held

    def _find(
        self,
        mention: Mention,
        urls: list[str],
        text: bytes,
        sig: Signature | None,
        bucket: Bucket | None,
        held: list[Bucket] | None,
    ) -> tuple[str, str] | None:
        if mention.reposted_id is not None:
            original = f"{mention.source}:{mention.reposted_id}"
            return self._by_mention.get(original, original), "repost"
        for candidate in urls:
            if candidate in self._by_url:
                return self._by_url[candidate], "url"
        if text in self._by_text:
            return self._by_text[text], "exact"
        if sig is not None and held is not None:
            # the entries other mentions hold at the signature's band keys, band by band,
            # oldest first: each is scored once, where first met
            others = chain.from_iterable(filter(bucket.__ne__, held))
            values = memoryview(sig).cast("Q")
            best: tuple[float, str] | None = None
            for other, key in dict.fromkeys(others):
                score = _similarity_to(values, other)
                if score >= SIMILARITY and (best is None or score > best[0]):
                    best = (score, key)
            if best is not None:  # an entry's mention is remembered as long as the entry
                return self._by_mention[best[1]], "near"
        return None

    def _remember(
        self,
        at: datetime,
        key: str,
        story: str,
        urls: list[str],
        text: bytes,
        bucket: Bucket | None,
        bands: tuple[Band, ...],
        held: list[Bucket] | None,
    ) -> None:
        self._by_mention[key] = story
        for candidate in urls:
            self._by_url.setdefault(candidate, story)
        if text:
            self._by_text.setdefault(text, story)
        if bucket is not None and held is not None:
            # the band keys that other mentions hold already (_enter put the bucket in
            # the others): its entry goes after theirs
            for keyed, band, entries in zip(self._bands, bands, held, strict=True):
                if entries is not bucket:
                    keyed[band] = entries + bucket
        self._order.append((at, key, tuple(urls), text or None, bucket, bands))
        while len(self._order) > self.max_entries:
            self._forget(self._order.popleft())

    def _forget(self, remembered: _Remembered) -> None:
        _, key, urls, text, bucket, bands = remembered
        story = self._by_mention.pop(key)  # each remembered key is in it until forgotten
        for url in urls:  # its own URL and the links in its text
            if self._by_url.get(url) == story:
                del self._by_url[url]
        # taken out and put back when another story holds it (one look-up, usually)
        if text is not None and (held := self._by_text.pop(text, story)) != story:
            self._by_text[text] = held
        if bucket is not None:
            # the signature leaves every bucket of its bands (with any other mention's
            # entry of the same signature). One pass takes the buckets out: the usual case
            # is a bucket of this entry alone; any other entries go back.
            taken = list(map(dict.pop, self._bands, bands, [None] * BANDS))
            if taken.count(bucket) != BANDS:
                sig = bucket[0][0]
                for keyed, band, entries in zip(self._bands, bands, taken, strict=True):
                    kept = tuple(e for e in entries or () if e[0] != sig)
                    if kept:
                        keyed[band] = kept
