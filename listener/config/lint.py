"""Warnings: a config that loads but probably does not do what its author meant.

A warning does not stop ``listener check`` (exit 0), startup or reload; ``check``
prints each as ``warning: FILE:LINE: PATH: MESSAGE (hint: ...)`` and the daemon logs
each once, as ``config_warning``, at startup and after each reload. What is warned of:

* a brand with a ``query`` that has a ``NOT`` and also aliases, keywords, handles or
  hashtags: a brand matches on any of those *or* on its query, so a mention containing
  an alias matches whatever the query's ``NOT`` says (``exclude`` is what applies to
  every match);
* a level whose ``exit`` is the same test as its ``when`` with another threshold:
  ``exit`` is tested only once ``when`` no longer holds, and the level is left when
  ``exit`` holds, so a tighter or equal ``exit`` never lets the level go and a looser one
  lets it go only while the value lies between the two thresholds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from listener.config.duration import format_duration
from listener.config.load import (
    DocPath,
    format_path,
    load_config_text,
    parse_yaml,
    read_config_text,
)
from listener.config.schema import BrandConfig, Config, LevelConfig
from listener.errors import ConfigError, ConfigProblem
from listener.matching.brands import compile_brand_query

_THRESHOLDS: dict[str, tuple[str, bool]] = {
    "volume": ("above", True),
    "negative_share": ("above", True),
    "spike": ("ratio", True),
    "zscore": ("threshold", True),
    "seasonal": ("ratio", True),
    "seasonal_zscore": ("threshold", True),
    "anomaly": ("threshold", True),
    "ramp": ("growth", True),
    "mean_sentiment": ("below", False),
}
"""Per condition type: the field that is its threshold, and whether a higher value is
the tighter test (``volume`` above 10 is tighter than above 5; ``mean_sentiment`` below
-0.5 is tighter than below -0.2)."""

Warn = Callable[[DocPath, str, str], None]


def load_with_warnings(path: str) -> tuple[Config, list[ConfigProblem]]:
    """Read the rules file once, then load it and lint it from that same text (blocking:
    the daemon's reload runs it in a worker thread, never on the event loop)."""
    text = read_config_text(path)
    config = load_config_text(text, path)
    return config, config_warnings(config, path, text)


def config_warnings(config: Config, file: str, text: str | None = None) -> list[ConfigProblem]:
    """Every warning about ``config``, loaded from ``file`` (``text``: its contents, when
    already read; else the file is read for line numbers), in file order."""
    lines: dict[DocPath, int] = {}
    try:
        source = Path(file).read_text(encoding="utf-8") if text is None else text
        _, doc = parse_yaml(source, file, env={})
        lines = doc.lines
    except (OSError, UnicodeDecodeError, ConfigError):
        pass  # the file changed under us: warnings without lines

    found: list[ConfigProblem] = []

    def warn(path: DocPath, message: str, hint: str) -> None:
        where = path
        while where not in lines and where:
            where = where[:-1]
        found.append(ConfigProblem(file, lines.get(where), format_path(path), message, hint))

    for i, brand in enumerate(config.brands):
        _brand_not_bypassed(brand, ("brands", i, "query"), warn)
    for i, rule in enumerate(config.rules):
        for name, level in rule.levels.items():
            _exit_same_test(level, ("rules", i, "levels", name, "exit"), warn)
    found.sort(key=lambda p: (p.line or 0, p.path))
    return found


def _brand_not_bypassed(brand: BrandConfig, path: DocPath, warn: Warn) -> None:
    found = not_bypassed(brand)
    if found is not None:
        warn(path, *found)


def not_bypassed(brand: BrandConfig) -> tuple[str, str] | None:
    """When the brand's query has a ``NOT`` that its aliases, keywords, handles or
    hashtags bypass (a brand matches on any of them or on its query): the warning and
    its hint (``listener check`` and the console's query preview say the same)."""
    query = compile_brand_query(brand, "query")
    if query is None or not query.negated:
        return None
    fields = [f for f in ("aliases", "keywords", "handles", "hashtags") if getattr(brand, f)]
    if not fields:
        return None
    terms = [t for f in fields for t in getattr(brand, f)]
    negated = " OR ".join(query.negated)
    exclude = f"({brand.exclude}) OR {negated}" if brand.exclude else negated
    exclude = "'" + exclude.replace("'", "''") + "'"  # YAML: '@' and '#' cannot start a value
    return (
        f"the query's NOT ({negated}) does not apply to mentions matched by the brand's "
        f"{_join(fields)} ({', '.join(repr(t) for t in terms[:3])}"
        f"{', ...' if len(terms) > 3 else ''}): a brand matches on any of those or on its "
        f"query, so a mention with {terms[0]!r} and {query.negated[0]} still matches",
        f"to drop such mentions whatever matched them, write exclude: {exclude}; or "
        f"remove the {_join(fields, 'and')} and let the query alone say what the brand is",
    )


def _exit_same_test(level: LevelConfig, path: DocPath, warn: Warn) -> None:
    when, exit_ = level.when, level.exit
    if exit_ is None or exit_.type != when.type or when.type not in _THRESHOLDS:
        return
    field, higher_is_tighter = _THRESHOLDS[when.type]
    if when.model_dump(exclude={field}) != exit_.model_dump(exclude={field}):
        return  # another metric, window or filter: a different test
    enter: float = getattr(when, field)
    leave: float = getattr(exit_, field)
    tighter = leave >= enter if higher_is_tighter else leave <= enter
    # as the value falls back (rises back, for mean_sentiment) past ``leave``
    past = "falls below" if higher_is_tighter else "rises above"
    which = f"{field}: {_num(leave)}, when: {field}: {_num(enter)}"
    if tighter:
        message = (
            f"exit is the same {when.type} test as when ({which}): exit is tested only "
            "once when no longer holds, and then it cannot hold, so the level is never left "
            "and the incident never resolves"
        )
    else:
        message = (
            f"exit is the same {when.type} test as when, looser ({which}): exit is tested "
            "only once when no longer holds and the level is left when exit holds, so it is "
            f"left only if an evaluation finds the value between {_num(leave)} and "
            f"{_num(enter)}; once it {past} {_num(leave)} the level is kept, and the incident "
            "open, until the value comes back between the two"
        )
    wrapped = f"{{type: not, condition: {_flow(exit_)}}}"
    if tighter:
        hint = (
            "exit says when to leave: remove it to leave as soon as when no longer holds; "
            f"to stay until the value {past} a looser threshold, write 'exit: {{type: not, "
            f"condition: ...}}' around the same test with that threshold"
        )
    else:
        hint = (
            f"exit says when to leave: to stay until the value {past} {_num(leave)}, write "
            f"'exit: {wrapped}'; or remove exit to leave as soon as when no longer holds"
        )
    warn(path, message, hint)


def _join(words: list[str], last: str = "or") -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _flow(model: BaseModel) -> str:
    """A condition as a YAML flow mapping, defaults left out."""
    items = model.model_dump(exclude_defaults=True, by_alias=True)
    items = {"type": items.pop("type"), **items}
    return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in items.items()) + "}"


def _value(value: Any) -> str:
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return _num(value)
    return str(value)
