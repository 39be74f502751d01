"""listener.backtest: readers, volume-series and mention replays, output, command line."""

from __future__ import annotations

import argparse
import io
import json
import random
import subprocess
import sys
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from listener import backtest
from listener.backtest import (
    BacktestError,
    BacktestResult,
    Change,
    MentionRecord,
    Progress,
    VolumeRow,
    add_arguments,
    detect_kind,
    format_report,
    parse_map,
    parse_time,
    read_jsonl,
    read_mention_csv,
    read_volume,
    replay_mentions,
    replay_volume,
    run_backtest,
    select_rules,
    write_scores,
)
from listener.config.load import load_config_text
from listener.config.schema import Config, RuleConfig
from listener.errors import ConfigError
from listener.model import Author, Mention, Sentiment
from listener.rules.engine import EventKind
from listener.scoring.velocity import VelocityWindows

START = datetime(2015, 2, 26, 21, 42, 53, tzinfo=UTC)
STEP = timedelta(minutes=5)

# The proposed default rule (docs/backtest.md, bench/rules-nab.yaml).
RULES = """
version: 1
brands:
  - name: Acme
    handles: ["@acme"]
rules:
  - name: volume-spike
    levels:
      watch:
        when:
          type: all
          conditions:
            - {type: zscore, metric: total, window: 30m, history: 144, threshold: 5, min_volume: 10}
            - {type: spike, metric: total, window: 30m, baseline: 3d, ratio: 2, min_volume: 10}
        for: 10m
        keep_firing_for: 30m
    resolve_after: 12h
  - name: complaints
    levels:
      watch:
        when: {type: volume, metric: negative, window: 15m, above: 5}
    resolve_after: 30m
routes:
  watch: [console]
sinks:
  console:
    type: console
"""


def _config(text: str = RULES) -> Config:
    return load_config_text(text, "rules.yaml", env={})


def _rule(name: str = "volume-spike") -> list[RuleConfig]:
    return select_rules(_config(), [name], default=None)


def _series(n: int, spike_at: int | None = None, seed: int = 7) -> list[VolumeRow]:
    """``n`` 5-minute rows of 40–60 mentions; six rows of 400 from ``spike_at``."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        value = rng.randint(40, 60)
        if spike_at is not None and spike_at <= i < spike_at + 6:
            value = 400
        at = START + i * STEP
        rows.append(VolumeRow(f"{at:%Y-%m-%d %H:%M:%S}", str(value), at, value, i + 2))
    return rows


# --------------------------------------------------------------------------- readers


def test_parse_time_formats() -> None:
    """ISO, the Twitter export and API formats and epoch seconds all parse to UTC."""
    expected = datetime(2015, 2, 24, 19, 35, 52, tzinfo=UTC)
    assert parse_time("2015-02-24 11:35:52 -0800") == expected
    assert parse_time("2015-02-24T19:35:52Z") == expected
    assert parse_time("2015-02-24 19:35:52") == expected
    assert parse_time("Tue Feb 24 19:35:52 +0000 2015") == expected
    assert parse_time(str(int(expected.timestamp()))) == expected
    with pytest.raises(ValueError, match="not a date-time"):
        parse_time("yesterday")


def test_read_jsonl_round_trips_the_daemon_format(tmp_path: Path) -> None:
    """JSON Lines written with Mention.to_dict read back as the same mentions."""
    mentions = [
        Mention("x", str(i), f"text {i}", START + timedelta(minutes=i), author=Author("a"))
        for i in range(3)
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(m.to_dict()) for m in mentions) + "\n\n")
    records = read_jsonl(path)
    assert [r.mention for r in records] == mentions
    assert [r.line for r in records] == [1, 2, 3]


def test_read_jsonl_names_the_bad_line(tmp_path: Path) -> None:
    """A line that is not a mention is an error naming the file, the line and the missing key."""
    good = Mention("x", "1", "hi", START).to_dict()
    bad = {k: v for k, v in good.items() if k != "text"}
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(BacktestError, match=r"m\.jsonl:2: not a mention: missing key 'text'"):
        read_jsonl(path)
    path.write_text("[1, 2]\n")
    with pytest.raises(BacktestError, match=r":1: not a mention: expected a JSON object"):
        read_jsonl(path)


CSV = (
    "tweet_id,airline,name,text,tweet_created,retweet_count\n"
    '1,United,ann,"@united two\nlines",2015-02-24 11:35:52 -0800,3\n'
    "2,Delta,bob,@delta hi,2015-02-24 11:36:00 -0800,0\n"
)


def test_read_mention_csv_with_a_column_mapping(tmp_path: Path) -> None:
    """Mapped columns become mention fields; a multi-line record keeps the line it starts on."""
    path = tmp_path / "t.csv"
    path.write_text(CSV)
    mapping = parse_map(["text=text,created_at=tweet_created", "id=tweet_id,author=name"])
    records = read_mention_csv(path, {**mapping, "brand": "airline", "reposts": "retweet_count"})
    first, second = records
    assert first.mention.id == "1"
    assert first.mention.source == "csv"
    assert first.mention.text == "@united two\nlines"
    assert first.mention.created_at == datetime(2015, 2, 24, 19, 35, 52, tzinfo=UTC)
    assert first.mention.author.handle == "ann"
    assert first.mention.engagement.reposts == 3
    assert (first.line, first.brand) == (2, "United")
    assert (second.line, second.brand) == (4, "Delta")


def test_read_mention_csv_names_a_missing_column(tmp_path: Path) -> None:
    """A mapping to a column the header lacks is an error naming it and listing the columns."""
    path = tmp_path / "t.csv"
    path.write_text(CSV)
    with pytest.raises(
        BacktestError, match=r"column 'created' \(for created_at\) is not in the header"
    ):
        read_mention_csv(path, {"created_at": "created"})
    with pytest.raises(
        BacktestError, match=r"no column for created_at: pass --map created_at=COLUMN"
    ):
        read_mention_csv(path, {})


def test_read_mention_csv_names_the_bad_row(tmp_path: Path) -> None:
    """A row with a bad date or a bad number is an error with its line number."""
    path = tmp_path / "t.csv"
    path.write_text("text,created_at,likes\nok,2015-02-24 10:00:00,1\nbad,soon,2\n")
    with pytest.raises(BacktestError, match=r"t\.csv:3: created_at 'soon' is not a date-time"):
        read_mention_csv(path)
    path.write_text("text,created_at,likes\nok,2015-02-24 10:00:00,many\n")
    with pytest.raises(BacktestError, match=r"t\.csv:2: likes 'many' is not a number"):
        read_mention_csv(path)


def test_parse_map_rejects_unknown_fields_and_bad_pairs() -> None:
    """--map accepts FIELD=COLUMN pairs of known fields only."""
    assert parse_map(["text=body, created_at=when", "brand=airline"]) == {
        "text": "body",
        "created_at": "when",
        "brand": "airline",
    }
    with pytest.raises(BacktestError, match="unknown field 'body'"):
        parse_map(["body=text"])
    with pytest.raises(BacktestError, match="expected FIELD=COLUMN"):
        parse_map(["text"])


def test_read_volume_series(tmp_path: Path) -> None:
    """A timestamp,value series reads as counts, keeping the raw text for the output."""
    path = tmp_path / "v.csv"
    path.write_text("timestamp,value\n2015-02-26 21:42:53,12\n2015-02-26 21:47:53,0.0\n")
    rows = read_volume(path)
    assert [(r.timestamp, r.raw_value, r.value, r.line) for r in rows] == [
        ("2015-02-26 21:42:53", "12", 12, 2),
        ("2015-02-26 21:47:53", "0.0", 0, 3),
    ]
    assert rows[0].at == datetime(2015, 2, 26, 21, 42, 53, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "timestamp,value\n2015-02-26 21:42:53,1\n2015-02-26 21:47:53,-3\n",
            r"v\.csv:3: value '-3'",
        ),
        ("timestamp,value\n2015-02-26 21:42:53,1.5\n", r"v\.csv:2: value '1\.5' is not a count"),
        ("timestamp,value\nnoon,1\n", r"v\.csv:2: timestamp 'noon' is not a date-time"),
        (
            "timestamp,value\n2015-02-26 21:47:53,1\n2015-02-26 21:42:53,1\n",
            r"v\.csv:3: timestamp 2015-02-26 21:42:53 is not after the row before",
        ),
        ("time,count\n2015-02-26 21:42:53,1\n", r"v\.csv:1: a volume series needs the header"),
    ],
)
def test_read_volume_errors_name_the_line(tmp_path: Path, body: str, message: str) -> None:
    """A bad value, a bad time, a row out of order or a wrong header is a one-line error."""
    path = tmp_path / "v.csv"
    path.write_text(body)
    with pytest.raises(BacktestError, match=message):
        read_volume(path)


def test_detect_kind(tmp_path: Path) -> None:
    """JSON Lines, volume series and mention CSV are told apart by name or first line."""
    (tmp_path / "a.jsonl").write_text("")
    (tmp_path / "b.txt").write_text('{"source": "x"}\n')
    (tmp_path / "c.csv").write_text("timestamp,value\n")
    (tmp_path / "d.csv").write_text("tweet_id,text\n")
    (tmp_path / "e.csv").write_text("\n\n")
    assert detect_kind(tmp_path / "a.jsonl") == "jsonl"
    assert detect_kind(tmp_path / "b.txt") == "jsonl"
    assert detect_kind(tmp_path / "c.csv") == "volume"
    assert detect_kind(tmp_path / "d.csv") == "csv"
    with pytest.raises(BacktestError, match="empty file"):
        detect_kind(tmp_path / "e.csv")
    with pytest.raises(BacktestError, match="file not found"):
        detect_kind(tmp_path / "missing.csv")


# --------------------------------------------------------------------------- volume replay


def test_one_injected_spike_is_exactly_one_incident() -> None:
    """A spike opens one incident 10m after it starts, scored 1.0 on that row only."""
    spike = 1000
    rows = _series(1100, spike_at=spike)
    result = replay_volume(rows, _rule(), brand="Acme")
    assert len(result.incidents) == 1
    incident = result.incidents[0]
    assert incident.changes[0].row == spike + 2
    assert incident.opened_at == datetime(
        2015, 3, 2, 9, 13, tzinfo=UTC
    )  # the end of its row's bucket
    assert [i for i, s in enumerate(result.scores) if s] == [spike + 2]
    assert set(result.scores) == {0.0, 1.0}
    facts = {f.name: f for f in incident.facts}
    assert facts["mentions in 30m"].value == 3 * 400 + sum(r.value for r in rows[spike - 3 : spike])
    assert facts["z-score of mentions in 30m vs the 144 × 30m before"].value > 5


def test_no_incident_before_warm_up_or_without_a_spike() -> None:
    """A steady series opens nothing, and a spike inside the 72.5h warm-up opens nothing."""
    assert replay_volume(_series(1100), _rule(), brand="Acme").incidents == []
    early = replay_volume(_series(600, spike_at=500), _rule(), brand="Acme")
    assert early.incidents == []


def test_no_look_ahead() -> None:
    """The result for the first N rows does not change when later rows are appended."""
    rows = _series(1100, spike_at=1000)
    full = replay_volume(rows, _rule(), brand="Acme")
    for n in (1001, 1002, 1003, 1050):
        part = replay_volume(rows[:n], _rule(), brand="Acme")
        assert part.scores == full.scores[:n]
        assert part.changes == [c for c in full.changes if c.row is not None and c.row < n]


def _bucket_by_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every VelocityWindows read sum its buckets (no running sums)."""
    monkeypatch.setattr(VelocityWindows, "_running", lambda self, brand: None)


def test_running_sums_and_bucket_reads_give_the_same_backtest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replay reading the windows' running sums scores every row as one summing buckets."""
    rows = _series(1050, spike_at=1000)
    fast = replay_volume(rows, _rule(), brand="Acme")
    _bucket_by_bucket(monkeypatch)
    plain = replay_volume(rows, _rule(), brand="Acme")
    assert fast.scores == plain.scores
    assert fast.changes == plain.changes


ROBUST_RULES = """
version: 1
brands:
  - name: Acme
rules:
  - name: volume-spike-robust
    levels:
      watch:
        when:
          type: any
          conditions:
            - {type: zscore, metric: total, window: 15m, history: 288, threshold: 5, min_volume: 10,
               transform: sqrt, center: median}
            - {type: zscore, metric: total, window: 1h, history: 72, threshold: 5, min_volume: 10,
               transform: log, center: mean, min_deviation: 0.1}
        for: 10m
        keep_firing_for: 30m
    resolve_after: 12h
routes:
  watch: [console]
sinks:
  console:
    type: console
"""


def test_running_sums_and_bucket_reads_agree_on_transformed_and_robust_zscores(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The z-score's transform and median options read the same counts either way, so
    running sums open the same incidents as summing buckets."""
    rules = select_rules(_config(ROBUST_RULES), None, default="volume-spike-robust")
    rows = _series(1050, spike_at=1000)
    fast = replay_volume(rows, rules, brand="Acme")
    _bucket_by_bucket(monkeypatch)
    plain = replay_volume(rows, rules, brand="Acme")
    assert fast.scores == plain.scores
    assert fast.changes == plain.changes
    assert any(fast.scores[1000:])


def test_write_scores_is_a_nab_results_file() -> None:
    """--out for a volume series is timestamp,value,anomaly_score with the input's own text."""
    rows = _series(3)
    out = io.StringIO()
    write_scores(rows, [0.0, 1.0, 0.0], out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "timestamp,value,anomaly_score"
    assert lines[2] == f"{rows[1].timestamp},{rows[1].raw_value},1.0"
    assert len(lines) == 4


# --------------------------------------------------------------------------- mention replay


class _Keywords:
    """A sentiment scorer for tests: negative when the text says 'broken'."""

    def score(self, text: str) -> Sentiment:
        return Sentiment("negative", -0.6) if "broken" in text else Sentiment("neutral", 0.0)


def _mention(i: int, at: datetime, text: str) -> MentionRecord:
    return MentionRecord(Mention("x", str(i), text, at, author=Author(f"u{i}")), i + 1)


def test_mention_replay_opens_the_expected_incident() -> None:
    """Six negative mentions in two minutes open the complaints rule at the second minute's end."""
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    calm = [_mention(i, t0 + timedelta(minutes=10 * i), "@acme nice day") for i in range(4)]
    things = ("checkout", "login page", "mobile app", "search", "billing page", "inbox")
    burst = [
        _mention(10 + i, t0 + timedelta(minutes=60, seconds=20 * i), f"@acme {thing} broken")
        for i, thing in enumerate(things)
    ]
    unrelated = [_mention(20, t0 + timedelta(minutes=61), "broken but not about the brand")]
    config = _config()
    result = replay_mentions(
        [*burst, *calm, *unrelated, burst[0]],
        config,
        _rule("complaints"),
        scorer=_Keywords(),
        explain=True,
    )
    assert result.distinct == 11
    (incident,) = result.incidents
    assert (incident.rule, incident.brand, incident.level) == ("complaints", "Acme", "watch")
    assert incident.opened_at == t0 + timedelta(minutes=62)
    assert str(incident.facts[0]) == "negative mentions in 15m = 6 (threshold 5)"
    assert incident.resolved_at is None  # the data ends while it is open
    # why: the complaints' words, against the calm hour before (the report prints it)
    why = incident.changes[0].explanation
    assert why is not None
    assert (why.negative, why.mentions, why.baseline_negative, why.baseline) == (
        True,
        6,
        False,
        4,
    )
    assert "broken" in {d.label for d in why.drivers}
    report = "\n".join(format_report(result))
    assert "       Why: " in report
    assert "“broken” 6 now, 0 before" in report
    assert incident.changes[0].to_dict()["explanation"]["drivers"]


def test_the_backtest_says_why_only_when_asked(tmp_path: Path) -> None:
    """``listener backtest --explain`` prints why each incident opened; without it, the
    replay stays as fast as it was and prints none."""
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    calm = [_mention(i, t0 + timedelta(minutes=10 * i), "@acme nice day") for i in range(4)]
    burst = [
        _mention(10 + i, t0 + timedelta(minutes=60, seconds=20 * i), f"@acme {w} is broken")
        for i, w in enumerate(("checkout", "login", "search", "billing", "inbox", "app"))
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("".join(json.dumps(r.mention.to_dict()) + "\n" for r in [*calm, *burst]))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    shown = {}
    for flag in ([], ["--explain"]):
        out = io.StringIO()
        args = parser.parse_args([str(path), "--no-progress", *flag])
        assert run_backtest(args, out, config=_config()) == 0
        shown[bool(flag)] = out.getvalue()
    assert "Why: " not in shown[False]
    assert "       Why: " in shown[True]
    assert "“broken” " in shown[True]


def test_mention_replay_counts_rows_for_the_brand_the_export_names() -> None:
    """Rows with a brand column count for that brand (added to the config), unmatched text."""
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    records = [
        MentionRecord(Mention("csv", str(i), "so broken", t0 + timedelta(seconds=i)), i, "Initech")
        for i in range(5)
    ]
    result = replay_mentions(records, _config(), _rule("complaints"), scorer=_Keywords())
    assert "Initech" in result.brands
    assert [(i.brand, i.rule) for i in result.incidents] == [("Initech", "complaints")]


def test_mention_replay_counts_a_repeated_key_once_for_the_brand_fed_first() -> None:
    """A key on several rows counts once, for the brand of the row the replay feeds first:
    within a step, rows matched from their text, then each named brand in the order the
    step first names it (so the Initech rows of a minute go in before its Hooli rows)."""
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)

    def row(key: str, second: int, brand: str | None, text: str = "so broken") -> MentionRecord:
        return MentionRecord(Mention("csv", key, text, t0 + timedelta(seconds=second)), 0, brand)

    records: list[MentionRecord] = []
    for i in range(6):
        records += [
            row(f"a{i}", 10 * i, "Initech"),
            row(f"b{i}", 10 * i + 1, "Hooli"),
            row(f"b{i}", 10 * i + 2, "Initech"),  # fed before the Hooli row of b{i}
            row(f"c{i}", 10 * i + 3, "Hooli"),
            row(f"c{i}", 10 * i + 4, None, "@acme so broken"),  # matched: fed first
        ]
    result = replay_mentions(records, _config(), _rule("complaints"), scorer=_Keywords())
    assert result.distinct == 18
    assert [(i.brand, i.rule) for i in result.incidents] == [
        ("Acme", "complaints"),
        ("Initech", "complaints"),
    ]


# --------------------------------------------------------------------------- rules, command line


def test_select_rules_defaults_and_errors() -> None:
    """The default rule is picked by name; a missing one is a config error listing the rules."""
    config = _config()
    assert [r.name for r in select_rules(config, None, default="volume-spike")] == ["volume-spike"]
    assert [r.name for r in select_rules(config, None, default=None)] == [
        "volume-spike",
        "complaints",
    ]
    without = _config(RULES.replace("name: volume-spike", "name: other"))
    with pytest.raises(
        ConfigError, match=r"no rule named 'volume-spike' \(rules: other, complaints\)"
    ):
        select_rules(without, None, default="volume-spike")
    with pytest.raises(ConfigError, match="pass --rule with one of them"):
        select_rules(config, ["nope"], default="volume-spike")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_run_backtest_writes_scores_and_a_report(tmp_path: Path) -> None:
    """`listener backtest FILE --config --out` replays a volume series with the default rule."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    series = tmp_path / "Twitter_volume_ACME.csv"
    rows = _series(1010, spike_at=1000)
    series.write_text("timestamp,value\n" + "".join(f"{r.timestamp},{r.raw_value}\n" for r in rows))
    out_csv = tmp_path / "scores.csv"
    out = io.StringIO()
    code = run_backtest(
        _args(str(series), "--config", str(rules), "--out", str(out_csv)), out, io.StringIO()
    )
    assert code == 0
    report = out.getvalue()
    assert "rules: volume-spike; brands: Twitter_volume_ACME" in report
    assert "incidents: 1" in report
    assert "opened 2015-03-02 09:13 UTC (line 1004) at watch" in report
    lines = out_csv.read_text().splitlines()
    assert len(lines) == 1011
    assert [n for n, line in enumerate(lines) if line.endswith(",1.0")] == [1003]


def test_run_backtest_rejects_a_map_for_a_volume_series(tmp_path: Path) -> None:
    """--map only applies to CSV mention files."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    series = tmp_path / "v.csv"
    series.write_text("timestamp,value\n2015-02-26 21:42:53,1\n")
    args = _args(str(series), "-c", str(rules), "--map", "text=x")
    with pytest.raises(BacktestError, match="--map applies to CSV mention files"):
        run_backtest(args, io.StringIO())


def test_progress_shows_rows_per_second() -> None:
    """The progress bar redraws with the share done and the rate, from its own clock."""
    ticks = iter([0.0, 2.0, 4.0])
    stream = io.StringIO()
    progress = Progress(1000, "backtest x", stream, clock=lambda: next(ticks))
    progress.update(500)
    progress.close(1000)
    text = stream.getvalue()
    assert "50.0% 500/1,000 rows  250 rows/s" in text
    assert text.endswith("100.0% 1,000/1,000 rows  250 rows/s\n")


def test_event_kinds_are_the_engines() -> None:
    """The incident changes a backtest reads are exactly the engine's event kinds."""
    assert set(typing.get_args(EventKind)) == backtest._EVENT_KINDS


def test_building_the_command_line_does_not_load_the_engine() -> None:
    """Importing listener.backtest for add_arguments leaves the processor and pydantic unloaded."""
    code = (
        "import sys, listener.backtest as b, argparse; b.add_arguments(argparse.ArgumentParser());"
        "print(sorted(m for m in ('listener.processor', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def _change(kind: str, incident: str, brand: str, rule: str, at: datetime) -> Change:
    return Change(kind, incident, rule, brand, "watch", None, at, ())  # type: ignore[arg-type]


def test_report_summarises_many_brands_and_ends_with_a_summary() -> None:
    """A thousand brands make one short header line, and the report ends with incidents
    and alerts per brand and rule and alerts per week."""
    start = datetime(2015, 3, 2, tzinfo=UTC)  # a Monday
    changes = [
        _change("opened", "i1", "b0", "neg", start + timedelta(days=1)),
        _change("resolved", "i1", "b0", "neg", start + timedelta(days=1, hours=2)),
        _change("opened", "i2", "b0", "neg", start + timedelta(days=15)),
        _change("opened", "i3", "b7", "spike", start + timedelta(days=16)),
    ]
    result = BacktestResult(
        kind="jsonl",
        source="m.jsonl",
        rules=("neg", "spike"),
        brands=tuple(f"b{i}" for i in range(1000)),
        rows=10,
        start=start,
        end=start + timedelta(days=20),
        elapsed=1.0,
        changes=changes,
    )
    lines = format_report(result)
    assert lines[1] == "rules: neg, spike; brands: 1,000 brands (first: b0, b1, b2 …)"
    assert max(len(line) for line in lines) < 120
    summary = lines[lines.index("summary: 3 incidents, 4 alerts") :]
    assert summary == [
        "summary: 3 incidents, 4 alerts",
        "  by brand and rule:",
        "    b0 / neg: 2 incidents, 3 alerts",
        "    b7 / spike: 1 incident, 1 alert",
        "  alerts per week: 1.3 on average over 3 weeks, at most 2 (week of 2015-03-02)",
        "    week of 2015-03-02: 2",
        "    week of 2015-03-09: 0",
        "    week of 2015-03-16: 2",
    ]


@pytest.mark.parametrize("module", ["backtest", "drill"])
def test_backtest_and_drill_compose_stages_without_swapping_a_processors_insides(
    module: str,
) -> None:
    """Neither assigns to an attribute of its processor (the old pinned-matcher swap):
    what a replay needs differently goes into the stages it builds and hands over."""
    import ast

    tree = ast.parse((Path(backtest.__file__).parent / f"{module}.py").read_text("utf-8"))
    swaps = [
        f"line {node.lineno}: {ast.unparse(target)}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign | ast.AugAssign | ast.AnnAssign)
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        for part in ast.walk(target)
        if isinstance(part, ast.Attribute)
        and isinstance(part.value, ast.Name)
        and part.value.id == "processor"
    ]
    assert swaps == []
