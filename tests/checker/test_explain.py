"""The explanation page: well-formed, self-contained, and it shows what the brief asks."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

import pytest

from checker.explain import render_fragment, render_html
from checker.history import Op, to_jsonable
from checker.linearizable import check
from checker.models import MODELS

VOID = {"meta", "br", "img", "input", "link", "hr", "rect", "line", "path", "circle"}


class StrictParser(HTMLParser):
    """Checks that tags nest and close, and collects every src/href and tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.links.extend(value or "" for name, value in attrs if name in ("src", "href"))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.links.extend(value or "" for name, value in attrs if name in ("src", "href"))

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        assert self.stack, f"</{tag}> closes nothing"
        assert self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1]}>"
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], f"unclosed tags: {parser.stack}"
    return parser


def assert_self_contained(parser: StrictParser, page: str) -> None:
    assert "script" not in parser.tags
    for link in parser.links:
        assert not link.startswith(("http://", "https://", "//")), link
    assert "@import" not in page and "url(http" not in page


def ops(*events: tuple[str, int, str, Any]) -> list[Op]:
    return [
        Op(index=i, time=1000 * i, type=t, process=p, f=f, value=v)
        for i, (t, p, f, v) in enumerate(events)
    ]


# p0 writes 1 then 2; p1 reads 1 after that (impossible); p2's write of 3 overlaps.
INVALID = ops(
    ("invoke", 0, "write", 1),
    ("ok", 0, "write", 1),
    ("invoke", 2, "write", 3),
    ("invoke", 0, "write", 2),
    ("ok", 0, "write", 2),
    ("ok", 2, "write", 3),
    ("invoke", 1, "read", None),
    ("ok", 1, "read", 1),
    ("invoke", 3, "write", 9),
)

VALID = ops(
    ("invoke", 0, "write", 1),
    ("ok", 0, "write", 1),
    ("invoke", 1, "read", None),
    ("ok", 1, "read", 1),
)


def run_check(history: list[Op], model: str = "cas-register", **kwargs: Any) -> dict[str, Any]:
    return check(history, MODELS[model](), **kwargs)


def test_invalid_page_shows_the_culprit_lanes_window_paths_and_states() -> None:
    result = run_check(INVALID)
    assert result["valid"] is False
    page = render_html(INVALID, result)
    parser = parse(page)
    assert_self_contained(parser, page)
    text = " ".join(parser.text)
    assert "not linearizable" in text
    assert "The operation that cannot be linearized" in text
    assert "read 1" in text  # the culprit, described
    assert "svg" in parser.tags
    assert "failing window" in text
    # One lane per process that took part.
    for process in (0, 1, 2):
        assert f"p {process}" in text
    assert "Partial linearizations" in text and "States the model could be in" in text
    assert "⇒" in text  # the model state after each step of a partial linearization
    assert 'stroke="#b71c1c"' in page  # the culprit's outline


def test_fragment_renders_from_a_result_read_back_from_json() -> None:
    result = run_check(INVALID)
    plain = json.loads(json.dumps(to_jsonable(result)))
    fragment = render_fragment(plain)
    parser = parse(fragment)
    assert_self_contained(parser, fragment)
    assert fragment.startswith('<section class="rl-explain">')
    assert "The operation that cannot be linearized" in " ".join(parser.text)


def test_valid_and_unknown_results_render_sensibly() -> None:
    valid = run_check(VALID)
    assert valid["valid"] is True
    page = render_html(VALID, valid)
    parser = parse(page)
    assert_self_contained(parser, page)
    assert "the history is linearizable" in " ".join(parser.text)
    assert "cannot be linearized" not in page
    unknown = {"valid": "unknown", "reason": "time limit of 0.5 s reached"}
    page = render_html(VALID, unknown)
    text = " ".join(parse(page).text)
    assert "did not finish" in text and "time limit of 0.5 s reached" in text


@pytest.mark.parametrize(
    "result",
    [
        {},
        {"valid": False},
        {"valid": False, "op": "not an op", "final_paths": 7, "states": None},
        {
            "valid": False,
            "op": {"f": "read"},
            "final_paths": [[{"op": 3}], "x"],
            "concurrent": [1, None],
        },
        {"valid": True, "weird": {"nested": [1, {2, 3}]}},
        {"valid": "unknown", "error": "<script>alert(1)</script>"},
    ],
)
def test_odd_results_never_break_the_page(result: dict[str, Any]) -> None:
    page = render_html(INVALID, result)
    parser = parse(page)
    assert_self_contained(parser, page)
    assert "<script>" not in page  # escaped, not injected
    assert render_fragment(result)


def test_large_history_keeps_the_page_bounded() -> None:
    events: list[tuple[str, int, str, Any]] = []
    for i in range(3000):
        events.append(("invoke", i % 5, "write", i))
        events.append(("ok", i % 5, "write", i))
    events.append(("invoke", 7, "read", None))
    events.append(("ok", 7, "read", -5))
    history = ops(*events)
    result = run_check(history, time_limit=60)
    assert result["valid"] is False
    page = render_html(history, result)
    parse(page)
    assert page.count("<rect") < 1000
    assert len(page) < 3_000_000
