"""The memo of settled keys (listener.rules.settled) keeps, per rule, arrays by brand row;
what it plans must be what the per-key memo it replaced planned: a key is skipped only
when its last evaluation left it resting, its brand's windows have not changed since, and
either it is dormant or it is reusable in the same read epoch past warm-up, with the
state that evaluation left."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from listener.config.load import load_config_text
from listener.model import Fact
from listener.rules.conditions import Check
from listener.rules.engine import CompiledRule, compile_rules
from listener.rules.settled import Marks, SettledKeys, marks_of
from listener.rules.state import Incident, KeyState, LevelTimer

BRANDS = ("Acme", "Globex", "Initech", "Umbrella", "Wayne")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NEVER = np.iinfo(np.int64).min


def _rule(brands: list[str] | None = None) -> CompiledRule:
    rule: dict[str, object] = {
        "name": "r",
        "levels": {"watch": {"when": {"type": "volume", "window": "30m", "above": 5}}},
        "resolve_after": "5m",
    }
    if brands is not None:
        rule["brands"] = brands
    text = json.dumps(
        {
            "brands": [{"name": b} for b in BRANDS],
            "rules": [rule],
            "routes": {"default": ["ops"]},
            "sinks": {"ops": {"type": "console"}},
        }
    )
    return compile_rules(load_config_text(text, "rules.yaml", {}))[0]


RULE = _rule()


@dataclass
class Memo:
    """The per-key memo the arrays replaced (the reference)."""

    epoch: int
    changes: int
    key_state: KeyState
    reusable: bool
    dormant: bool = False


def _resting() -> KeyState:
    return KeyState({"watch": LevelTimer(None, None)}, None)


def _open() -> KeyState:
    incident = Incident("i", "watch", "watch", T0, T0)
    return KeyState({"watch": LevelTimer(T0, T0)}, incident)


def _check(holds: bool) -> tuple[Check, ...]:
    return (Check(holds, (Fact("volume", 1.0, 5.0),)),)


def _warm(marks: Marks, row: int, lookback: timedelta) -> bool:
    first = int(marks.first_seen[row])
    if first == NEVER:
        return True
    now = EPOCH + timedelta(microseconds=marks.now_us)
    return now - (EPOCH + timedelta(seconds=first)) >= lookback


MARKS = st.tuples(
    st.lists(st.integers(0, 1), min_size=len(BRANDS), max_size=len(BRANDS)),
    st.lists(
        st.one_of(st.none(), st.integers(-200, 0)), min_size=len(BRANDS), max_size=len(BRANDS)
    ),
    st.integers(0, 90),
)
STEP = st.one_of(
    st.tuples(
        st.just("settle"),
        st.lists(st.sampled_from(["checked", "checked-holds", "checked-open", "still", "-"])),
        st.lists(st.booleans(), min_size=len(BRANDS), max_size=len(BRANDS)),
        st.booleans(),
    ),
    st.tuples(st.just("replace"), st.integers(0, len(BRANDS) - 1)),
    st.tuples(st.just("plan")),
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(STEP, MARKS, st.integers(0, 2)), min_size=1, max_size=30),
    applies=st.lists(st.booleans(), min_size=len(BRANDS), max_size=len(BRANDS)),
)
def test_the_arrays_plan_what_the_per_key_memo_planned(
    steps: list[tuple[tuple[object, ...], tuple[list[int], list[int | None], int], int]],
    applies: list[bool],
) -> None:
    """Over random evaluations (keys checked, resting or not; keys the screen found still,
    dormant or not; states changed behind the memo's back; brands whose windows change,
    with and without warm-up; read epochs that come back), the arrays plan exactly the
    due and resting keys of the reference, checking states one by one or trusting them
    where they are known to be the memo's."""
    memo = SettledKeys(RULE.name, BRANDS)
    reference: dict[int, Memo] = {}
    keys: dict[tuple[str, str], KeyState] = {}
    lookback = RULE.lookback
    mask = np.array(applies, dtype=np.bool_)
    for step, (changes, firsts, minutes), epoch in steps:
        now = T0 + timedelta(minutes=minutes)
        first = np.array(
            [
                NEVER if f is None else int((now + timedelta(minutes=f) - EPOCH).total_seconds())
                for f in firsts
            ],
            dtype=np.int64,
        )
        marks = marks_of(changes, first, now)
        kind = step[0]
        if kind == "replace":  # a hand-off or a reload changed the key's state
            row = int(step[1])  # type: ignore[call-overload]
            keys[(RULE.name, BRANDS[row])] = _resting()
            continue
        plan = memo.plan(RULE, mask, marks, epoch, keys)
        due, resting = [], []
        for row, brand in enumerate(BRANDS):
            held = reference.get(row)
            same = held is not None and keys.get((RULE.name, brand)) is held.key_state
            if held is not None and same:
                warm = _warm(marks, row, lookback)
                if held.changes == changes[row] and (
                    held.dormant or (held.reusable and held.epoch == epoch and warm)
                ):
                    continue
                if applies[row]:
                    resting.append(row)
            if applies[row]:
                due.append(row)
        assert np.flatnonzero(plan.due).tolist() == due
        assert np.flatnonzero(plan.resting).tolist() == resting
        if all(
            keys.get((RULE.name, BRANDS[row])) is held.key_state for row, held in reference.items()
        ):  # the states are the memo's: trusting them plans the same
            trusted = memo.plan(RULE, mask, marks, epoch, None)
            assert (trusted.due == plan.due).all()
            assert (trusted.resting == plan.resting).all()
        if kind != "settle":
            continue
        # evaluate the due keys: the engine checks some, the screen leaves others still
        what, dormant_of, aligned = step[1], step[2], bool(step[3])
        assert isinstance(what, list)
        assert isinstance(dormant_of, list)
        checks: dict[str, tuple[Check, ...]] = {}
        still: list[int] = []
        rested: list[int] = []
        for row, outcome in zip(due, what, strict=False):
            key = (RULE.name, BRANDS[row])
            if outcome == "still":
                still.append(row)
                if row not in resting:  # the engine rests it: a new state
                    keys[key] = _resting()
                    rested.append(row)
            elif outcome.startswith("checked"):
                keys[key] = _open() if outcome == "checked-open" else _resting()
                checks[BRANDS[row]] = _check(outcome == "checked-holds")
        dormant = np.array([dormant_of[row] for row in still], dtype=np.bool_)
        memo.settle(
            RULE,
            checks,
            {b: i for i, b in enumerate(BRANDS)},
            np.array(still, dtype=np.intp),
            np.array(rested, dtype=np.intp),
            dormant,
            keys,
            marks,
            epoch,
            aligned,
        )
        for brand, made in checks.items():  # the reference's settle
            row = BRANDS.index(brand)
            key_state = keys.get((RULE.name, brand))
            if key_state is not None and key_state.incident is None and not made[0].holds:
                reusable = aligned and _warm(marks, row, lookback)
                reference[row] = Memo(epoch, changes[row], key_state, reusable)
            else:
                reference.pop(row, None)
        for row in still:
            reusable = aligned and _warm(marks, row, lookback)
            key_state = keys[(RULE.name, BRANDS[row])]
            reference[row] = Memo(epoch, changes[row], key_state, reusable, dormant_of[row])


def test_a_memo_moves_with_the_brands_held() -> None:
    """When the brands held change (one handed off, one adopted), each brand keeps what
    was settled of it at its new row; a brand new here has nothing settled."""
    memo = SettledKeys(RULE.name, BRANDS)
    keys = {(RULE.name, b): _resting() for b in BRANDS}
    marks = marks_of([1] * len(BRANDS), np.full(len(BRANDS), NEVER, dtype=np.int64), T0)
    everything = np.ones(len(BRANDS), dtype=np.bool_)
    plan = memo.plan(RULE, everything, marks, 7, keys)
    assert plan.due.all()
    assert not plan.resting.any()
    rows = np.arange(len(BRANDS), dtype=np.intp)
    memo.settle(RULE, {}, {}, rows, rows, np.zeros(len(BRANDS), np.bool_), keys, marks, 7, True)
    assert not memo.plan(RULE, everything, marks, 7, keys).due.any()
    brands = ("Wayne", "Acme", "Stark", "Initech")
    moved = memo.moved(RULE.name, brands, [4, 0, -1, 2])
    keys[(RULE.name, "Stark")] = _resting()
    marks = marks_of([1] * 4, np.full(4, NEVER, dtype=np.int64), T0)
    plan = moved.plan(RULE, np.ones(4, dtype=np.bool_), marks, 7, keys)
    assert plan.due.tolist() == [False, False, True, False]
    moved.forget(1)
    assert moved.plan(RULE, np.ones(4, dtype=np.bool_), marks, 7, keys).due.tolist() == [
        False,
        True,
        True,
        False,
    ]


def test_warm_up_counts_from_the_first_bucket() -> None:
    """A brand is past a look-back once its history starts that long before now, or when
    it has none."""
    now = T0
    first = np.array(
        [
            NEVER,
            int((now - timedelta(minutes=30) - EPOCH).total_seconds()),
            int((now - timedelta(minutes=29) - EPOCH).total_seconds()),
        ],
        dtype=np.int64,
    )
    marks = marks_of([0, 0, 0], first, now)
    assert marks.warm(timedelta(minutes=30)).tolist() == [True, True, False]
