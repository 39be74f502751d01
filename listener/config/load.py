"""rules.yaml → YAML with line numbers → ``${ENV}`` interpolation → schema → cross-checks.

Every problem becomes a :class:`~listener.errors.ConfigProblem` naming the file, the
line, the path inside the document (``rules[2].levels.critical.when``) and a hint.
All problems are collected and raised together as one :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from listener.config.schema import DIGEST_SINK_TYPES, SENTIMENT_FORMS, Config
from listener.errors import ConfigError, ConfigProblem, DurationError, ListenerError
from listener.matching.brands import compile_brand_query
from listener.matching.query import QuerySyntaxError
from listener.templates import check_template

PathItem = str | int
DocPath = tuple[PathItem, ...]

_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def format_path(path: DocPath) -> str:
    """``("rules", 2, "levels", "critical")`` → ``rules[2].levels.critical``."""
    out = ""
    for item in path:
        if isinstance(item, int):
            out += f"[{item}]"
        else:
            out += f".{item}" if out else str(item)
    return out


def did_you_mean(word: str, known: list[str]) -> str | None:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def _hint(known: list[str], word: str | None, what: str) -> str:
    text = f"known {what}: {', '.join(sorted(known))}"
    guess = did_you_mean(word, known) if word else None
    return f"{text}; {guess}" if guess else text


# --------------------------------------------------------------------------- YAML with lines


class _Doc:
    """Parsed YAML plus the line of every node, keyed by document path."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[DocPath, int] = {}
        self.problems: list[ConfigProblem] = []
        self.substituted: list[str] = []
        """Every value taken from the environment (``${NAME}``), for redaction."""

    def line(self, path: DocPath) -> int | None:
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]

    def problem(self, path: DocPath, message: str, hint: str | None = None) -> None:
        self.problems.append(
            ConfigProblem(self.file, self.line(path), format_path(path), message, hint)
        )

    def build(self, node: yaml.Node, path: DocPath, env: Mapping[str, str]) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)  # a key's own line wins
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node, merged in self._pairs(node, path):
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problem(path, "mapping keys must be plain values")
                    continue
                key = self._scalar(key_node, path)
                if key is _UNREADABLE or (merged and key in out):
                    continue  # a merged key is overridden by the mapping's own
                sub = (*path, key)
                if key in out:
                    self.lines[sub] = key_node.start_mark.line + 1
                    self.problem(sub, f"duplicate key '{key}'", "each key may appear once")
                    continue
                self.lines[sub] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, sub, env)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i), env) for i, item in enumerate(node.value)]
        value = self._scalar(node, path)
        if isinstance(value, str) and "$" in value:
            value = self._interpolate(value, path, env)
        return None if value is _UNREADABLE else value

    def _pairs(
        self, node: yaml.MappingNode, path: DocPath
    ) -> list[tuple[yaml.Node, yaml.Node, bool]]:
        """The keys and values of a mapping with its merge keys (``<<: *anchor`` or
        ``<<: [*a, *b]``) expanded: its own keys first, then those merged (flagged), in
        the order where the first wins, as YAML's merge key type says."""
        own: list[tuple[yaml.Node, yaml.Node, bool]] = []
        merged: list[tuple[yaml.Node, yaml.Node, bool]] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE_TAG:
                own.append((key_node, value_node, False))
                continue
            sources = (
                value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
            )
            for source in sources:
                if isinstance(source, yaml.MappingNode):
                    merged.extend((k, v, True) for k, v, _ in self._pairs(source, path))
                    continue
                self.problems.append(
                    ConfigProblem(
                        self.file,
                        source.start_mark.line + 1,
                        format_path(path),
                        "a merge key (<<) takes a mapping or a list of mappings",
                        "write '<<: *name' where '&name' marks a mapping",
                    )
                )
        return own + merged

    def _scalar(self, node: yaml.Node, path: DocPath) -> Any:
        """The value of a plain scalar, or ``_UNREADABLE`` after recording why not
        (``2020-99-99`` looks like a date but is none, a 5000-digit integer ...)."""
        loader = yaml.SafeLoader("")
        try:
            return loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else str(exc)
            kind = str(node.tag).rsplit(":", 1)[-1]
            self.problems.append(
                ConfigProblem(
                    self.file,
                    node.start_mark.line + 1,
                    format_path(path),
                    f"cannot read {node.value!r} as a {kind}: {reason}",
                    "quote it to make it a string",
                )
            )
            return _UNREADABLE
        finally:
            loader.dispose()

    def _interpolate(self, value: str, path: DocPath, env: Mapping[str, str]) -> str:
        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, default = m.group(1), m.group(2)
            if name in env:
                self.substituted.append(env[name])
                return env[name]
            if default is not None:
                return default
            self.problem(
                path,
                f"environment variable {name} is not set",
                f"export {name}=... before starting, or write ${{{name}:-default}}",
            )
            return ""

        return _ENV.sub(sub, value)


_UNREADABLE = object()
"""A scalar that could not be read (already reported)."""

_MERGE_TAG = "tag:yaml.org,2002:merge"
MAX_ALIAS_VALUES = 10_000
"""How many values aliases may add to a document (each ``*alias`` adds every value of
its anchor's node again): enough to repeat blocks, far too few for an alias bomb."""
MAX_DEPTH = 100
"""How deeply collections may nest."""


class _Refused(yaml.YAMLError, ListenerError):
    """A YAML feature or size that rules.yaml does not accept, at ``line``. Caught in this
    module and reported as a ConfigProblem."""

    error_type = "config"

    def __init__(self, line: int, message: str, hint: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message
        self.hint = hint


def _tag_name(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag


class _Loader(yaml.SafeLoader):
    """SafeLoader's composer, with limits: no explicit tags (on scalars or collections),
    no alias inside its own anchor's node, at most :data:`MAX_ALIAS_VALUES` values added
    by aliases and :data:`MAX_DEPTH` levels of nesting. Composing builds nodes only; no
    value is constructed here."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open: set[str] = set()  # anchors whose node is being composed
        self._sizes: dict[str, int] = {}  # anchor → values in its node, aliases expanded
        self._values = 0  # values in the document so far, aliases expanded
        self._alias_values = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        line = event.start_mark.line + 1
        anchor: str | None = event.anchor
        if isinstance(event, yaml.AliasEvent):
            if anchor in self._open:
                raise _Refused(
                    line,
                    f"alias *{anchor} is inside the value it refers to (a recursive alias)",
                    "an alias can only repeat a value defined before it; write the value out",
                )
            size = self._sizes.get(anchor or "", 0)
            self._values += size
            self._alias_values += size
            if self._alias_values > MAX_ALIAS_VALUES:
                raise _Refused(
                    line,
                    f"aliases expand to more than {MAX_ALIAS_VALUES} values",
                    "aliases may repeat small blocks only; write the values out",
                )
            return typing.cast(yaml.Node, super().compose_node(parent, index))
        if anchor is not None and anchor in self.anchors:
            first = self.anchors[anchor].start_mark.line + 1
            raise _Refused(
                line,
                f"anchor &{anchor} is defined twice (first on line {first})",
                "give each anchor its own name",
            )
        tag: str | None = getattr(event, "tag", None)
        if tag is not None:
            raise _Refused(
                line,
                f"YAML tags are not supported (found {_tag_name(tag)})",
                "remove the tag; quote a value to make it a string",
            )
        if self._depth >= MAX_DEPTH:
            raise _Refused(
                line,
                f"nested more than {MAX_DEPTH} levels deep",
                "check for unbalanced [ or { on this line",
            )
        before = self._values
        self._values += 1
        self._depth += 1
        if anchor is not None:
            self._open.add(anchor)
        node = typing.cast(yaml.Node, super().compose_node(parent, index))
        self._depth -= 1
        if anchor is not None:
            self._open.discard(anchor)
            self._sizes[anchor] = self._values - before
        return node


def _unprintable(text: str, file: str) -> ConfigProblem | None:
    """The first character YAML does not allow (NUL, other control characters)."""
    found = yaml.reader.Reader.NON_PRINTABLE.search(text)
    if found is None:
        return None
    char = found.group()
    line = text.count("\n", 0, found.start()) + 1
    column = found.start() - (text.rfind("\n", 0, found.start()) + 1) + 1
    what = "a NUL character" if char == "\0" else "the character"
    return ConfigProblem(
        file,
        line,
        "",
        f"{what} U+{ord(char):04X} at column {column}: YAML allows printable characters only",
        "remove it (a binary file, or a copy and paste gone wrong?)",
    )


def parse_yaml(text: str, file: str, env: Mapping[str, str] | None = None) -> tuple[Any, _Doc]:
    """Parse YAML text into plain data, recording every node's line; interpolate ``${ENV}``."""
    doc = _Doc(file)
    if (bad := _unprintable(text, file)) is not None:
        raise ConfigError([bad])
    try:
        root = yaml.compose(text, Loader=_Loader)
    except _Refused as exc:
        raise ConfigError([ConfigProblem(file, exc.line, "", exc.message, exc.hint)]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        detail = " ".join(p for p in (exc.context, exc.problem) if p)
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    line,
                    "",
                    f"not valid YAML: {detail}",
                    "check indentation and quoting on this line or the one before",
                )
            ]
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"not valid YAML: {exc}")]) from None
    if root is None:
        return None, doc
    data = doc.build(root, (), os.environ if env is None else env)
    return data, doc


# --------------------------------------------------------------------------- pydantic errors


def _unwrap(annotation: Any) -> list[Any]:
    """The concrete candidate types behind Annotated/Optional/Union."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            out.extend(_unwrap(arg))
        return out
    return [annotation]


def _type_tag(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("type")
    if field is None:
        return None
    args = typing.get_args(field.annotation)
    return str(args[0]) if args else None


def _walk(loc: tuple[int | str, ...], data: Any) -> tuple[DocPath, list[Any]]:
    """Follow a pydantic ``loc`` through the data and the schema.

    Returns the document path (union tags and validator names removed) and the
    candidate schema types at that point.
    """
    path: list[PathItem] = []
    candidates: list[Any] = [Config]
    for item in loc:
        models = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if isinstance(data, dict) and any(_type_tag(m) for m in models):
            tagged = [m for m in models if _type_tag(m) == data.get("type")]
            if tagged:
                candidates = tagged
                models = tagged
            if item == data.get("type") and item not in data:
                continue  # pydantic puts the union tag in loc
        if isinstance(data, dict) and item in data:
            path.append(item)
            data = data[item]
            nxt: list[Any] = []
            for c in candidates:
                if isinstance(c, type) and issubclass(c, BaseModel):
                    field = next(
                        (f for n, f in c.model_fields.items() if (f.alias or n) == item), None
                    )
                    if field is not None:
                        nxt.extend(_unwrap(field.annotation))
                elif typing.get_origin(c) is dict:
                    nxt.extend(_unwrap(typing.get_args(c)[1]))
            candidates = nxt
        elif isinstance(data, list) and isinstance(item, int) and 0 <= item < len(data):
            path.append(item)
            data = data[item]
            candidates = [
                a
                for c in candidates
                if typing.get_origin(c) is list
                for a in _unwrap(typing.get_args(c)[0])
            ]
        elif isinstance(item, str) and not isinstance(data, dict | list):
            continue  # a validator name such as 'function-after[...]'
        elif item in SENTIMENT_FORMS or item == "[key]":
            continue  # the tag of scoring.sentiment's form (one scorer or a map); a map key
        else:
            path.append(item)
            data = None
            candidates = []
    return tuple(path), candidates


def _kind(path: DocPath) -> str:
    if path and path[0] == "sources":
        return "source"
    if path and path[0] == "sinks":
        return "sink"
    if path and path[0] == "scoring":
        return "scorer"
    return "condition"


def _problem_from_error(err: ErrorDetails, data: Any, doc: _Doc) -> None:
    kind = err["type"]
    loc = tuple(err["loc"])
    if kind == "extra_forbidden":
        path, _ = _walk(loc[:-1], data)
        _, parent = _walk(loc[:-1], data)
        key = str(loc[-1])
        known: list[str] = []
        for m in parent:
            if isinstance(m, type) and issubclass(m, BaseModel):
                known = [f.alias or n for n, f in m.model_fields.items()]
                break
        doc.problem((*path, key), f"unknown key '{key}'", _hint(known, key, "keys"))
        return
    path, _ = _walk(loc, data)
    ctx = err.get("ctx") or {}
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        expected = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",")]
        what = _kind(path)
        if kind == "union_tag_not_found":
            doc.problem(path, f"this {what} has no 'type'", _hint(expected, None, f"{what} types"))
        else:
            tag = str(ctx.get("tag"))
            doc.problem(
                (*path, "type"),
                f"unknown {what} type '{tag}'",
                _hint(expected, tag, f"{what} types"),
            )
        return
    if kind == "literal_error" and path and path[-1] == "type":
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        what = _kind(path)
        doc.problem(
            path,
            f"unknown {what} type {err['input']!r}",
            _hint(expected, str(err["input"]), f"{what} types"),
        )
        return
    if kind == "missing":
        doc.problem(path, f"missing required key '{path[-1]}'" if path else "missing value")
        return
    if any(p.path == format_path(path) for p in doc.problems):
        return  # already reported (e.g. an unset ${ENV} left this value empty)
    message = err["msg"]
    if kind in ("greater_than", "greater_than_equal") and "timedelta" in message:
        message = "must be more than 0s" if kind == "greater_than" else "cannot be negative"
    elif kind == "string_pattern_mismatch" and "https?" in str(ctx.get("pattern", "")):
        message = f"{err['input']!r} is not an http:// or https:// URL"
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    if isinstance(error := ctx.get("error"), DurationError):
        doc.problem(path, error.message, error.hint)
        return
    hint = ctx.get("hint")  # set by schema._invalid()
    doc.problem(path, message, hint if isinstance(hint, str) else None)


# --------------------------------------------------------------------------- cross-checks


def _cross_check(config: Config, doc: _Doc) -> None:
    brand_names = [b.name for b in config.brands]
    seen: set[str] = set()
    for i, brand in enumerate(config.brands):
        if brand.name.casefold() in seen:
            doc.problem(
                ("brands", i, "name"),
                f"duplicate brand '{brand.name}'",
                "brand names must be unique",
            )
        seen.add(brand.name.casefold())
        for field in ("query", "exclude"):
            try:
                compile_brand_query(brand, field)
            except QuerySyntaxError as exc:
                doc.problem(("brands", i, field), exc.detail, exc.hint)
    sinks = list(config.sinks)
    level_names = {lvl for rule in config.rules for lvl in rule.levels}
    health_levels = {config.source_health.level} | {
        src.health.level for src in config.sources.values() if src.health is not None
    }
    level_names |= {"source-health"} | health_levels
    rule_names: set[str] = set()

    def check_routes(routes: dict[str, list[str]], where: DocPath) -> None:
        for level, targets in routes.items():
            if level != "default" and level not in level_names:
                doc.problem(
                    (*where, level),
                    f"no rule has a level named '{level}'",
                    _hint([*sorted(level_names), "default"], level, "levels"),
                )
            for j, sink in enumerate(targets):
                if sink not in config.sinks:
                    doc.problem(
                        (*where, level, j),
                        f"unknown sink '{sink}'",
                        _hint(sinks, sink, "sinks") if sinks else "define it under sinks:",
                    )

    check_routes(config.routes, ("routes",))
    templates: list[tuple[DocPath, str | None]] = [
        (("notifications", "summary"), config.notifications.summary)
    ]
    templates += [(("rules", i, "summary"), r.summary) for i, r in enumerate(config.rules)]
    for where, template in templates:
        if template is not None and (error := check_template(template)) is not None:
            doc.problem(where, error, "see docs/rules.md#notifications for the fields you can use")
    for i, inhibit in enumerate(config.notifications.inhibit):
        for part in ("source", "target"):
            for j, level in enumerate(getattr(inhibit, part)):
                if level not in level_names:
                    doc.problem(
                        ("notifications", "inhibit", i, part, j),
                        f"no rule has a level named '{level}'",
                        _hint(sorted(level_names), level, "levels"),
                    )

    def check_brands(wanted: list[str] | None, where: DocPath) -> None:
        for j, brand in enumerate(wanted or []):
            if brand not in brand_names:
                doc.problem(
                    (*where, j), f"unknown brand '{brand}'", _hint(brand_names, brand, "brands")
                )

    for name, source in config.sources.items():
        check_brands(source.brands, ("sources", name, "brands"))
    if config.sources and not any(
        key in config.routes for key in ("source-health", "default", *health_levels)
    ):
        doc.problem(
            ("routes",),
            "source-health alerts have no route",
            "add 'routes: {source-health: [sink, ...]}' so someone hears when a "
            "source stops working",
        )
    for name, digest in config.digests.items():
        check_brands(digest.brands, ("digests", name, "brands"))
        for j, sink in enumerate(digest.route):
            target = config.sinks.get(sink)
            if target is None:
                doc.problem(
                    ("digests", name, "route", j),
                    f"unknown sink '{sink}'",
                    _hint(sinks, sink, "sinks") if sinks else "define it under sinks:",
                )
            elif target.type not in DIGEST_SINK_TYPES:
                doc.problem(
                    ("digests", name, "route", j),
                    f"sink '{sink}' is a {target.type} sink, which pages per incident and "
                    "cannot take a digest",
                    f"route digests to {', '.join(DIGEST_SINK_TYPES)} sinks",
                )
    for i, rule in enumerate(config.rules):
        if rule.name in rule_names:
            doc.problem(
                ("rules", i, "name"),
                f"duplicate rule name '{rule.name}'",
                "rule names must be unique",
            )
        rule_names.add(rule.name)
        check_brands(rule.brands, ("rules", i, "brands"))
        if rule.routes is not None:
            check_routes(rule.routes, ("rules", i, "routes"))
        for level, cfg in rule.levels.items():
            for k, step in enumerate(cfg.escalate):
                for j, sink in enumerate(step.route):
                    if sink not in config.sinks:
                        doc.problem(
                            ("rules", i, "levels", level, "escalate", k, "route", j),
                            f"unknown sink '{sink}'",
                            _hint(sinks, sink, "sinks"),
                        )
            if not rule.route_for(level, config.routes):
                doc.problem(
                    ("rules", i, "levels", level),
                    f"level '{level}' has no route",
                    f"add 'routes: {{{level}: [sink, ...]}}' or a 'default' route",
                )


# --------------------------------------------------------------------------- entry points


def load_config_text(text: str, file: str, env: Mapping[str, str] | None = None) -> Config:
    """Validate rules.yaml text; raise :class:`ConfigError` listing every problem."""
    data, doc = parse_yaml(text, file, env)
    if not isinstance(data, dict):
        raise ConfigError(
            [
                ConfigProblem(
                    file,
                    doc.line(()) or 1,  # an empty file: its first line
                    "",
                    "the file must be a mapping",
                    "start with 'brands:', 'sources:', 'rules:' ...",
                )
            ]
        )
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            _problem_from_error(err, data, doc)
    if config is not None and not doc.problems:
        _cross_check(config, doc)
    if doc.problems or config is None:
        doc.problems.sort(key=lambda p: (p.line or 0, p.path))
        raise ConfigError(doc.problems)
    config._from_environment = tuple(v for v in doc.substituted if v)
    return config


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a rules file."""
    return load_config_text(_read(Path(path)), str(path), env)


def read_config_text(path: str | Path) -> str:
    """The text of a rules file, read once (a ConfigError, with the line, if it cannot be
    read or is not UTF-8): for callers that load it and also need the text itself."""
    return _read(Path(path))


def _read(path: Path) -> str:
    """The text of a rules file; a ConfigError (with the line) if it is not UTF-8."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    None,
                    "",
                    "file not found",
                    "pass --config PATH or run from the repo root",
                )
            ]
        ) from None
    except OSError as exc:
        raise ConfigError([ConfigProblem(str(path), None, "", f"cannot read: {exc}")]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            [
                ConfigProblem(
                    str(path),
                    line,
                    "",
                    f"not valid UTF-8: byte 0x{data[exc.start]:02x} at column {column}",
                    "save the file as UTF-8",
                )
            ]
        ) from None


def line_of(file: str | Path, path: DocPath) -> int | None:
    """The line of ``path`` in a rules file (for problems found after loading)."""
    try:
        _, doc = parse_yaml(_read(Path(file)), str(file), env={})
    except (OSError, ConfigError):
        return None
    return doc.line(path)


_UNSET = "http://unset.invalid/"
_UNSET_NAME = re.compile(re.escape(_UNSET) + r"([A-Za-z_][A-Za-z0-9_]*)")


def load_config_without_secrets(
    path: str | Path, env: Mapping[str, str] | None = None
) -> tuple[Config, dict[str, list[str]]]:
    """For commands that poll no source and deliver to no sink (``score``, ``report``,
    ``backtest``, ``drill``): like :func:`load_config`, but an unset ``${VARIABLE}`` inside
    a sink or a source does not stop them.

    Returns the config and, for each block that lacks a variable (``"sinks.pager"``,
    ``"sources.x"``), the variables it lacks. Such a block holds a placeholder and must
    not be used. An unset variable anywhere else is still an error (as is anything the
    placeholder does not fit, e.g. a port): then this raises what :func:`load_config` does.
    """
    env = os.environ if env is None else env
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return load_config(path, env), {}  # raises the usual one-line error
    missing = {
        m.group(1)
        for m in _ENV.finditer(text)
        if m.group(1) and m.group(2) is None and m.group(1) not in env
    }
    if not missing:
        return load_config(path, env), {}
    try:
        config = load_config(path, {**env, **{name: _UNSET + name for name in missing}})
    except ConfigError:
        return load_config(path, env), {}
    from listener.config.secrets import secret_values

    def lacking(model: BaseModel) -> list[str]:
        seen = " ".join([model.model_dump_json(), *secret_values(model)])
        return sorted(set(_UNSET_NAME.findall(seen)))

    rest = config.model_copy(update={"sinks": {}, "sources": {}})
    if lacking(rest):
        return load_config(path, env), {}  # unset outside sinks and sources: the usual error
    unusable: dict[str, list[str]] = {}
    for section, blocks in (("sinks", config.sinks), ("sources", config.sources)):
        for name, block in blocks.items():
            if names := lacking(block):
                unusable[f"{section}.{name}"] = names
    return config, unusable
