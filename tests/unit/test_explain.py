"""Spike explanation: the features of a mention, the weighted log-odds, and which drivers
an explanation lists (listener.scoring.explain)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from listener.config.schema import BrandConfig
from listener.model import MentionRef, StoredMention
from listener.scoring.explain import (
    BASELINE,
    MIN_SCORE,
    brand_words,
    explain,
    explain_window,
    features,
    log_odds,
)

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def said(
    text: str,
    n: int,
    author: str | None = None,
    *,
    url: str | None = None,
    story: str | None = None,
    reach: float = 1.0,
    source: str = "x",
) -> StoredMention:
    ref = MentionRef(source, f"m{n}", text[:280], url, author or f"u{n}", None, T0, -0.5)
    return StoredMention(ref, text, story or f"{source}:m{n}", reach)


def test_features_are_words_phrases_hashtags_links_story_and_author() -> None:
    item = said(
        "Acme's checkout is DOWN again!! Cancelled flight, cancelled refund #AcmeDown "
        "@support see https://www.status.acme.example/incidents/42 and https://t.co/xyz",
        1,
        "ana",
        url="https://x.com/ana/status/1",
    )
    found = features(item, brand_words(BrandConfig(name="Acme")))
    terms = {label for kind, label in found if kind == "term"}
    assert terms == {"checkout", "cancelled", "flight", "refund"}  # no "is", "again", "acme's"
    phrases = {label for kind, label in found if kind == "phrase"}
    assert phrases == {"cancelled flight", "cancelled refund"}  # only neighbours, no stopword
    assert ("hashtag", "#acmedown") in found
    assert {label for kind, label in found if kind == "domain"} == {
        "status.acme.example",
        "x.com",
    }  # t.co is a shortener: it says nothing about where a link leads
    assert ("story", "x:m1") in found
    assert ("author", "@ana (x)") in found
    assert not [label for _, label in found if "support" in label]  # handles are not words


def test_brand_words_are_every_name_and_word_of_the_brand() -> None:
    brand = BrandConfig(
        name="Acme Cloud", aliases=["ACME"], handles=["@acmehelp"], hashtags=["#AcmeDown"]
    )
    assert brand_words(brand) == {"acme cloud", "acme", "cloud", "acmehelp", "acmedown"}


def test_log_odds_rises_with_the_rate_and_with_the_evidence() -> None:
    """Zero for the same rate; larger for a bigger rise; and the prior makes the same
    rate on more mentions surer than on few."""
    assert log_odds(10, 100, 100, 1000) == pytest.approx(0.0, abs=0.05)
    assert log_odds(30, 100, 100, 1000) > log_odds(20, 100, 100, 1000) > 0
    assert log_odds(12, 50, 0, 20000) > MIN_SCORE  # new in the window, in a big baseline
    assert log_odds(40, 200, 0, 1000) > log_odds(2, 10, 0, 1000)
    assert log_odds(1, 100, 100, 1000) < 0  # fell
    assert log_odds(5, 5, 0, 0) > 0  # no baseline at all: still a number


def test_what_many_people_say_leads_with_its_counts_and_example() -> None:
    window = [said(f"checkout outage number {i}", i, reach=i) for i in range(12)]
    window += [said(f"love the new logo {i}", 100 + i) for i in range(3)]
    baseline = [said(f"love the new logo {i}", 200 + i) for i in range(60)]
    baseline += [said("checkout works", 300 + i) for i in range(5)]
    drivers = explain(window, baseline)
    top = drivers[0]
    assert (top.kind, top.label, top.now, top.before) in {
        ("term", "outage", 12, 0),
        ("phrase", "checkout outage", 12, 0),
    }
    labels = {(d.kind, d.label) for d in drivers}
    assert {("term", "outage"), ("phrase", "checkout outage"), ("term", "checkout")} <= labels
    assert ("term", "logo") not in labels  # as usual
    outage = next(d for d in drivers if d.label == "outage")
    assert outage.example is not None
    assert outage.example.id == "m11"  # the furthest-travelled
    assert [d.score for d in drivers] == sorted((d.score for d in drivers), reverse=True)


def test_one_account_or_one_viral_post_is_shown_as_itself() -> None:
    """Forty posts by one account: the author is a driver, its words are not. A post and
    its copies: the story is a driver, its words are not (they come from one story)."""
    spam = [said(f"giveaway winner {i}", i, "bot") for i in range(40)]
    viral = [
        said("Leaked memo shows Acme knew", 100 + i, f"r{i}", story="x:m100") for i in range(30)
    ]
    baseline = [said(f"ordinary day {i}", 200 + i) for i in range(100)]
    drivers = explain([*spam, *viral], baseline)
    labels = {(d.kind, d.label) for d in drivers}
    assert ("author", "@bot (x)") in labels
    assert ("term", "giveaway") not in labels
    assert ("story", "Leaked memo shows Acme knew") in labels
    assert ("term", "leaked") not in labels
    assert ("term", "memo") not in labels


def test_the_list_is_capped_in_all_and_per_kind_and_deterministic() -> None:
    words = [f"topic{k}" for k in range(12)]
    window = [said(" ".join(words), i) for i in range(20)]
    baseline = [said("nothing much", 100 + i) for i in range(50)]
    drivers = explain(window, baseline, limit=6)
    assert len(drivers) == 6
    assert sum(d.kind == "phrase" for d in drivers) == 3  # ties: phrases sort first
    assert sum(d.kind == "term" for d in drivers) == 3
    assert drivers == explain(list(reversed(window)), baseline, limit=6)


def test_nothing_stands_out_when_the_window_is_as_usual() -> None:
    window = [said(f"great coffee today {i}", i) for i in range(10)]
    baseline = [said(f"great coffee today {i}", 100 + i) for i in range(200)]
    assert explain(window, baseline) == ()


def reader(negative: list[StoredMention], others: list[StoredMention]):  # type: ignore[no-untyped-def]
    """A store's ``recent`` over two lists: the negative mentions and the rest."""
    rows = [replace(m, negative=True) for m in negative] + others

    def read(start: datetime, end: datetime, limit: int):  # type: ignore[no-untyped-def]
        inside = [m for m in rows if start <= m.ref.created_at < end]
        return sorted(inside, key=lambda m: m.ref.created_at, reverse=True)[:limit]

    return read


def at(item: StoredMention, when: datetime) -> StoredMention:
    return StoredMention(
        MentionRef(
            item.ref.source,
            item.ref.id,
            item.ref.text,
            item.ref.url,
            item.ref.author,
            item.ref.followers,
            when,
            item.ref.sentiment,
        ),
        item.text,
        item.story,
        item.reach,
    )


def test_the_window_compares_its_complaints_with_the_usual_ones() -> None:
    start, end = T0 - timedelta(minutes=15), T0 + timedelta(minutes=1)
    now = [at(said(f"refund refused {i}", i), T0 - timedelta(minutes=i)) for i in range(6)]
    usual = [
        at(said(f"slow delivery {i}", 100 + i), T0 - timedelta(hours=1 + i % 20)) for i in range(30)
    ]
    chatter = [at(said(f"hello {i}", 200 + i), T0 - timedelta(hours=2)) for i in range(50)]
    explained = explain_window(reader([*now, *usual], chatter), start, end, frozenset())
    assert explained is not None
    assert (explained.negative, explained.baseline_negative) == (True, True)
    assert (explained.mentions, explained.baseline) == (6, 30)
    assert explained.baseline_start == start - BASELINE
    assert explained.drivers[0].label in {"refund", "refused", "refund refused"}


def test_a_brand_without_usual_complaints_is_compared_with_all_it_hears() -> None:
    start, end = T0 - timedelta(minutes=15), T0 + timedelta(minutes=1)
    now = [at(said(f"app crashes {i}", i), T0 - timedelta(minutes=i)) for i in range(6)]
    chatter = [at(said(f"hello {i}", 200 + i), T0 - timedelta(hours=2)) for i in range(50)]
    explained = explain_window(reader(now, chatter), start, end, frozenset())
    assert explained is not None
    assert (explained.negative, explained.baseline_negative) == (True, False)
    assert explained.baseline == 50


def test_few_negative_mentions_explain_all_of_them_and_too_few_explain_nothing() -> None:
    start, end = T0 - timedelta(minutes=15), T0 + timedelta(minutes=1)
    calm = [at(said(f"new store opening {i}", i), T0 - timedelta(minutes=i)) for i in range(5)]
    explained = explain_window(reader([], calm), start, end, frozenset())
    assert explained is not None
    assert explained.negative is False
    assert explained.mentions == 5
    assert explain_window(reader([], calm[:2]), start, end, frozenset()) is None


def test_when_too_little_rose_what_the_window_is_about_follows() -> None:
    """An angry customer posting five times rose (an author), but says nothing of what
    about: the window's most carried words follow, marked as not risen; when nothing
    rose at all, only they are listed."""
    start, end = T0 - timedelta(minutes=15), T0 + timedelta(minutes=1)
    angry = [
        at(said(f"hold music again {i}", i, "ana"), T0 - timedelta(minutes=i)) for i in range(5)
    ]
    others = [at(said(f"on hold forever {i}", 10 + i), T0 - timedelta(minutes=i)) for i in range(3)]
    usual = [
        at(said(f"on hold again {i}", 100 + i), T0 - timedelta(hours=1 + i % 20)) for i in range(40)
    ]
    explained = explain_window(reader([*angry, *others, *usual], []), start, end, frozenset())
    assert explained is not None
    assert explained.rose
    first, *rest = explained.drivers
    assert (first.kind, first.label, first.rose) == ("author", "@ana (x)", True)
    assert rest
    assert all(not d.rose for d in rest)
    assert rest[0].label == "hold"  # in all 8 of the window's complaints
    quiet = explain_window(reader([*others, *usual], []), start, end, frozenset())
    assert quiet is not None
    assert not quiet.rose
    assert {"hold", "forever", "hold forever"} <= {d.label for d in quiet.drivers}


def test_how_people_feel_is_not_why() -> None:
    """Words of feeling ("terrible", "worst", "love") are never drivers: the alert's
    sentiment says that already; what they are about is."""
    found = features(said("Worst outage ever, terrible support, love the new logo", 1))
    words = {label for kind, label in found if kind == "term"}
    assert words == {"outage", "support", "new", "logo"}
