"""Story grouping: reposts, shared URLs, exact and near-duplicate copies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.matching.stories import (
    PERMUTATIONS,
    SEEDS,
    StoryIndex,
    _signatures,
    _signed,
    _similarity,
    canonical_url,
    minhash,
    minhash_many,
    similarity,
    story_text,
)
from listener.model import Mention

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
BASE = "Acme cloud is down again and nobody at support answers the phone, this is terrible"


def mention(
    i: int,
    text: str,
    *,
    at: datetime = T0,
    url: str | None = None,
    reposted: str | None = None,
    source: str = "x",
) -> Mention:
    return Mention(
        source=source,
        id=str(i),
        text=text,
        created_at=at,
        url=url,
        is_repost=reposted is not None,
        reposted_id=reposted,
    )


def test_new_text_starts_its_own_story() -> None:
    """An original mention's story is its own source:id."""
    index = StoryIndex()
    a = index.assign(mention(1, BASE))
    assert (a.story, a.reason, a.is_copy) == ("x:1", "new", False)


def test_retweet_prefix_handles_and_links_do_not_make_a_new_story() -> None:
    """`RT @user:` copies, changed handles and appended links are the same story."""
    index = StoryIndex()
    index.assign(mention(1, BASE))
    assert index.assign(mention(2, f"RT @someone: {BASE}")).reason == "exact"
    assert index.assign(mention(3, f"{BASE} https://t.co/abc @acme")).story == "x:1"


def test_near_duplicates_join_but_different_texts_do_not() -> None:
    """A few changed words still match; an unrelated complaint starts a new story."""
    index = StoryIndex()
    index.assign(mention(1, BASE))
    near = index.assign(mention(2, BASE.replace("terrible", "awful!!")))
    assert (near.story, near.reason) == ("x:1", "near")
    other = index.assign(mention(3, "Love the new Acme dashboard, the dark mode is great"))
    assert other.story == "x:3"


def test_reposts_follow_their_original() -> None:
    """A repost belongs to the original's story, even a repost of a copy."""
    index = StoryIndex()
    index.assign(mention(1, BASE))
    index.assign(mention(2, f"RT @bob: {BASE}"))
    assert index.assign(mention(3, "", reposted="2")).story == "x:1"
    assert index.assign(mention(4, "", reposted="999")).story == "x:999"


def test_syndicated_articles_share_a_story_by_canonical_url() -> None:
    """Tracking parameters, www. and trailing slashes do not split an article's story."""
    index = StoryIndex()
    index.assign(
        mention(
            1, "Acme outage hits thousands", url="https://www.news.test/acme-outage/", source="news"
        )
    )
    same = index.assign(
        mention(
            2,
            "Different headline",
            source="blog",
            url="https://news.test/acme-outage?utm_source=tw&fbclid=1",
        )
    )
    assert (same.story, same.reason) == ("news:1", "url")


def test_horizon_evicts_old_stories() -> None:
    """Past the horizon a copy starts a new story and memory stays bounded."""
    index = StoryIndex(horizon=timedelta(hours=1))
    index.assign(mention(1, BASE))
    late = index.assign(mention(2, BASE, at=T0 + timedelta(hours=2)))
    assert late.story == "x:2"
    assert len(index) == 1


def test_forgetting_a_signature_keeps_the_others_in_its_buckets() -> None:
    """Eviction drops the evicted signature from a band bucket it shares with a later
    near-copy, whose story later copies still find; no bucket is left empty."""
    index = StoryIndex(horizon=timedelta(hours=1))
    index.assign(mention(1, BASE))
    near = index.assign(mention(2, f"{BASE} today", at=T0 + timedelta(minutes=40)))
    assert near.reason == "near"
    later = index.assign(mention(3, f"{BASE} today!!", at=T0 + timedelta(minutes=70)))
    assert (later.story, later.reason) in {("x:1", "exact"), ("x:1", "near")}
    assert all(entries for keyed in index._bands for entries in keyed.values())
    assert all(isinstance(e, tuple) for keyed in index._bands for e in keyed.values())


def test_canonical_url() -> None:
    """Canonical URLs keep meaningful query parameters, sorted, and drop the rest."""
    assert canonical_url("https://www.Example.com/a/?utm_source=x&id=2&b=1#top") == (
        "example.com/a?b=1&id=2"
    )
    assert canonical_url("ftp://x/y") is None
    assert canonical_url("not a url") is None


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "acme",
                "down",
                "again",
                "refund",
                "please",
                "now",
                "why",
                "support",
                "broken",
                "today",
            ]
        ),
        min_size=6,
        max_size=14,
    )
)
def test_a_copy_with_noise_is_always_the_same_story(words: list[str]) -> None:
    """Case, punctuation, handles and links never make a copy a new story."""
    text = " ".join(words)
    noisy = f"RT @bot: {text.upper()}!!! https://t.co/x @acme"
    index = StoryIndex()
    index.assign(mention(1, text))
    assert story_text(noisy) == story_text(text)
    assert index.assign(mention(2, noisy)).story == "x:1"


def reference_minhash(tokens: list[str]) -> tuple[int, ...]:
    """The signature scheme in plain Python integers: CRC-32 per word, then for each seed
    the least ``(a * h + b) mod 2**64``."""
    hashes = {zlib.crc32(t.encode()) for t in tokens}
    return tuple(min((a * h + b) % 2**64 for h in hashes) for a, b in SEEDS)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=12), min_size=1, max_size=60))
def test_vectorised_signature_equals_the_plain_python_scheme(tokens: list[str]) -> None:
    """numpy's uint64 wraparound computes exactly the integer scheme, for any words."""
    assert minhash(tokens) == reference_minhash(tokens)


def test_signature_is_pinned() -> None:
    """The scheme's values are fixed: a change would silently regroup stories after an upgrade."""
    assert len(SEEDS) == PERMUTATIONS
    assert all(a % 2 == 1 for a, _ in SEEDS)
    assert minhash(["acme", "cloud", "is", "down", "again"])[:3] == (
        7732010929850501066,
        4348564113763993444,
        666356224729961321,
    )
    with pytest.raises(ValueError, match="empty"):
        minhash([])


def words(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


@pytest.mark.parametrize("shared", [10, 20, 30, 35, 40])
def test_similarity_estimates_exact_jaccard(shared: int) -> None:
    """Over 200 constructed pairs the mean estimate is within 0.03 of the exact Jaccard,
    and no single pair is off by more than 5 standard deviations of a 32-value estimate."""
    errors = []
    for pair in range(200):
        common = words(f"p{pair}c", shared)
        a = common + words(f"p{pair}a", 40 - shared)
        b = common + words(f"p{pair}b", 40 - shared)
        exact = len(set(a) & set(b)) / len(set(a) | set(b))
        errors.append(similarity(minhash(a), minhash(b)) - exact)
        sd = (exact * (1 - exact) / PERMUTATIONS) ** 0.5
        assert abs(errors[-1]) <= 5 * sd + 1e-9
    assert sum(errors) / len(errors) == pytest.approx(0.0, abs=0.03)


def test_identical_and_disjoint_word_sets() -> None:
    """Same set: similarity 1; disjoint sets: 0, since each permutation is injective."""
    a, b = words("a", 12), words("b", 12)
    assert similarity(minhash(a), minhash(list(reversed(a)))) == 1.0
    assert similarity(minhash(a), minhash(b)) == 0.0


_GROUPING = """
import json, sys
from datetime import UTC, datetime, timedelta
from listener.matching.stories import StoryIndex, minhash, story_text
from listener.model import Mention
texts = json.loads(sys.argv[1])
index = StoryIndex()
t0 = datetime(2026, 3, 2, tzinfo=UTC)
out = []
for i, text in enumerate(texts):
    m = Mention(source="x", id=str(i), text=text, created_at=t0 + timedelta(minutes=i))
    a = index.assign(m)
    out.append([a.story, a.reason, list(minhash(story_text(text)))])
print(json.dumps(out))
"""


def test_grouping_is_the_same_in_fresh_processes() -> None:
    """Two processes with different str hash salts give identical signatures, ids and reasons."""
    texts = [
        BASE,
        BASE.replace("terrible", "awful"),
        "Love the new Acme dashboard, the dark mode is great",
        f"RT @x: {BASE}",
        "Acme support answered in five minutes and fixed my cloud problem today",
        "Acme support answered in five minutes and fixed my cloud issue today!!",
    ]
    runs = []
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt}
        done = subprocess.run(
            [sys.executable, "-c", _GROUPING, json.dumps(texts)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        runs.append(json.loads(done.stdout))
    assert runs[0] == runs[1]
    assert [r[:2] for r in runs[0]] == [
        ["x:0", "new"],
        ["x:0", "near"],
        ["x:2", "new"],
        ["x:0", "exact"],
        ["x:4", "new"],
        ["x:4", "near"],
    ]
    assert [tuple(r[2]) for r in runs[0]] == [minhash(story_text(t)) for t in texts]


@settings(max_examples=100, deadline=None)
@given(
    batch=st.lists(
        st.lists(st.sampled_from(["a", "b", "c", "d", "é", "x1", "acme", "down"]), min_size=1),
        max_size=8,
    )
)
def test_batch_signatures_equal_one_at_a_time(batch: list[list[str]]) -> None:
    """minhash_many gives each token list the signature minhash gives it alone."""
    assert minhash_many(batch) == [minhash(tokens) for tokens in batch]


@settings(max_examples=100, deadline=None)
@given(
    batch=st.lists(
        st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f", "acme", "down"]), min_size=1),
        min_size=2,
        max_size=6,
    )
)
def test_index_signatures_and_bands_are_the_signature_values(batch: list[list[str]]) -> None:
    """The index's byte signatures hold minhash's values, their bands the values band by
    band, and their similarity is similarity's."""
    signed = _signed(_signatures(batch))
    sigs = [minhash(tokens) for tokens in batch]
    for (raw, bands), sig in zip(signed, sigs, strict=True):
        assert tuple(memoryview(raw).cast("Q")) == sig
        assert [tuple(memoryview(b).cast("Q")) for b in bands] == [
            sig[i : i + 4] for i in range(0, PERMUTATIONS, 4)
        ]
    for (a, _), x in zip(signed, sigs, strict=True):
        for (b, _), y in zip(signed, sigs, strict=True):
            assert _similarity(a, b) == similarity(x, y)


def test_assign_many_equals_assign_in_order() -> None:
    """A batch gets the stories (and reasons) that assigning one by one gives, copies
    within the batch, repeats, short texts and evictions included."""
    hour = timedelta(hours=1)
    texts = [BASE, BASE + " again", "short one", BASE.upper(), "other news entirely " * 2]
    mentions = [mention(i, t, at=T0 + i * hour) for i, t in enumerate(texts)]
    mentions += [mentions[1], mention(9, BASE, at=T0 + 30 * hour)]
    one, many = StoryIndex(), StoryIndex()
    expected = [one.assign(m) for m in mentions]
    assert many.assign_many(mentions) == expected
    assert {a.reason for a in expected} >= {"new", "exact", "near", "repeat"}
