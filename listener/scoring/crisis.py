"""Crisis-aware sentiment: VADER plus the language of complaints and brand crises.

Contract: :class:`CrisisScorer` implements :class:`listener.scoring.base.Scorer`. Everything
(VADER's analyser and lexicon, the crisis lexicon, the compiled patterns) is built once in
the constructor; :meth:`CrisisScorer.score` is a pure, deterministic function of the text.

How a text is scored (docs/sentiment.md explains each step with examples):

1. **Normalise**: HTML entities decoded, typographic apostrophes made ASCII, URLs and
   @mentions removed, hashtags split into words (``#customerServiceFail`` → "customer
   Service Fail", ``#neveragain`` → "never again"), letter floods shortened
   ("soooo baaad" → "so bad"), common emoji given a valence.
2. **Crisis and complaint language** (service failure, waiting, money, logistics, trust
   and safety, loyalty loss, trouble questions) becomes single lexicon tokens whose
   valence sits on VADER's own -4..+4 scale in four tiers; words that carry no sentiment
   in a service context ("please", "customer support", "looks like") become neutral ones.
3. **Context rules** on those tokens: persistence ("still", "again") and sarcasm frames
   ("thanks for nothing", "great, another delay").
4. **VADER** scores the result with its own lexicon and rules (negation, boosters, ALL
   CAPS, "but", punctuation emphasis), with three changes: negation and boosters stop at
   punctuation and "but" at the end of its sentence ("nothing works, I hate this" is not
   praise); a negated crisis token counts as neutral, not as praise ("not delayed" is no
   compliment); and in a text with a clear negative (valence ≤ -1.0 after negation: a
   failure, "failed", "rude"), positive words count ``COMPLAINT_DISCOUNT`` times
   ("flight delayed 5 hours, feel free to send credits").

Labels follow the inclusive rule of :class:`listener.scoring.sentiment.VaderScorer`
(negative at compound ≤ ``negative_threshold``, positive at ≥ ``positive_threshold``), but
the default neutral band is wider on the positive side (-0.05, 0.4): a single mildly
positive word ("ok", "join") does not make a statement praise.
"""

from __future__ import annotations

import html
import re
import string
from collections.abc import Callable, Mapping
from itertools import compress, count, repeat
from operator import ne
from typing import Any, Final

from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    C_INCR,
    N_SCALAR,
    NEGATE,
    SPECIAL_CASES,
    SentimentIntensityAnalyzer,
    normalize,
)

from listener.model import Sentiment, SentimentLabel
from listener.scoring.alternation import factor

__all__ = [
    "COMPLAINT_DISCOUNT",
    "CRISIS_PATTERNS",
    "DEFAULT_NEGATIVE_THRESHOLD",
    "DEFAULT_POSITIVE_THRESHOLD",
    "EMOJI_VALENCE",
    "CrisisScorer",
]

# Valence tiers on VADER's scale (its raters used -4..+4; "problem" is -1.7, "bad" -2.5).
SEVERE: Final = -2.5  # a crisis in itself: fraud, breach, stranded, lost luggage, "never again"
MODERATE: Final = -1.8  # a service failure: outage, cancelled, on hold, charged twice
MILD: Final = -1.0  # trouble, not yet failure: refund, "what's going on?", sarcastic praise
CUE: Final = -0.6  # weak evidence that only adds up: "still", "again", "for 3 hours", "why is"

# The global knobs (docs/sentiment.md says how they were set).
DEFAULT_NEGATIVE_THRESHOLD: Final = -0.05
DEFAULT_POSITIVE_THRESHOLD: Final = 0.4
COMPLAINT_DISCOUNT: Final = 0.5

TOKEN: Final = "crisis_"  # prefix of the lexicon tokens that crisis phrases become
NEUTRAL: Final = "plain_"  # prefix of tokens for words with no sentiment in this context
IDIOM: Final = "idiom_"  # prefix of positive idioms, scored by VADER's rules unchanged
RESOLVED: Final = f"{NEUTRAL}resolved"

# -- building blocks of the patterns (matched on lower-cased, normalised text) -------------

_NEG = (
    r"(?:not|never|nothing|cannot|can ?not|can'?t|won'?t|doesn'?t|don'?t|didn'?t|isn'?t|aren'?t|"
    r"wasn'?t|weren'?t|haven'?t|hasn'?t|hadn'?t|couldn'?t|wouldn'?t|ain'?t|unable to|"
    r"fail(?:s|ed|ing)? to)"
)
_SERVICE_VERB = (
    r"(?:work(?:s|ing|ed)?|load(?:s|ing|ed)?|connect(?:s|ing|ed)?|log ?in|logging in|log on|"
    r"sign ?in|signing in|access|get through|getting through|reach|open(?:ing)?|"
    r"respond(?:ing)?|send(?:ing)?|receiv(?:e|ed|ing)|pay|check ?in|checking in|book(?:ing)?|"
    r"print(?:ing)?|download(?:ing)?|updat(?:e|ing)|sync(?:ing)?|boot(?:ing)?|charg(?:e|ing)|"
    r"stream(?:ing)?|refresh(?:ing)?|go(?:ing)? through|process(?:ing)?|find my|track(?:ing)?|"
    r"deliver(?:ed|ing)?|arriv(?:e|ed)|show(?:ed)? up|locat(?:e|ed|ing)|find|found|"
    r"get (?:a ?hold|ahold) of|getting (?:a ?hold|ahold) of|talk to|speak to|contact|"
    r"mov(?:e|ed|ing)|budg(?:e|ed)|left|leave|depart(?:ed)?|take off|taken off|took off|"
    r"board(?:ed)?)"
)
_SYSTEM = (
    r"(?:site|website|web site|app|apps|server|servers|service|services|system|systems|"
    r"network|internet|wifi|wi-fi|connection|platform|api|email|e-mail|phone lines|"
    r"portal|page|login|checkout|payments?|atms?|streaming|signal|cloud|online banking|"
    r"banking)"
)
_ITEM = (
    r"(?:bags?|luggage|baggage|suitcases?|package|packages|parcels?|order|orders|delivery|"
    r"car ?seat|stroller|card|phone|laptop|refund|money|stuff|belongings)"
)
_EXPECTED = (
    r"(?:response|responses|reply|replies|answer|answers|update|updates|refund|refunds|"
    r"call ?back|call|calls|e-?mail|emails|help|explanation|apology|compensation|"
    r"confirmation|information|info|word|notification|voucher|credit|resolution|solution|"
    r"assistance|follow[- ]?up|communication|contact|acknowledg(?:e)?ment)"
)
_NUMBER = r"(?:\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten|several|many|multiple)"
_DURATION = rf"(?:{_NUMBER}\+?\s*(?:more\s+)?(?:hours?|hrs?|days?|weeks?))"
_NOT_A_RATE = r"(?! ?(?:a|per|each|every|/) ?(?:day|week|month|year|7)\b)"  # "24 hours a day"

# -- the crisis lexicon: (token name, valence, patterns). Principles, not a word list fit
#    to any data set; docs/sentiment.md gives each category's rationale and examples. ----

# fmt: off
CRISIS_PATTERNS: Final[tuple[tuple[str, float, tuple[str, ...]], ...]] = (
    # sarcasm with a fixed form comes first so that its words are not scored on their own
    ("sarcasm_nothing", MODERATE, (
        r"(?:thanks|thank you|thx)(?: (?:so much|a lot|again))? for (?:absolutely )?nothing",
    )),
    # loyalty loss
    ("never_again", SEVERE, (
        r"never again",
        r"never ever again",
        r"never (?:ever )?(?:fly\w*|flown|flew|use|using|buy\w*|bought|shop\w*|book\w*|order\w*|"
        r"recommend\w*|return\w*|com(?:e|ing) back|go(?:ing)? back|deal\w*|choose|trust\w*|"
        r"stay\w*|rent\w*)(?: \w+){0,4}? again",
        r"(?:won'?t|will not|will never) (?:ever )?(?:be )?(?:fly\w*|us(?:e|ing)|buy\w*|shop\w*|"
        r"book\w*|recommend\w*|trust\w*|choos(?:e|ing)|return\w*|deal\w* with)"
        r"(?: \w+){0,2}? (?:again|you|your|them|this|their)",
        r"lost (?:a|another|a loyal) customer",
        r"(?:lost|losing) my business",
        r"tak(?:e|ing) my (?:business|money) elsewhere",
        r"done with (?:you|your|this|them)",
    )),
    ("cancel_account", MODERATE, (
        r"cancel(?:l?ing|l?ed)? my (?:account|subscription|membership|service|contract|plan|card)",
    )),
    # service failure
    ("service_down", MODERATE, (
        rf"{_SYSTEM}(?: (?:is|are|was|were|has been|have been|went|goes|going|keeps? going|"
        rf"still|completely|totally|always|now|again))* down",
        r"is (?:\S+ ){1,3}down\?",
        r"down for (?:everyone|anyone|me|us|hours|days|over|\d)",
        r"(?:power|internet|wifi|wi-fi|service|cable|electricity|network|phones?|signal) "
        r"(?:(?:is|are|was|were|went|has been|have been|still|been) )+out",
        r"down again",
    )),
    ("outage", MODERATE, (
        r"outages?", r"downtime", r"blackouts?", r"power cut", r"service interruption",
    )),
    ("not_working", MODERATE, (
        rf"{_NEG}(?: (?:even|still|just|really|seem to|seems to|ever|always|currently|be|been|"
        rf"is|are|was|were))?"
        rf" {_SERVICE_VERB}",
        r"(?:can'?t|cannot|couldn'?t|can not|could not) seem to",
        r"unable to",
        r"locked out",
        r"keeps? (?:on )?(?:crashing|dropping|freezing|failing|disconnecting|buffering|"
        r"glitching|timing out|restarting|logging (?:me )?out|kicking (?:me )?(?:out|off)|"
        r"declining|rejecting)",
        r"(?:dropped|dropping) calls?",
        r"no (?:signal|service|internet|wifi|wi-fi|connection|power|network|coverage|access)",
        r"(?:error|errors) (?:message|code|page)",
        r"(?:404|500|502|503) error",
        r"timed out",
        rf"{_NEG}(?: (?:been|be|yet|even|still|get|got|gotten))* (?:fix(?:ed)?|resolv(?:e|ed)|"
        r"restor(?:e|ed)|sort(?:ed)? (?:it |this )?out)",
    )),
    ("crashed", MODERATE, (
        r"crash(?:ed|es|ing)", r"unresponsive", r"unreachable", r"unavailable",
        r"disconnect(?:ed|s|ing)", r"glitch(?:es|y)?", r"buggy", r"laggy", r"unreliable",
    )),
    # waiting and customer service
    ("waiting", MODERATE, (
        r"still waiting",
        r"(?:been|kept|keep|keeps) (?:me |us )?waiting",
        r"waiting (?:on|for) (?:a |an |my |our |the |any |some )?"
        rf"(?:{_EXPECTED}|someone|somebody|anyone|anybody|agent|rep|hours|days|weeks|ages)",
        r"on hold",
        r"hold music",
        r"(?:hung|hang|hanging) up on",
        r"(?:got|get|getting|given|gave) (?:me |us )?the (?:run ?around|brush[- ]off)",
        r"run ?around",
        r"transferred (?:me |us )?(?:\w+ )?(?:times|again)",
        r"(?:nobody|no one|noone|no-one)(?: \w+){0,2}? (?:answer\w*|respond\w*|repl\w*|"
        r"help\w*|care\w*|call\w*|pick\w* up|get\w* back|got back|tell\w*|told|show\w* up|"
        r"bother\w*|listen\w*|seems to)",
        rf"(?:no|zero|without|still no|lack of) (?:real |proper |further |single |timely )?"
        rf"{_EXPECTED}",
        rf"(?:never|not|haven'?t|hasn'?t|didn'?t|doesn'?t|yet to|still not)"
        rf"(?: \w+){{0,3}}? {_EXPECTED}",
        r"(?:haven'?t|hasn'?t|never|not) heard (?:back|anything|a word)",
        r"left in the dark",
        r"(?:can'?t|cannot|can not) wait (?:any ?longer|anymore|any more)",
    )),
    ("attempts", MILD, (
        r"(?:been|keep|keeps|kept|still) trying to",
        r"tried (?:\w+ )?(?:\d+|two|three|four|five|several|many|multiple) times",
    )),
    # a stated duration is a cue ("waited 3 hours", "for hours", "2 hrs and counting"), but
    # not the bare word "hours" ("store hours", "opening hours") nor a schedule ("open 24
    # hours", "24 hours a day", "in 2 days")
    ("long_wait", CUE, (
        rf"(?:for|over|after|another|almost|nearly|than) {_DURATION}{_NOT_A_RATE}",
        rf"(?:took|taking|takes|take|waited|waiting|spent|spend|spending|been) (?:\w+ ){{0,2}}?"
        rf"(?:{_DURATION}|hours|days|weeks|ages){_NOT_A_RATE}",
        r"an hour and a half",
        r"for (?:hours|days|ages|weeks)",
        r"(?:hours|days|weeks) (?:later|on end|ago|and (?:still|counting)|wasted|for nothing|"
        r"of (?:waiting|being on hold|trying|calling|calls))",
        r"(?<!\bin )(?<!\bwithin )(?<!\bnext )(?<!\bopen )(?<!\bopens )"
        r"(?:\d+|two|three|four|five|six|seven|eight|nine|ten|several|many|multiple)\+?\s*"
        rf"(?:more\s+)?(?:hours?|hrs?|days?|weeks?){_NOT_A_RATE}",
    )),
    # money
    ("money", MODERATE, (
        r"overcharg(?:ed|ing|e)",
        r"(?:double|twice)[- ]charg(?:ed|ing)",
        r"charged (?:me |us )?(?:twice|double|two times|three times|again)",
        r"hidden (?:fees?|charges?)",
        r"rip(?:ped)?[- ]?off",
        r"ripoff",
        r"(?:want|need|demand) (?:my|our|a) (?:money back|refund)",
        r"money back",
    )),
    ("refund", MILD, (r"refunds?", r"charge ?back", r"disputed? the charge")),
    # logistics
    ("lost_item", SEVERE, (
        rf"(?:lost|losing|lose|misplaced|damaged|broke|destroyed) (?:my|our|his|her|their|the|a) "
        rf"(?:\w+ )?{_ITEM}",
        rf"(?:lost|missing|damaged|delayed) {_ITEM}",
        rf"(?:my|our|the|his|her|their) (?:\w+ )?{_ITEM} (?:(?:is|are|was|were|has been|have been|"
        r"got|get|went|still|now|apparently|somehow) )+(?:lost|missing|damaged|broken|gone)",
        rf"{_ITEM} (?:never|still hasn'?t|hasn'?t|didn'?t|did not|has not) "
        r"(?:arrived|showed up|come|came|been delivered)",
    )),
    ("stranded", SEVERE, (r"strand(?:ed|ing)",)),
    ("delayed", MODERATE, (
        r"delay(?:ed|s|ing)?", r"cancell?(?:ed|ation|ations)", r"diverted", r"overbooked",
        r"stuck", r"missed (?:my |our |the )?(?:connection|connecting flight|flight|train)",
        r"(?:got |get |getting )bumped",
        r"never (?:arrived|came|showed up|received|got)",
        r"(?:still |has not |hasn'?t |didn'?t |did not )(?:arrived|arrive|shipped|ship)",
        r"(?:is|are|was|were|running|arrived|arriving|be|been|so|always|again|very|too|"
        r"hours?|minutes?|mins?|hrs?|days?) late",
        r"wrong (?:order|item|size|address|bag|gate|flight|information|info)",
    )),
    ("cancel", MILD, (r"cancel(?:s|l?ing)?",)),
    # trust and safety
    ("breach", SEVERE, (
        r"(?:data |security )?breach(?:es|ed)?",
        r"(?:data )?leak(?:s|ed)?",
        r"hack(?:ed|ers?)",
        r"identity theft",
        r"scam(?:s|med|mers?)?",
        r"fraud(?:ulent|sters?)?",
        r"stole(?:n)?",
        r"deceptive", r"misleading", r"false advertising",
        r"cover[- ]?up",
    )),
    ("recall", MODERATE, (
        r"recall(?:s|ed)?", r"contaminat(?:ed|ion)", r"food poisoning", r"salmonella",
        r"listeria", r"e\.? ?coli", r"unsafe", r"injur(?:ed|ies|y)", r"defective",
    )),
    ("lawsuit", SEVERE, (
        r"lawsuits?", r"class[- ]action", r"su(?:e|ed|ing) (?:you|them|the|over|for)",
        r"boycott(?:s|ed|ing)?",
    )),
    # complaint idioms and slang missing from VADER
    ("contempt", MODERATE, (
        r"(?:what|such|is|are|was|absolute|complete|total|utter) (?:a |an )?"
        r"(?:absolute |complete |total |utter |bad |sick )?joke",
        r"nightmare", r"hassle", r"disgraceful", r"unhelpful", r"excuses", r"fml", r"smdh",
    )),
    # demands and counterfactuals: an unmet expectation stated to the brand
    ("demand", MILD, (
        r"do better", r"get (?:it|your act|your \w+) together", r"step (?:it |your \w+ )?up",
        r"(?:fix|sort out|improve) your", r"learn (?:how )?to", r"how about (?:you|actually)",
        r"(?:would|it'?d|it would) (?:have )?be(?:en)? nice (?:if|to)",
        r"wish (?:you|u|they|y'?all|someone|somebody) (?:would|had|could|were|did|'?d)",
        r"should(?:n'?t| not)? have (?:to|been|had|told|said|known)", r"should'?ve (?:been|had)",
        r"shouldn'?t have to", r"(?:cost|costing|costs) (?:me|us)",
    )),
    ("frustration", MILD, (
        r"seriously\?", r"really\?", r"what'?s the point", r"what is the point", r"come on",
        r"c'?mon", r"are you (?:kidding|serious)",
        r"you(?:'ve| have)? got to be kidding", r"give (?:me|us) a break", r"unbelievable",
    )),
    # trouble questions aimed at a brand
    ("trouble_question", MILD, (
        r"what'?s going on", r"what is going on", r"whats going on", r"what'?s happening",
        r"what is happening", r"what happened (?:to|with)",
        r"(?:is )?anyone else (?:having|getting|seeing|experiencing|noticing|facing|with|had)",
        r"is it just me", r"is anyone else", r"where(?: is|'?s| are) my",
    )),
    ("why_question", MILD, (
        r"why (?:is|isn'?t|are|aren'?t|does|doesn'?t|did|didn'?t|do|don'?t|can'?t|won'?t|"
        r"would|wouldn'?t|has|hasn'?t|have|haven'?t|was|wasn'?t|were|weren'?t|the hell|on earth|"
        r"must|should|am)",
        r"how (?:much )?longer",
    )),
    # idioms VADER's lexicon misses (its own lexicon has "eager" at +1.5)
    ("eager", 1.5, (
        r"(?:can'?t|cannot|can not|couldn'?t) (?:even )?wait", r"can hardly wait",
        r"looking forward to",
    )),
    # "couldn't be happier": a negated comparative is a superlative, so the negation goes
    ("superlative", 0.0, (
        r"(?:couldn'?t|could not|can'?t|cannot) (?:be|have been|ask for(?: an?)?|get)"
        r"(?= (?:any |much )?(?:more|better|worse|\w{3,}er)\b)",
    )),
    # a failure reported as fixed: the clause's crisis tokens no longer count (see _Analyser)
    ("resolved", 0.0, (
        r"(?:fix|fixed|fixing|resolved|resolving|restored|sorted (?:it |this )?out|"
        r"back (?:up|online|to normal)|working again|up and running|found (?:my|our|it|them))",
    )),
    # words whose lexicon sense is not the sense used in a service context: not sentiment
    ("courtesy", 0.0, (
        r"thanks? in advance", r"thx in advance", r"tia",
        r"(?:please |pls |plz )?help (?:me|us)(?: please| pls| plz)?",
        r"(?:please|pls|plz) help", r"help (?:please|pls|plz)",
        r"(?:need|needs|needed|want|any|some|get|getting) (?:some |any )?help",
        r"(?:can|could|would|will) (?:you|u|someone|somebody|anyone|anybody) (?:please )?help",
        r"(?:can|could|will|would|to|might|may) help(?: (?:me|us|with|out))?",
    )),
    ("department", 0.0, (
        r"(?:customer|tech|technical|product|it) (?:support|care|service|help)",
        r"support (?:team|ticket|agent|line|desk|staff|chat|email|page|number|center|centre)",
        r"help ?(?:desk|line|center|centre)",
        r"contact(?:ed|ing)? support", r"call(?:ed|ing)? support",
    )),
    ("hedge", 0.0, (
        r"(?:looks|look|looked|looking|feels|feel|felt|seems|seem|seemed|sounds|sound|"
        r"sounded|something|more|less|just|nothing|things|stuff|was|is|it's) like",
        r"like(?= (?:\d|an? \d|an hour|a day|a week|a few|a couple|half))",
    )),
    # contrast markers that work like "but": VADER's "but" rule then weighs the clauses
    ("contrast", 0.0, (r"however", r"nevertheless", r"nonetheless", r"except")),
)

# Single words whose VADER valence is only a request marker in brand mentions.
LEXICON_OVERRIDES: Final[dict[str, float]] = {"please": 0.0, "pls": 0.0, "plz": 0.0}

# Emoji valences on VADER's scale where VADER's own emoji-to-words scoring misses their
# common use (😡 "pouting face" scores 0; 💔 "broken heart" scores positive).
EMOJI_VALENCE: Final[dict[str, float]] = {
    "😡": -2.5, "🤬": -3.0, "😤": -1.8, "🙄": -1.5, "💔": -2.0, "👎": -2.0, "😒": -1.5,
    "🤦": -1.5, "😑": -0.8, "🤮": -2.5, "🤢": -2.0, "💩": -1.8, "😾": -1.5, "🖕": -3.0,
    "😖": -1.5, "😣": -1.5, "😕": -1.0, "🙁": -1.5, "☹": -1.5, "😟": -1.2, "😓": -1.0,
    "👍": 1.5, "🙏": 1.0, "👏": 1.5, "🙌": 1.8, "💯": 1.2, "🥳": 2.5, "👌": 1.5,
    "💪": 1.2, "🤩": 2.5, "🔥": 1.0, "❤️": 2.5, "♥": 2.0, "💕": 2.0, "💖": 2.0,
}

# Hashtag affixes that carry the sentiment of a run-together lowercase tag
# (#customerservicefail, #neveragain, #epicfail, #worstairlineever).
HASHTAG_SUFFIXES: Final = (
    "fail", "fails", "failed", "failure", "sucks", "suck", "scam", "fraud", "lies",
    "nightmare", "disaster", "outage", "outages", "fiasco", "shame", "joke", "hell",
    "again", "rocks", "ftw", "love", "hate", "problems", "issues", "delay", "delays",
)
HASHTAG_PREFIXES: Final = (
    "never", "worst", "best", "epic", "bad", "boycott", "shame", "thank", "thanks",
    "love", "hate", "stop", "fail", "poor", "great", "awesome", "happy", "sad",
    "terrible", "horrible", "no more", "fix",
)
# fmt: on
_PLAIN_PREFIXES: Final = tuple(prefix.replace(" ", "") for prefix in HASHTAG_PREFIXES)

# Persistence: in a text that reports trouble, these say it goes on ("delayed again").
_PERSIST = re.compile(
    r"(?<!\w)(?:still|yet again|once again|again|always|constantly|repeatedly|every time|"
    r"every single time|as usual)(?!\w)"
)
_SARCASM_FRAMES: Final = (
    # thanking for a failure: "thanks for the delay", "thank you for losing my bag"
    r"(?:thanks|thank you|thx|ty)(?: (?:so much|a lot|again|very much))?(?= for "
    r"(?:(?:the|a|an|my|our|another|yet another|all the|that|this|your) )?"
    rf"(?:{TOKEN}|(?:losing|ruining|wasting|ignoring|cancell?ing|delaying|leaving)\b))",
    # praise, then another failure: "great, another delay"
    r"(?:oh )?(?:just )?(?:great|perfect|wonderful|fantastic|awesome|lovely|brilliant|nice|"
    r"super|yay|cool|marvell?ous|terrific|excellent|good)(?=[\s,.!…:;-]+(?:just )?"
    rf"(?:another|more|yet another|again|one more)\b(?:\s+\S+){{0,3}}?\s+{TOKEN})",
    # enjoying a failure: "love being on hold"
    r"(?:love|loving|loved|enjoy|enjoying|enjoyed|nothing better than|"
    r"so much fun|fun|appreciate)(?= (?:being|waiting|sitting|spending|getting|standing|"
    rf"sleeping|paying|having|watching)\b(?:\s+\S+){{0,4}}?\s+{TOKEN})",
)
# the frames as one alternation, factored on their first words as the crisis patterns are
_SARCASM = re.compile(rf"(?<!\w)(?:{factor([(0, f) for f in _SARCASM_FRAMES]).source})")
# each alternative starts with a literal, so the engine skips to an "h", "w" or "@" fast;
# the look-behinds after it are "\bwww" and "(?<![\w@])@" of the plain form
_URL_OR_MENTION = re.compile(r"https?://\S+|w(?<!\ww)ww\.\S+|@(?<![\w@]@)\w+")
_HASHTAG = re.compile(r"(?<![\w#])#(\w+)")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_RUN = re.compile(r"([a-z])\1{2,}", re.IGNORECASE)
_TRIPLE = re.compile(r"([a-z])\1\1", re.IGNORECASE)  # in every _RUN: a faster test than {2,}
_FLOOD = re.compile(r"\b[a-z]*?([a-z])\1{2,}[a-z]*", re.IGNORECASE)
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")  # JSON escapes some exports leave in the text
# Where a text splits into sentences and phrases, on text as CrisisScorer.prepare leaves it
# (single spaces, no newline): a sentence ends at a space after ". ! ? …", a phrase at a
# space after ", ; :" and at a run of dashes between spaces (":)" has no space after the
# colon). re.split gives the empty group's "" after a sentence, None after a phrase. One
# pass of VADER-style splitting into sentences, (?<=[.!?…])\s+|\n+, and each of those into
# phrases, (?<=[,;:])\s+|\s+[-–—]+\s+: on such text both split at the same places. It
# starts with a literal space, so the engine skips to the spaces.
_CLAUSE = re.compile(r" (?:(?<=[.!?…] )()|(?<=[,;:] )|[-–—]+ )")
_QUOTES: Final = ("\u2019", "\u2018", "\u02bc", "\uff07")  # read as ASCII apostrophes
_PUNCTUATION: Final = string.punctuation
_SPECIAL_TOKENS: Final = {"contrast": "but"}  # read by VADER's own "but" rule


_NEGATE: Final = frozenset(NEGATE)


def _negates(word: str) -> bool:
    """VADER's ``negated([word])`` for one lower-cased word."""
    return word in _NEGATE or "n't" in word


def _phrase_words(text: str) -> list[str]:
    """What VADER's ``SentiText.words_and_emoticons`` holds for ``text``: its tokens, with
    punctuation stripped from words of 3+ characters and kept on short tokens and
    emoticons."""
    return [s if len(s := w.strip(_PUNCTUATION)) > 2 else w for w in text.split()]


# First words of VADER's multi-word idioms and booster n-grams (_Analyser._idioms reads
# them): a word whose three predecessors and itself are none of these is in no idiom.
_IDIOM_STARTS: Final = frozenset(
    key.split(" ", 1)[0]
    for key in (*SPECIAL_CASES, *BOOSTER_DICT)
    if " " in key  # the n-grams VADER forms have spaces; one-word keys never match them
)


# Tokens that can make a lexicon word's valence differ from its lexicon value when they
# are the word itself or one of the three before it (as far as VADER's rules look back):
# "no", negations (and any word with "n't", tested apart), boosters, the words of the
# "never so", "without doubt", "so"/"this" and "least" rules, and idiom starts. A word
# with none of them there and no ALL CAPS emphasis is worth its lexicon value exactly:
# every rule of _Analyser._valence leaves it unchanged (adding 0.0 included), and so does
# every rule of _Analyser._token_valence for a crisis token (boosters, "no", negations).
_MODIFIERS: Final = frozenset(
    {"no", "never", "without", "doubt", "so", "this", "least", "or", "nor"}
    | _NEGATE
    | frozenset(BOOSTER_DICT)
    | _IDIOM_STARTS
)


class _Analyser(SentimentIntensityAnalyzer):  # type: ignore[misc]  # untyped library
    """VADER's lexicon and rules, run phrase by phrase, with crisis tokens as documented.

    ``additions`` extend (or override) VADER's lexicon; the analyser's lookup tables are
    built from the final lexicon once, here, and every rule reads a phrase's lower-cased
    tokens, computed once per phrase.
    """

    def __init__(self, additions: Mapping[str, float] | None = None) -> None:
        super().__init__()
        lexicon: dict[str, float] = self.lexicon  # this analyser's own copy
        lexicon.update(additions or {})
        emojis: dict[str, str] = self.emojis
        self.emoji_words = {ord(e): f" {d} " for e, d in emojis.items() if len(e) == 1}
        # the words VADER's own loop scores: lexicon words that are not boosters
        self._scored = frozenset(w for w in lexicon if w not in BOOSTER_DICT)

    def compound(self, text: str) -> float:
        """VADER's compound score of ``text`` (as :meth:`CrisisScorer.prepare` leaves it:
        single spaces, no newline): its rules per sentence ("but") and per phrase (negation
        and boosters stop at a comma, semicolon, colon or dash). The text is tokenised once,
        as a whole; its phrases are slices of that."""
        if not text.isascii():
            text = " ".join(text.translate(self.emoji_words).split())
        pieces = _CLAUSE.split(text)  # phrase, end, phrase, ...: an end "" closes a sentence
        words = self._tokens(text if len(pieces) == 1 else " ".join(pieces[::2]))
        if not words:
            return 0.0
        lowered = list(map(str.lower, words))
        if self._scored.isdisjoint(lowered):
            return 0.0  # no word VADER scores: every valence 0.0, and so the compound
        # VADER's allcap_differential over every token of the text
        upper = sum(map(str.isupper, words))
        cap_diff = 0 < len(words) - upper < len(words)
        # VADER's but_check, and resolved failures: rules on a sentence as a whole
        sentence_rules = "but" in lowered or RESOLVED in lowered
        if len(pieces) == 1:
            sentiments = self._phrase_valences(words, lowered, cap_diff)
            if sentence_rules:
                sentiments = self._sentence_valences(lowered, sentiments)
        else:
            sentiments = []
            local: list[float] = []
            sentence = start = 0
            for k in range(0, len(pieces), 2):
                end = start + pieces[k].count(" ") + 1  # the phrase's tokens: [start:end]
                local += self._phrase_valences(words[start:end], lowered[start:end], cap_diff)
                start = end
                if k + 1 == len(pieces) or pieces[k + 1] is not None:  # the sentence ends
                    if sentence_rules:
                        local = self._sentence_valences(lowered[sentence:end], local)
                    sentiments += local
                    sentence, local = end, []
        if min(sentiments) <= MILD:  # any clear negative
            sentiments = [v * COMPLAINT_DISCOUNT if v > 0 else v for v in sentiments]
        # VADER's score_valence, its compound only
        total = float(sum(sentiments))
        if total > 0:
            total += self._punctuation_emphasis(text)
        elif total < 0:
            total -= self._punctuation_emphasis(text)
        return float(round(normalize(total), 4))

    def _sentence_valences(self, lowered: list[str], local: list[float]) -> list[float]:
        """A sentence's valences (``lowered``: its tokens lower-cased) after VADER's "but"
        rule and the rule that a failure reported as resolved no longer counts."""
        if "but" in lowered:
            local = self._but_check(lowered, local)
        if RESOLVED in lowered:
            local = [  # "thanks for fixing the outage so fast"
                0.0 if v < 0 and w.startswith(TOKEN) else v
                for w, v in zip(lowered, local, strict=True)
            ]
        return local

    def _tokens(self, text: str) -> list[str]:
        """The tokens of ``text`` as :func:`_phrase_words` gives them, except that a token
        VADER keeps whole because it has ≤ 2 letters ("NO." "ok!"), as if it were an
        emoticon, is read as its word when that is a lexicon word and the token is not
        (":)" stays)."""
        words = text.split()
        tokens = list(map(str.strip, words, repeat(_PUNCTUATION)))
        # only tokens that lose punctuation can be read otherwise: few, and found in C
        for i in compress(count(), map(ne, tokens, words)):
            if len(tokens[i]) <= 2 and not self._reads_as_word(words[i]):
                tokens[i] = words[i]
        return tokens

    def _reads_as_word(self, token: str) -> bool:
        lexicon: dict[str, float] = self.lexicon
        word = token.lower()
        if word in lexicon or (word[0].isalnum() and word[-1].isalnum()):
            return False
        bare = word.strip(_PUNCTUATION)
        return len(bare) <= 2 and bare.isalpha() and bare in lexicon

    def _phrase_valences(self, words: list[str], lowered: list[str], cap_diff: bool) -> list[float]:
        """One valence per token of a phrase (``lowered``: its tokens lower-cased), as
        VADER's own loop computes them; 0.0 for every word it does not score."""
        scored = self._scored
        local = [0.0] * len(lowered)
        if scored.isdisjoint(lowered):
            return local
        lexicon: dict[str, float] = self.lexicon
        # which tokens may change a valence (see _MODIFIERS); None: assume any may
        modifies = (
            None if "n't" in " ".join(lowered) else list(map(_MODIFIERS.__contains__, lowered))
        )
        last = len(lowered) - 1
        for i in compress(count(), map(scored.__contains__, lowered)):
            word = lowered[i]
            if word == "kind" and i < last and lowered[i + 1] == "of":
                continue  # VADER's own loop gives these words 0.0
            if (
                modifies is not None
                and not any(modifies[max(0, i - 3) : i + 1])
                and not (cap_diff and words[i].isupper())
            ):
                # no rule applies: what _valence (and _token_valence) would return
                local[i] = lexicon[word]
            elif word.startswith(TOKEN):
                local[i] = self._token_valence(words, lowered, i, cap_diff)
            else:
                local[i] = self._valence(words, lowered, i, cap_diff)
        return local

    def _valence(self, words: list[str], lowered: list[str], i: int, cap_diff: bool) -> Any:
        """VADER's ``sentiment_valence`` of lexicon word ``i`` (same arithmetic, in the
        same order), reading the phrase's lower-cased tokens once instead of lower-casing
        the phrase again in every rule."""
        lexicon: dict[str, float] = self.lexicon
        item_lowercase = lowered[i]
        valence = lexicon[item_lowercase]
        if item_lowercase == "no" and i != len(words) - 1 and lowered[i + 1] in lexicon:
            valence = 0.0
        if (
            (i > 0 and lowered[i - 1] == "no")
            or (i > 1 and lowered[i - 2] == "no")
            or (i > 2 and lowered[i - 3] == "no" and lowered[i - 1] in ("or", "nor"))
        ):
            valence = lexicon[item_lowercase] * N_SCALAR
        if cap_diff and words[i].isupper():
            if valence > 0:
                valence += C_INCR
            else:
                valence -= C_INCR
        for start_i in range(min(i, 3)):
            before = i - (start_i + 1)
            if lowered[before] not in lexicon:
                s = _scalar(words[before], lowered[before], valence, cap_diff)
                if start_i == 1 and s != 0:
                    s = s * 0.95
                if start_i == 2 and s != 0:
                    s = s * 0.9
                valence = valence + s
                valence = _negation_check(valence, lowered, start_i, i)
                if start_i == 2 and not _IDIOM_STARTS.isdisjoint(lowered[i - 3 : i + 1]):
                    valence = self._idioms(valence, lowered, i)
        # VADER's _least_check
        if (
            i > 0
            and lowered[i - 1] == "least"
            and "least" not in lexicon
            and (i == 1 or (lowered[i - 2] != "at" and lowered[i - 2] != "very"))
        ):
            valence = valence * N_SCALAR
        return valence

    @staticmethod
    def _idioms(valence: Any, lowered: list[str], i: int) -> Any:
        """VADER's ``_special_idioms_check`` on the phrase's lower-cased tokens (``i`` ≥ 3)."""
        onezero = f"{lowered[i - 1]} {lowered[i]}"
        twoonezero = f"{lowered[i - 2]} {lowered[i - 1]} {lowered[i]}"
        twoone = f"{lowered[i - 2]} {lowered[i - 1]}"
        threetwoone = f"{lowered[i - 3]} {lowered[i - 2]} {lowered[i - 1]}"
        threetwo = f"{lowered[i - 3]} {lowered[i - 2]}"
        for seq in (onezero, twoonezero, twoone, threetwoone, threetwo):
            if seq in SPECIAL_CASES:
                valence = SPECIAL_CASES[seq]
                break
        if len(lowered) - 1 > i:
            zeroone = f"{lowered[i]} {lowered[i + 1]}"
            if zeroone in SPECIAL_CASES:
                valence = SPECIAL_CASES[zeroone]
        if len(lowered) - 1 > i + 1:
            zeroonetwo = f"{lowered[i]} {lowered[i + 1]} {lowered[i + 2]}"
            if zeroonetwo in SPECIAL_CASES:
                valence = SPECIAL_CASES[zeroonetwo]
        for n_gram in (threetwoone, threetwo, twoone):
            if n_gram in BOOSTER_DICT:
                valence = valence + BOOSTER_DICT[n_gram]
        return valence

    def _token_valence(self, words: list[str], lowered: list[str], i: int, cap_diff: bool) -> float:
        """A crisis token's valence: VADER's ALL CAPS and booster rules, but a negation
        within two words makes it neutral ("not delayed", "no outage") instead of praise."""
        lexicon: dict[str, float] = self.lexicon
        value = float(lexicon[lowered[i]])
        if cap_diff and words[i].isupper():
            value += C_INCR if value > 0 else -C_INCR
        for distance, damp in ((1, 1.0), (2, 0.95), (3, 0.9)):
            if i >= distance and lowered[i - distance] not in lexicon:
                scalar = _scalar(words[i - distance], lowered[i - distance], value, cap_diff)
                value += float(scalar) * damp
        for word in lowered[max(0, i - 2) : i]:
            if word == "no" or _negates(word):
                return 0.0
        return value


def _scalar(word: str, lowered: str, valence: float, cap_diff: bool) -> float:
    """VADER's ``scalar_inc_dec`` of ``word`` (``lowered`` is its lower-cased form)."""
    if lowered not in BOOSTER_DICT:
        return 0.0
    scalar: float = BOOSTER_DICT[lowered]
    if valence < 0:
        scalar *= -1
    if word.isupper() and cap_diff:
        if valence > 0:
            scalar += C_INCR
        else:
            scalar -= C_INCR
    return scalar


class CrisisScorer:
    """VADER made crisis-aware: complaint language, negation, emoji and hashtags.

    ``negative_threshold`` and ``positive_threshold`` bound the neutral band of the
    compound score exactly as in :class:`~listener.scoring.sentiment.VaderScorer`.
    """

    __slots__ = (
        "_analyser",
        "_categories",
        "_patterns",
        "_tokens",
        "_translate",
        "_vocabulary",
        "negative_threshold",
        "positive_threshold",
    )

    def __init__(
        self,
        negative_threshold: float = DEFAULT_NEGATIVE_THRESHOLD,
        positive_threshold: float = DEFAULT_POSITIVE_THRESHOLD,
    ) -> None:
        if negative_threshold >= positive_threshold:
            raise ValueError(
                f"negative_threshold ({negative_threshold}) must be below "
                f"positive_threshold ({positive_threshold})"
            )
        self.negative_threshold = negative_threshold
        self.positive_threshold = positive_threshold
        additions: dict[str, float] = dict(LEXICON_OVERRIDES)  # to VADER's lexicon
        translate: dict[int, str] = {ord(q): "'" for q in _QUOTES}
        for n, (char, value) in enumerate(sorted(EMOJI_VALENCE.items())):
            token = f"{TOKEN if value < 0 else IDIOM}emoji{n}"
            additions[token] = value
            translate[ord(char[0])] = f" {token} "
        self._translate = translate
        tokens: dict[str, str] = {}
        for name, valence, _ in CRISIS_PATTERNS:
            prefix = TOKEN if valence < 0 else IDIOM if valence > 0 else NEUTRAL
            tokens[name] = _SPECIAL_TOKENS.get(name, f"{prefix}{name}")
            if valence:
                additions[tokens[name]] = valence
        additions[f"{TOKEN}persist"] = CUE
        additions[f"{TOKEN}sarcasm"] = MILD
        analyser = _Analyser(additions)
        # all crisis patterns as one regex that matches as the alternation
        # (?<!\w)(?:p1|p2|...)(?!\w) does (leftmost match; at one position the first
        # pattern in table order wins), with the alternatives factored on the letters of
        # their first words so that the engine reads each word once instead of trying every
        # pattern at every word (several times faster; listener.scoring.alternation)
        crisis = factor([(name, p) for name, _, ps in CRISIS_PATTERNS for p in ps])
        self._patterns = re.compile(rf"(?<!\w)(?:{crisis.source})(?!\w)")
        self._categories = ("", *crisis.labels)  # the category of capturing group n at [n]
        self._tokens = tokens
        self._vocabulary = frozenset(
            w
            for words in (analyser.lexicon, BOOSTER_DICT, NEGATE, HASHTAG_SUFFIXES)
            for w in words
            if w.isalpha()
        )
        self._analyser = analyser

    def score(self, text: str) -> Sentiment:
        """The compound score of ``text`` in [-1, 1] and its label."""
        compound = self._analyser.compound(self.prepare(text))
        return Sentiment(label=self.label(compound), compound=compound)

    def label(self, compound: float) -> SentimentLabel:
        """The label for a compound score under this scorer's thresholds."""
        if compound <= self.negative_threshold:
            return "negative"
        if compound >= self.positive_threshold:
            return "positive"
        return "neutral"

    def prepare(self, text: str) -> str:
        """The text as VADER sees it: normalised, with crisis language as lexicon tokens."""
        if "&" in text:
            text = html.unescape(text)
        if "\\u" in text:
            text = _ESCAPE.sub(_unescape, text)
        if not text.isascii():
            text = text.translate(self._translate)
        text = _URL_OR_MENTION.sub(" ", text)
        if "#" in text:
            text = _HASHTAG.sub(self._split_hashtag, text)
        if _TRIPLE.search(text):
            text = _FLOOD.sub(self._shorten_flood, text)
        text = " ".join(text.split())
        lowered = text.lower()
        if len(lowered) != len(text):  # a few characters lower-case to two: give up case
            text = lowered
        text, lowered = _substitute(self._patterns, text, lowered, self._token)
        if TOKEN in lowered:
            text, lowered = _substitute(_PERSIST, text, lowered, _persist)
            text, lowered = _substitute(_SARCASM, text, lowered, _sarcasm)
        return text

    def _token(self, match: re.Match[str], original: str) -> str:
        token = self._tokens[self._categories[match.lastindex or 0]]  # never 0: see factor
        return token.upper() if original.isupper() else token

    def _split_hashtag(self, match: re.Match[str]) -> str:
        return " ".join(self._split_tag(part) for part in match.group(1).split("_") if part)

    def _split_tag(self, tag: str) -> str:
        if not tag.islower() and not tag.isupper():
            return " ".join(_CAMEL.findall(tag))  # #NeverAgain, #customerServiceFail
        lowered = tag.lower()
        if lowered in self._vocabulary:
            return tag
        if lowered.endswith(HASHTAG_SUFFIXES):  # one C-level test first: most tags don't
            for suffix in HASHTAG_SUFFIXES:
                head = lowered[: -len(suffix)]
                if lowered.endswith(suffix) and len(head) >= 3:
                    return f"{head} {suffix}"  # #customerservicefail
        if lowered.startswith(_PLAIN_PREFIXES):
            for prefix, plain in zip(HASHTAG_PREFIXES, _PLAIN_PREFIXES, strict=True):
                rest = lowered[len(plain) :]
                if lowered.startswith(plain) and (len(rest) >= 4 or rest in self._vocabulary):
                    return f"{prefix} {rest}"  # #neveragain
        return tag

    def _shorten_flood(self, match: re.Match[str]) -> str:
        word = match.group(0)
        double = _RUN.sub(r"\1\1", word)
        if double.lower() in self._vocabulary:
            return double
        single = _RUN.sub(r"\1", word)
        return single if single.lower() in self._vocabulary else double


def _substitute(
    pattern: re.Pattern[str],
    text: str,
    lowered: str,
    replace: Callable[[re.Match[str], str], str],
) -> tuple[str, str]:
    """``pattern`` matched on ``lowered`` (same length as ``text``), each match replaced by
    ``replace(match, original_span)``; returns the new text and its lower-cased form."""
    parts: list[str] = []
    end = 0
    for match in pattern.finditer(lowered):
        start = match.start()
        parts.append(text[end:start])
        parts.append(replace(match, text[start : match.end()]))
        end = match.end()
    if not parts:
        return text, lowered
    parts.append(text[end:])
    text = "".join(parts)
    return text, text.lower()


def _negation_check(valence: Any, lowered: list[str], start_i: int, i: int) -> Any:
    """VADER's ``_negation_check`` on already lower-cased tokens."""
    if start_i == 0:
        if _negates(lowered[i - 1]):
            valence = valence * N_SCALAR
    elif start_i == 1:
        if lowered[i - 2] == "never" and (lowered[i - 1] == "so" or lowered[i - 1] == "this"):
            valence = valence * 1.25
        elif lowered[i - 2] == "without" and lowered[i - 1] == "doubt":
            pass
        elif _negates(lowered[i - 2]):
            valence = valence * N_SCALAR
    elif start_i == 2:
        if (lowered[i - 3] == "never" and (lowered[i - 2] == "so" or lowered[i - 2] == "this")) or (
            lowered[i - 1] == "so" or lowered[i - 1] == "this"
        ):
            valence = valence * 1.25
        elif lowered[i - 3] == "without" and (
            lowered[i - 2] == "doubt" or lowered[i - 1] == "doubt"
        ):
            pass
        elif _negates(lowered[i - 3]):
            valence = valence * N_SCALAR
    return valence


def _persist(match: re.Match[str], original: str) -> str:
    token = f"{TOKEN}persist"
    return token.upper() if original.isupper() else token


def _sarcasm(match: re.Match[str], original: str) -> str:
    return f"{TOKEN}sarcasm"


def _unescape(match: re.Match[str]) -> str:
    code = int(match.group(1), 16)
    return " " if 0xD800 <= code <= 0xDFFF else chr(code)
