"""Spike explanation: what rose most in an alert's window against its baseline.

Each mention is reduced to the set of things it carries (:func:`features`): words, two-word
phrases, hashtags, the story it belongs to, the domains it links to, its author. For each
feature, the mentions that carry it in the window (``now`` of ``n``) and in the baseline
(``before`` of ``m``) are compared by the **weighted log-odds ratio with an informative
Dirichlet prior** (Monroe, Colaresi & Quinn 2008, "Fightin' Words", eq. 16–22), on
document counts:

    prior      α_w = α₀ · (now + before + ½) / (n + m + 1),    α₀ = n + m + 1
    log-odds   δ_w = log((now + α_w) / (n + α₀ − now − α_w))
                   − log((before + α_w) / (m + α₀ − before − α_w))
    variance   σ²_w ≈ 1/(now + α_w) + 1/(n + α₀ − now − α_w)
                   + 1/(before + α_w) + 1/(m + α₀ − before − α_w)
    score      z_w = δ_w / σ_w

The background corpus of the prior is the window and the baseline together (α₀ their
size: the prior is the pooled counts, smoothed by ½ so no cell is empty). It shrinks
rare features towards no change, so a word seen twice is not ranked above a word seen
forty times, and it keeps a word that is new in the window (none in the baseline) from
an infinite ratio; the z-score says how sure the rise is. A driver must be
carried by at least :data:`MIN_SUPPORT` mentions of the window, by more than one author
(one account posting forty times is shown as that author, not as its words), and score at
least :data:`MIN_SCORE`.

Pure and deterministic: ties are broken by label; no clock, no I/O.
"""

from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from listener.config.schema import BrandConfig
from listener.matching.brands import normalise
from listener.model import Driver, DriverKind, Explanation, StoredMention

MIN_SUPPORT = 3
"""The fewest window mentions that must carry a driver."""
MIN_STORIES = 2
"""The fewest distinct stories (a post and its copies) that must carry a word, phrase,
hashtag or domain: one viral post's words are shown as its story instead."""
MIN_SCORE = 1.96
"""The least z-score of a driver (the pooled prior is conservative: a word that doubles
from 10 % to 20 % of 100 mentions scores about 1; one new in 12 of 50, about 3)."""
LIMIT = 8
"""The most drivers an explanation lists."""
COMMON_LIMIT = 5
"""The most of what a window is about, listed when too few things rose."""
ABOUT_BELOW = 3
"""Fewer risen words, phrases, hashtags, domains and stories than this, and what the
window is most about is listed after them."""
PER_KIND: dict[DriverKind, int] = {
    "term": 4,
    "phrase": 3,
    "hashtag": 3,
    "story": 2,
    "domain": 2,
    "author": 2,
}
"""The most drivers of each kind."""
STORY_CHARS = 120
"""The most characters of a story's lead text shown as its label."""
CACHE_SIZE = 8192
"""Mentions whose features a :class:`FeatureCache` keeps."""
TEXT_CHARS = 2000
"""The most characters of a mention read for words (a long article's lead)."""

_URL = re.compile(r"https?://[^\s<>\"']+", re.IGNORECASE)
_HASHTAG = re.compile(r"(?<![\w#])#(\w{2,60})")
_HANDLE = re.compile(r"(?<![\w@])@\w+")
_TOKEN = re.compile(r"[^\W\d_](?:[\w'-]*\w)?|[.,!?;:()\[\]{}\"…|/]")
"""A word, or a mark that ends a clause (no phrase is made across it)."""
_WORD = re.compile(r"[^\W\d_](?:[\w'-]*\w)?")
_PLATFORM_DOMAINS = frozenset({"t.co", "bit.ly", "buff.ly", "ow.ly", "tinyurl.com", "lnkd.in"})
"""Link shorteners: a domain that says nothing about where a link leads."""

_STOP = """
a about above after again against all also am an and any are aren't as at be because
been before being below between both but by can can't cannot could couldn't did didn't
do does doesn't doing don't down during each even ever every few for from further get
gets got had hadn't has hasn't have haven't having he he'd he'll he's her here here's
hers herself him himself his how how's however i i'd i'll i'm i've if in into is isn't
it it's its itself just let's like me more most mustn't my myself no nor not now of off
on once only or other ought our ours ourselves out over own really same shan't she she'd
she'll she's should shouldn't so some still such than that that's the their theirs them
themselves then there there's these they they'd they'll they're they've this those
though through to too under until up upon us very via was wasn't we we'd we'll we're
we've were weren't what what's when when's where where's which while who who's whom why
why's will with won't would wouldn't yet you you'd you'll you're you've your yours
yourself yourselves rt amp http https www com one two im dont cant youre thats ive
"""
STOPWORDS = frozenset(_STOP.split()) | {
    "see",
    "say",
    "said",
    "says",
    "know",
    "make",
    "made",
    "going",
    "went",
    "come",
    "came",
}
"""English function words, and the tokens of tweets and links that carry no topic."""

_FEEL = """
terrible awful horrible horrendous worst worse bad poor pathetic ridiculous unacceptable
disappointed disappointing disgusting disgusted useless hate hated love loved great good
best better amazing awesome excellent fantastic wonderful nice thanks thank thx please
sucks suck shame shameful annoying annoyed frustrating frustrated angry upset mad
furious seriously literally absolutely totally honestly ever never lol omg wtf smh ugh
"""
FEELINGS = frozenset(_FEEL.split())
"""Words that say how people feel, not what about: the alert's sentiment says that
already, and a spike of complaints always raises them. Left out of the drivers."""


def _bare(word: str) -> str:
    """A word without quotes, dashes or a possessive ``'s`` at its ends."""
    word = word.strip("'-")
    return word[:-2] if word.endswith("'s") else word


def _domain(url: str) -> str | None:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return None
    host = host.removeprefix("www.").rstrip(".")
    if not host or "." not in host or host in _PLATFORM_DOMAINS:
        return None
    return host


Key = tuple[DriverKind, str]


def features(item: StoredMention, ignore: frozenset[str] = frozenset()) -> set[Key]:
    """What ``item`` carries: words and two-word phrases (no function words, nothing in
    ``ignore``: the brand's own names), hashtags, linked domains, its story, its author."""
    raw = item.text[:TEXT_CHARS]
    out: set[Key] = set()
    if item.ref.url:
        host = _domain(item.ref.url)
        if host is not None:
            out.add(("domain", host))
    if "://" in raw:
        for url in _URL.findall(raw):
            host = _domain(url)
            if host is not None:
                out.add(("domain", host))
        raw = _URL.sub(" , ", raw)  # a link ends a clause
    if "@" in raw:
        raw = _HANDLE.sub(" , ", raw)
    folded = normalise(raw)
    if not folded.isascii():
        folded = folded.replace("\u2019", "'").replace("\u2018", "'").replace("\u02bc", "'")
    if "#" in folded:
        for tag in _HASHTAG.findall(folded):
            if tag not in ignore:
                out.add(("hashtag", "#" + tag))
        folded = _HASHTAG.sub(" , ", folded)
    previous = ""
    for token in _TOKEN.findall(folded):  # words, and the punctuation that ends a clause
        if not token[0].isalpha():
            previous = ""
            continue
        if token[-1] in "'-" or token[0] in "'-" or token.endswith("'s"):
            token = _bare(token)
        if len(token) < 3 or token in STOPWORDS or token in FEELINGS or token in ignore:
            previous = ""
            continue
        out.add(("term", token))
        if previous:
            out.add(("phrase", f"{previous} {token}"))
        previous = token
    out.add(("story", item.story))
    if item.ref.author:
        out.add(("author", f"@{item.ref.author} ({item.ref.source})"))
    return out


def log_odds(now: int, n: int, before: int, m: int) -> float:
    """The z-score of the weighted log-odds ratio of a feature carried by ``now`` of ``n``
    window mentions and ``before`` of ``m`` baseline mentions (module docstring)."""
    prior = n + m + 1.0
    alpha = prior * (now + before + 0.5) / (n + m + 1)  # never 0 or α₀: no cell is empty
    a_now, b_now = now + alpha, n + prior - now - alpha
    a_before, b_before = before + alpha, m + prior - before - alpha
    delta = math.log(a_now / b_now) - math.log(a_before / b_before)
    variance = 1 / a_now + 1 / b_now + 1 / a_before + 1 / b_before
    return delta / math.sqrt(variance)


_BY_MENTION: frozenset[DriverKind] = frozenset({"story", "author"})
"""Kinds that are not required to come from :data:`MIN_STORIES` stories."""


Featured = list[tuple[StoredMention, set[Key]]]
"""Mentions with their features (each mention read once per explanation)."""


class FeatureCache:
    """The features of the mentions explained lately, by ``(source, id)``, at most
    ``size`` (the oldest go first): an escalation minutes after the opening reads nearly
    the same mentions again. For one brand's names (``ignore``) at a time per key: a
    mention of several brands is worked out again for each."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self._kept: OrderedDict[tuple[str, str, frozenset[str]], set[Key]] = OrderedDict()

    def __call__(self, item: StoredMention, ignore: frozenset[str]) -> set[Key]:
        key = (item.ref.source, item.ref.id, ignore)
        found = self._kept.get(key)
        if found is None:
            found = self._kept[key] = features(item, ignore)
            if len(self._kept) > self.size:
                self._kept.popitem(last=False)
        return found


def featured(
    items: Iterable[StoredMention], ignore: frozenset[str], cache: FeatureCache | None = None
) -> Featured:
    find = cache or features
    return [(item, find(item, ignore)) for item in items]


def _count(items: Featured, wanted: set[Key] | None = None) -> Counter[Key]:
    """Mentions that carry each feature (of ``wanted`` only, when given)."""
    mentions: Counter[Key] = Counter()
    for _, found in items:
        mentions.update(found if wanted is None else found & wanted)
    return mentions


def _story_count(items: Featured, wanted: set[Key]) -> Counter[Key]:
    """Stories that carry each of ``wanted`` (a post and its copies once)."""
    by_story: dict[str, set[Key]] = {}
    for item, found in items:
        by_story.setdefault(item.story, set()).update(found & wanted)
    stories: Counter[Key] = Counter()
    for keys in by_story.values():
        stories.update(keys)
    return stories


def _ahead(item: StoredMention, other: StoredMention) -> bool:
    """Whether ``item`` is the better example: it travelled further; on a tie, it came
    first (then by source and id), whatever order they were read in."""
    a, b = item.ref, other.ref
    return (-item.reach, a.created_at, a.source, a.id) < (
        -other.reach,
        b.created_at,
        b.source,
        b.id,
    )


@dataclass(frozen=True, slots=True)
class _Evidence:
    now: Counter[Key]
    before: Counter[Key]
    n: int
    m: int
    stories: Counter[Key]
    authors: dict[Key, set[str]]
    example: dict[Key, StoredMention]

    def eligible(self, key: Key, support: int) -> bool:
        """Carried by ``support`` mentions or more (2 at least), from two authors or more
        (an author's own key aside), and two stories or more (stories and authors
        aside)."""
        if self.now[key] < max(support, 2):
            return False
        if key[0] != "author" and len(self.authors[key]) < 2:
            return False
        return key[0] in _BY_MENTION or self.stories[key] >= MIN_STORIES

    def drivers(
        self, ranked: Iterable[tuple[float, Key]], limit: int, *, rose: bool = True
    ) -> tuple[Driver, ...]:
        taken: Counter[str] = Counter()
        out: list[Driver] = []
        for z, key in ranked:
            kind, label = key
            if taken[kind] >= PER_KIND[kind]:
                continue
            taken[kind] += 1
            lead = self.example[key]
            shown = " ".join(lead.text.split())[:STORY_CHARS] if kind == "story" else label
            out.append(Driver(kind, shown, self.now[key], self.before[key], z, lead.ref, rose))
            if len(out) >= limit:
                break
        return tuple(out)

    def score(self, key: Key) -> float:
        return log_odds(self.now[key], self.n, self.before[key], self.m)


def _evidence(window: Featured, baseline: Featured) -> _Evidence:
    now = _count(window)
    candidates = {k for k, c in now.items() if c >= 2}  # none below can be listed
    before = _count(baseline, candidates)
    stories = _story_count(window, {k for k in candidates if k[0] not in _BY_MENTION})
    authors: dict[Key, set[str]] = {}
    example: dict[Key, StoredMention] = {}
    for item, found in window:
        who = f"{item.ref.source}:{item.ref.author or item.ref.id}"
        for key in found & candidates:
            authors.setdefault(key, set()).add(who)
            best = example.get(key)
            if best is None or _ahead(item, best):
                example[key] = item
    return _Evidence(now, before, len(window), len(baseline), stories, authors, example)


def _risen(ev: _Evidence, limit: int) -> tuple[Driver, ...]:
    scored = [(ev.score(k), k) for k in ev.now if ev.eligible(k, MIN_SUPPORT)]
    ranked = sorted((s for s in scored if s[0] >= MIN_SCORE), key=lambda s: (-s[0], s[1]))
    return ev.drivers(ranked, limit)


_ABOUT: frozenset[DriverKind] = frozenset({"term", "phrase", "hashtag", "story"})
"""What a window is about: what is said (a site linked as much as ever, or an author,
says nothing of that unless it rose)."""


def _about(ev: _Evidence, limit: int) -> tuple[Driver, ...]:
    keys = [k for k in ev.now if k[0] in _ABOUT and ev.eligible(k, 2)]
    ranked = sorted(keys, key=lambda k: (-ev.now[k], k))
    return ev.drivers(((ev.score(k), k) for k in ranked), limit, rose=False)


def explain(
    window: Sequence[StoredMention],
    baseline: Iterable[StoredMention],
    ignore: frozenset[str] = frozenset(),
    *,
    limit: int = LIMIT,
) -> tuple[Driver, ...]:
    """The drivers of ``window`` against ``baseline``: what rose (a z-score of
    :data:`MIN_SCORE` or more), strongest first, at most ``limit``, at most
    :data:`PER_KIND` of a kind, each with the window's furthest-travelled mention that
    carries it. Counts are of mentions; a driver must be carried by
    :data:`MIN_SUPPORT` mentions and two authors, and a word, phrase, hashtag or domain
    by :data:`MIN_STORIES` stories."""
    return _risen(_evidence(featured(window, ignore), featured(baseline, ignore)), limit)


def common(
    window: Sequence[StoredMention],
    baseline: Iterable[StoredMention],
    ignore: frozenset[str] = frozenset(),
    *,
    limit: int = COMMON_LIMIT,
) -> tuple[Driver, ...]:
    """What the window's mentions are about: the most carried words, phrases, hashtags
    and stories first (by mentions, then label; two mentions, authors and stories at
    least), each with its count before and its z-score as :func:`explain` gives it,
    marked as not risen (``rose`` false)."""
    return _about(_evidence(featured(window, ignore), featured(baseline, ignore)), limit)


BASELINE = timedelta(hours=24)
"""The baseline an alert's window is compared with: the day before it."""
WINDOW_MAX = 2000
"""The most window mentions read (the newest): plenty to say what rose, and a bound on
the work an alert adds."""
BASELINE_MAX = 5000
"""The most baseline mentions read (the newest)."""

Reader = Callable[[datetime, datetime, int], Sequence[StoredMention]]
"""``read(start, end, limit)``: a brand's stored mentions in [start, end), the newest
first, at most ``limit``."""


def brand_words(brand: BrandConfig) -> frozenset[str]:
    """The brand's own names (name, aliases, keywords, handles, hashtags), folded, and
    each of their words: in every mention, so never what a spike is about."""
    out: set[str] = set()
    for raw in (brand.name, *brand.aliases, *brand.keywords, *brand.handles, *brand.hashtags):
        folded = normalise(raw).lstrip("@#")
        out.add(folded)
        out.update(_bare(w) for w in _WORD.findall(folded))
    return frozenset(w for w in out if w)


def explain_window(
    read: Reader,
    start: datetime,
    end: datetime,
    ignore: frozenset[str],
    cache: FeatureCache | None = None,
) -> Explanation | None:
    """The explanation of [start, end) against the :data:`BASELINE` before it.

    The window's negative mentions are explained (all of them when fewer than
    :data:`MIN_SUPPORT` are negative), by what rose:

    1. against the baseline's negative mentions: what the complaints are about now that
       they usually are not (skipped when the baseline holds fewer than twice as many
       negative mentions as the window: a quiet brand, or one just added);
    2. when nothing rose there, against all of the baseline's mentions: what the
       complaints are about, against what the brand usually hears.

    When fewer than :data:`ABOUT_BELOW` words, phrases, hashtags, domains or stories
    rose (one angry customer posting ten times is a driver, but says nothing of what
    about), what the window is most about follows (:func:`common`, ``rose`` false):
    the usual things, more of them. None when the window has too few mentions."""
    everything = featured(read(start, end, WINDOW_MAX), ignore, cache)
    window = [f for f in everything if f[0].negative]
    negative = len(window) >= MIN_SUPPORT
    if not negative:
        window = everything
    if len(window) < MIN_SUPPORT:
        return None
    baseline_start = start - BASELINE
    heard = featured(read(baseline_start, start, BASELINE_MAX), ignore, cache)
    drivers: tuple[Driver, ...] = ()
    baseline, against_negative = heard, False
    if negative:
        usual = [f for f in heard if f[0].negative]
        if len(usual) >= 2 * len(window):
            ev = _evidence(window, usual)
            drivers, baseline, against_negative = _risen(ev, LIMIT), usual, True
    if not drivers:
        ev = _evidence(window, heard)
        drivers, baseline, against_negative = _risen(ev, LIMIT), heard, False
    if sum(d.kind != "author" for d in drivers) < ABOUT_BELOW:
        listed = {(d.kind, d.label) for d in drivers}
        about = [
            d for d in _about(ev, COMMON_LIMIT + len(drivers)) if (d.kind, d.label) not in listed
        ]
        drivers = (*drivers, *about[:COMMON_LIMIT])
    return Explanation(
        start=start,
        end=end,
        baseline_start=baseline_start,
        mentions=len(window),
        baseline=len(baseline),
        negative=negative,
        baseline_negative=against_negative,
        drivers=drivers,
    )
