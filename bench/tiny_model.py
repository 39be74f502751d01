"""Build a small sequence-classification model on disk, offline, for tests and the bench.

Nothing is downloaded: the tokenizer is a WordPiece tokenizer built from the word list
below with the ``tokenizers`` library, and the model is a BERT built from a config with
seeded random weights. With ``train=True`` (three labels only) it is then trained for a
few dozen full-batch steps on :data:`TRAINING` (each word of :data:`NEGATIVE`,
:data:`NEUTRAL` and :data:`POSITIVE` among filler words) until it labels every one of
those sentences right, so the tests can assert real labels on them. It memorises them:
on other sentences it generalises only loosely (about 3 in 4 right).

``size="base"`` builds an untrained model with bert-base/roberta-base dimensions (12
layers, hidden 768, ~85M encoder parameters) so that the bench can measure realistic
compute without a download; its labels are meaningless.

Used by ``tests/unit/test_transformers_scorer.py`` (loaded by path) and by
``bench/transformers_throughput.py``. Needs torch, tokenizers and transformers.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

__all__ = [
    "NEGATIVE",
    "NEUTRAL",
    "POSITIVE",
    "TRAINING",
    "VOCAB",
    "build_tiny_model",
]

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
POSITIVE = ["love", "great", "awesome", "excellent", "happy", "best", "amazing", "thanks"]
NEGATIVE = ["hate", "terrible", "awful", "worst", "broken", "angry", "scam", "horrible"]
NEUTRAL = ["released", "update", "statement", "announced", "opens", "monday", "price", "report"]
FILLER = [
    "acme", "the", "is", "a", "i", "this", "my", "it", "was", "so", "at", "on", "and", "to",
    "of", "in", "for", "with", "you", "we", "they", "be", "are", "not", "have", "just", "new",
    "today", "store", "phone", "app", "service", "support", "order", "team", "day", "week",
    "time", "people", "get", "got", "what", "when", "will", "can", "all", "about", "out", "up",
    "from", "one", "now", "like", "do", "no", "yes", "your", "our", "their", "its", "an", "or",
    "but", "if", "than", "then", "more", "very", "really", "still", "again", "never", "ever",
    "going", "see", "know", "think", "want", "need", "make", "go", "back", "first", "last",
    "year", "night", "morning", "tomorrow", "may", "june", "july", "friday", "sunday",
    "!", "?", ".", ",", "'", "\"", "#", "@", ":", "-", "&",
]  # fmt: skip
VOCAB: list[str] = SPECIAL + POSITIVE + NEGATIVE + NEUTRAL + FILLER

LABELS_3 = {0: "negative", 1: "neutral", 2: "positive"}
_CONTEXT = [w for w in FILLER if w.isalpha()]


def _training() -> list[tuple[str, int]]:
    """Sentences and their label ids: each class word twice, among one to three filler words."""
    rng = random.Random(1234)
    data: list[tuple[str, int]] = []
    for label, words in ((0, NEGATIVE), (1, NEUTRAL), (2, POSITIVE)):
        for word in words * 2:
            sentence = rng.sample(_CONTEXT, rng.randint(1, 3))
            sentence.insert(rng.randint(0, len(sentence)), word)
            data.append((" ".join(sentence), label))
    return data


TRAINING: list[tuple[str, int]] = _training()


def build_tiny_model(
    path: Path,
    *,
    id2label: Mapping[int, str] | None = None,
    train: bool = True,
    seed: int = 2,
    size: Literal["tiny", "base"] = "tiny",
    max_positions: int = 512,
) -> Path:
    """Write a tokenizer and a BERT sequence classifier into ``path`` and return it.

    ``id2label`` defaults to negative/neutral/positive; ``train`` needs exactly three
    labels in that order of meaning (ids 0/1/2 = negative/neutral/positive).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, PreTrainedTokenizerFast

    labels = dict(id2label) if id2label is not None else dict(LABELS_3)
    if train and len(labels) != 3:
        raise ValueError("train=True needs three labels (0/1/2 = negative/neutral/positive)")
    path.mkdir(parents=True, exist_ok=True)

    vocab = {word: i for i, word in enumerate(VOCAB)}
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tokenizer = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call, unused-ignore]
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=max_positions,
    )

    base = size == "base"
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=768 if base else 16,
        num_hidden_layers=12 if base else 1,
        num_attention_heads=12 if base else 2,
        intermediate_size=3072 if base else 32,
        max_position_embeddings=max_positions,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        id2label=labels,
        label2id={name: i for i, name in labels.items()},
    )
    model = _new_model(config, seed)
    if train:
        # Seeds in turn: from most initialisations a 1-layer, 16-wide BERT fits TRAINING
        # in under 150 full-batch steps (well under a second); from a few it gets stuck.
        for attempt in range(_ATTEMPTS):
            if _train(model, tokenizer, seed + attempt):
                break
            model = _new_model(config, seed + attempt + 1)
        else:
            raise RuntimeError("the tiny model did not fit its training sentences")
    model.train(False)  # eval mode
    tokenizer.save_pretrained(path)
    model.save_pretrained(path)
    return path


_ATTEMPTS = 8
_STEPS = 150


def _new_model(config: BertConfig, seed: int) -> BertForSequenceClassification:
    """A BERT classifier with weights drawn from ``seed``."""
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


def _train(
    model: BertForSequenceClassification, tokenizer: PreTrainedTokenizerFast, seed: int
) -> bool:
    """Full-batch Adam on :data:`TRAINING`; True once every sentence is classified right
    with a margin (mean cross-entropy below 0.05)."""
    import torch

    texts = [text for text, _ in TRAINING]
    target = torch.tensor([label for _, label in TRAINING])
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    torch.manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.02)
    model.train()
    threads = torch.get_num_threads()
    # Tensors this small gain nothing from more threads, and on a shared CPU the extra
    # threads' synchronisation makes each step many times slower.
    torch.set_num_threads(1)
    try:
        for _ in range(_STEPS):
            out = model(**batch, labels=target)
            if bool((out.logits.argmax(-1) == target).all()) and float(out.loss.detach()) < 0.05:
                return True  # checked on the weights that will be saved
            optimiser.zero_grad()
            out.loss.backward()
            optimiser.step()
        return False
    finally:
        torch.set_num_threads(threads)
