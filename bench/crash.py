"""Crash benchmark: SIGKILL `listener run` at random points of alert delivery, many times.

Run from the repository root::

    .venv/bin/python bench/crash.py                  # 20 rounds, the default seed
    .venv/bin/python bench/crash.py --rounds 50      # more rounds (or LISTENER_CRASH_ROUNDS)
    .venv/bin/python bench/crash.py --seed 7         # another seed (or LISTENER_CRASH_SEED)
    .venv/bin/python bench/crash.py --repeat 3       # three scenarios, seeds seed..seed+2

The scenario is the one ``tests/e2e/test_crash.py`` runs in a bounded form (5 rounds in
CI): a loopback feed server makes many brands cross three thresholds at different times,
the daemon delivers to a loopback webhook receiver that is slow, sometimes answers 500
and sometimes answers after the sender's timeout, and that drops a repeated
``Idempotency-Key``; each round kills the daemon with SIGKILL (from inside the receiver
between its accept and its answer, or at a random moment of delivery) and restarts it on
the same state file; a last start drains the outbox. It prints, per scenario: rounds,
kills, alerts the incident events imply, deliveries (POSTs), keys accepted, digests,
duplicates dropped by key, lost alerts, alerts accepted twice as new. Exit status 1 when
any alert was lost or accepted twice as new, else 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.test_crash import (  # noqa: E402 - needs the repository root on the path
    DEFAULT_SEED,
    ROUNDS_ENV,
    SEED_ENV,
    run_crash_scenario,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--rounds",
        type=int,
        default=int(os.environ.get(ROUNDS_ENV, "20")),
        help=f"SIGKILL/restart rounds per scenario (default: ${ROUNDS_ENV} or 20)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=int(os.environ.get(SEED_ENV, str(DEFAULT_SEED))),
        help=f"seed of the first scenario (default: ${SEED_ENV} or {DEFAULT_SEED})",
    )
    parser.add_argument("--repeat", type=int, default=1, help="scenarios to run (default 1)")
    parser.add_argument("--quiet", action="store_true", help="no per-round progress lines")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.repeat < 1:
        parser.error("--rounds and --repeat must be at least 1")

    failed = 0
    for i in range(args.repeat):
        seed = args.seed + i
        with tempfile.TemporaryDirectory(prefix="listener-crash-") as tmp:
            figures = run_crash_scenario(
                args.rounds, seed, Path(tmp), say=None if args.quiet else print
            )
        print(figures.summary(), flush=True)
        if not figures.ok:
            failed += 1
            print(
                f"FAILED: lost {figures.lost}, accepted twice as new {figures.new_twice}, "
                f"unknown {figures.unknown}, out of order {figures.out_of_order}",
                flush=True,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
