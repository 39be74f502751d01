"""Story grouping: reposts, shared URLs, exact and near-duplicate copies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from listener.matching.stories import StoryIndex, canonical_url, story_text
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
