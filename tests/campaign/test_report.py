"""report.html from synthetic runs: well-formed, self-contained, and saying the right things."""

from __future__ import annotations

import base64
import html
import json
import re
from html.parser import HTMLParser

import pytest

from campaign.report import (
    nemesis_periods,
    node_events_for_report,
    pair_client_ops,
    parse_node_log,
    render_report,
)
from campaign.results import NodeEvent, RunData, count_completions
from checker.op import NEMESIS, Op

VOID_ELEMENTS = {"meta", "img", "br", "hr", "link", "input", "col", "area", "base", "wbr", "source"}
STARTED_WALL = 1_790_000_000.0


class WellFormedChecker(HTMLParser):
    """Fails on any close tag that does not match the innermost open one, or left open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.images.append(dict(attrs).get("src", ""))
        if tag not in VOID_ELEMENTS:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID_ELEMENTS:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(
                f"</{tag}> closes {self.stack[-1:] or 'nothing'} at {self.getpos()}"
            )
        else:
            self.stack.pop()

    def handle_data(self, data):
        self.text.append(data)


def check_wellformed(page: str) -> WellFormedChecker:
    checker = WellFormedChecker()
    checker.feed(page)
    checker.close()
    assert checker.problems == []
    assert checker.stack == []
    assert page.startswith("<!DOCTYPE html>")
    return checker


def run_data(ops, results, *, node_logs=None, node_events=()) -> RunData:
    campaign = {
        "kind": "test",
        "seed": 42,
        "started": "2026-11-26T08:00:00+00:00",
        "started_wall": STARTED_WALL,
        "config": {
            "name": "unit",
            "workload": "register",
            "nemesis": "partition",
            "nodes": 3,
            "seed": 42,
        },
    }
    return RunData(
        config=campaign,
        ops=ops,
        node_logs=node_logs or {},
        node_events=list(node_events),
        results=results,
    )


def test_valid_report_is_wellformed_and_self_contained(register_history, make_node_log):
    logs = {
        "n1": make_node_log("n1", STARTED_WALL, [(0.1, "candidate", 1), (0.2, "leader", 1)]),
        "n2": make_node_log("n2", STARTED_WALL, [(0.1, "follower", 1)]),
    }
    results = {"valid": True, "checkers": {"linearizable": {"valid": True, "seconds": 0.01}}}
    page = render_report(run_data(register_history, results, node_logs=logs))
    parsed = check_wellformed(page)
    text = " ".join(parsed.text)
    assert "VALID" in text and "INVALID" not in text
    # Three plots: latency, rate, node roles, all inline PNGs that decode (the timeline is
    # the interactive canvas, drawn from inline JSON).
    assert len(parsed.images) == 3
    assert 'id="tl-canvas"' in page and 'id="tl-data"' in page
    for source in parsed.images:
        assert source.startswith("data:image/png;base64,")
        assert base64.b64decode(source.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    # Nothing is fetched from elsewhere: no external scripts, styles or images.
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "start-partition" in text


def test_invalid_report_shows_the_checker_explanation(stale_history):
    result = {
        "valid": False,
        "checkers": {
            "linearizable": {
                "valid": False,
                "op": {"index": 3, "f": "read", "value": 77},
                "key": "k1",
            },
            "timeline": {"valid": True},
        },
    }
    page = render_report(run_data(stale_history, result))
    parsed = check_wellformed(page)
    text = " ".join(parsed.text)
    assert "INVALID" in text
    assert "Why" in text
    assert "77" in text  # the raw result, or the explainer's rendering of it, names the bad read


def test_unknown_checker_error_is_reported(register_history):
    results = {
        "valid": "unknown",
        "checkers": {"linearizable": {"valid": "unknown", "error": "RuntimeError: boom"}},
    }
    parsed = check_wellformed(render_report(run_data(register_history, results)))
    text = " ".join(parsed.text)
    assert "UNKNOWN" in text and "boom" in text


def test_empty_history_still_gives_a_page():
    parsed = check_wellformed(render_report(run_data([], None)))
    assert "UNKNOWN" in " ".join(parsed.text)
    assert parsed.images == []


def test_markup_in_values_is_escaped():
    ops = [
        Op(index=0, time=0, type="invoke", process=0, f="write", value="<script>alert(1)</script>"),
        Op(index=1, time=10, type="ok", process=0, f="write", value="<script>alert(1)</script>"),
        Op(index=2, time=20, type="info", process=NEMESIS, f="start-partition", value="</table>"),
    ]
    page = render_report(
        run_data(ops, {"valid": True, "checkers": {"x": {"valid": True, "note": "<b>"}}})
    )
    check_wellformed(page)
    assert "<script>alert" not in page  # escaped in the HTML, \u003c in the inline JSON
    assert "\\u003cscript>alert(1)" in page  # the value is there, inert


def test_counts_per_function(register_history):
    counts = count_completions(register_history)
    invokes = sum(1 for op in register_history if op.type == "invoke" and op.process != NEMESIS)
    assert sum(sum(row.values()) for row in counts.values()) == invokes
    assert counts["write"]["info"] == 1
    assert set(counts) == {"read", "write"}


def test_nemesis_periods_pair_start_and_stop():
    ops = [
        Op(0, 100, "invoke", NEMESIS, "start-partition", "one"),
        Op(1, 200, "info", NEMESIS, "start-partition", ["n1"]),
        Op(2, 300, "invoke", NEMESIS, "kill", "n2"),
        Op(3, 400, "info", NEMESIS, "kill", "n2"),
        Op(4, 500, "invoke", NEMESIS, "stop-partition", None),
        Op(5, 600, "info", NEMESIS, "stop-partition", None),
        Op(6, 650, "invoke", NEMESIS, "bump-clock", 5),
        Op(7, 660, "info", NEMESIS, "bump-clock", 5),
        Op(8, 700, "invoke", NEMESIS, "start-partition", "majority"),
        Op(9, 800, "invoke", 0, "read", None),
        Op(10, 900, "ok", 0, "read", None),
    ]
    periods, instants = nemesis_periods(ops)
    spans = [(period.kind, period.start, period.end) for period in periods]
    # The kill is never followed by a start: it runs to the end, like the second partition.
    assert spans == [("partition", 100, 600), ("kill", 300, 900), ("partition", 700, 900)]
    assert [(instant.kind, instant.time) for instant in instants] == [("clock", 650)]


def test_pairing_marks_unfinished_invokes_info():
    ops = [
        Op(0, 0, "invoke", 0, "write", 1),
        Op(1, 5, "invoke", 1, "read", None),
        Op(2, 10, "ok", 0, "write", 1),
        Op(3, 50, "invoke", 2, "write", 2),
    ]
    paired = pair_client_ops(ops)
    assert [(item.process, item.type, item.start, item.end) for item in paired] == [
        (0, "ok", 0, 10),
        (1, "info", 5, 50),
        (2, "info", 50, 50),
    ]


def test_parse_node_log_keeps_only_changes(make_node_log):
    text = make_node_log(
        "n1", STARTED_WALL, [(1.0, "candidate", 2), (1.0, "candidate", 2), (1.5, "leader", 2)]
    )
    events = parse_node_log(text, "n1", STARTED_WALL)
    assert [(event.role, event.term, event.leader) for event in events] == [
        ("candidate", 2, None),
        ("leader", 2, "n1"),
    ]
    assert events[0].time == pytest.approx(1.0e9, abs=1e3)
    assert all(event.source == "log" for event in events)


def test_log_events_win_over_polls_per_node(make_node_log):
    logs = {"n1": make_node_log("n1", STARTED_WALL, [(0.5, "leader", 3)])}
    polled = [NodeEvent(100, "n1", "follower", 1), NodeEvent(200, "n2", "follower", 3)]
    events = node_events_for_report(run_data([], None, node_logs=logs, node_events=polled))
    assert [(event.node, event.role, event.source) for event in events] == [
        ("n2", "follower", "status"),
        ("n1", "leader", "log"),
    ]


def test_process_markers_show_kills_pauses_and_restarts():
    def at(offset: float) -> str:
        from datetime import UTC, datetime

        moment = datetime.fromtimestamp(STARTED_WALL + offset, UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    text = "\n".join(
        [
            f"=== raftlab n1: start #1: python3 -m campaign node --id n1 at {at(0.0)} ===",
            f"{at(1.0)[:-1]}Z n1 role=leader term=2 leader=n1",
            f"=== raftlab n1: paused (SIGSTOP) at {at(2.0)} ===",
            f"=== raftlab n1: resumed (SIGCONT) at {at(3.0)} ===",
            f"=== raftlab n1: killed (SIGKILL), exit status -9 at {at(4.0)} ===",
            f"=== raftlab n2: killed (SIGKILL), exit status -9 at {at(4.5)} ===",  # not n1's
            f"=== raftlab n1: start #2: python3 -m campaign node --id n1 at {at(5.0)} ===",
        ]
    )
    events = parse_node_log(text, "n1", STARTED_WALL)
    assert [(round(e.time / 1e9, 1), e.role, e.term) for e in events] == [
        (0.0, "starting", None),
        (1.0, "leader", 2),
        (2.0, "paused", 2),
        (3.0, "leader", 2),
        (4.0, "down", 2),
        (5.0, "starting", 2),
    ]


def test_invalid_report_opens_on_the_anomaly_and_its_lanes(stale_history):
    """The sentence and the culprit's lanes come before everything else; only the
    processes involved get a lane; the whole history is in the interactive timeline."""
    from checker.linearizable import check
    from checker.models import MODELS

    client = [op for op in stale_history if op.process != NEMESIS]
    result = check(client, MODELS["cas-register"], independent=True)
    assert result["valid"] is False
    page = render_report(
        run_data(stale_history, {"valid": False, "checkers": {"linearizable": result}})
    )
    check_wellformed(page)
    anomaly = page.index('id="anomaly"')
    assert anomaly < page.index('id="culprit"') < page.index('id="timeline"')
    assert anomaly < page.index('id="checkers"')
    assert "stale read: process" in page[anomaly : anomaly + 400]
    lanes = page[page.index('id="counterexample-lanes"') : page.index("</svg>", anomaly)]
    culprit = result["failures"][0]["op"]
    assert f">process {culprit['process']}</text>" in lanes
    processes = {op.process for op in client}
    shown = {p for p in processes if f">process {p}</text>" in lanes}
    assert shown < processes or len(processes) <= 2  # only the processes involved
    assert '["partition",' in page and '"n1 | n2 n3"]' in page  # bands name their nodes
    data = json.loads(
        page[page.index('id="tl-data">') + len('id="tl-data">') : page.index("</script>", anomaly)]
    )
    assert len(data["ops"]) == sum(1 for op in client if op.type == "invoke")  # all of it
    assert data["culprit"] == culprit["index"] and data["linearizations"]


def _txn_ops(*events: tuple[str, int, list]) -> list[Op]:
    return [
        Op(index=i, time=i * 1_000_000, type=t, process=p, f="txn", value=v)
        for i, (t, p, v) in enumerate(events)
    ]


def test_elle_anomalies_are_drawn_as_cycles_near_the_top():
    """A list-append read skew (G-single): the report names it before the timeline, draws
    its cycle and says every edge in words, with the models it rules out."""
    from checker.elle import check

    ops = _txn_ops(
        ("invoke", 0, [["r", "x", None], ["r", "y", None]]),
        ("invoke", 1, [["append", "x", 1], ["append", "y", 1]]),
        ("invoke", 2, [["r", "x", None]]),
        ("ok", 0, [["r", "x", []], ["r", "y", [1]]]),
        ("ok", 1, [["append", "x", 1], ["append", "y", 1]]),
        ("ok", 2, [["r", "x", [1]]]),
    )
    result = check(ops, "list-append", consistency_model="snapshot-isolation")
    assert result["anomaly-types"] == ["G-single"]
    page = render_report(
        run_data(ops, {"valid": False, "checkers": {"elle-list-append": result}})
    )
    check_wellformed(page)
    section = page[page.index('id="elle"') : page.index("</section>", page.index('id="elle"'))]
    assert page.index('id="elle"') < page.index('id="timeline"') < page.index('id="checkers"')
    assert "G-single (1)" in section and "T3 → T4 → T3" in section
    assert "Ruled out: <b>snapshot-isolation, repeatable-read" in section
    # The cycle drawn: one arrow per edge, coloured by kind, the txns as labelled nodes.
    assert section.count("<svg") == 1
    assert 'marker-end="url(#arrow-rw)"' in section and 'marker-end="url(#arrow-wr)"' in section
    assert ">T3</text>" in section and ">T4</text>" in section
    # Every edge in words.
    for step in result["anomalies"]["G-single"][0]["steps"]:
        assert f"<li>{html.escape(step['text'])}</li>" in section


def test_elle_section_from_a_hand_built_result():
    """Cycles and cycle-less anomalies (in words only) from a results.json-shaped dict;
    at most three cycles drawn per kind; nothing for a run without Elle anomalies."""
    from campaign.report import MAX_ELLE_CASES, elle_anomalies_html

    step = {"from": "T1", "to": "T2", "type": "ww", "key": "x", "text": "T2 appended after T1"}
    back = {"from": "T2", "to": "T1", "type": "ww", "key": "y", "text": "T1 appended after <T2>"}
    g0 = {"type": "G0", "cycle": ["T1", "T2", "T1"], "steps": [step, back]}
    g1a = {"type": "G1a", "text": "T7 read x = [5], but T3's append of 5 failed"}
    results = {
        "valid": False,
        "checkers": {
            "elle-list-append": {
                "valid": False,
                "consistency-model": "read-committed",
                "anomaly-types": ["G0", "G1a"],
                "anomalies": {"G0": [g0] * 5, "G1a": [g1a]},
                "anomaly-counts": {"G0": 5, "G1a": 1},
                "not": ["read-committed"],
                "also-not": ["serializable"],
                "possible": ["read-uncommitted"],
            },
            "linearizable": {"valid": True},
        },
    }
    section = elle_anomalies_html(results)
    assert section.count("<svg") == MAX_ELLE_CASES == 3
    assert "G0 (5)" in section and "2 more G0 in results.json" in section
    assert "G1a (1)" in section and "T3&#x27;s append of 5 failed" in section
    assert "T1 appended after &lt;T2&gt;" in section  # escaped
    assert "Still possible: read-uncommitted" in section
    page = render_report(run_data([], results))
    check_wellformed(page)
    assert page.index('id="elle"') < page.index('id="checkers"')
    assert elle_anomalies_html({"valid": True, "checkers": {"linearizable": {"valid": True}}}) == ""
