"""Unit tests of the pure parts of the RSS collector: feed → mentions, and header parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from listener.collectors.fetch import parse_retry_after, redact_url
from listener.collectors.rss import html_to_text, parse_feed
from listener.collectors.text import MAX_TEXT_CHARS
from listener.errors import MalformedResponse
from listener.model import Engagement

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
HEADERS = {"content-type": "application/rss+xml", "content-location": "http://example.test/feed"}


def rss(items: str, channel_extra: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<rss version="2.0"><channel>'
        f"<title>Example</title><link>http://example.test/</link>{channel_extra}"
        f"{items}</channel></rss>"
    ).encode()


FULL_ITEM = """
<item>
  <title>Acme &amp; Co recall</title>
  <link>http://example.test/a/1</link>
  <guid isPermaLink="false">tag:example.test,2026:1</guid>
  <description>&lt;p&gt;Customers   &lt;b&gt;angry&lt;/b&gt;&lt;br/&gt;about the
  recall &amp;amp; refunds.&lt;/p&gt;&lt;script&gt;alert(1)&lt;/script&gt;</description>
  <pubDate>Mon, 02 Mar 2026 10:30:00 +0200</pubDate>
  <author>jane@example.test (Jane Doe)</author>
</item>
"""


def test_rss_item_maps_every_field() -> None:
    """A complete RSS 2.0 item becomes one mention with each field mapped as documented."""
    [mention] = parse_feed("news", rss(FULL_ITEM, "<language>en-GB</language>"), HEADERS, NOW)

    assert mention.source == "news"
    assert mention.id == "tag:example.test,2026:1"
    assert mention.title == "Acme & Co recall"
    assert mention.text == "Acme & Co recall. Customers angry about the recall & refunds."
    assert mention.url == "http://example.test/a/1"
    assert mention.created_at == datetime(2026, 3, 2, 8, 30, tzinfo=UTC)
    assert mention.created_at.utcoffset() == timedelta(0)
    assert mention.author.handle == "jane@example.test (Jane Doe)"
    assert mention.author.display_name
    assert mention.language == "en-gb"
    assert mention.engagement == Engagement()


def test_id_falls_back_to_link_then_to_a_stable_hash() -> None:
    """Without a guid the link is the id; without either, a stable hash of title and date."""
    linked = "<item><title>T</title><link>http://example.test/x</link></item>"
    bare = (
        "<item><title>Only a title</title><pubDate>Mon, 02 Mar 2026 08:00:00 GMT</pubDate></item>"
    )
    other = "<item><title>Another title</title></item>"

    [by_link] = parse_feed("s", rss(linked), HEADERS, NOW)
    first = parse_feed("s", rss(bare + other), HEADERS, NOW)
    again = parse_feed("s", rss(bare + other), HEADERS, NOW + timedelta(hours=1))

    assert by_link.id == "http://example.test/x"
    assert [m.id for m in first] == [m.id for m in again]
    assert first[0].id != first[1].id
    assert all(m.id.startswith("sha1:") for m in first)


def test_missing_date_uses_now_and_missing_fields_are_none() -> None:
    """An item with only a description gets ``now`` as its time and no title, url or author."""
    [mention] = parse_feed(
        "s", rss("<item><description>Just text</description></item>"), HEADERS, NOW
    )

    assert mention.created_at == NOW
    assert mention.text == "Just text"
    assert mention.title is None
    assert mention.url is None
    assert mention.author.handle is None
    assert mention.language is None


def test_atom_updated_date_content_and_relative_link() -> None:
    """An Atom entry uses ``updated``, its content when there is no summary, and resolves
    relative links against the content location."""
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="de">
  <title>A</title><id>urn:feed</id><updated>2026-03-01T12:00:00Z</updated>
  <entry>
    <title type="html">Hello &lt;em&gt;world&lt;/em&gt;</title>
    <id>urn:entry:1</id>
    <link rel="alternate" href="posts/1"/>
    <updated>2026-03-01T12:00:00-05:00</updated>
    <author><name>Max</name></author>
    <content type="html">&lt;div&gt;First&lt;/div&gt;&lt;div&gt;second&lt;/div&gt;</content>
  </entry>
</feed>"""
    headers = {"content-type": "application/atom+xml", "content-location": "http://h.test/blog/"}

    [mention] = parse_feed("blog", body, headers, NOW)

    assert mention.id == "urn:entry:1"
    assert mention.text == "Hello world. First second"
    assert mention.url == "http://h.test/blog/posts/1"
    assert mention.created_at == datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    assert mention.author.handle == "Max"
    assert mention.author.display_name == "Max"


def test_ids_do_not_depend_on_the_feed_location() -> None:
    """Relative ids stay as written whatever the base URL, so a moved feed keeps its ids."""
    body = rss("<item><guid>42</guid><title>t</title><link>javascript:alert(1)</link></item>")

    [here] = parse_feed("s", body, {"content-location": "http://a.test/x/feed"}, NOW)
    [there] = parse_feed("s", body, {"content-location": "https://b.test/feed"}, NOW)

    assert here.id == there.id == "42"
    assert here.url is None


def test_text_is_capped() -> None:
    """Very long summaries are cut to the documented maximum length."""
    long_item = f"<item><title>T</title><description>{'word ' * 3000}</description></item>"

    [mention] = parse_feed("s", rss(long_item), HEADERS, NOW)

    assert len(mention.text) <= MAX_TEXT_CHARS
    assert mention.text.endswith("…")


def test_mixed_case_header_keys_still_give_the_charset() -> None:
    """The HTTP charset is honoured even when header names arrive in mixed case."""
    body = (
        "<rss version='2.0'><channel><title>x</title>"
        "<item><guid>1</guid><title>Caf\u00e9 cr\u00e8me</title></item></channel></rss>"
    ).encode("iso-8859-1")
    headers = {"Content-Type": "text/xml; charset=iso-8859-1", "Content-Location": "http://a.test/"}

    [mention] = parse_feed("s", body, headers, NOW)

    assert mention.title == "Café crème"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   \n",
        b"this is not a feed \x00\xff",
        b"<html><head><title>Portal</title></head><body><p>Log in</p></body></html>",
        b'{"error": "maintenance"}',
    ],
)
def test_non_feeds_are_malformed(body: bytes) -> None:
    """Empty bodies and documents feedparser cannot recognise as a feed raise MalformedResponse."""
    with pytest.raises(MalformedResponse):
        parse_feed("s", body, {"content-type": "text/html"}, NOW)


def test_slightly_broken_feed_with_entries_is_accepted() -> None:
    """A feed that feedparser flags as bozo but still yields entries is accepted."""
    body = (
        b"<rss version='2.0'><channel><item><guid>urn:x:1</guid><title>Broken & still fine</title>"
    )

    mentions = parse_feed("s", body, HEADERS, NOW)

    assert [m.id for m in mentions] == ["urn:x:1"]


def test_html_to_text_strips_tags_scripts_and_entities() -> None:
    """HTML fragments become one line of text (no-break spaces collapse too), without scripts."""
    fragment = "<p>One&nbsp;&amp;\n two</p><script>x()</script><style>p{}</style>three<br>four"

    assert html_to_text(fragment) == "One & two three four"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "120"}, 120.0),
        ({"retry-after": "Mon, 02 Mar 2026 09:01:00 GMT"}, 60.0),
        ({"retry-after": "Mon, 02 Mar 2026 08:00:00 GMT"}, 0.0),
        ({"x-rate-limit-reset": str(NOW.timestamp() + 30)}, 30.0),
        ({"x-ratelimit-reset": "42"}, 42.0),
        ({"x-ratelimit-reset": str(NOW.timestamp() + 15)}, 15.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    """Retry-After (seconds or date) and the X/Reddit/GitHub reset headers give seconds to wait."""
    assert parse_retry_after(headers, NOW.timestamp()) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://user:pw@example.test:8443/feed.xml?token=secret#x",
            "https://example.test:8443/feed.xml",
        ),
        ("http://example.test/a/b?c=d", "http://example.test/a/b"),
        ("http://[::1]:80/x", "http://[::1]:80/x"),
    ],
)
def test_redact_url_keeps_only_scheme_host_and_path(url: str, expected: str) -> None:
    """URLs in messages lose user info, query string and fragment."""
    assert redact_url(url) == expected


@pytest.mark.parametrize(
    ("title", "summary", "text"),
    [
        ("Acme recall", "Acme recall: customers angry", "Acme recall: customers angry"),
        ("Acme  Recall", "acme recall - customers angry", "acme recall - customers angry"),
        ("Acme down - The Verge", "Acme down  The Verge", "Acme down - The Verge"),
        ("Acme down - The Verge", "Acme down", "Acme down - The Verge"),
        (
            "Acme down - The Verge",
            "Acme down for hours, say users",
            "Acme down for hours, say users",
        ),
        ("Acme recall", "Customers angry", "Acme recall. Customers angry"),
    ],
)
def test_text_does_not_repeat_the_title(title: str, summary: str, text: str) -> None:
    """A summary that starts with the title (or is only the headline and publisher of a
    news search item) is not appended to it: the mention text says everything once."""
    item = f"<item><guid>g</guid><title>{title}</title><description>{summary}</description></item>"
    [mention] = parse_feed("news", rss(item), HEADERS, NOW)
    assert mention.text == text
