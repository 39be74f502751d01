"""Crisis categories and emotions: explainable keyword/pattern tagging of mention texts.

Contract (pure, no I/O, no clock; regexes are compiled once, when the tagger is built):

* Text is normalised as the brand matcher does (:func:`listener.matching.brands.normalise`:
  NFKC, casefold, whitespace runs collapsed) and, in addition, curly apostrophes
  (``’ ‘ ʼ``) become ``'``. Terms are normalised the same way, so ``Refund``, ``ＲＥＦＵＮＤ``
  and ``refund`` are one term.
* **Terms** are whole words or phrases: a match may not start or end inside a word (a
  word character on both sides of either edge). ``down`` therefore never fires on
  ``downtown`` or ``download``; a term that starts or ends with a non-word character
  (``#recall``, ``😡``, ``??``) needs no boundary on that side. A ``*`` at the end of a
  word, after at least three characters, is a wildcard for further word characters
  (``refund*``: refund, refunds, refunded); a ``*`` elsewhere is literal (``f*ck*``). A
  space or a hyphen inside a term matches one space or one hyphen (``tone deaf`` matches
  ``tone-deaf``), and ``n't`` matches with or without the apostrophe (``can't``/``cant``).
* **Patterns** are Python regular expressions searched in the normalised (so casefolded)
  text, under the same rule that a match never starts or ends inside a word; a pattern
  written with capitals is compiled case-insensitively. They are validated when the
  tagger is built: an invalid pattern, or one that matches the empty string, raises
  :class:`CategoryError` naming the category and the pattern.
* A category fires when any of its terms or patterns matches. :class:`CategoryHit`
  carries what fired, in definition order, as ``evidence``: terms and custom patterns
  as written, built-in patterns by their short label (:data:`PATTERN_LABELS`, e.g.
  ``charged twice``). Categories are topics: negation does not suppress them ("this is
  *not* a data breach" is still about security).
* Speed: a text is normalised and read into its words once; a term or pattern is tried
  only when a word or literal it cannot match without is present (see "compiling").
* :meth:`CategoryTagger.tag` returns hits in a stable order: built-in categories in
  :data:`DEFAULT_CATEGORIES` order, then new custom categories in the order given.
* :class:`EmotionDetector` reports ``anger``, ``concern`` and ``confusion`` only on clear
  signals (see the lists below); its terms are skipped when a negation directly
  precedes them ("not worried", "don't worry"). Neutral text gives ``()``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol, cast

import ahocorasick

if TYPE_CHECKING:
    from listener.matching.document import Prepared

from listener.errors import ListenerError
from listener.scoring.gates import (
    EXACT,
    MIN_STEM,
    STEM,
    SUBSTRING,
    Clause,
    Gate,
    cost,
    pattern_clauses,
    weak,
)

__all__ = [
    "DEFAULT_CATEGORIES",
    "EMOTIONS",
    "EMOTION_DEFINITIONS",
    "PATTERN_LABELS",
    "SHOUTING",
    "CategoryError",
    "CategoryHit",
    "CategorySpec",
    "CategorySpecInput",
    "CategorySpecLike",
    "CategoryTagger",
    "EmotionDetector",
    "EmotionHit",
    "normalise_text",
]


# --------------------------------------------------------------------------- normalising


def _straight(text: str) -> str:
    """``text`` with curly apostrophes (``’ ‘ ʼ``) made straight: three replaces, far
    faster than ``str.translate`` on non-ASCII text."""
    return text.replace("\u2019", "'").replace("\u2018", "'").replace("\u02bc", "'")


def normalise_text(text: str) -> str:
    """The brand matcher's :func:`~listener.matching.brands.normalise` (NFKC, casefold,
    whitespace runs collapsed), with curly apostrophes made straight.

    Same result as ``normalise(text)`` followed by the apostrophes, computed faster:
    ``str.split()`` splits on exactly the characters that ``\\s`` matches.
    """
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    flat = " ".join(folded.split())
    return flat if flat.isascii() else _straight(flat)


# --------------------------------------------------------------------------- public shapes


class CategoryError(ListenerError, ValueError):
    """A category definition cannot be used. ``category``, ``field`` (``terms``,
    ``patterns`` or another key) and ``index`` locate the problem for a config path such
    as ``categories.custom.<category>.<field>[<index>]``. Also a ``ValueError``, so
    pydantic reports it as a validation error of the field."""

    error_type = "category"

    def __init__(
        self, category: str, message: str, *, field: str | None = None, index: int | None = None
    ) -> None:
        self.category = category
        self.field = field
        self.index = index
        self.reason = message
        super().__init__(f"category {category!r}: {message}")


@dataclass(frozen=True, slots=True)
class CategoryHit:
    """A category that fired on a text and the terms/patterns that made it fire."""

    name: str
    evidence: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EmotionHit:
    """An emotion detected in a text and the terms/patterns/signals behind it."""

    name: str
    evidence: tuple[str, ...]


class CategorySpecLike(Protocol):
    """What a category definition provides (the config model satisfies this)."""

    @property
    def terms(self) -> Sequence[str]: ...

    @property
    def patterns(self) -> Sequence[str]: ...

    @property
    def replace(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class CategorySpec:
    """A category definition: whole-word ``terms`` and regex ``patterns``.

    For a built-in category, ``replace`` drops its default terms and patterns instead of
    extending them (``replace`` with no terms and no patterns switches it off).
    """

    terms: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()
    replace: bool = False


CategorySpecInput = CategorySpecLike | Mapping[str, object]
"""A config model, a :class:`CategorySpec` or a plain dict with the same keys."""


# --------------------------------------------------------------------------- built-ins

# A "down" that means a service is down, not "prices are down 5%", "calm down", "down the
# road" or "are you down for pizza": it must follow a verb of being/going, and must not
# be followed by a figure, a preposition of amount or direction, or "for <an activity>".
_DOWN = (
    r"(?:down|offline)"
    r"(?! (?:to|by|from|over|on|with|about|the|this|that|memory|south|low|bad)\b)"
    r"(?! ?\d)"
    r"(?! for (?!(?:everyone|everybody|anyone|anybody|me|us|you|all|others|hours|days)\b))"
)
_RECALL_OBJECTS = (
    r"products?|units?|vehicles?|cars?|trucks?|items?|batch(?:es)?|lots?|models?|devices?"
    r"|batteries|chargers?|toys?|foods?|drinks?|cribs?|strollers?|seats?|heaters?|phones?"
    r"|laptops?|appliances?|medicines?|drugs?|pills?|tablets?|supplements?|formula|bottles?"
)

_LABELS: dict[str, str] = {}
_NEGATABLE: set[str] = set()


def _p(label: str, regex: str, *, negatable: bool = False) -> str:
    """Register a built-in pattern's human-readable label (its evidence) and return it.
    ``negatable``: for emotions, a negation just before it cancels it, as for terms."""
    _LABELS[regex] = label
    if negatable:
        _NEGATABLE.add(regex)
    return regex


DEFAULT_CATEGORIES: Mapping[str, CategorySpec] = MappingProxyType(
    {
        "outage": CategorySpec(
            terms=(
                "outage*",
                "downtime",
                "downdetector",
                "#down",
                "service disruption*",
                "service interruption*",
                "not working",
                "isn't working",
                "aren't working",
                "stopped working",
                "doesn't work",
                "don't work",
                "not loading",
                "won't load",
                "isn't loading",
                "won't open",
                "not responding",
                "unresponsive",
                "unreachable",
                "can't connect",
                "cannot connect",
                "unable to connect",
                "can't access",
                "cannot access",
                "unable to access",
                "server error*",
                "internal server error",
                "bad gateway",
                "gateway timeout",
                "service unavailable",
                "something went wrong",
                "keeps crashing",
                "keep crashing",
                "kept crashing",
                "crashing again",
                "crashed again",
                "no signal",
                "no internet",
                "no network",
            ),
            patterns=(
                _p("is down", rf"(?:is|are|was|were|'s|'re|went|goes|gone|been|still) {_DOWN}"),
                _p(
                    "is <x> down",
                    rf"(?:is|are) (?:it|(?:every|any|some|no)thing|(?!\w+ing\b)\w+) {_DOWN}",
                ),
                _p(
                    "can't log in",
                    r"(?:can't|cant|cannot|couldn't|couldnt|unable to|not able to|won't let me)"
                    r" (?:log|sign) ?(?:in|on)(?:to)?",
                ),
                _p(
                    "<app> crashed",
                    r"(?:app|site|website|server|service|system|game|page|platform)s?"
                    r" (?:is |are |keeps |kept |has |have |just )?crash(?:ed|es|ing)",
                ),
                _p("error 5xx", r"(?:error|http|status)(?: code)? 5\d\d"),
                _p(
                    "5xx error",
                    r"5\d\d (?:error|errors|bad gateway|service unavailable|gateway timeout)",
                ),
                # "#<brand>down" is brand-specific: add it as a custom outage term.
                _p("#<x>outage", r"#\w+outage\w*"),
            ),
        ),
        "security": CategorySpec(
            terms=(
                "data breach*",
                "security breach*",
                "privacy breach*",
                "breached",
                "hacked",
                "hacker*",
                "hacking",
                "cyberattack*",
                "cyber attack*",
                "ransomware",
                "malware",
                "spyware",
                "phishing",
                "phished",
                "data leak*",
                "password leak*",
                "credential stuffing",
                "account takeover*",
                "identity theft",
                "unauthorised access",
                "unauthorized access",
                "unauthorised login*",
                "unauthorized login*",
                "suspicious login*",
                "security incident*",
                "security flaw*",
                "security hole*",
                "security issue*",
                "vulnerabilit*",
                "zero-day",
                "0-day",
                "ddos*",
                "doxxed",
                "doxed",
                "sim swap*",
                "scam email*",
                "scam text*",
                "scam call*",
                "scam site*",
            ),
            patterns=(
                _p(
                    "data was leaked",
                    r"(?:accounts?|data|database|passwords?|credentials|servers?|systems?|network"
                    r"|emails?|details|records) (?:was |were |has been |have been |got |been |is"
                    r" |are )?(?:compromised|exposed|stolen|leaked|hacked|breached)",
                ),
                _p(
                    "leaked data",
                    r"(?:compromised|stolen|exposed|leaked) (?:\w+ )?(?:accounts?|data|databases?"
                    r"|passwords?|credentials|card (?:details|numbers?)|records|emails?"
                    r"|personal (?:data|information|details))",
                ),
                _p(
                    "the breach",
                    r"(?:the|a|this|another|massive|huge|major|latest|recent) breach(?:es)?"
                    r"(?! of (?:contract|trust|duty|the peace|covenant|warranty))",
                ),
                _p("CVE id", r"cve-\d{4}-\d+"),
                _p(
                    "someone got into my account",
                    r"(?:someone|somebody|hackers?) (?:has |have )?(?:logged|got|broke|gotten)"
                    r" into my (?:account|email|profile)",
                ),
            ),
        ),
        "safety": CategorySpec(
            terms=(
                "#recall*",
                "safety hazard*",
                "fire hazard*",
                "choking hazard*",
                "burn hazard*",
                "shock hazard*",
                "health hazard*",
                "health risk*",
                "safety issue*",
                "safety concern*",
                "safety warning*",
                "unsafe",
                "caught fire",
                "catches fire",
                "catching fire",
                "burst into flames",
                "exploded",
                "exploding",
                "overheat*",
                "electric shock*",
                "electrocut*",
                "food poisoning",
                "salmonella",
                "listeria",
                "e. coli",
                "e coli",
                "e.coli",
                "contaminat*",
                "undeclared allergen*",
                "allergic reaction*",
                "anaphyla*",
                "hospitalised",
                "hospitalized",
                "lead poisoning",
                "asbestos",
                "carcinogen*",
                "do not consume",
                "stop using immediately",
                "cpsc",
                "nhtsa",
            ),
            patterns=(
                # "recall" needs product context: "I recall", "if I recall correctly" and
                # "can't recall" never fire.
                _p(
                    "product recall",
                    r"(?:product|safety|voluntary|mass|urgent|nationwide|worldwide|global|massive"
                    r"|major|vehicle|food|toy|battery|car|airbag|official|recent) recalls?",
                ),
                _p(
                    "recall notice",
                    r"recall(?:s|ed)? (?:notice|alert|announcement|campaign|list|letter"
                    r"|notification)s?",
                ),
                _p(
                    "was recalled",
                    r"(?:is|are|was|were|been|being|has|have|had) (?:being |been |now |just )?"
                    r"recalled",
                ),
                _p(
                    "recalls <number>",
                    r"recall(?:s|ed|ing) (?:over |more than |nearly |about |around |almost"
                    r" |roughly |up to )?\d\w*",
                ),
                _p("recalls its", r"recall(?:s|ed|ing) (?:its|their|certain|select|affected)"),
                _p(
                    "recall of <products>",
                    rf"recall(?:s|ed|ing)? (?:of|on|for) (?:\w+ ){{0,3}}?(?:{_RECALL_OBJECTS})",
                ),
                # "injured", but not the idiom "(adding) insult to injury".
                _p("injured", r"(?<!insult to )injur(?:y|ies|ed|es|e|ing)"),
                _p(
                    "got sick after",
                    r"(?:got|gotten|became|getting|fell|been) (?:really |very |violently |so )?"
                    r"(?:sick|ill) (?:after|from)",
                ),
                _p(
                    "found <object> in my",
                    r"found (?:glass|metal|plastic|a bug|bugs|insects?|an insect|mou?ld|worms?"
                    r"|a worm|a hair|hair|a rat|a mouse|a piece of \w+) in (?:my|the|our)",
                ),
            ),
        ),
        "legal": CategorySpec(
            terms=(
                "lawsuit*",
                "sued",
                "sues",
                "suing",
                "class action*",
                "legal action",
                "lawyer*",
                "attorney*",
                "solicitor*",
                "litigation",
                "court case*",
                "court order*",
                "court ruling*",
                "in court",
                "to court",
                "injunction*",
                "subpoena*",
                "indict*",
                "settlement*",
                "fined",
                "regulator*",
                "regulatory",
                "antitrust",
                "anti-trust",
                "gdpr",
                "ccpa",
                "hipaa",
                "ftc",
                "cfpb",
                "doj",
                "department of justice",
                "attorney general",
                "ofcom",
                "ombudsman",
                "trading standards",
                "consumer protection",
                "illegal*",
                "unlawful*",
                "breach of contract",
                "violat* of",
                "investigation*",
                "fraud*",
                "charged with",
                "arrested",
                "pleaded guilty",
                "pled guilty",
                "found guilty",
                "cease and desist",
                "small claims",
            ),
            patterns=(
                _p(
                    "going to sue",
                    r"(?:to|will|gonna|going to|should|could|would|might|must|can|'ll|'d|and|or"
                    r"|threaten(?:ed|ing|s)? to) sue",
                ),
                _p("sue them", r"sue (?:them|you|him|her|it|us|the company|for|over)"),
                _p(
                    "<amount> fine",
                    # a regulator's fine has a size: "$5m fine", "record fine", not "$75 fine"
                    r"(?:[$€£]? ?\d[\d,.]* ?(?:k|m|bn|thousand|million|billion)|record|hefty"
                    r"|massive|huge|heavy|multi-?(?:million|billion)) (?:dollar |euro |pound )?"
                    r"(?:fines?|penalty|penalties)",
                ),
            ),
        ),
        "offensive": CategorySpec(
            terms=(
                "offensive",
                "offended",
                "offends",
                "racist*",
                "racism",
                "sexist*",
                "sexism",
                "misogyn*",
                "homophob*",
                "transphob*",
                "antisemit*",
                "anti-semit*",
                "islamophob*",
                "xenophob*",
                "bigot*",
                "ableist",
                "ableism",
                "tone deaf",
                "insensitive",
                "distasteful",
                "in poor taste",
                "inappropriate",
                "backlash",
                "controvers*",
                "outrage",
                "slur",
                "slurs",
                "hate speech",
                "blackface",
                "cultural appropriation",
                "discriminat*",
                "harass*",
                "dog whistle*",
            ),
            patterns=(
                _p(
                    "pull the ad",
                    r"(?:pull(?:ed|s|ing)?|delet(?:e|ed|es|ing)|apologi[sz](?:e|ed|es|ing) for)"
                    r" (?:the|this|that|their|its|his|her|our|your) (?:\w+ )?(?:ads?|adverts?"
                    r"|advertisement|campaign|commercial|tweet|post|video|billboard|comments?"
                    r"|remarks?|joke)",
                ),
            ),
        ),
        "customer_service": CategorySpec(
            terms=(
                "customer service",
                "customer support",
                "customer care",
                "support team",
                "support ticket*",
                "ticket number",
                "help desk",
                "helpdesk",
                "helpline",
                "call center*",
                "call centre*",
                "live chat",
                "chatbot*",
                "on hold",
                "hold music",
                "wait time*",
                "waiting time*",
                "still waiting",
                "been waiting",
                "no response",
                "no reply",
                "never responded",
                "never replied",
                "never got back",
                "not answering",
                "ignoring my",
                "ignored my",
                "complaint*",
                "complain*",
                "unhelpful",
                "rude",
                "hung up",
                "speak to a manager",
                "speak to a human",
                "talk to a human",
                "real person",
                "warranty",
                "never arrived",
                "never received",
                "hasn't arrived",
                "not arrived",
                "not delivered",
                "wasn't delivered",
                "late delivery",
                "delivery delay*",
                "lost package*",
                "lost parcel*",
                "missing package*",
                "missing parcel*",
                "missing order*",
                "wrong order",
                "wrong item*",
                "where is my order",
                "where's my order",
                "cancelled my order",
                "canceled my order",
            ),
            patterns=(
                _p(
                    "<adjective> service",
                    r"(?:terrible|awful|horrible|poor|bad|worst|appalling|abysmal|shocking|useless"
                    r"|great|excellent|amazing|fantastic|good|fast|slow) (?:customer )?"
                    r"(?:service|support)",
                ),
                _p(
                    "nobody answers",
                    r"(?:no ?one|nobody) (?:is )?(?:answers|answering|responds|responding|replies"
                    r"|replying|picks up|gets back|got back|called back|calls back)",
                ),
            ),
        ),
        "pricing": CategorySpec(
            terms=(
                "refund*",
                "overcharg*",
                "double charged",
                "billing",
                "billed",
                "invoice*",
                "price",
                "prices",
                "priced",
                "pricing",
                "pricey",
                "price hike*",
                "price increase*",
                "overpriced",
                "rip off",
                "ripoff*",
                "ripped off",
                "price gouging",
                "gouging",
                "hidden fee*",
                "fee",
                "fees",
                "surcharge*",
                "subscription*",
                "auto-renew*",
                "autorenew*",
                "chargeback*",
                "more expensive",
                "money back",
                "unauthorised charge*",
                "unauthorized charge*",
                "charged for",
                "paywall*",
                "payment*",
            ),
            patterns=(
                _p(
                    "charged twice",
                    r"charged (?:me |us |my \w+ )?(?:twice|three times|double|again|\d+ times)",
                ),
                _p("billed twice", r"billed (?:me |us )?(?:twice|double|again|\d+ times)"),
                _p(
                    "too expensive",
                    r"(?:too|so|very|really|ridiculously|insanely|crazy|super|way too|outrageously)"
                    r" expensive",
                ),
                _p(
                    "raised prices",
                    r"(?:raised|raising|raises|hiked|hiking|hikes|increased|increasing|increases"
                    r"|doubled|doubling|jacked up) (?:the |their |its |our |your |my )?(?:prices?"
                    r"|fees?|rates?|subscriptions?|plans?)",
                ),
                _p(
                    "prices went up",
                    r"(?:prices?|fees?|rates?|subscriptions?|costs?) (?:is |are |went |have |has"
                    r" |keeps? )?(?:going |gone )?(?:up|doubl(?:e|ed|ing)|increas(?:e|ed|ing)"
                    r"|skyrocket(?:ed|ing|s)?)",
                ),
                _p(
                    "cancel my subscription",
                    r"(?:cancel(?:l?ed|l?ing|s)?|can't cancel|unable to cancel) (?:my |the |our )?"
                    r"(?:subscriptions?|memberships?|plans?)",
                ),
            ),
        ),
        "rumour": CategorySpec(
            terms=(
                "rumour*",
                "rumor*",
                "hoax*",
                "fake news",
                "misinformation",
                "disinformation",
                "misinfo",
                "misleading",
                "false claim*",
                "false report*",
                "false information",
                "not true",
                "isn't true",
                "untrue",
                "debunk*",
                "fact check*",
                "factcheck*",
                "conspiracy",
                "conspiracy theor*",
                "unconfirmed",
                "unverified",
                "allegedly",
                "fake account*",
                "impersonating",
                "impersonates",
                "impersonated",
                "impersonation",
                "parody account*",
                "photoshopped",
                "doctored",
                "deepfake*",
                "deep fake*",
                "ai generated",
                "fake screenshot*",
                "circulating",
                "is it true",
                "is this true",
                "is that true",
                "can anyone confirm",
                "can someone confirm",
                "spreading lies",
            ),
            patterns=(
                _p(
                    "fake screenshot",
                    r"(?:fake|false|doctored|edited|made-?up|fabricated) (?:screenshots?|photos?"
                    r"|images?|videos?|tweets?|posts?|stor(?:y|ies)|quotes?|claims?|reports?)",
                ),
                _p(
                    "don't believe everything",
                    r"(?:don't|do not) (?:believe|share|spread) (?:this|that|it|everything"
                    r"|these|those|the rumou?rs?)",
                ),
            ),
        ),
        "boycott": CategorySpec(
            terms=(
                "boycott*",
                "stop buying",
                "stopped buying",
                "never buying",
                "won't be buying",
                "never buy from",
                "never shopping",
                "stop shopping",
                "stop using",
                "protest*",
                "petition*",
                "walkout*",
                "on strike",
                "strike action",
                "picket*",
                "activist*",
                "activism",
                "campaigners",
                "divest*",
                "go woke go broke",
                "get woke go broke",
            ),
            patterns=(
                # not the idioms "don't buy it" (don't believe it) or "don't buy into"
                _p("don't buy", r"(?:don't|do not|dont) buy(?! (?:it|that|this|into)\b)"),
                _p(
                    "vote with our wallets",
                    r"vote with (?:our|your|their|my) (?:wallets?|feet|dollars|money)",
                ),
                _p(
                    "take our business elsewhere",
                    r"tak(?:e|ing) (?:my|our|your|their) (?:business|money|custom) elsewhere",
                ),
                # "#cancelacme", "#deleteacme"; not "#cancelled…" or "#deleted…"
                _p("#cancel<x>", r"#(?:cancel|delete)(?!l?(?:ed|ing|ation)|d)\w+"),
                _p("#<x>boycott", r"#\w+boycott\w*"),
            ),
        ),
    }
)

EMOTIONS: tuple[str, ...] = ("anger", "concern", "confusion")
"""The emotions :class:`EmotionDetector` can report, in the order it reports them."""

EMOTION_DEFINITIONS: Mapping[str, CategorySpec] = MappingProxyType(
    {
        "anger": CategorySpec(
            terms=(
                "furious",
                "livid",
                "fuming",
                "enraged",
                "outraged",
                "infuriat*",
                "pissed",
                "angry",
                "angrier",
                "mad as hell",
                "unacceptable",
                "disgrace*",
                "disgusting",
                "disgusted",
                "appalling",
                "appalled",
                "outrageous",
                "ridiculous",
                "shameful",
                "shame on",
                "how dare",
                "sick of",
                "sick and tired",
                "fed up",
                "had enough",
                "incompetent",
                "incompetence",
                "pathetic",
                "useless",
                "clowns",
                "idiots",
                "idiotic",
                "morons",
                "moronic",
                "scumbag*",
                "scum",
                "shambles",
                "fuck*",
                "f*ck*",
                "fck*",
                "shit",
                "shitty",
                "bullshit",
                "crap",
                "crappy",
                "wtf",
                "ffs",
                "stfu",
                "goddamn*",
                "damn it",
                "bloody hell",
                "screw you",
                "hate you",
                "i hate",
                "we hate",
                "😡",
                "🤬",
                "😠",
                "👿",
                "💢",
                "🖕",
            ),
            patterns=(
                _p(
                    "what a joke",
                    r"(?:what an?|such an?|absolute|total|complete|is a|are a) (?:fucking"
                    r" |bloody )?(?:joke|clown show|circus)",
                ),
                _p("worst <x> ever", r"worst (?:\w+ ){1,2}ever"),
            ),
        ),
        "concern": CategorySpec(
            terms=(
                "worried",
                "worrying",
                "worries",
                "worry",
                "concerned",
                "concerning",
                "scared",
                "scary",
                "frightened",
                "frightening",
                "terrified",
                "terrifying",
                "nervous",
                "alarming",
                "alarmed",
                "fear",
                "fears",
                "fearful",
                "panic*",
                "freaked out",
                "freaking out",
                "😟",
                "😨",
                "😰",
            ),
            patterns=(
                # not the idioms "I'm afraid not/so" or "anxious to (book)" (eager)
                _p("afraid", r"afraid(?! (?:not|so)\b)", negatable=True),
                _p("anxious", r"anxious(?! to\b)", negatable=True),
                _p(
                    "is it safe",
                    r"(?:is|are) (?:it|this|that|they|we) (?:still |really |actually )?safe"
                    r"(?! to say)",
                ),
                _p(
                    "is <x> safe?",
                    r"(?:is|are) \w+ (?:still |really |actually )?safe(?: to \w+)? ?\?",
                ),
                _p("am i safe", r"am i safe"),
                _p(
                    "is my data safe",
                    r"(?:is|are) (?:my|our) (?:\w+ )?(?:data|money|account|accounts|information"
                    r"|info|password|passwords|card|details|savings|funds|kids?|children|family)"
                    r" (?:still )?(?:safe|secure|ok|okay|protected)",
                ),
                _p(
                    "what happens to my data",
                    r"what (?:happens|will happen|happened) to (?:my|our|all the|the) (?:\w+ )?"
                    r"(?:data|money|account|accounts|information|info|details|funds|photos|files"
                    r"|savings|deposits?)",
                ),
                _p(
                    "hope everyone is ok",
                    r"hope (?:everyone|everybody|nobody|no one|you|they|all) (?:is |are |was"
                    r" |were |'s |'re |got |gets |stays? )?(?:ok|okay|safe|alright|all right|hurt)",
                ),
            ),
        ),
        "confusion": CategorySpec(
            terms=(
                "confused",
                "confusing",
                "puzzled",
                "baffled",
                "baffling",
                "bewildered",
                "perplexed",
                "is it just me",
                "just me or",
                "anyone know why",
                "does anyone know",
                "anybody know",
                "any idea why",
                "no idea why",
                "can someone explain",
                "can anyone explain",
                "makes no sense",
                "doesn't make sense",
                "does not make sense",
                "don't understand",
                "do not understand",
                "don't get why",
                "🤔",
                "😕",
                "🤷",
                "❓",
            ),
            patterns=(
                _p("what's going on", r"what(?:'s|s| is| the (?:hell|heck|fuck) is) going on"),
                _p("what's happening with", r"what(?:'s| is) happening (?:with|to|at)"),
                _p("what happened to", r"what happened (?:to|with)"),
                _p(
                    "anyone else having",
                    r"(?:anyone|anybody|someone|is anyone) else (?:having|getting|seeing"
                    r"|experiencing|noticing|facing|have|get|see|notice)",
                ),
                _p(
                    "why won't it",
                    r"why (?:won't|can't|isn't|doesn't|didn't|wont|cant|isnt|doesnt) (?:it|my|the"
                    r"|this|i|anything)",
                ),
                _p("??", r"\?[!?]*\?"),
            ),
        ),
    }
)
"""The terms and patterns behind each emotion (fixed; see docs/categories.md)."""

PATTERN_LABELS: Mapping[str, str] = MappingProxyType(_LABELS)
"""Built-in pattern → the short label reported as its evidence (e.g. ``charged twice``)."""

# A negation right before an emotion term (with at most one word between) cancels it:
# "not worried", "never angry", "don't worry", "not too concerned", "no need to panic".
_NEGATED = re.compile(
    r"(?<!\w)(?:not|never|no|nothing|without|(?:do|does|did|is|are|was|were|ca|wo|could|should"
    r"|would|have|has|had|ai|need)n'?t)(?: \w+)?(?: to)? ?$"
)
_NEGATION_WINDOW = 24

# Shouting: at least four all-caps words of at least two letters making up 60% of the
# words, one of them at least four letters long (so "AWS API DOWN" is not shouting).
_LETTER_WORDS = re.compile(r"(?<![@#\w])[^\W\d_]{2,}(?!\w)")
_URLS = re.compile(r"https?://\S+|www\.\S+")
_SHOUT_MIN_WORDS = 4
_SHOUT_SHARE = 0.6
_SHOUT_MIN_UPPER = 10  # 2 + 2 + 2 + 4 letters: cheap early exit
_FOUR_CAPITALS = re.compile("[A-Z]{4}")
# Shouting is intensity, not necessarily anger: "THANK YOU SO MUCH, BEST AIRLINE EVER".
# It counts as anger only when the text has none of these clearly positive cues.
_POSITIVE_WORDS = frozenset(
    [
        "love",
        "loved",
        "loving",
        "thank",
        "thanks",
        "thx",
        "amazing",
        "awesome",
        "best",
        "great",
        "happy",
        "yay",
        "congrats",
        "congratulations",
        "excited",
        "excellent",
        "fantastic",
        "wonderful",
        "brilliant",
        "perfect",
        "haha",
        "hahaha",
        "lol",
    ]
)
_POSITIVE_EMOJI = (
    "😁",
    "😂",
    "😊",
    "😍",
    "🥰",
    "🙏",
    "💕",
    "💗",
    "❤",
    "♥",
    "🎉",
    "👍",
    "😀",
    "😃",
    "😄",
)
_POSITIVE_NEEDLES = tuple(f" {word} " for word in sorted(_POSITIVE_WORDS))  # in the scan
SHOUTING = "ALL CAPS"


# --------------------------------------------------------------------------- compiling
#
# Speed: Python's regex engine pays for every text position it tries, so running a few
# hundred whole-word regexes over every text would be far too slow. Instead each term
# and pattern is *gated* (:mod:`listener.scoring.gates`): it has clauses, sets of
# literals one of which every match contains, and it is only tried on a text that
# passes them:
#
# * a one-word term (``refund``, ``refund*``) is decided by its gate alone (that word, or
#   a word starting with the stem);
# * a longer term needs its words in a row (``on hold``), then is confirmed by its regex,
#   which starts with a literal and so is found by a fast literal scan;
# * a pattern needs the literals read from its source, as whole words where the regex
#   shows where words start and end (``(?:is|are) down`` needs the word ``down``;
#   ``recall(?:s|ed)`` a word starting with ``recall``); a pattern without such literals
#   (``\d{3}``), or written with syntax the reader does not know, is tried on every text.
#
# A text is read once into its *scan*: its words between single spaces, then the
# normalised text itself (`` refund my fees \nrefund my fees!``), so that " refund " is
# in the scan exactly when the text has the word ``refund``, " ref" when a word starts
# with ``ref``, and any literal of the text is in it too. One Aho-Corasick automaton
# over the scan (per tagger) finds the items whose cheapest clause holds;
# each candidate's other one-literal clauses are then checked with ``in`` (a fraction
# of a regex search) before its regex runs.
#
# Regexes carry their right word edge; the left edge ("a match never starts inside a
# word") is checked in Python, so that a regex starting with a literal keeps the
# engine's fast literal scan.

_KNOWN_KEYS = frozenset({"terms", "patterns", "replace"})
_WORD_SEP = re.compile(r"[ -]+")
_WORD = re.compile(r"\w+")
_NON_WORD = re.compile(r"\W+")
_END = r"(?:(?!\w)|(?<!\w))"
_ESCAPES = re.compile(r"\\.")
# ASCII bytes that are not word characters become spaces.
_ASCII_NON_WORD = bytes(
    b if b >= 0x80 or chr(b).isalnum() or b == ord("_") else ord(" ") for b in range(256)
)
_Search = Callable[[str, int], "re.Match[str] | None"]  # a compiled regex's search
_Scanner = Callable[[str], Iterator[tuple[int, tuple[int, ...]]]]  # an automaton's iter


def _scan(norm: str) -> str:
    """The scan of normalised text, `` <its words between spaces> \\n<norm>``: before the
    newline only word characters and spaces (" refund " is there exactly when the text
    has the word), after it the text itself (for literals with other characters). Texts
    and terms have no newline, so no term's gate can match across the two parts."""
    if norm.isascii():
        spaced = norm.encode().translate(_ASCII_NON_WORD).decode()
    else:
        spaced = _NON_WORD.sub(" ", norm)
    return f" {spaced} \n{norm}"


def _needle(gate: Gate) -> str:
    """What the scan contains when ``gate`` holds."""
    kind, literal = gate
    if kind == EXACT:
        return f" {literal} "
    return f" {literal}" if kind == STEM else literal


_last: tuple[str, str, str] = ("", "", "")


def _prepare(text: str) -> tuple[str, str]:
    """The normalised text and its scan. The last text is remembered, so that tagging
    categories and then emotions of one mention normalises and reads it once."""
    global _last
    last = _last  # one read: another thread may replace it, never half of it
    if last[0] is text:
        return last[1], last[2]
    norm = normalise_text(text)
    scan = _scan(norm)
    _last = (text, norm, scan)
    return norm, scan


def _view(doc: Prepared) -> tuple[str, str]:
    """The category view of a prepared text (what :func:`_prepare` gives for its text),
    built from the text's shared normalised form on first use and kept on ``doc``."""
    view = doc.category_view
    if view is None:
        norm = doc.norm if doc.norm.isascii() else _straight(doc.norm)
        view = doc.category_view = (norm, _scan(norm))
    return view


def _is_word(char: str) -> bool:
    return char.isalnum() or char == "_"


def _fires(search: _Search, norm: str, negatable: bool) -> bool:
    """Whether a regex (its ``search``) has a non-empty match in ``norm`` that does not
    start inside a word and, when ``negatable``, does not follow a negation."""
    pos = 0
    # past the end, search would find the empty match at the end again and again
    while pos <= len(norm) and (m := search(norm, pos)) is not None:
        start, end = m.span()
        if end > start and (
            start == 0 or not _is_word(norm[start - 1]) or not _is_word(norm[start])
        ):
            if not (negatable and _negated(norm, start)):
                return True
            pos = end
        else:
            pos = start + 1
    return False


@dataclass(frozen=True, slots=True)
class _Item:
    """One term or pattern of one group (category or emotion)."""

    group: int
    position: int  # evidence position within the group
    search: _Search  # its regex's search
    proof: bool  # the gate alone decides (one-word terms, emoji)
    negatable: bool  # a negation just before a match cancels it (emotion terms)
    needs: tuple[str, ...]  # what the scan must also contain before the regex is tried


@dataclass(frozen=True, slots=True)
class _Term:
    regex: str
    clauses: tuple[Clause, ...]
    proof: bool


def _term(group: str, raw: object, index: int) -> _Term | None:
    """Compile one term, or None when it normalises to nothing."""
    if not isinstance(raw, str):
        raise CategoryError(group, f"term {raw!r} must be a string", field="terms", index=index)
    words = [w for w in _WORD_SEP.split(normalise_text(raw)) if w]
    if not words:
        return None
    parts: list[str] = []
    stems: list[str] = []
    gates: list[Gate] = []
    phrase: list[str] = []  # plain words in a row (the text has them one space apart)
    for word in words:
        wildcard = word.endswith("*")
        stem = word[:-1] if wildcard else word
        if wildcard and len(stem) < MIN_STEM:
            raise CategoryError(
                group,
                f"term {raw!r}: a wildcard '*' needs at least {MIN_STEM} characters before it",
                field="terms",
                index=index,
            )
        parts.append(re.escape(stem).replace("n't", "n'?t") + (r"\w*" if wildcard else ""))
        stems.append(stem)
        if _WORD.fullmatch(stem):
            phrase.append(stem)
            if wildcard:  # the text's word only starts with it: the phrase ends here
                gates.append((STEM, " ".join(phrase)))
                phrase = []
            continue
        if phrase:
            gates.append((EXACT, " ".join(phrase)))
            phrase = []
        if "n't" not in stem:  # a literal of every match ("#recall", "f*ck", "😡")
            gates.append((SUBSTRING, stem))
        found = _WORD.findall(stem)
        open_end = wildcard and _is_word(stem[-1])
        for n, fragment in enumerate(found):
            is_stem = open_end and n == len(found) - 1
            if "'" in stem:  # "can't" also matches "cant": a substring of both
                gates.append((SUBSTRING, fragment))
            elif not is_stem:
                gates.append((EXACT, fragment))
            elif len(fragment) >= MIN_STEM:
                gates.append((STEM, fragment))
            else:  # too short for a word's start
                gates.append((SUBSTRING, fragment))
    if phrase:
        gates.append((EXACT, " ".join(phrase)))
    right = r"(?!\w)" if _is_word(words[-1][-1]) or words[-1].endswith("*") else ""
    regex = "[ -]".join(parts) + right
    clauses = tuple(frozenset({gate}) for gate in dict.fromkeys(gates))
    # One plain word ("refund", "refund*") or one without word characters ("😡", "??"):
    # its one gate holds exactly when its regex matches.
    proof = len(words) == 1 and (_WORD.fullmatch(stems[0]) or not _WORD.search(stems[0]))
    return _Term(regex, clauses, proof=bool(proof))


def _ignorecase(pattern: str) -> bool:
    """Whether ``pattern`` is compiled case-insensitively: it has capitals (escapes such
    as ``\\W`` and ``\\S`` aside)."""
    plain = _ESCAPES.sub("", pattern)
    return plain != plain.lower()


def _check_pattern(group: str, pattern: object, index: int) -> re.Pattern[str]:
    """Compile one pattern (case-insensitive where it has capitals), or raise CategoryError."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise CategoryError(
            group,
            f"pattern {pattern!r} must be a non-empty string",
            field="patterns",
            index=index,
        )
    flags = re.IGNORECASE if _ignorecase(pattern) else 0
    try:
        alone = re.compile(pattern, flags)
    except re.error as exc:
        raise CategoryError(
            group,
            f"pattern {pattern!r} is not a valid regular expression: {exc}",
            field="patterns",
            index=index,
        ) from None
    try:
        compiled = re.compile(f"(?:{pattern}){_END}", flags)
    except re.error as exc:
        raise CategoryError(
            group,
            f"pattern {pattern!r} cannot be embedded in a larger expression ({exc}); "
            "use scoped flags such as (?s:...) instead of (?s)",
            field="patterns",
            index=index,
        ) from None
    if alone.fullmatch("") is not None:
        raise CategoryError(
            group,
            f"pattern {pattern!r} matches the empty string, so it would fire on every text",
            field="patterns",
            index=index,
        )
    return compiled


def _automaton(entries: Mapping[str, tuple[int, ...]]) -> _Scanner | None:
    """An Aho-Corasick automaton over ``entries``' keys: its ``iter``, which yields
    ``(end index, value)`` for every occurrence of every key; None when there are none."""
    if not entries:
        return None
    automaton = ahocorasick.Automaton()
    for key, value in entries.items():
        automaton.add_word(key, value)
    automaton.make_automaton()
    return cast("_Scanner", automaton.iter)


def _negated(norm: str, start: int) -> bool:
    return _NEGATED.search(norm[max(0, start - _NEGATION_WINDOW) : start]) is not None


class _Engine:
    """All terms and patterns of several groups, gated and compiled once."""

    __slots__ = ("_always", "_evidence", "_gates", "_items", "names")

    def __init__(
        self, groups: Iterable[tuple[str, Sequence[str], Sequence[str]]], *, negatable: bool
    ) -> None:
        names: list[str] = []
        evidence: list[tuple[str, ...]] = []
        items: list[_Item] = []
        keys: dict[str, list[int]] = {}
        always: list[int] = []

        def gate(item: int, clauses: Sequence[Clause]) -> tuple[str, ...]:
            """Dispatch ``item`` by its cheapest clause; its other single literals (unless
            weak) are what it ``needs`` before its regex runs."""
            if not clauses:
                always.append(item)
                return ()
            first, *rest = sorted(clauses, key=cost)
            for g in first:
                keys.setdefault(_needle(g), []).append(item)
            singles = (c for c in rest if len(c) == 1 and not weak(c))
            return tuple(dict.fromkeys(_needle(g) for c in singles for g in c))

        for name, terms, patterns in groups:
            labels: list[str] = []
            seen: set[str] = set()
            group = len(names)
            for index, raw in enumerate(terms):
                term = _term(name, raw, index)
                if term is None or term.regex in seen:
                    continue
                seen.add(term.regex)
                needs = gate(len(items), term.clauses)
                search = re.compile(term.regex).search
                items.append(_Item(group, len(labels), search, term.proof, negatable, needs))
                labels.append(raw)
            for index, raw in enumerate(patterns):
                compiled = _check_pattern(name, raw, index)
                if raw in seen:
                    continue
                seen.add(raw)
                needs = gate(len(items), pattern_clauses(raw, ignorecase=_ignorecase(raw)))
                negates = negatable and raw in _NEGATABLE
                items.append(_Item(group, len(labels), compiled.search, False, negates, needs))
                labels.append(_LABELS.get(raw, raw))
            if labels:
                names.append(name)
                evidence.append(tuple(labels))
        self.names: tuple[str, ...] = tuple(names)
        self._evidence = tuple(evidence)
        self._items = tuple(items)
        self._gates = _automaton({key: tuple(ids) for key, ids in keys.items()})
        self._always = tuple(always)

    def run(
        self, text: str, *, negation: bool = False, gated: bool = True
    ) -> list[tuple[int, tuple[str, ...]]]:
        """``(group, evidence)`` for every group that fires on ``text``, in group order.

        ``gated=False`` tries every item's regex (slow; tests check that gating never
        changes a result)."""
        norm, scan = _prepare(text)
        return self.run_view(norm, scan, negation=negation, gated=gated)

    def run_view(
        self, norm: str, scan: str, *, negation: bool = False, gated: bool = True
    ) -> list[tuple[int, tuple[str, ...]]]:
        """:meth:`run` on a text's normalised form and its scan (:func:`_prepare`)."""
        fired = self.fired(norm, scan, negation=negation, gated=gated)
        return [
            (group, tuple(self._evidence[group][p] for p in positions))
            for group, positions in fired.items()
        ]

    def fired(
        self, norm: str, scan: str, *, negation: bool, gated: bool = True, every: bool = True
    ) -> dict[int, list[int]]:
        """Evidence positions of the items that fire, by group in group order. With
        ``every`` false, a group stops being tried at its first item that fires (for
        callers that want the groups, not the evidence)."""
        items = self._items
        if gated:
            found = set(self._always)
            if self._gates is not None:
                for _, ids in self._gates(scan):
                    found.update(ids)
            if not found:
                return {}
            candidates: Iterable[int] = sorted(found)  # items are in group order
        else:
            candidates = range(len(items))
        fired: dict[int, list[int]] = {}
        for index in candidates:
            item = items[index]
            positions = fired.get(item.group)
            if positions is not None and not every:
                continue
            negatable = negation and item.negatable
            decided = gated and item.proof and not negatable  # its gate was found: it fires
            if not decided and (
                (gated and not all(map(scan.__contains__, item.needs)))
                or not _fires(item.search, norm, negatable)
            ):
                continue
            if positions is None:
                fired[item.group] = [item.position]
            else:
                positions.append(item.position)
        return fired


def _spec_fields(name: str, spec: CategorySpecInput) -> tuple[list[str], list[str], bool]:
    """``terms``, ``patterns`` and ``replace`` from a config model, dataclass or dict."""
    if isinstance(spec, Mapping):
        unknown = sorted(str(k) for k in spec if k not in _KNOWN_KEYS)
        if unknown:
            raise CategoryError(
                name,
                f"unknown key {unknown[0]!r} (known keys: patterns, replace, terms)",
                field=unknown[0],
            )
        terms, patterns, replace = (
            spec.get("terms", ()),
            spec.get("patterns", ()),
            spec.get("replace", False),
        )
    else:
        terms, patterns, replace = (
            getattr(spec, "terms", ()),
            getattr(spec, "patterns", ()),
            getattr(spec, "replace", False),
        )
    return (
        _strings(name, "terms", terms),
        _strings(name, "patterns", patterns),
        _flag(name, replace),
    )


def _strings(name: str, field: str, value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise CategoryError(name, f"{field} must be a list of strings", field=field)
    items = list(value)
    for index, item in enumerate(items):
        if not isinstance(item, str):
            raise CategoryError(
                name, f"{field} must be a list of strings, got {item!r}", field=field, index=index
            )
    return items


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise CategoryError(name, f"replace must be true or false, got {value!r}", field="replace")
    return value


# --------------------------------------------------------------------------- taggers


class CategoryTagger:
    """Tags texts with crisis categories; built once, regexes compiled once.

    ``custom`` maps category names to definitions (a config model, :class:`CategorySpec`
    or a plain dict with ``terms``, ``patterns`` and ``replace``). A name that is a
    built-in category extends it (or, with ``replace``, replaces its terms and patterns);
    any other name adds a category. ``defaults=False`` leaves only the custom categories.
    Raises :class:`CategoryError` on an unusable definition.
    """

    __slots__ = ("_engine",)

    def __init__(
        self, custom: Mapping[str, CategorySpecInput] | None = None, *, defaults: bool = True
    ) -> None:
        merged: dict[str, tuple[list[str], list[str]]] = {}
        if defaults:
            for default_name, default in DEFAULT_CATEGORIES.items():
                merged[default_name] = (list(default.terms), list(default.patterns))
        for name, spec in (custom or {}).items():
            if not isinstance(name, str) or not name.strip():
                raise CategoryError(str(name), "a category needs a non-empty name")
            terms, patterns, replace = _spec_fields(name, spec)
            for index, term in enumerate(terms):  # errors point into the custom lists
                _term(name, term, index)
            for index, pattern in enumerate(patterns):
                _check_pattern(name, pattern, index)
            if name in merged and not replace:
                base_terms, base_patterns = merged[name]
                merged[name] = (base_terms + terms, base_patterns + patterns)
            elif name in merged or terms or patterns:
                merged[name] = (terms, patterns)
            else:
                raise CategoryError(name, "a new category needs at least one term or pattern")
        self._engine = _Engine(
            ((name, terms, patterns) for name, (terms, patterns) in merged.items()),
            negatable=False,
        )

    @property
    def names(self) -> tuple[str, ...]:
        """The categories this tagger can report, in the order :meth:`tag` uses."""
        return self._engine.names

    def tag(self, text: str) -> tuple[CategoryHit, ...]:
        """The categories ``text`` falls into, with evidence, in :attr:`names` order."""
        return self._hits(self._engine.run(text))

    def tag_prepared(self, doc: Prepared) -> tuple[CategoryHit, ...]:
        """:meth:`tag` of a prepared text (its normalised form and scan shared)."""
        return self._hits(self._engine.run_view(*_view(doc)))

    def categories_prepared(self, doc: Prepared) -> tuple[str, ...]:
        """The names of :meth:`tag_prepared`'s hits, found faster: without evidence, a
        category stops being tried at its first term or pattern that fires."""
        norm, scan = _view(doc)
        fired = self._engine.fired(norm, scan, negation=False, every=False)
        return tuple(map(self._engine.names.__getitem__, fired))

    def _hits(self, fired: list[tuple[int, tuple[str, ...]]]) -> tuple[CategoryHit, ...]:
        names = self._engine.names
        return tuple(CategoryHit(names[group], evidence) for group, evidence in fired)


class EmotionDetector:
    """Detects ``anger``, ``concern`` and ``confusion`` where the signal is clear.

    Anger: profanity, insults, "furious", "unacceptable", 😡 🤬 and all-caps shouting.
    Concern: "worried", "scared", "is it safe", "what happens to my data".
    Confusion: "what's going on", "anyone know why", "is it just me", "??".
    A negation just before a term ("not worried", "don't worry") cancels that term.
    """

    __slots__ = ("_engine",)

    def __init__(self) -> None:
        self._engine = _Engine(
            ((name, spec.terms, spec.patterns) for name, spec in EMOTION_DEFINITIONS.items()),
            negatable=True,
        )

    def detect(self, text: str) -> tuple[str, ...]:
        """The emotions in ``text``, in :data:`EMOTIONS` order; ``()`` when neutral."""
        return self._detect(text, *_prepare(text))

    def explain(self, text: str) -> tuple[EmotionHit, ...]:
        """The emotions in ``text`` with the terms/patterns/signals behind each."""
        return self._explain(text, *_prepare(text))

    def detect_prepared(self, doc: Prepared) -> tuple[str, ...]:
        """:meth:`detect` of a prepared text (its normalised form and scan shared)."""
        return self._detect(doc.text, *_view(doc))

    def _detect(self, text: str, norm: str, scan: str) -> tuple[str, ...]:
        """The names of :meth:`_explain`'s hits; without evidence, an emotion stops being
        tried at its first sign, and shouting is only looked at when anger is not found."""
        groups: Iterable[int] = self._engine.fired(norm, scan, negation=True, every=False)
        if _ANGER not in groups and _shouting(text) and not _positive(norm, scan):
            groups = sorted([*groups, _ANGER])
        return tuple(map(self._engine.names.__getitem__, groups))

    def _explain(self, text: str, norm: str, scan: str) -> tuple[EmotionHit, ...]:
        found = dict(self._engine.run_view(norm, scan, negation=True))
        if _shouting(text) and not _positive(norm, scan):
            found[_ANGER] = (*found.get(_ANGER, ()), SHOUTING)
        return tuple(EmotionHit(self._engine.names[group], found[group]) for group in sorted(found))


_ANGER = EMOTIONS.index("anger")  # its group in the detector's engine
_UPPER = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _positive(norm: str, scan: str) -> bool:
    """Whether a text (its normalised form and scan) carries a clearly positive cue (a
    word or an emoji)."""
    return any(w in scan for w in _POSITIVE_NEEDLES) or any(e in norm for e in _POSITIVE_EMOJI)


def _shouting(text: str) -> bool:
    """Whether ``text`` is mostly written in capitals (ignoring URLs, @handles, #tags)."""
    if text.isascii():
        upper = len(text) - len(text.encode().translate(None, _UPPER))
        # cheap exits: too few capitals, or no four in a row (an ASCII capital word of
        # four letters is four in a row)
        if upper < _SHOUT_MIN_UPPER or _FOUR_CAPITALS.search(text) is None:
            return False
    elif sum(map(str.isupper, text)) < _SHOUT_MIN_UPPER:
        return False
    words = _LETTER_WORDS.findall(_URLS.sub(" ", unicodedata.normalize("NFKC", text)))
    caps = [w for w in words if w.isupper()]
    return (
        len(caps) >= _SHOUT_MIN_WORDS
        and len(caps) >= _SHOUT_SHARE * len(words)
        and any(len(w) >= 4 for w in caps)
    )
