"""bench/languages.py: which JSON objects count as labelled posts, and each post once."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_languages", REPO / "bench" / "languages.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_languages"] = module
    spec.loader.exec_module(module)
    return module


languages = _load()

# an X API v2 page: posts in data and in includes.tweets, a retweet's original in both
# places, a user (description, no text) and objects that are not posts
PAGE = {
    "data": [
        {"id": "1", "text": "RT @a: Guten Morgen zusammen", "lang": "de", "author_id": "9"},
        {"id": "2", "text": "#POIUYTREWQ", "lang": "und"},
        {"id": "3", "text": "Selamat pagi semuanya", "lang": "in"},
        {"id": 4, "text": "good morning all", "lang": "en-GB"},
    ],
    "includes": {
        "users": [{"id": "9", "description": "hello", "lang": "en"}],
        "tweets": [
            {"id": "5", "text": "Guten Morgen zusammen", "lang": "de"},
            {"id": "3", "text": "Selamat pagi semuanya", "lang": "in"},
        ],
    },
    "meta": {"text": 7, "lang": "en"},
    "errors": [{"text": "not a post: no lang"}, {"text": "nor this", "lang": None}],
}


def test_labelled_posts_walks_every_object_for_text_and_lang() -> None:
    found = list(languages.labelled_posts(PAGE))
    assert found == [
        ("1", "RT @a: Guten Morgen zusammen", "de"),
        ("2", "#POIUYTREWQ", "und"),
        ("3", "Selamat pagi semuanya", "in"),
        ("4", "good morning all", "en-GB"),
        ("5", "Guten Morgen zusammen", "de"),
        ("3", "Selamat pagi semuanya", "in"),
    ]


def test_labelled_posts_of_a_bare_list_and_a_post_without_id() -> None:
    assert list(languages.labelled_posts([[{"text": "hola", "lang": "es"}], "x", 3])) == [
        (None, "hola", "es")
    ]


def test_distinct_posts_dedupes_by_id_and_drops_non_languages() -> None:
    nested = {"statuses": [{"id": "5", "text": "Guten Morgen zusammen", "lang": "de"}]}
    no_id = {"text": "hola a todos", "lang": "es"}
    posts = languages.distinct_posts(
        [PAGE, nested, no_id, dict(no_id), {"text": "qst", "lang": "qst"}]
    )
    assert posts == [
        ("RT @a: Guten Morgen zusammen", "de", "de"),
        ("Selamat pagi semuanya", "id", "in"),  # X's withdrawn code, normalised
        ("good morning all", "en", "en-GB"),
        ("Guten Morgen zusammen", "de", "de"),
        ("hola a todos", "es", "es"),  # no id: once by its text
    ]


def test_read_jsonl_skips_blank_and_undecodable_lines(tmp_path: Path) -> None:
    path = tmp_path / "page.jsonl"
    path.write_text('{"data": []}\n\n{"data": [\n[1]\n', encoding="utf-8")
    assert languages.read_jsonl([path]) == ([{"data": []}, [1]], 1)
