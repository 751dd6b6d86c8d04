"""junit.xml per checker, and the progress display in both its forms."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ElementTree

import trio

from campaign.junit import junit_tree, write_junit
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
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    assert cases["linearizable"].find("failure") is not None
    assert cases["set"].find("error") is not None
    assert "search cut short" in cases["set"].find("error").get("message")
    assert list(cases["bank"]) == []


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
