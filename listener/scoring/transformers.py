"""Transformers sentiment: any Hugging Face sequence-classification model.

Contract: :class:`TransformersScorer` implements :class:`listener.scoring.base.Scorer`
and adds :meth:`TransformersScorer.score_batch`. The tokenizer and the model are loaded
once when the scorer is built (by local path or hub id); scoring is a pure function of
the text. It is the optional ``listener[transformers]`` extra: this module imports
without torch and transformers, and building a scorer without them raises
:class:`ScorerError` saying which extra to install.

Labels: the model's ``config.id2label`` names are mapped to negative/neutral/positive by
:func:`map_labels` (or by an explicit ``label_map``); the softmax probabilities of labels
that map to the same class are added. ``compound`` is ``p(positive) - p(negative)`` in
[-1, 1] and the label is the class with the highest probability.

Threads: a scorer holds one model and is used from one thread at a time. The pipeline
calls it off the event loop through ``asyncio.to_thread`` from a single scoring worker;
do not share one scorer between concurrent threads (build one per worker instead). torch
itself uses several threads inside each forward pass: every core unless ``threads`` says
how many (process-wide, ``torch.set_num_threads``). Several processes each using every
core share them badly: two ingest workers on two cores, each with two threads, scored 8
times fewer mentions per CPU second than one (bench/RESULTS.md); give each its share.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Final

from listener.errors import ListenerError
from listener.model import Sentiment, SentimentLabel

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "INSTALL_HINT",
    "ScorerError",
    "TransformersScorer",
    "local_model_problem",
    "map_labels",
]

INSTALL_HINT: Final = "the transformers backend needs `pip install listener[transformers]`"
SENTIMENTS: Final[tuple[SentimentLabel, ...]] = ("negative", "neutral", "positive")

_SYNONYMS: Final[dict[str, SentimentLabel]] = {
    "negative": "negative",
    "neg": "negative",
    "neutral": "neutral",
    "neu": "neutral",
    "positive": "positive",
    "pos": "positive",
}
_STARS: Final = re.compile(r"([1-5])[ _-]?stars?")
_STAR_CLASS: Final[dict[str, SentimentLabel]] = {
    "1": "negative",
    "2": "negative",
    "3": "neutral",
    "4": "positive",
    "5": "positive",
}
_GENERIC: Final = re.compile(r"label_(\d+)")
# The cardiffnlp convention for unnamed heads: 3 labels = negative/neutral/positive,
# 2 labels = negative/positive (as in SST-2 style binary models).
_GENERIC_CLASSES: Final[dict[int, tuple[SentimentLabel, ...]]] = {
    2: ("negative", "positive"),
    3: ("negative", "neutral", "positive"),
}
# Tokenizers without a configured limit report a huge sentinel as model_max_length.
_NO_LIMIT: Final = 1_000_000


class ScorerError(ListenerError):
    """A sentiment scorer cannot be built: a missing extra, an unloadable model or device,
    or model labels that cannot be mapped to negative/neutral/positive."""

    error_type = "scorer"


def map_labels(
    id2label: Mapping[int, str] | Mapping[str, str], label_map: Mapping[str, str] | None = None
) -> dict[int, SentimentLabel]:
    """Map each model label id to negative, neutral or positive.

    With ``label_map`` (keys: model label names, case-insensitive, or ids as strings such
    as ``"0"``; values: negative/neutral/positive) every model label must be covered.
    Without it the names decide, case-insensitively: negative/neg, neutral/neu,
    positive/pos; star ratings ``1 star``..``5 stars`` (1–2 negative, 3 neutral, 4–5
    positive); or unnamed ``LABEL_0``.. heads, read as negative/neutral/positive with
    three labels and negative/positive with two. Raises :class:`ScorerError` otherwise,
    and when no label maps to negative or none to positive (compound needs both).
    """
    if len(id2label) < 2:
        raise ScorerError(
            f"the model has {len(id2label)} label(s); sentiment needs a classification head "
            "with at least a negative and a positive label"
        )
    try:
        names = {int(i): str(name) for i, name in id2label.items()}
    except ValueError:
        raise ScorerError(f"model label ids must be integers: {dict(id2label)}") from None
    if sorted(names) != list(range(len(names))):
        raise ScorerError(f"model label ids must be 0..{len(names) - 1}: {_show(names)}")
    mapped = _explicit(names, label_map) if label_map is not None else _automatic(names)
    present = set(mapped.values())
    if not {"negative", "positive"} <= present:
        raise ScorerError(
            f"model labels {_show(names)} map to {sorted(present)}; at least one must map to "
            "negative and one to positive"
        )
    return mapped


def _norm(name: str) -> str:
    return name.strip().lower()


def _show(names: Mapping[int, str]) -> str:
    return ", ".join(f"{i}={name!r}" for i, name in sorted(names.items()))


def _explicit(names: Mapping[int, str], label_map: Mapping[str, str]) -> dict[int, SentimentLabel]:
    wanted: dict[str, SentimentLabel] = {}
    for key, value in label_map.items():
        target = _norm(value)
        if target not in SENTIMENTS:
            raise ScorerError(
                f"label_map[{key!r}] is {value!r}; values must be negative, neutral or positive"
            )
        wanted[_norm(str(key))] = _SYNONYMS[target]
    known = {_norm(name) for name in names.values()} | {str(i) for i in names}
    if unknown := sorted(set(wanted) - known):
        raise ScorerError(
            f"label_map keys {unknown} are not labels of the model; its labels are {_show(names)}"
        )
    mapped: dict[int, SentimentLabel] = {}
    for i, name in names.items():
        sentiment = wanted.get(_norm(name), wanted.get(str(i)))
        if sentiment is None:
            raise ScorerError(
                f"label_map does not cover model label {i}={name!r}; its labels are {_show(names)}"
            )
        mapped[i] = sentiment
    return mapped


def _automatic(names: Mapping[int, str]) -> dict[int, SentimentLabel]:
    normed = {i: _norm(name) for i, name in names.items()}
    if all(name in _SYNONYMS for name in normed.values()):
        return {i: _SYNONYMS[name] for i, name in normed.items()}
    stars = {i: _STARS.fullmatch(name) for i, name in normed.items()}
    if all(stars.values()):
        return {i: _STAR_CLASS[m.group(1)] for i, m in stars.items() if m}
    generic = {i: _GENERIC.fullmatch(name) for i, name in normed.items()}
    classes = _GENERIC_CLASSES.get(len(names))
    if classes and all(m and int(m.group(1)) == i for i, m in generic.items()):
        return {i: classes[i] for i in names}
    raise ScorerError(
        f"cannot map model labels {_show(names)} to negative/neutral/positive; set label_map "
        "(model label name -> negative, neutral or positive)"
    )


class TransformersScorer:
    """Scores texts with one Hugging Face sequence-classification model.

    ``model`` is a local directory (made by ``save_pretrained``) or a hub id such as
    ``cardiffnlp/twitter-roberta-base-sentiment-latest``. A local directory is always
    read without the network; a hub id is read from the Hugging Face cache, downloading
    it when missing unless ``local_files_only`` (or ``HF_HUB_OFFLINE=1``) is set.

    ``device`` is ``auto`` (``cuda`` when torch sees a GPU, else ``cpu``), ``cpu``,
    ``cuda``, ``cuda:N`` or ``mps``. ``fp16`` halves the weights on CUDA (faster, half the
    memory, probabilities equal to about 1e-3); it is ignored on other devices.
    Texts are scored ``batch_size`` at a time, truncated to ``max_length`` tokens (capped
    at the tokenizer's own limit). See the module docstring for labels and threads.
    """

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 32,
        max_length: int = 128,
        device: str = "auto",
        label_map: Mapping[str, str] | None = None,
        local_files_only: bool = False,
        fp16: bool = False,
        threads: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if max_length < 2:
            raise ValueError(f"max_length must be at least 2 tokens, not {max_length}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}")
        _require_backend()
        import torch

        if threads is not None:
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads()
        self.model_name = model
        self.batch_size = batch_size
        self.device = _resolve_device(device)
        self._tokenizer, self._model = _load(model, local_files_only=local_files_only)
        try:
            self.labels: dict[int, SentimentLabel] = map_labels(
                self._model.config.id2label or {}, label_map
            )
        except ScorerError as exc:
            raise ScorerError(f"sentiment model {model!r}: {exc}") from None
        limit = self._tokenizer.model_max_length
        self.max_length = min(max_length, limit) if 0 < limit < _NO_LIMIT else max_length
        self.fp16 = fp16 and self.device.type == "cuda"

        # (num_labels, 3): column k sums the probabilities of the labels mapped to SENTIMENTS[k].
        projection = torch.zeros(len(self.labels), len(SENTIMENTS))
        for i, sentiment in self.labels.items():
            projection[i, SENTIMENTS.index(sentiment)] = 1.0
        self._projection = projection.to(self.device)
        module: torch.nn.Module = self._model  # PreTrainedModel.to is untyped (functools.wraps)
        try:
            module.to(self.device, dtype=torch.float16 if self.fp16 else None)
        except RuntimeError as exc:  # includes CUDA out-of-memory
            raise ScorerError(
                f"cannot put sentiment model {model!r} on {self.device}: {_first_line(exc)}"
            ) from exc
        module.train(False)  # eval mode: no dropout

    def __repr__(self) -> str:
        return (
            f"TransformersScorer({self.model_name!r}, device={str(self.device)!r}, "
            f"batch_size={self.batch_size}, max_length={self.max_length}, fp16={self.fp16}, "
            f"threads={self.threads})"
        )

    def score(self, text: str) -> Sentiment:
        """The sentiment of one text (a batch of one)."""
        return self.score_batch([text])[0]

    def score_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        """The sentiment of each text, in order. Texts are sorted by length inside the call
        so that each batch pads little, and the results are put back in input order."""
        import torch

        if isinstance(texts, str):
            raise TypeError("score_batch takes a sequence of texts, not one str")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        results: dict[int, Sentiment] = {}
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                chunk = order[start : start + self.batch_size]
                encoded = self._tokenizer(
                    [texts[i] for i in chunk],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                logits = self._model(**encoded).logits
                probs = logits.float().softmax(dim=-1) @ self._projection
                for i, row in zip(chunk, probs.tolist(), strict=True):
                    results[i] = _sentiment(row)
        return [results[i] for i in range(len(texts))]


def _sentiment(probs: Sequence[float]) -> Sentiment:
    """negative/neutral/positive probabilities -> label (highest; ties to the first) and
    compound (p(positive) - p(negative), clamped to [-1, 1] against rounding)."""
    best = max(range(len(SENTIMENTS)), key=lambda k: probs[k])
    compound = min(1.0, max(-1.0, probs[2] - probs[0]))
    return Sentiment(label=SENTIMENTS[best], compound=compound)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


def _require_backend() -> None:
    """Import torch and transformers, or raise ScorerError naming the extra."""
    try:
        import torch  # noqa: F401
        import transformers
    except ImportError as exc:
        missing = exc.name or str(exc)
        raise ScorerError(f"{INSTALL_HINT} ({missing} is not installed)") from exc
    # Progress bars on stderr are noise in a daemon's log.
    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call, unused-ignore]


_DEVICE_TYPES: Final = ("cpu", "cuda", "mps")


def _resolve_device(device: str) -> torch.device:
    """``auto`` -> cuda when available else cpu; otherwise the device asked for, which
    must exist."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        resolved = None
    if resolved is None or resolved.type not in _DEVICE_TYPES:
        raise ScorerError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ScorerError(
                f"device {device!r} asked for, but torch {torch.__version__} ({build}) sees "
                "no CUDA GPU; use device auto or cpu"
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ScorerError(f"device {device!r} asked for, but torch sees {count} CUDA GPU(s)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ScorerError(f"device {device!r} asked for, but torch sees no Apple MPS device")
    return resolved


def _looks_like_path(model: str) -> bool:
    """A hub id is ``name`` or ``org/name``; anything else that names a file is a path."""
    return model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1


def local_model_problem(model: str) -> tuple[str, str] | None:
    """Why ``model``, where it names a local directory, cannot be loaded from it, as
    (message, hint); None for a hub id or a directory with a ``config.json``. File checks
    only (no torch, no network): the config schema runs it for ``listener check``."""
    path = Path(model).expanduser()
    if not (path.exists() or _looks_like_path(model)):
        return None  # a hub id: read from the Hugging Face cache or the hub when loaded
    hint = (
        "give a directory written by save_pretrained (config.json, weights, tokenizer "
        "files) or a hub id such as org/name; a relative path is read from the daemon's "
        "working directory"
    )
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        return f"sentiment model path {model!r} {what}", hint
    if not (path / "config.json").is_file():
        return (
            f"sentiment model path {model!r} has no config.json: not a saved transformers model",
            hint,
        )
    return None


def _load(model: str, *, local_files_only: bool) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """The tokenizer and classifier of ``model``, read once; ScorerError when they cannot
    be read or the checkpoint has no trained classification head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(model).expanduser()
    if path.exists() or _looks_like_path(model):
        if (problem := local_model_problem(model)) is not None:
            raise ScorerError(f"{problem[0]}; {problem[1]}")
        source, offline = str(path), True  # a local directory never needs the network
    else:
        source, offline = model, local_files_only
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
        classifier, info = AutoModelForSequenceClassification.from_pretrained(
            source, local_files_only=offline, output_loading_info=True
        )
    except Exception as exc:  # any loader failure: missing files, bad config, no network
        hint = ""
        if source == model and (offline or os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")):
            hint = (
                " (local_files_only or HF_HUB_OFFLINE: the model must already be in the Hugging "
                "Face cache; download it once where the hub can be reached, or give a local path)"
            )
        raise ScorerError(
            f"cannot load sentiment model {model!r}: {type(exc).__name__}: {_first_line(exc)}{hint}"
        ) from exc
    if missing := sorted(info.get("missing_keys", ())):
        raise ScorerError(
            f"sentiment model {model!r} has untrained weights {missing[:4]}: it is not a "
            "fine-tuned sequence-classification model"
        )
    if tokenizer.pad_token is None:
        # GPT-style tokenizers have no padding token; pad with end-of-text, as is usual.
        if tokenizer.eos_token is None:
            raise ScorerError(f"the tokenizer of {model!r} has no padding or end token")
        tokenizer.pad_token = tokenizer.eos_token
        classifier.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, classifier
