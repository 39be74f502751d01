"""The crisis-aware default scorer: complaint language, negation, emoji, hashtags."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer, SentiText, normalize

from listener.model import Sentiment
from listener.scoring.base import Scorer
from listener.scoring.crisis import (
    _PUNCTUATION,
    _SARCASM,
    _SARCASM_FRAMES,
    _URL_OR_MENTION,
    COMPLAINT_DISCOUNT,
    CRISIS_PATTERNS,
    DEFAULT_NEGATIVE_THRESHOLD,
    DEFAULT_POSITIVE_THRESHOLD,
    MILD,
    RESOLVED,
    TOKEN,
    CrisisScorer,
    _phrase_words,
)

SCORER = CrisisScorer()

COMPLAINTS = [
    "Is anyone else's internet down? outage again",
    "@acme your app is not working",
    "I can't log in to my account",
    "Website down for hours, what's going on?",
    "My flight was cancelled and now I'm stranded at the airport",
    "Flight delayed again. Still waiting at the gate",
    "Been on hold for 2 hours, no response",
    "No one answers the phone",
    "You lost my bag",
    "My luggage is missing",
    "I was charged twice for one order",
    "Still no refund after three weeks",
    "Missed my connection because of your delay",
    "Acme confirms a data breach affecting millions of customers",
    "Product recall: contaminated batches",
    "Class action lawsuit filed against Acme",
    "Boycott Acme",
    "This is a scam",
    "Never again. Worst company ever",
    "Thanks for nothing",
    "Great, another delay",
    "I love being on hold for an hour",
    "Why is my order stuck in processing?",
    "keeps crashing every time I open it",
    "Down AGAIN!!! #fail",
]

PRAISE = [
    "I love this airline, great crew!",
    "Thanks for fixing the outage so fast!",
    "Best customer service ever 👍",
    "I couldn't be happier with the new app",
    "Can't wait to fly with you again!",
    "The support team sorted it out in minutes, thank you!",
]

NEUTRAL = [
    "What time does the store open?",
    "Acme released a statement",
    "The company reports quarterly results on Tuesday.",
    "New store opening in Boston next week",
    "Do you ship to Canada?",
    "",
]


def test_implements_scorer_protocol() -> None:
    """CrisisScorer satisfies the Scorer protocol and returns a Sentiment."""
    scorer: Scorer = SCORER
    assert isinstance(scorer.score("fine"), Sentiment)


@pytest.mark.parametrize("text", COMPLAINTS)
def test_complaint_and_crisis_language_is_negative(text: str) -> None:
    """Service failures, waiting, money, logistics, trust and sarcasm score negative."""
    assert SCORER.score(text).label == "negative", SCORER.prepare(text)


@pytest.mark.parametrize("text", PRAISE)
def test_praise_stays_positive(text: str) -> None:
    """Praise, including praise for a fix, stays positive."""
    assert SCORER.score(text).label == "positive", SCORER.prepare(text)


@pytest.mark.parametrize("text", NEUTRAL)
def test_neutral_questions_and_news_stay_neutral(text: str) -> None:
    """Plain questions and news without complaint language stay neutral."""
    assert SCORER.score(text).label == "neutral", SCORER.prepare(text)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("not bad at all", "positive"),
        ("The food was not bad", "positive"),
        ("The app is not working", "negative"),
        ("My flight was not delayed", "neutral"),
        ("No outage today", "neutral"),
        ("I never received my package", "negative"),
        ("Nobody called me back", "negative"),
        ("It could not be worse", "negative"),
    ],
)
def test_negation(text: str, label: str) -> None:
    """Negation flips praise and makes "not working" a failure, but never makes praise of one."""
    assert SCORER.score(text).label == label, SCORER.prepare(text)


@pytest.mark.parametrize(
    "text",
    ["2 hrs for nothing. Now what?? #frustrated", "nothing works, I hate this", "Not now: awful"],
)
def test_negation_stops_at_punctuation(text: str) -> None:
    """A negation word does not reach past a full stop, comma or colon."""
    assert SCORER.score(text).label == "negative", SCORER.prepare(text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("#customerServiceFail", "customer Service Fail"),
        ("#NeverAgain", "Never Again"),
        ("#customerservicefail", "customerservice fail"),
        ("#epicfail", "epic fail"),
        ("#worstairlineever", "worst airlineever"),
        ("#never_again", "never again"),
        ("#fail", "fail"),
        ("#Boston", "Boston"),
    ],
)
def test_hashtags_are_split_into_words(text: str, words: str) -> None:
    """CamelCase, underscores and known sentiment affixes split a hashtag into words."""
    match = re.match(r"#(\w+)", text)
    assert match is not None
    assert SCORER._split_hashtag(match) == words


HOURS_NEUTRAL = [
    "Acme store hours today",
    "What are your opening hours?",
    "We are open 24 hours a day",
    "Acme is open 24 hours",
    "Delivery in 2 days",
]
HOURS_WAITING = [
    "waited 3 hours",
    "on hold for hours",
    "hours of downtime",
    "been hours and still no reply",
    "Waited hours for a reply",
    "3 hrs and counting",
    "I sent you a DM hours ago",
]


@pytest.mark.parametrize("text", HOURS_NEUTRAL)
def test_hours_alone_is_not_a_complaint(text: str) -> None:
    """The word "hours" and a schedule ("24 hours a day") are no wait: VADER's own score."""
    assert SCORER.score(text).compound == 0.0, SCORER.prepare(text)
    assert SCORER.score(text).label == "neutral"


@pytest.mark.parametrize("text", HOURS_WAITING)
def test_hours_of_waiting_is_a_complaint(text: str) -> None:
    """A duration that something took ("waited 3 hours", "been hours") is a waiting cue."""
    assert SCORER.score(text).label == "negative", SCORER.prepare(text)


@pytest.mark.parametrize("text", ["#neveragain", "#customerservicefail", "#EpicFail"])
def test_split_hashtags_carry_sentiment(text: str) -> None:
    """A complaint hashtag alone scores negative once split."""
    assert SCORER.score(text).label == "negative"


@pytest.mark.parametrize("text", ["😡", "🤬🤬", "💔", "👎", "🙄", "🤦"])
def test_negative_emoji(text: str) -> None:
    """Common negative emoji score negative (VADER alone scores 😡 neutral and 💔 positive)."""
    assert SCORER.score(text).label == "negative"


@pytest.mark.parametrize("text", ["👍", "🙌", "😍", "🥳"])
def test_positive_emoji(text: str) -> None:
    """Common positive emoji score above zero (one alone stays below the positive threshold)."""
    assert SCORER.score(text).compound > 0


def test_eye_roll_undercuts_praise() -> None:
    """An eye-roll beside praise keeps the text from reading as praise."""
    assert SCORER.score("great service 🙄").compound < SCORER.score("great service").compound


@pytest.mark.parametrize(
    ("text", "plain"),
    [
        ("@united thanks for the help https://t.co/abc123", "thanks for the help"),
        ("@outage_bot what time is it?", "what time is it?"),
        ("read https://example.com/outage-scam-report today", "read today"),
        ("www.delays.example.com is a site", "is a site"),
    ],
)
def test_mentions_and_urls_are_ignored(text: str, plain: str) -> None:
    """@mentions and URLs are removed before scoring, so their words do not count."""
    assert SCORER.score(text) == SCORER.score(plain)


def test_caps_and_punctuation_intensify() -> None:
    """ALL CAPS and exclamation marks make a complaint more negative, as in VADER."""
    calm = SCORER.score("the app is down again").compound
    loud = SCORER.score("the app is DOWN AGAIN!!!").compound
    assert loud < calm < 0


def test_letter_floods_are_shortened() -> None:
    """Stretched words ("baaaad", "sooo") are read as the word they stretch."""
    assert SCORER.prepare("sooooo baaaad") == "so bad"
    assert SCORER.score("sooooo baaaad").label == "negative"


def test_typographic_apostrophes_and_json_escapes() -> None:
    """Curly apostrophes and literal \\u escapes read as the plain text they encode."""
    assert SCORER.score("it doesn’t work") == SCORER.score("it doesn't work")
    assert SCORER.score("it doesn\\u2019t work") == SCORER.score("it doesn't work")


def test_politeness_is_not_praise() -> None:
    """ "Please help" is a request, not a compliment."""
    assert SCORER.score("please help").label == "neutral"
    assert SCORER.score("please help, my order never arrived").label == "negative"


def test_deterministic() -> None:
    """The same text gives the same score, from the same or a fresh scorer."""
    texts = [*COMPLAINTS, *PRAISE, *NEUTRAL]
    first = [SCORER.score(t) for t in texts]
    assert [SCORER.score(t) for t in texts] == first
    assert [CrisisScorer().score(t) for t in texts] == first


def test_default_thresholds() -> None:
    """The default neutral band is (-0.05, 0.4), both bounds inclusive of their labels."""
    assert (DEFAULT_NEGATIVE_THRESHOLD, DEFAULT_POSITIVE_THRESHOLD) == (-0.05, 0.4)
    assert SCORER.label(-0.05) == "negative"
    assert SCORER.label(-0.0499) == "neutral"
    assert SCORER.label(0.3999) == "neutral"
    assert SCORER.label(0.4) == "positive"


def test_custom_thresholds_and_their_order() -> None:
    """Constructor thresholds move the label boundaries and must be ordered."""
    assert SCORER.score("ok").label == "neutral"
    assert CrisisScorer(positive_threshold=0.05).score("ok").label == "positive"
    with pytest.raises(ValueError, match="below"):
        CrisisScorer(negative_threshold=0.1, positive_threshold=0.1)


@settings(max_examples=60, deadline=None)
@given(text=st.text(max_size=120))
def test_score_is_bounded_and_consistent(text: str) -> None:
    """Any text scores in [-1, 1], deterministically, with the label its compound implies."""
    first = SCORER.score(text)
    assert -1.0 <= first.compound <= 1.0
    assert first.label == SCORER.label(first.compound)
    assert SCORER.score(text) == first


def _plain_alternation() -> tuple[re.Pattern[str], list[str]]:
    """The reference: every crisis pattern in one plain alternation, and the category of
    each group."""
    alts = [(name, p) for name, _, patterns in CRISIS_PATTERNS for p in patterns]
    body = "|".join(f"({p})" for _, p in alts)
    return re.compile(rf"(?<!\w)(?:{body})(?!\w)"), ["", *(name for name, _ in alts)]


PLAIN, PLAIN_CATEGORIES = _plain_alternation()


def _found(lowered: str) -> list[tuple[tuple[int, int], str]]:
    """What the scorer's matcher finds: span and category of each match."""
    found = SCORER._patterns.finditer(lowered)
    return [(m.span(), SCORER._categories[m.lastindex or 0]) for m in found]


def _expected(lowered: str) -> list[tuple[tuple[int, int], str]]:
    return [(m.span(), PLAIN_CATEGORIES[m.lastindex or 0]) for m in PLAIN.finditer(lowered)]


@pytest.mark.parametrize("text", [*COMPLAINTS, *PRAISE, *NEUTRAL, *HOURS_NEUTRAL, *HOURS_WAITING])
def test_factored_patterns_match_as_a_plain_alternation(text: str) -> None:
    """The factored matcher finds exactly what one plain alternation finds."""
    lowered = " ".join(text.lower().split())
    assert _found(lowered) == _expected(lowered)


# the words and pieces the patterns are made of, digits and punctuation: texts from them
# reach deep into the patterns and their overlaps
_PATTERN_WORDS = sorted(
    {w for _, _, patterns in CRISIS_PATTERNS for p in patterns for w in re.findall(r"[a-z']+", p)}
    | {*"0123456789", "3hrs", "24", "+", ",", "?", "!", "-", "/", "in", "within", "next", "open"}
    | {"hour", "hours", "days", "a", "day", "week", "month", "year", "7", "per", "each", "every"}
)


@settings(max_examples=500, deadline=None)
@given(words=st.lists(st.sampled_from(_PATTERN_WORDS), max_size=14))
def test_factored_patterns_find_what_the_plain_alternation_finds(words: list[str]) -> None:
    """On any sequence of the patterns' own words, the factored matcher finds the same
    spans and categories as the plain alternation."""
    lowered = " ".join(words)
    assert _found(lowered) == _expected(lowered)


_SARCASM_WORDS = sorted(
    {w for frame in _SARCASM_FRAMES for w in re.findall(r"[a-z']+", frame)}
    | {f"{TOKEN}delayed", f"{TOKEN}outage", ",", "!", "...", "-", "…", "the", "for", "x"}
)


# pieces of the frames, drawn half the time, so that many texts match
_SARCASM_PIECES = ["thanks for", "thank you so much for the", "ty again for", "thx", "for"]
_SARCASM_PIECES += ["oh just great,", "perfect!", "another", "yet another", "one more", "again"]
_SARCASM_PIECES += ["love being", "enjoy waiting on", "so much fun sitting", "losing", "my bag"]
_SARCASM_PIECES += [f"{TOKEN}delayed", f"{TOKEN}outage", "the", "x"]


@settings(max_examples=500, deadline=None)
@given(
    words=st.lists(
        st.one_of(st.sampled_from(_SARCASM_PIECES), st.sampled_from(_SARCASM_WORDS)), max_size=10
    )
)
def test_factored_sarcasm_frames_match_as_their_plain_alternation(words: list[str]) -> None:
    """The sarcasm regex (its frames factored on their first words) finds what the plain
    alternation of the frames finds."""
    plain = re.compile(rf"(?<!\w)(?:{'|'.join(_SARCASM_FRAMES)})")
    lowered = " ".join(words)
    assert [m.span() for m in _SARCASM.finditer(lowered)] == [
        m.span() for m in plain.finditer(lowered)
    ]


_PHRASE_TOKENS = [
    *["good", "GOOD", "great", "bad", "BAD", "terrible", "love", "hate", "no", "not", "never"],
    *["so", "this", "without", "doubt", "least", "at", "very", "extremely", "kind", "of"],
    *["or", "nor", "isn't", "don't", "barely", "sort", "the", "bomb", "cut", "slack", "yeah"],
    *["right", "bad", "ass", "kiss", "of", "death", "ok!", "NO.", ":)", ":(", "...", "!!", "but"],
]


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.sampled_from(_PHRASE_TOKENS), min_size=1, max_size=12))
def test_phrase_valences_equal_vaders_own_rules(words: list[str]) -> None:
    """The phrase tokens and each lexicon word's valence are what VADER's SentiText and
    sentiment_valence give (the port reads lower-cased tokens once)."""
    text = " ".join(words)
    senti = SentiText(text)
    assert _phrase_words(text) == senti.words_and_emoticons
    analyser = SCORER._analyser
    tokens = senti.words_and_emoticons
    lowered = [w.lower() for w in tokens]
    for cap_diff in (False, True):
        senti.is_cap_diff = cap_diff
        for i, word in enumerate(lowered):
            if word not in analyser.lexicon:
                continue
            expected = SentimentIntensityAnalyzer.sentiment_valence(
                analyser, 0.0, senti, tokens[i], i, []
            )[-1]
            assert analyser._valence(tokens, lowered, i, cap_diff) == expected


_CRISIS = [f"{TOKEN}delayed", f"{TOKEN}delayed".upper(), f"{TOKEN}persist", f"{TOKEN}outage"]


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(
        st.sampled_from([*_PHRASE_TOKENS, "mustn't", "happy", "HAPPY", "sad", "fine", *_CRISIS]),
        min_size=1,
        max_size=12,
    )
)
def test_unmodified_words_take_their_lexicon_value_as_the_full_rules_do(words: list[str]) -> None:
    """The fast path for a lexicon word with no modifier within three words before it
    gives, bit for bit, what the full rules (_valence, _token_valence for a crisis token)
    give for every word of a phrase."""
    analyser = SCORER._analyser
    tokens = _phrase_words(" ".join(words))
    lowered = [w.lower() for w in tokens]
    for cap_diff in (False, True):
        full = [
            (analyser._token_valence if w.startswith(TOKEN) else analyser._valence)(
                tokens, lowered, i, cap_diff
            )
            if w in analyser._scored
            and not (w == "kind" and i < len(lowered) - 1 and lowered[i + 1] == "of")
            else 0.0
            for i, w in enumerate(lowered)
        ]
        fast = analyser._phrase_valences(tokens, lowered, cap_diff)
        assert [repr(float(v)) for v in fast] == [repr(float(v)) for v in full]


# The reference for compound: VADER's own order of work, split into sentences, each
# sentence into phrases, each phrase tokenised on its own (the scorer tokenises the text once)
_SENTENCE = re.compile(r"(?<=[.!?…])\s+|\n+")
_PHRASE = re.compile(r"(?<=[,;:])\s+|\s+[-–—]+\s+")


def _reference_compound(text: str) -> float:
    analyser = SCORER._analyser
    if not text.isascii():
        text = text.translate(analyser.emoji_words)
    text = text.strip()
    sentences = [
        [_reference_tokens(p) for p in _PHRASE.split(s) if p and not p.isspace()]
        for s in _SENTENCE.split(text)
    ]
    tokens = [w for phrases in sentences for words in phrases for w in words]
    upper = sum(w.isupper() for w in tokens)
    cap_diff = 0 < len(tokens) - upper < len(tokens)
    sentiments: list[float] = []
    for phrases in sentences:
        words: list[str] = []
        lowered: list[str] = []
        local: list[float] = []
        for phrase in phrases:
            low = [w.lower() for w in phrase]
            local += analyser._phrase_valences(phrase, low, cap_diff)
            words += phrase
            lowered += low
        if "but" in lowered:
            local = analyser._but_check(words, local)
        if RESOLVED in lowered:
            pairs = zip(lowered, local, strict=True)
            local = [0.0 if v < 0 and w.startswith(TOKEN) else v for w, v in pairs]
        sentiments += local
    if not sentiments:
        return 0.0
    if min(sentiments) <= MILD:
        sentiments = [v * COMPLAINT_DISCOUNT if v > 0 else v for v in sentiments]
    total = float(sum(sentiments))
    emphasis = analyser._punctuation_emphasis(text)
    if total > 0:
        total += emphasis
    elif total < 0:
        total -= emphasis
    return float(round(normalize(total), 4))


def _reference_tokens(phrase: str) -> list[str]:
    reads = SCORER._analyser._reads_as_word
    return [
        s if len(s := w.strip(_PUNCTUATION)) > 2 or (s != w and reads(w)) else w
        for w in phrase.split()
    ]


_CLAUSE_TOKENS = [
    *_PHRASE_TOKENS,
    *["a", "b.", "c!", "d?", "e…", "f,", "g;", "h:", "-", "--", "–", "—", "-x", "x-", ".", "!"],
    *["but", "BUT", "But,", RESOLVED, f"{TOKEN}delayed", f"{TOKEN.upper()}DELAYED", "fixed."],
    *["happy!", "HAPPY.", "sad,", "great;", "awful:", "😡", "👍", "❤️", "no!", "Ok.", "NOT"],
    *["so,", "SO!", "xy!", "I.", "'no", ":-)"],
]


@settings(max_examples=1000, deadline=None)
@given(words=st.lists(st.sampled_from(_CLAUSE_TOKENS), max_size=16))
def test_compound_of_the_whole_text_equals_phrase_by_phrase(words: list[str]) -> None:
    """Tokenising the text once and splitting sentences and phrases in one pass gives, bit
    for bit, the compound of splitting into sentences, then phrases, then tokens, on text
    as prepare leaves it (single spaces, no newline) and on the text prepare makes of it."""
    text = " ".join(words)
    assert repr(SCORER._analyser.compound(text)) == repr(_reference_compound(text))
    prepared = SCORER.prepare(text)
    assert repr(SCORER._analyser.compound(prepared)) == repr(_reference_compound(prepared))


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.sampled_from(_CLAUSE_TOKENS), min_size=1, max_size=12))
def test_tokens_read_short_lexicon_words_as_vader_keeps_them(words: list[str]) -> None:
    """A phrase's tokens are VADER's, with a kept-whole short token ("ok!", "NO.") read as
    its lexicon word unless the token itself is in the lexicon (":)")."""
    text = " ".join(words)
    lexicon = SCORER._analyser.lexicon
    expected = _phrase_words(text)
    for i, token in enumerate(expected):
        word = token.lower()
        if word not in lexicon and not (word[0].isalnum() and word[-1].isalnum()):
            bare = word.strip(string.punctuation)
            if len(bare) <= 2 and bare.isalpha() and bare in lexicon:
                expected[i] = token.strip(string.punctuation)
    assert SCORER._analyser._tokens(text) == expected


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet="wh.@_ tps:/xé", max_size=30))
def test_url_and_mention_pattern_is_the_plain_one(text: str) -> None:
    """The literal-first URL/mention pattern removes what the plain one removes."""
    plain = r"https?://\S+|\bwww\.\S+|(?<![\w@])@\w+"
    assert _URL_OR_MENTION.sub(" ", text) == re.sub(plain, " ", text)
