"""junit.xml per checker, and the progress display in both its forms."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ElementTree

import trio

from campaign.junit import first_message, junit_tree, write_junit
from campaign.progress import ProgressDisplay, ProgressState, progress_line
from checker.op import NEMESIS, Op


def test_junit_one_case_per_checker(tmp_path):
    results = {
        "valid": False,
        "checkers": {
            "linearizable": {"valid": False, "seconds": 0.5, "op": {"f": "read"}},
            "set": {"valid": "unknown", "error": "TimeoutError: search cut short"},
            "bank": {"valid": True},
        },
    }
    path = tmp_path / "junit.xml"
    write_junit(path, results, name="unit")
    root = ElementTree.parse(path).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("name") == "unit"
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert cases["linearizable"].find("failure") is not None
    assert cases["set"].find("error") is not None
    assert "search cut short" in cases["set"].find("error").get("message")
    assert list(cases["bank"]) == []


def test_junit_names_the_run_and_the_anomaly(tmp_path):
    """Suite = run name; case = checker with workload, nemesis and seed; the failure's
    message is the anomaly in one line; its body a short excerpt, not a JSON dump."""
    from checker.history import write_jsonl
    from checker.linearizable import check
    from checker.models import MODELS

    s = 1_000_000_000
    ops = [
        Op(0, 1 * s, "invoke", 0, "write", [1, 804]),
        Op(1, int(1.1 * s), "ok", 0, "write", [1, 804]),
        Op(2, 12 * s, "invoke", 1, "write", [1, 3]),
        Op(3, int(12.2 * s), "ok", 1, "write", [1, 3]),
        Op(4, int(12.31 * s), "invoke", 2, "read", [1, None]),
        Op(5, int(12.4 * s), "ok", 2, "read", [1, 804]),
    ]
    result = check(ops, MODELS["cas-register"], independent=True)
    assert result["valid"] is False
    results = {"valid": False, "seed": 5, "checkers": {"linearizable": result}}
    (tmp_path / "campaign.json").write_text(
        json.dumps(
            {
                "seed": 5,
                "replay": "raftlab sim --seed 5",
                "config": {"name": "nightly", "workload": "register", "nemesis": "partition"},
            }
        )
    )
    write_jsonl(tmp_path / "history.jsonl", ops)  # read beside junit.xml, as a run folder has it
    path = tmp_path / "junit.xml"
    write_junit(path, results, name="ignored-when-campaign-names-it")
    suite = ElementTree.parse(path).getroot().find("testsuite")
    assert suite.get("name") == "nightly"
    [case] = suite.findall("testcase")
    assert case.get("name") == "linearizable [register, nemesis partition, seed 5]"
    failure = case.find("failure")
    assert failure.get("message") == (
        "stale read: process 2 read 804 from key 1 at 12.310 s, but the write of 3 by "
        "process 1 was acknowledged at 12.200 s, after 804 was written (by process 0, "
        "acknowledged at 1.100 s)"
    )
    body = failure.text.splitlines()
    assert body[0] == failure.get("message")
    assert "culprit: op 4: process 2 read 804 ok 12.310–12.400 s" in body
    assert "replay: raftlab sim --seed 5" in body
    assert body[-1] == f"report: {tmp_path / 'report.html'}"
    assert "{" not in failure.text and len(body) < 40  # an excerpt, not a dump
    assert first_message(path) == failure.get("message")


def test_junit_without_checkers_is_an_error_not_a_pass():
    suite = (
        junit_tree({"valid": "unknown", "checkers": {}}, name="empty").getroot().find("testsuite")
    )
    assert suite.get("errors") == "1"


def _op(index, type_, process=0, f="write", value=1):
    return Op(index=index, time=index, type=type_, process=process, f=f, value=value)


def test_progress_state_counts_and_faults():
    state = ProgressState(name="unit", time_limit=10)
    for index, type_ in enumerate(["invoke", "ok", "invoke", "fail", "invoke", "info"]):
        state.observe(_op(index, type_))
    state.observe(Op(6, 6, "info", NEMESIS, "start-partition", "leader"))
    state.observe(Op(7, 7, "info", NEMESIS, "kill", ["n1"]))
    assert (state.invokes, state.ok, state.fail, state.info) == (3, 1, 1, 1)
    assert state.active_faults == ["start-partition leader", "kill ['n1']"]
    state.observe(Op(8, 8, "info", NEMESIS, "stop-partition", None))
    assert state.active_faults == ["kill ['n1']"]
    state.observe(Op(9, 9, "info", NEMESIS, "start", ["n1"]))
    assert state.active_faults == []
    state.leader, state.term = "n2", 4
    line = progress_line(state)
    assert "ok=1 fail=1 info=1" in line and "leader=n2 (term 4)" in line and "faults=none" in line


async def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    state = ProgressState(name="unit", time_limit=5)
    state.ok = 7
    display = ProgressDisplay(state, stream=stream, line_interval=0.05)
    assert not display.live
    with trio.move_on_after(0.3):
        await display.run()
    lines = [line for line in stream.getvalue().splitlines() if line]
    assert len(lines) >= 3
    assert all(line.startswith("[unit]") and "ok=7" in line for line in lines)
    assert "\x1b[" not in stream.getvalue()  # no terminal escapes in a log


async def test_live_panel_on_a_terminal():
    stream = io.StringIO()
    state = ProgressState(name="unit", time_limit=5, leader="n3")
    display = ProgressDisplay(state, stream=stream, force_terminal=True, refresh_interval=0.02)
    assert display.live
    with trio.move_on_after(0.2):
        await display.run()
    output = stream.getvalue()
    assert "raftlab test unit" in output and "n3" in output
