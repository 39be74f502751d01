"""The transformers sentiment backend, on a tiny model built here: no downloads, no network.

The model comes from ``bench/tiny_model.py``: a 1-layer, 16-wide BERT with a WordPiece
tokenizer from a small word list, trained in well under a second until it labels every
sentence of ``TRAINING`` right. Skipped without torch/transformers, except under
``CI=true`` where the extra is installed and a missing one is a failure.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import json
import os
import random
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from listener.errors import ListenerError
from listener.model import Sentiment
from listener.scoring.base import Scorer
from listener.scoring.transformers import (
    INSTALL_HINT,
    ScorerError,
    TransformersScorer,
    map_labels,
)

# Never reach the Hugging Face hub: huggingface_hub reads this once, when first imported.
os.environ["HF_HUB_OFFLINE"] = "1"


def _need(name: str) -> ModuleType:
    """Import an extra's module: skip when absent, but fail under CI=true (CI installs it)."""
    if os.environ.get("CI") == "true":
        return importlib.import_module(name)
    module: ModuleType = pytest.importorskip(name)
    return module


torch = _need("torch")
_need("transformers")

REPO = Path(__file__).resolve().parents[2]


def _load_tiny_model() -> ModuleType:
    spec = importlib.util.spec_from_file_location("tiny_model", REPO / "bench" / "tiny_model.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tiny = _load_tiny_model()
CLASSES = ("negative", "neutral", "positive")
# Two runs of the model agree to float noise, not bit for bit: a batch of a different size
# (padding, another matmul kernel) or another CPU changes the last digits of a compound
# (-0.9027668368071318 vs -0.9027668312191963 seen on a fresh clone).
COMPOUND_TOLERANCE = 1e-5


def _assert_same_scores(got: list[Sentiment], want: list[Sentiment]) -> None:
    """Same labels, and compounds equal within float noise."""
    assert [r.label for r in got] == [r.label for r in want]
    assert [r.compound for r in got] == pytest.approx(
        [r.compound for r in want], abs=COMPOUND_TOLERANCE
    )


TRAINING: list[tuple[str, str]] = [(text, CLASSES[label]) for text, label in tiny.TRAINING]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """One torch thread: a 16-wide model gains nothing from more, and on a busy CI runner
    the extra threads' synchronisation makes every forward pass many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The trained tiny model, saved once for the module."""
    path: Path = tiny.build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
    return path


@pytest.fixture(scope="module")
def scorer(tiny_dir: Path) -> TransformersScorer:
    """A CPU scorer on the tiny model, loaded by path without the network."""
    return TransformersScorer(str(tiny_dir), device="cpu", batch_size=8, local_files_only=True)


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record (and refuse) every socket connection attempt; the test asserts none."""
    attempts: list[object] = []

    def refuse(self: socket.socket, address: object) -> None:
        attempts.append(address)
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def _copy_with_labels(src: Path, dst: Path, id2label: dict[int, str]) -> Path:
    """A copy of a saved model whose config names its (same number of) labels differently."""
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["id2label"] = {str(i): name for i, name in id2label.items()}
    config["label2id"] = {name: i for i, name in id2label.items()}
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def _direct_probs(path: Path, texts: list[str]) -> list[list[float]]:
    """Softmax probabilities straight from transformers, one text at a time."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
    model.train(False)
    out: list[list[float]] = []
    with torch.inference_mode():
        for text in texts:
            logits = model(**tokenizer([text], return_tensors="pt")).logits
            out.append(logits.softmax(dim=-1)[0].tolist())
    return out


# --- the missing extra ------------------------------------------------------------


def test_module_imports_without_the_extra_and_construction_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without torch/transformers the module imports, and building a scorer names the extra."""
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "listener.scoring.transformers")
    # the re-import rebinds the package attribute too; monkeypatch restores both
    monkeypatch.delattr(sys.modules["listener.scoring"], "transformers")
    fresh: Any = importlib.import_module("listener.scoring.transformers")
    with pytest.raises(ListenerError, match=r"pip install listener\[transformers\]") as info:
        fresh.TransformersScorer("cardiffnlp/twitter-roberta-base-sentiment-latest")
    assert INSTALL_HINT in str(info.value)
    assert "torch is not installed" in str(info.value)


# --- scoring ----------------------------------------------------------------------


def test_implements_scorer_protocol(scorer: TransformersScorer) -> None:
    """TransformersScorer satisfies the Scorer protocol."""
    as_protocol: Scorer = scorer
    assert isinstance(as_protocol.score("fine"), Sentiment)


def test_device_cpu_explicit(scorer: TransformersScorer) -> None:
    """device="cpu" puts the model and its inputs on the CPU."""
    assert scorer.device.type == "cpu"
    assert all(p.device.type == "cpu" for p in scorer._model.parameters())
    assert "device='cpu'" in repr(scorer)


def test_labels_of_training_sentences(scorer: TransformersScorer) -> None:
    """Every sentence the tiny model learned gets its label; compounds lean the label's way."""
    results = scorer.score_batch([text for text, _ in TRAINING])
    assert [r.label for r in results] == [label for _, label in TRAINING]
    by_label: dict[str, list[float]] = {label: [] for label in CLASSES}
    for result in results:
        by_label[result.label].append(result.compound)
    mean = {label: sum(values) / len(values) for label, values in by_label.items()}
    assert mean["negative"] < -0.5
    assert abs(mean["neutral"]) < 0.5
    assert mean["positive"] > 0.5


def test_compound_in_range_and_consistent_with_label(scorer: TransformersScorer) -> None:
    """Compound is in [-1, 1]; a negative label never has a positive compound, nor the reverse."""
    rng = random.Random(7)
    texts = ["", " ", "?!", "über café 🙂", "x" * 300]
    texts += [" ".join(rng.choices(tiny.VOCAB[5:], k=rng.randint(1, 30))) for _ in range(60)]
    for result in scorer.score_batch(texts):
        assert -1.0 <= result.compound <= 1.0
        assert result.label in CLASSES
        if result.label == "negative":
            assert result.compound <= 0
        if result.label == "positive":
            assert result.compound >= 0


@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_batch_equals_one_by_one(tiny_dir: Path, batch_size: int) -> None:
    """score_batch returns, in input order, what score returns text by text."""
    batched = TransformersScorer(str(tiny_dir), device="cpu", batch_size=batch_size)
    texts = [*(text for text, _ in TRAINING[:20]), "", "acme " * 40, "love"]
    random.Random(batch_size).shuffle(texts)
    together = batched.score_batch(texts)
    alone = [batched.score(text) for text in texts]
    _assert_same_scores(together, alone)


def test_empty_batch(scorer: TransformersScorer) -> None:
    """An empty batch scores to an empty list without running the model."""
    assert scorer.score_batch([]) == []


def test_one_string_is_not_a_batch(scorer: TransformersScorer) -> None:
    """Passing one str to score_batch is a TypeError, not a batch of characters."""
    with pytest.raises(TypeError, match="not one str"):
        scorer.score_batch("love")


def test_truncation_at_max_length(tiny_dir: Path, scorer: TransformersScorer) -> None:
    """A very long text is cut to max_length tokens: it scores as its first max_length - 2 words."""
    short = TransformersScorer(str(tiny_dir), device="cpu", max_length=16)
    long_text = " ".join(TRAINING[i % len(TRAINING)][0] for i in range(3000))
    head = " ".join(long_text.split()[:14])  # 16 tokens = [CLS] + 14 words + [SEP]
    _assert_same_scores([short.score(long_text)], [scorer.score(head)])  # scorer: max_length 128
    assert scorer.score(long_text).compound != pytest.approx(
        short.score(long_text).compound, abs=COMPOUND_TOLERANCE
    )


def test_max_length_capped_at_tokenizer_limit(tiny_dir: Path) -> None:
    """A max_length beyond the model's positions is capped, so long texts still score."""
    capped = TransformersScorer(str(tiny_dir), device="cpu", max_length=100_000)
    assert capped.max_length == 512
    assert -1 <= capped.score("love " * 5000).compound <= 1


def test_scores_off_the_event_loop(scorer: TransformersScorer) -> None:
    """The scorer runs in a worker thread through asyncio.to_thread, as the pipeline calls it."""

    async def main() -> Sentiment:
        return await asyncio.to_thread(scorer.score, TRAINING[0][0])

    assert asyncio.run(main()).label == TRAINING[0][1]


def test_threads_set_torchs_and_the_config_carries_them(tiny_dir: Path) -> None:
    """``threads`` is the CPU threads of torch's forward passes (process-wide), from
    rules.yaml's ``scoring.sentiment.threads``; absent, torch's own number stays."""
    from listener.config.load import load_config_text
    from listener.scoring import build_scorer

    held = torch.get_num_threads()  # 1 here (one_torch_thread)
    try:
        two = TransformersScorer(str(tiny_dir), device="cpu", threads=2)
        assert (torch.get_num_threads(), two.threads) == (2, 2)
        assert "threads=2" in repr(two)
        config = load_config_text(
            "brands:\n  - name: Acme\nscoring:\n  sentiment:\n    type: transformers\n"
            f"    model: {tiny_dir}\n    device: cpu\n    threads: 1\n",
            "rules.yaml",
            {},
        )
        build_scorer(config.scoring.sentiment)
        assert torch.get_num_threads() == 1
        TransformersScorer(str(tiny_dir), device="cpu")
        assert torch.get_num_threads() == 1  # untouched without threads
    finally:
        torch.set_num_threads(held)


@pytest.mark.parametrize(("bad", "value"), [("batch_size", 0), ("max_length", 1), ("threads", 0)])
def test_invalid_sizes(tiny_dir: Path, bad: str, value: int) -> None:
    """A batch size below 1 or a max length below 2 is refused before loading."""
    with pytest.raises(ValueError, match=bad):
        TransformersScorer(str(tiny_dir), **{bad: value})  # type: ignore[arg-type]


# --- label mapping ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("id2label", "expected"),
    [
        ({0: "negative", 1: "neutral", 2: "positive"}, ["negative", "neutral", "positive"]),
        ({0: "NEGATIVE", 1: "POSITIVE"}, ["negative", "positive"]),
        ({0: "Pos", 1: "Neu", 2: "Neg"}, ["positive", "neutral", "negative"]),
        ({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"}, ["negative", "neutral", "positive"]),
        ({0: "LABEL_0", 1: "LABEL_1"}, ["negative", "positive"]),
        (
            {0: "1 star", 1: "2 stars", 2: "3 stars", 3: "4 stars", 4: "5 stars"},
            ["negative", "negative", "neutral", "positive", "positive"],
        ),
        ({"0": "negative", "1": "positive"}, ["negative", "positive"]),
    ],
)
def test_map_labels_by_name(id2label: dict[Any, str], expected: list[str]) -> None:
    """Label names map case-insensitively, as do LABEL_n heads (cardiffnlp order) and stars."""
    assert list(map_labels(id2label).values()) == expected


@pytest.mark.parametrize(
    ("id2label", "message"),
    [
        ({0: "joy", 1: "anger", 2: "sadness"}, "cannot map model labels"),
        ({i: f"LABEL_{i}" for i in range(4)}, "cannot map model labels"),
        ({0: "LABEL_1", 1: "LABEL_0"}, "cannot map model labels"),
        ({0: "negative", 1: "neutral", 2: "LABEL_2"}, "cannot map model labels"),
        ({0: "negative", 1: "neutral"}, "one to positive"),
        ({0: "LABEL_0"}, "at least a negative and a positive"),
        ({1: "negative", 2: "positive"}, "must be 0..1"),
    ],
)
def test_unmappable_labels_fail_clearly(id2label: dict[int, str], message: str) -> None:
    """Labels that cannot be read as sentiment raise ScorerError asking for label_map."""
    with pytest.raises(ScorerError, match=message) as info:
        map_labels(id2label)
    assert isinstance(info.value, ListenerError)


def test_explicit_label_map_by_name_or_id() -> None:
    """label_map keys are model label names (any case) or ids; values the three sentiments."""
    id2label = {0: "sadness", 1: "Joy", 2: "other"}
    by_name = map_labels(id2label, {"SADNESS": "negative", "joy": "Positive", "other": "neutral"})
    by_id = map_labels(id2label, {"0": "negative", "1": "positive", "2": "neutral"})
    assert by_name == by_id == {0: "negative", 1: "positive", 2: "neutral"}
    assert map_labels(
        {0: "negative", 1: "positive"}, {"negative": "positive", "positive": "negative"}
    ) == {
        0: "positive",
        1: "negative",
    }


@pytest.mark.parametrize(
    ("label_map", "message"),
    [
        ({"sadness": "negative", "joy": "positive"}, r"does not cover model label 2='other'"),
        ({"sadness": "negative", "joy": "positive", "other": "meh"}, "values must be"),
        (
            {"sadness": "negative", "joy": "positive", "other": "neutral", "typo": "neutral"},
            r"\['typo'\] are not labels of the model",
        ),
    ],
)
def test_explicit_label_map_errors(label_map: dict[str, str], message: str) -> None:
    """An incomplete label_map, an unknown value or a key the model lacks is a clear error."""
    with pytest.raises(ScorerError, match=message):
        map_labels({0: "sadness", 1: "Joy", 2: "other"}, label_map)


def test_scores_compare_within_float_noise() -> None:
    """Runs that differ in the last digits (seen between batch sizes) compare equal; a label or
    a real difference of the compound does not."""
    seen = [Sentiment("negative", -0.9027668368071318)]
    _assert_same_scores([Sentiment("negative", -0.9027668312191963)], seen)
    with pytest.raises(AssertionError):
        _assert_same_scores([Sentiment("neutral", -0.9027668368071318)], seen)
    with pytest.raises(AssertionError):
        _assert_same_scores([Sentiment("negative", -0.89)], seen)


def test_generic_label_names_end_to_end(
    tiny_dir: Path, scorer: TransformersScorer, tmp_path: Path
) -> None:
    """A model saved with LABEL_0/1/2 scores as the same model with named labels."""
    generic = _copy_with_labels(tiny_dir, tmp_path / "generic", {i: f"LABEL_{i}" for i in range(3)})
    texts = [text for text, _ in TRAINING]
    generic_scores = TransformersScorer(str(generic), device="cpu").score_batch(texts)
    _assert_same_scores(generic_scores, scorer.score_batch(texts))


def test_explicit_label_map_end_to_end(tiny_dir: Path, tmp_path: Path) -> None:
    """A model with its own label names scores right once label_map names them."""
    odd = _copy_with_labels(tiny_dir, tmp_path / "odd", {0: "bad", 1: "meh", 2: "good"})
    with pytest.raises(ScorerError, match="set label_map") as info:
        TransformersScorer(str(odd), device="cpu")
    assert str(odd) in str(info.value)
    mapped = TransformersScorer(
        str(odd), device="cpu", label_map={"bad": "negative", "meh": "neutral", "good": "positive"}
    )
    results = mapped.score_batch([text for text, _ in TRAINING])
    assert [r.label for r in results] == [label for _, label in TRAINING]


def test_two_label_model(tmp_path: Path) -> None:
    """A 2-label model: compound = p(LABEL_1) - p(LABEL_0), and the label is never neutral."""
    path = tiny.build_tiny_model(
        tmp_path / "two", id2label={0: "LABEL_0", 1: "LABEL_1"}, train=False
    )
    texts = [text for text, _ in TRAINING[::4]]
    results = TransformersScorer(str(path), device="cpu", batch_size=4).score_batch(texts)
    for result, (p_neg, p_pos) in zip(results, _direct_probs(path, texts), strict=True):
        assert result.compound == pytest.approx(p_pos - p_neg, abs=1e-5)
        assert result.label == ("positive" if p_pos > p_neg else "negative")


def test_star_rating_model(tmp_path: Path) -> None:
    """A 1–5 star model: compound = p(4★) + p(5★) − p(1★) − p(2★); 3★ is neutral."""
    stars = {0: "1 star", 1: "2 stars", 2: "3 stars", 3: "4 stars", 4: "5 stars"}
    path = tiny.build_tiny_model(tmp_path / "stars", id2label=stars, train=False, seed=3)
    texts = [text for text, _ in TRAINING[::4]]
    results = TransformersScorer(str(path), device="cpu").score_batch(texts)
    for result, p in zip(results, _direct_probs(path, texts), strict=True):
        neg, neu, pos = p[0] + p[1], p[2], p[3] + p[4]
        assert result.compound == pytest.approx(pos - neg, abs=1e-5)
        assert result.label == CLASSES[max(range(3), key=[neg, neu, pos].__getitem__)]


# --- loading failures -------------------------------------------------------------


def test_missing_model_path(tmp_path: Path, no_network: list[object]) -> None:
    """A model path that does not exist is a clear ScorerError, with no network attempt."""
    missing = tmp_path / "no-such-model"
    with pytest.raises(ScorerError, match="does not exist") as info:
        TransformersScorer(str(missing))
    assert str(missing) in str(info.value)
    assert no_network == []


def test_uncached_hub_id_offline(no_network: list[object]) -> None:
    """A hub id not in the local cache, with local_files_only, fails clearly and offline."""
    with pytest.raises(ScorerError, match="cannot load sentiment model") as info:
        TransformersScorer("listener-tests/no-such-model", local_files_only=True)
    assert "local_files_only" in str(info.value)
    assert no_network == []


def test_directory_without_config(tmp_path: Path, no_network: list[object]) -> None:
    """A directory that is not a saved model says so."""
    with pytest.raises(ScorerError, match=r"no config\.json"):
        TransformersScorer(str(tmp_path))
    assert no_network == []


def test_base_model_without_classification_head(tiny_dir: Path, tmp_path: Path) -> None:
    """A checkpoint without a trained classifier is refused rather than scored at random."""
    from transformers import AutoModel

    base = tmp_path / "base"
    AutoModel.from_pretrained(tiny_dir, local_files_only=True).save_pretrained(base)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_dir / name, base / name)
    with pytest.raises(ScorerError, match="not a fine-tuned sequence-classification model"):
        TransformersScorer(str(base), device="cpu")


# --- devices ----------------------------------------------------------------------


def test_auto_device_follows_cuda_availability(
    tiny_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """device="auto" is cuda when torch sees a GPU and cpu when it does not."""
    from listener.scoring.transformers import _resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _resolve_device("auto").type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _resolve_device("auto").type == "cpu"
    assert TransformersScorer(str(tiny_dir)).device.type == "cpu"


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "meta"])
def test_unknown_device(tiny_dir: Path, device: str) -> None:
    """An unknown device name is a clear ScorerError listing the choices."""
    with pytest.raises(ScorerError, match="use auto, cpu, cuda"):
        TransformersScorer(str(tiny_dir), device=device)


def test_cuda_asked_without_gpu(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for cuda where torch sees no GPU is a clear ScorerError, not a crash at scoring."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ScorerError, match="sees no CUDA GPU"):
        TransformersScorer(str(tiny_dir), device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("fp16", [False, True])
def test_cuda_matches_cpu(tiny_dir: Path, scorer: TransformersScorer, fp16: bool) -> None:
    """On a GPU (fp32 or fp16) the labels match the CPU's and compounds agree closely."""
    gpu = TransformersScorer(str(tiny_dir), device="cuda", fp16=fp16)
    assert gpu.device.type == "cuda"
    assert gpu.fp16 is fp16
    texts = [text for text, _ in TRAINING]
    on_gpu, on_cpu = gpu.score_batch(texts), scorer.score_batch(texts)
    assert [r.label for r in on_gpu] == [r.label for r in on_cpu]
    tolerance = 1e-2 if fp16 else 1e-4
    assert [r.compound for r in on_gpu] == pytest.approx(
        [r.compound for r in on_cpu], abs=tolerance
    )


def test_a_language_map_sends_french_to_the_model_and_english_to_the_lexicon(
    tiny_dir: Path, scorer: TransformersScorer
) -> None:
    """``scoring.sentiment`` as a map: French mentions (detected: the source gives no
    language) are scored by the model, English ones by the crisis scorer, in one batch
    each; the stage knows it holds a model (ingest workers buffer for it)."""
    from datetime import UTC, datetime

    from listener.config.load import load_config_text
    from listener.ingest import Ingest
    from listener.model import Mention

    config = load_config_text(
        "brands: [{name: Acme}]\nrules: []\nscoring:\n  sentiment:\n"
        "    en: {type: crisis}\n"
        f"    fr: {{type: transformers, model: '{tiny_dir}', device: cpu, "
        "local_files_only: true, batch_size: 8}\n",
        "rules.yaml",
        {},
    )
    stage = Ingest.build(config)
    assert stage.scorers.uses_model
    at = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    french = [
        "Acme a encore perdu ma valise, le service client ne répond jamais",
        "Merci Acme, le nouveau service est vraiment excellent et rapide",
    ]
    english = "Acme lost my bag again and customer service never answers"
    mentions = [
        Mention(source="reddit", id=str(i), text=t, created_at=at)
        for i, t in enumerate([*french, english])
    ]
    scored = stage.run(mentions, at)
    assert [s.mention.language for s in scored] == ["fr", "fr", "en"]
    _assert_same_scores([s.sentiment for s in scored[:2]], scorer.score_batch(french))
    english_scorer = stage.scorers.by_language["en"]
    assert scored[2].sentiment == english_scorer.score(english)
    assert not Ingest.build(
        load_config_text("brands: [{name: Acme}]\n", "r", {})
    ).scorers.uses_model
