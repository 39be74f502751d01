"""Throughput of the transformers sentiment backend: texts/s at batch sizes 1, 8, 32, 128.

    .venv/bin/python bench/transformers_throughput.py                      # tiny model, offline
    .venv/bin/python bench/transformers_throughput.py --synthetic base     # roberta-base-sized
    .venv/bin/python bench/transformers_throughput.py \\
        --model cardiffnlp/twitter-roberta-base-sentiment-latest --device cuda

Without ``--model`` it builds a model locally (``bench/tiny_model.py``) into a temporary
directory, so it runs offline: ``--synthetic tiny`` (default; 1 layer, hidden 16: it
measures the scorer's own overhead, tokenising and batching) or ``--synthetic base``
(untrained, with the dimensions of bert-base/roberta-base: 12 layers, hidden 768, so
its speed is that of a real base-sized model, though its labels are meaningless). Real
figures for a real model need that model available locally: a directory written by
``save_pretrained`` or a hub id already in the Hugging Face cache (the hub is not reached
unless ``--allow-download`` is given).

Texts are tweets from ``$LISTENER_SHARED_DIR/data/tweeteval-sentiment/val_text.txt``
(default ``../shared`` beside the repo) when present, else synthetic sentences. Each
batch size is timed after a warm-up, over ``--texts`` texts, best of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from listener.scoring.transformers import TransformersScorer  # noqa: E402

BATCH_SIZES = (1, 8, 32, 128)
TWEETS = Path("data/tweeteval-sentiment/val_text.txt")


def load_texts(count: int) -> tuple[list[str], str]:
    """``count`` texts (cycling when the file is shorter) and where they came from."""
    shared = Path(os.environ.get("LISTENER_SHARED_DIR", REPO.parent / "shared"))
    path = shared / TWEETS
    if path.is_file():
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        tweets = [line for line in lines if line]
        if tweets:
            return [tweets[i % len(tweets)] for i in range(count)], str(path)
    import tiny_model

    rng = random.Random(0)
    words = tiny_model.VOCAB[5:]
    texts = [" ".join(rng.choices(words, k=rng.randint(5, 30))) for _ in range(count)]
    return texts, "synthetic (5-30 words)"


def throughput(scorer: TransformersScorer, texts: list[str], repeat: int) -> float:
    """Best texts/s of ``repeat`` timed runs of score_batch over all texts."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        scorer.score_batch(texts)  # returns Python floats, so GPU work has finished
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def _count(n: int) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--model", help="local directory or hub id (default: build one locally)")
    parser.add_argument("--synthetic", choices=("tiny", "base"), default="tiny")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default auto)")
    parser.add_argument("--texts", type=int, default=512, help="texts per timed run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per batch size")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument(
        "--batch-sizes", default=",".join(map(str, BATCH_SIZES)), help="comma-separated"
    )
    parser.add_argument("--fp16", action="store_true", help="half precision on CUDA")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--allow-download", action="store_true", help="let a hub id be downloaded")
    args = parser.parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    if not args.allow_download:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call, unused-ignore]
    if args.threads:
        torch.set_num_threads(args.threads)
    texts, source = load_texts(args.texts)
    with tempfile.TemporaryDirectory(prefix="listener-bench-") as tmp:
        if args.model:
            model, label = args.model, args.model
        else:
            import tiny_model

            model = str(tiny_model.build_tiny_model(Path(tmp), train=False, size=args.synthetic))
            label = f"synthetic {args.synthetic} BERT (random weights, built locally)"
        load_start = time.perf_counter()
        scorer = TransformersScorer(
            model,
            batch_size=batch_sizes[0],
            max_length=args.max_length,
            device=args.device,
            fp16=args.fp16,
            local_files_only=not args.allow_download,
        )
        load_s = time.perf_counter() - load_start
        params = sum(p.numel() for p in scorer._model.parameters())
        device = str(scorer.device)
        if scorer.device.type == "cuda":
            device += f" ({torch.cuda.get_device_name(scorer.device)})"
        else:
            device += f" ({platform.processor() or platform.machine()}, "
            device += f"{torch.get_num_threads()} torch threads)"
        print(f"model:   {label} ({_count(params)} parameters, loaded in {load_s:.1f}s)")
        print(f"device:  {device}; fp16: {scorer.fp16}")
        print(f"torch:   {torch.__version__}; max_length: {scorer.max_length}")
        print(f"texts:   {len(texts)} from {source}")
        print()
        print(f"{'batch':>5}  {'texts/s':>9}  {'ms/text':>8}")
        for b in batch_sizes:
            scorer.batch_size = b  # one loaded model; only the batch size changes
            scorer.score_batch(texts[: max(2 * b, 16)])  # warm-up (allocators, kernels)
            rate = throughput(scorer, texts, args.repeat)
            print(f"{b:>5}  {rate:>9.1f}  {1000 / rate:>8.2f}", flush=True)
    print()
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
        1024 if sys.platform != "darwin" else 1024**2
    )
    print(f"peak RSS: {peak:.0f} MiB", end="")
    if torch.cuda.is_available() and scorer.device.type == "cuda":
        print(
            f"; peak CUDA memory: {torch.cuda.max_memory_allocated(scorer.device) / 2**20:.0f} MiB",
            end="",
        )
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
