"""The one exception tree: every exception class in listener is a ListenerError, and the
diagram in ``listener/errors.py`` lists each one under one of its bases."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import listener
from listener import errors
from listener.errors import ListenerError

_SKIPPED = {"listener.__main__"}  # runs the CLI when imported
_NODE = re.compile(r"^(?P<indent>(?:[│ ]   )*)[├└]── (?P<name>\w+)")


def _modules() -> list[str]:
    found = pkgutil.walk_packages(listener.__path__, prefix="listener.")
    return sorted(m.name for m in found if m.name not in _SKIPPED)


def _exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined (not merely imported) at module level in listener."""
    classes: dict[str, type[BaseException]] = {}
    for name in _modules():
        module = importlib.import_module(name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == name
            ):
                classes[f"{name}.{value.__qualname__}"] = value
    return classes


def parse_tree(doc: str) -> list[tuple[str, str]]:
    """``(parent, child)`` for every node of a tree diagram whose root line is
    ``ListenerError``; lines that are not nodes (continuations, notes) are skipped."""
    lines = doc.splitlines()
    root = next(i for i, line in enumerate(lines) if line.strip() == "ListenerError")
    margin = lines[root].index("ListenerError")
    path = ["ListenerError"]
    edges: list[tuple[str, str]] = []
    for line in lines[root + 1 :]:
        if line.strip() and not line.startswith(" " * margin):
            break  # the diagram ended
        match = _NODE.match(line[margin:])
        if match is None:
            continue
        depth = len(match["indent"]) // 4 + 1
        del path[depth:]
        edges.append((path[-1], match["name"]))
        path.append(match["name"])
    return edges


def test_every_module_is_found() -> None:
    """The walk sees the package's modules, so the checks below cannot pass vacuously."""
    modules = _modules()
    assert {"listener.errors", "listener.matching.query", "listener.sinks.http"} <= set(modules)
    assert len(_exception_classes()) > 20


@pytest.mark.parametrize("qualified", sorted(_exception_classes()))
def test_exception_is_in_the_tree(qualified: str) -> None:
    """Every exception class defined in listener derives from ListenerError."""
    cls = _exception_classes()[qualified]
    assert issubclass(cls, ListenerError), f"{qualified} is not a ListenerError"


def test_the_diagram_lists_every_exception_under_a_base() -> None:
    """errors.py's diagram names every exception class, each under one of its real bases,
    and names nothing that does not exist."""
    edges = set(parse_tree(errors.__doc__ or ""))
    classes = [c for c in _exception_classes().values() if c is not ListenerError]
    missing = [
        f"{cls.__module__}.{cls.__qualname__}"
        for cls in classes
        if not any((base.__name__, cls.__name__) in edges for base in cls.__bases__)
    ]
    assert missing == [], "missing from the errors.py diagram, or not under a base"
    defined = {cls.__name__ for cls in classes}
    assert sorted({child for _, child in edges} - defined) == [], "drawn but not defined"


def test_the_diagram_parser_notices_a_missing_or_misplaced_class() -> None:
    """The parser reads nesting from the tree characters (so the test above can fail)."""
    doc = """
        ListenerError
        ├── SinkError        text
        │   │                continued
        │   └── SinkRejected  4xx
        │
        │   a note
        └── StoreError       the store
    """
    assert parse_tree(doc) == [
        ("ListenerError", "SinkError"),
        ("SinkError", "SinkRejected"),
        ("ListenerError", "StoreError"),
    ]


@pytest.mark.parametrize(
    "cls_path",
    [
        "listener.errors.DurationError",
        "listener.scoring.categories.CategoryError",
    ],
)
def test_value_error_compatibility_is_kept(cls_path: str) -> None:
    """Errors raised inside pydantic validators stay ValueErrors (pydantic reports them)."""
    module, _, name = cls_path.rpartition(".")
    assert issubclass(getattr(importlib.import_module(module), name), ValueError)
