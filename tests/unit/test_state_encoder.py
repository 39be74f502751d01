"""The engine state's incremental encoding: the same text as ``to_json``, re-encoding only
the keys whose state changed; ``with_keys`` keeps the objects of unchanged keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import listener.rules.state as state_module
from listener.rules.state import EngineState, Incident, KeyState, LevelTimer, StateEncoder

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RULES = ("neg", "spike")
BRANDS = ("Acme", "Globex", "Initech", "Umbrella")


def _key_state(n: int) -> KeyState:
    at = T0 + timedelta(minutes=n)
    incident = (
        Incident(id=f"i{n}", level="watch", peak_level="watch", opened_at=at, level_since=at)
        if n % 3 == 0
        else None
    )
    return KeyState(timers={"watch": LevelTimer(at if n % 2 else None, at)}, incident=incident)


step = st.tuples(
    st.sampled_from(["update", "prune"]),
    st.lists(st.tuples(st.sampled_from(RULES), st.sampled_from(BRANDS), st.integers(0, 5))),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, max_size=12))
def test_encoder_text_equals_to_json_and_loads_back(steps: list[tuple[str, list]]) -> None:  # type: ignore[type-arg]
    state, encoder = EngineState(), StateEncoder()
    for kind, items in steps:
        if kind == "update":
            state = state.with_keys({(r, b): _key_state(n) for r, b, n in items})
        else:
            state = state.prune(RULES, [b for _, b, n in items if n % 2])
        text = encoder.encode(state)
        assert text == state.to_json()
        assert EngineState.from_json(text) == state


def test_with_keys_keeps_unchanged_keys_and_returns_itself_when_nothing_changed() -> None:
    state = EngineState().with_keys(
        {("neg", "Acme"): _key_state(1), ("neg", "Globex"): _key_state(2)}
    )
    same = state.with_keys({("neg", "Acme"): _key_state(1)})  # equal, another object
    assert same is state
    moved = state.with_keys({("neg", "Acme"): _key_state(1), ("neg", "Globex"): _key_state(4)})
    assert moved is not state
    assert moved.keys[("neg", "Acme")] is state.keys[("neg", "Acme")]
    assert moved.keys[("neg", "Globex")] == _key_state(4)


def test_only_changed_keys_are_encoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[tuple[str, str]] = []
    real = state_module._key_json

    def counting(key: tuple[str, str], ks: KeyState) -> dict[str, object]:
        encoded.append(key)
        return real(key, ks)

    monkeypatch.setattr(state_module, "_key_json", counting)
    state = EngineState().with_keys({("neg", b): _key_state(i) for i, b in enumerate(BRANDS)})
    encoder = StateEncoder()
    encoder.encode(state)
    assert sorted(encoded) == sorted(("neg", b) for b in BRANDS)
    encoded.clear()
    state = state.with_keys({("neg", b): _key_state(i) for i, b in enumerate(BRANDS)})
    text = encoder.encode(state)
    assert encoded == []
    assert text == state.to_json()
    state = state.with_keys({("neg", "Globex"): _key_state(5), ("spike", "Acme"): _key_state(0)})
    encoded.clear()
    text = encoder.encode(state)
    assert sorted(encoded) == [("neg", "Globex"), ("spike", "Acme")]
    assert text == state.to_json()
