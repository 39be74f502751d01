"""rules.yaml's YAML layer: refused features, limits and broken bytes are ConfigErrors with a line.

Mutations of the shipped rules.yaml that used to end in a traceback (or an error without a
line): merge keys, recursive aliases, tags, alias bombs, NUL and other control characters,
invalid UTF-8, values that look like a date or a number but are none.
"""

from __future__ import annotations

import random
import re
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from listener.config.load import MAX_ALIAS_VALUES, load_config, load_config_text
from listener.errors import ConfigError, ConfigProblem

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "rules.yaml").read_text(encoding="utf-8")


def line_of(text: str, needle: str) -> int:
    """The 1-based line of the first ``needle`` in ``text``."""
    return text[: text.index(needle)].count("\n") + 1


def mutate(old: str, new: str) -> str:
    """The shipped rules.yaml with the first ``old`` replaced by ``new``."""
    assert old in SHIPPED
    return SHIPPED.replace(old, new, 1)


def refused(text: str) -> list[ConfigProblem]:
    """The problems of ``text``: it must be a ConfigError, and every problem has a line."""
    with pytest.raises(ConfigError) as info:
        load_config_text(text, "rules.yaml", {})
    assert info.value.problems
    for problem in info.value.problems:
        assert problem.line is not None, str(problem)
    return info.value.problems


def alias_bomb(levels: int = 6, ways: int = 9) -> str:
    """``levels`` levels of ``ways``-way aliases (the "billion laughs"), under a top key."""
    lines = ["bomb:", f"  l0: &l0 [{', '.join(['lol'] * ways)}]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * ways)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


WATCH = "{type: volume, metric: negative, window: 15m, above: 10}"
ELEVATED = "{type: spike, metric: negative, window: 15m, baseline: 6h, ratio: 4, min_volume: 25}"
MERGE = (
    f"when: {WATCH}\n      elevated:\n        when: {ELEVATED}",
    f"when: &w {WATCH}\n      elevated:\n        when: {{<<: *w, above: 20}}",
)
"""The shipped file with the elevated level's condition merged from the watch level's."""

# (id, old, new, needle on the line of the problem, words in the message, words in the hint)
CASES = [
    (
        "merge key of a number",
        "{type: volume",
        "{<<: 5, type: volume",
        "<<:",
        "a merge key (<<) takes a mapping or a list of mappings",
        "'&name' marks a mapping",
    ),
    (
        "self-referencing alias",
        "version: 1",
        "version: &v [1, *v]",
        "&v",
        "recursive alias",
        "write the value out",
    ),
    (
        "alias inside its own mapping",
        "notifications:\n  inhibit:",
        "notifications: &n\n  again: *n\n  inhibit:",
        "again: *n",
        "recursive alias",
        "write the value out",
    ),
    ("!!int", "above: 10}", 'above: !!int "3x"}', "!!int", "tags are not supported", "remove"),
    (
        "!!timestamp",
        "version: 1",
        'version: !!timestamp "2020-99-99"',
        "!!timestamp",
        "tags are not supported",
        "remove the tag",
    ),
    ("!foo", "version: 1", "version: !foo 1", "!foo", "tags are not supported", "remove"),
    (
        "!!python/name",
        "version: 1",
        'version: !!python/name:os.system ""',
        "!!python",
        "found !!python/name:os.system",
        "remove the tag",
    ),
    ("!!str", "interval: 10m", "interval: !!str 10m", "!!str", "tags are not supported", "quote"),
    ("tag on a mapping", "sinks:\n", "sinks: !!map\n", "!!map", "found !!map", "remove"),
    (
        "tag on a sequence",
        'urls:\n      - "https://news',
        'urls: !!seq\n      - "https://news',
        "!!seq",
        "found !!seq",
        "remove",
    ),
    ("local tag on a flow mapping", "{type: spike", "!x {type: spike", "!x {", "found !x", "tag"),
    (
        "plain value that looks like a date",
        "version: 1",
        "version: 2020-99-99",
        "2020-99-99",
        "cannot read '2020-99-99' as a timestamp: month must be in 1..12",
        "quote it",
    ),
    ("alias bomb", "version: 1\n", "version: 1\n" + alias_bomb(), "l4:", "aliases expand", "write"),
    ("NUL", "version: 1", "version: 1\0", "version", "NUL character U+0000", "remove it"),
    ("control character", "  news:", "  news:\x07", "news:", "character U+0007", "remove"),
    (
        "deep nesting",
        "version: 1",
        "deep: " + "[" * 1000 + "]" * 1000 + "\nversion: 1",
        "deep:",
        "nested more than 100 levels",
        "unbalanced",
    ),
    (".inf duration", "interval: 10m", "interval: .inf", "interval: .inf", "longer than", "365d"),
    (
        "99999999999d duration",
        "interval: 10m",
        "interval: 99999999999d",
        "99999999999d",
        "longer than the maximum of 365d",
        "at most 365d",
    ),
    (
        "3000000d window",
        "window: 15m, above: 10}",
        "window: 3000000d, above: 10}",
        "3000000d",
        "invalid duration '3000000d': longer than the maximum of 365d",
        "at most 365d",
    ),
    (
        "3000000d delivery.max_age",
        "    type: console\n",
        "    type: console\n  hook:\n    type: webhook\n    url: http://127.0.0.1:1/x\n"
        "    delivery: {max_age: 3000000d}\n",
        "max_age",
        "longer than the maximum",
        "at most 365d",
    ),
    (
        "anchor defined twice",
        "version: 1\n",
        "version: &c 1\nagain: &c 2\n",
        "again:",
        "anchor &c is defined twice (first on line 8)",
        "own name",
    ),
    (".nan duration", "resolve_after: 30m", "resolve_after: .nan", ".nan", "not a number", "30s"),
]


@pytest.mark.parametrize(
    ("old", "new", "needle", "message", "hint"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_mutation_is_one_problem_with_line_and_hint(
    old: str, new: str, needle: str, message: str, hint: str
) -> None:
    """Each mutation of the shipped file is refused on the line it happens, with a hint."""
    text = mutate(old, new)
    (problem,) = refused(text)
    assert problem.file == "rules.yaml"
    assert problem.line == line_of(text, needle), str(problem)
    assert message in problem.message, str(problem)
    assert problem.hint is not None
    assert hint in problem.hint, str(problem)


def test_merge_keys_merge_and_own_keys_win() -> None:
    """``<<: *anchor`` copies the anchor's keys; the mapping's own keys override them, and
    of several merged mappings the first wins (YAML's merge key type)."""
    config = load_config_text(mutate(*MERGE), "rules.yaml", {})
    levels = config.rules[0].levels
    watch = levels["watch"].when
    assert levels["elevated"].when == watch.model_copy(update={"above": 20})
    several = MERGE[1].replace("{<<: *w, above: 20}", "{<<: [{above: 30, window: 5m}, *w]}")
    config = load_config_text(mutate(MERGE[0], several), "rules.yaml", {})
    assert config.rules[0].levels["elevated"].when == watch.model_copy(
        update={"above": 30, "window": timedelta(minutes=5)}
    )


def test_problem_in_merged_value_names_the_line_it_is_written_on() -> None:
    """A bad value that came in by a merge is reported where it is written (the anchor)."""
    text = mutate(MERGE[0], MERGE[1].replace("window: 15m", "window: 15 minutes", 1))
    problems = refused(text)
    assert {p.line for p in problems} == {line_of(text, "15 minutes")}
    assert {p.path for p in problems} == {
        "rules[0].levels.watch.when.window",
        "rules[0].levels.elevated.when.window",
    }


def test_alias_bomb_is_refused_at_its_line() -> None:
    """Six levels of nine-way aliases (9⁶ values once expanded) stop at the alias that
    crosses the cap, before anything is expanded."""
    text = alias_bomb()
    (problem,) = refused(text)
    assert problem.line == line_of(text, "l4:")
    assert str(MAX_ALIAS_VALUES) in problem.message


def test_small_aliases_still_work() -> None:
    """Aliases that repeat a small value are fine: the shipped file with a repeated list."""
    text = mutate('handles: ["@github", "@githubstatus"]', 'handles: &h ["@github"]').replace(
        'hashtags: ["#github", "#githubdown"]', "hashtags: *h"
    )
    config = load_config_text(text, "rules.yaml", {})
    assert config.brands[0].hashtags == config.brands[0].handles


@pytest.mark.parametrize("text", ["", "# only a comment\n", "\n\n"])
def test_empty_file_is_an_error_on_line_1(text: str) -> None:
    """A file with no document is refused on its first line, like any other problem."""
    (problem,) = refused(text)
    assert (problem.line, problem.message) == (1, "the file must be a mapping")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    """A byte that is not UTF-8 is reported with its line and column."""
    raw = SHIPPED.encode().replace(b"    interval: 5m", b"    interval: 5m \xff\xfe", 1)
    path = tmp_path / "rules.yaml"
    path.write_bytes(raw)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert problem.line == line_of(SHIPPED, "    interval: 5m")
    assert problem.message == "not valid UTF-8: byte 0xff at column 18"
    assert problem.hint == "save the file as UTF-8"


SNIPPETS = [
    *("!!int ", "!!str ", "!!float ", "!!timestamp ", "!!binary ", "!!set ", "!!omap "),
    *("!!python/name:os.system ", "!foo ", "!!map ", "!!seq ", "! ", "!<tag:yaml.org,2002:int> "),
    *("&x ", "*x", "&x [*x] ", "&x {a: *x} ", "*undefined ", "{<<: *x} ", "<<: *x\n"),
    *(".inf", "-.inf", ".nan", "1.0e+400", "9" * 5000, "99999999999d", "3000000d", "-5s"),
    *("2020-99-99", "2020-02-30 25:61:61", "1:99:99", "=", "~", "0x1F", "1_000", "366d"),
    *("\0", "\x07", "\x1b", "\ufeff", "\x85", "\u2028", "\ud800", "\t", "[" * 300),
    *("[[[[", "{", "}", "'", '"', "%YAML 1.1\n", "---\n", "...\n", "? ", "- ", "|", ">", "`"),
    *("? [a]\n", "? {a: 1}: 2\n", "[]", "{}", "null", "true", "''", "@", "#"),
]
"""Tags, anchors and aliases, weird numbers and dates, junk characters and YAML syntax."""


def problems_or_none(text: str) -> list[ConfigProblem]:
    """The problems of ``text`` if it is a ConfigError (any other exception fails the test)."""
    try:
        load_config_text(text, "rules.yaml", {})
    except ConfigError as exc:
        assert exc.problems  # noqa: PT017 (a ConfigError is one outcome of two)
        return exc.problems
    return []


def assert_config_error_or_valid(text: str) -> None:
    """``text`` loads, or fails with a ConfigError whose problems all have a line."""
    for problem in problems_or_none(text):
        assert problem.line is not None, str(problem)


def test_deterministic_fuzz_of_the_shipped_file() -> None:
    """Every snippet, inserted at or replacing a value at seeded random places of the
    shipped file, gives a ConfigError with lines (never another exception)."""
    rng = random.Random(11)
    values = [m.end() for m in re.finditer(": ", SHIPPED)]
    for snippet in SNIPPETS:
        for pos in rng.sample(values, 3):
            end = SHIPPED.index("\n", pos)
            assert_config_error_or_valid(SHIPPED[:pos] + snippet + SHIPPED[pos:])
            assert_config_error_or_valid(SHIPPED[:pos] + snippet + SHIPPED[end:])
        pos = rng.randrange(len(SHIPPED) + 1)
        assert_config_error_or_valid(SHIPPED[:pos] + snippet + SHIPPED[pos:])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.integers(0, len(SHIPPED)),
            st.sampled_from(SNIPPETS) | st.text(max_size=8),
            st.booleans(),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mutations_of_the_shipped_file_only_raise_config_errors(
    edits: list[tuple[int, str, bool]],
) -> None:
    """Any few insertions (or value replacements) anywhere in the shipped file give a
    valid config or a ConfigError whose every problem has a line."""
    text = SHIPPED
    for pos, snippet, replace_rest_of_line in edits:
        pos = min(pos, len(text))
        end = text.find("\n", pos) if replace_rest_of_line else pos
        text = text[:pos] + snippet + text[end if end >= 0 else len(text) :]
    assert_config_error_or_valid(text)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, len(SHIPPED)), st.binary(min_size=1, max_size=4))
def test_junk_bytes_in_the_shipped_file_only_raise_config_errors(pos: int, junk: bytes) -> None:
    """Bytes (invalid UTF-8 included) inserted into the file on disk never give a traceback."""
    raw = SHIPPED.encode()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_bytes(raw[:pos] + junk + raw[pos:])
        try:
            load_config(path, env={})
        except ConfigError as exc:
            problems = exc.problems
        else:
            problems = []
    for problem in problems:
        assert problem.line is not None, str(problem)


@pytest.mark.parametrize(
    ("new_text", "needle", "words"),
    [
        (mutate("{type: volume", "{<<: [1], type: volume"), "<<:", "merge key"),
        (mutate("version: 1", "version: !!python/name:os.system 1"), "version", "tags"),
        (mutate("version: 1\n", "version: 1\n" + alias_bomb()), "l4:", "aliases expand"),
        (mutate("version: 1", "version: &v [*v]"), "version", "recursive alias"),
        (mutate("interval: 10m", "interval: .inf"), "interval: .inf", "365d"),
    ],
    ids=["merge", "tag", "bomb", "recursive", "inf"],
)
def test_check_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, new_text: str, needle: str, words: str
) -> None:
    """``listener check`` on such a file exits 2 with file:line and no traceback."""
    path = tmp_path / "rules.yaml"
    path.write_text(new_text, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "listener", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{path}:{line_of(new_text, needle)}:" in proc.stderr
    assert words in proc.stderr
    assert "hint:" in proc.stderr


def test_check_reports_invalid_utf8_and_nul_with_line(tmp_path: Path) -> None:
    """Invalid UTF-8 and a NUL byte: exit 2, the line, no traceback."""
    line = line_of(SHIPPED, "version: 1")
    for junk in (b"\xff", b"\0"):
        path = tmp_path / "rules.yaml"
        path.write_bytes(SHIPPED.encode().replace(b"version: 1", b"version: 1" + junk, 1))
        proc = subprocess.run(
            [sys.executable, "-m", "listener", "check", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert f"{path}:{line}:" in proc.stderr
