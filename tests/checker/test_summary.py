"""checker.summary: the anomaly in words, and the soundness of its stale-read proof.

The differential test generates register histories from executions with known
linearization points (valid by construction), corrupts some reads, and checks that every
read the summary calls stale / never written / from the future is in a history the plain
linearizability search rejects — and that no read of a valid history is named at all.
"""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from checker.linearizable import check
from checker.models import MODELS
from checker.op import Op
from checker.summary import _pairs, _register_read, describe, headline, summary_lines

S = 1_000_000_000


def _history(spec: list[tuple[int, str, object, str, float, float]]) -> list[Op]:
    """(process, f, value, outcome, start s, end s) → ops ordered by time."""
    events = []
    for process, f, value, outcome, start, end in spec:
        events.append((start, 0, process, "invoke", f, value))
        if outcome != "none":
            done_value = value
            events.append((end, 1, process, outcome, f, done_value))
    events.sort(key=lambda e: (e[0], e[1]))
    return [
        Op(index=i, time=int(t * S), type=kind, process=p, f=f, value=v)
        for i, (t, _, p, kind, f, v) in enumerate(events)
    ]


def test_stale_read_names_the_write_it_missed() -> None:
    ops = _history(
        [
            (0, "write", [1, 804], "ok", 1.0, 1.1),
            (1, "write", [1, 3], "ok", 12.0, 12.2),
            (2, "read", [1, 804], "ok", 12.31, 12.4),
        ]
    )
    result = check(ops, MODELS["cas-register"], independent=True)
    assert result["valid"] is False
    [anomaly] = describe({"valid": False, "checkers": {"linearizable": result}}, ops)
    assert anomaly.kind == "stale-read"
    assert anomaly.text == (
        "stale read: process 2 read 804 from key 1 at 12.310 s, but the write of 3 by "
        "process 1 was acknowledged at 12.200 s, after 804 was written (by process 0, "
        "acknowledged at 1.100 s)"
    )
    assert anomaly.ops[0] == 4  # the read's invocation


def test_never_written_and_future_reads() -> None:
    ops = _history([(0, "write", 1, "ok", 0.0, 0.1), (1, "read", 7, "ok", 0.2, 0.3)])
    result = check(ops, MODELS["cas-register"])
    assert describe(result, ops)[0].kind == "read-of-a-value-never-written"
    ops = _history([(1, "read", 7, "ok", 0.2, 0.3), (0, "write", 7, "ok", 0.5, 0.6)])
    result = check(ops, MODELS["cas-register"])
    assert describe(result, ops)[0].text.startswith("read from the future: process 1 read 7")


def test_without_history_the_checker_s_words() -> None:
    ops = _history([(0, "write", 1, "ok", 0.0, 0.1), (1, "read", 7, "ok", 0.2, 0.3)])
    result = check(ops, MODELS["cas-register"])
    line = headline(result)
    assert line is not None and line.startswith("not linearizable: process 1's read 7")
    assert "[linearizable]" in line


def test_other_checkers_in_words() -> None:
    results = {
        "valid": False,
        "checkers": {
            "set": {"valid": False, "lost_count": 2, "lost": [17, 23], "unexpected_count": 0},
            "bank": {
                "valid": False,
                "bad_read_count": 3,
                "first_bad_reads": [
                    {"index": 0, "process": 5, "problems": ["total 95 instead of 100"]}
                ],
            },
            "election-safety": {"valid": False, "terms": {"4": ["n1", "n3"]}},
            "linearizable": {"valid": "unknown", "error": "time limit of 1 s reached"},
            "fine": {"valid": True},
        },
    }
    lines = summary_lines(results, report="results/x/report.html")
    assert lines[0] == "lost write: 2 acknowledged adds missing from the final reads (e.g. 17, 23)"
    assert lines[1].startswith("wrong total: process 5's read of all balances saw total 95")
    assert lines[2] == (
        "two leaders in one term: term 4 had leaders n1 and n3 (Election Safety, Raft Figure 3)"
    )
    assert lines[3] == "undecided: time limit of 1 s reached"
    assert "checker: set (invalid), bank (invalid), election-safety (invalid)" in lines[4]
    assert lines[-1] == "report: results/x/report.html"
    assert summary_lines({"valid": True, "checkers": {"a": {"valid": True}}}) == []


@st.composite
def executions(draw: st.DrawFn) -> tuple[list[Op], bool]:
    """A register history with real linearization points, some reads maybe corrupted."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    processes = draw(st.integers(2, 4))
    count = draw(st.integers(3, 14))
    corrupt = draw(st.booleans())
    clock = dict.fromkeys(range(processes), 0.0)
    planned = []
    for _ in range(count):
        process = rng.randrange(processes)
        start = clock[process] + rng.uniform(0.0, 1.0)
        end = start + rng.uniform(0.05, 2.0)
        clock[process] = end + 0.01
        point = rng.uniform(start, end)
        f = rng.choice(["read", "read", "write", "cas"])
        planned.append([point, process, f, start, end])
    state = None
    spec = []
    for _point, process, f, start, end in sorted(planned):
        outcome = "ok"
        if f == "write":
            value = rng.randrange(4)
            state = value
            if rng.random() < 0.2:
                outcome = "info"
        elif f == "cas":
            expected, new = rng.randrange(4), rng.randrange(4)
            value = [expected, new]
            if state == expected:
                state = new
            else:
                outcome = "fail"
        else:
            value = state
            if corrupt and rng.random() < 0.5:
                value = rng.randrange(5)
        spec.append((process, f, value, outcome, start, end))
    return _history(spec), corrupt


@settings(max_examples=300, deadline=None)
@given(executions())
def test_named_reads_are_proven_violations(case: tuple[list[Op], bool]) -> None:
    ops, corrupted = case
    verdict = check(ops, MODELS["cas-register"])["valid"]
    if not corrupted:
        assert verdict is True
    pairs = _pairs(ops)
    for pair in pairs:
        if pair.f != "read" or pair.type != "ok" or pair.value is None:
            continue
        culprit = {
            "index": pair.index,
            "process": pair.process,
            "f": "read",
            "type": "ok",
            "value": pair.value,
            "invoke_time": pair.invoke_time,
            "complete_time": pair.complete_time,
        }
        named = _register_read(culprit, None, False, pairs)
        if named is not None:
            assert verdict is False, (named, ops)


@st.composite
def list_executions(draw: st.DrawFn) -> tuple[list[Op], bool]:
    """A list-append history with real linearization points, some reads maybe corrupted."""
    rng = random.Random(draw(st.integers(0, 2**32)))
    corrupt = draw(st.booleans())
    clock = dict.fromkeys(range(3), 0.0)
    planned = []
    for _ in range(draw(st.integers(3, 12))):
        process = rng.randrange(3)
        start = clock[process] + rng.uniform(0.0, 1.0)
        end = start + rng.uniform(0.05, 2.0)
        clock[process] = end + 0.01
        planned.append(
            (rng.uniform(start, end), process, rng.choice(["read", "append"]), start, end)
        )
    state: list[int] = []
    spec = []
    for element, (_point, process, f, start, end) in enumerate(sorted(planned)):
        if f == "append":
            state.append(element)
            spec.append((process, f, element, "ok", start, end))
            continue
        value = list(state)
        if corrupt and rng.random() < 0.5:
            choice = rng.randrange(3)
            if choice == 0 and value:
                value.pop(rng.randrange(len(value)))
            elif choice == 1 and value:
                value.append(rng.choice(value))
            else:
                value.append(99)
        spec.append((process, f, value, "ok", start, end))
    return _history(spec), corrupt


@settings(max_examples=200, deadline=None)
@given(list_executions())
def test_named_list_reads_are_proven_violations(case: tuple[list[Op], bool]) -> None:
    from checker.summary import _list_read
    from workloads.append import ListAppendModel

    ops, corrupted = case
    verdict = check(ops, ListAppendModel())["valid"]
    if not corrupted:
        assert verdict is True
    pairs = _pairs(ops)
    for pair in pairs:
        if pair.f != "read" or pair.type != "ok":
            continue
        culprit = {
            "index": pair.index,
            "process": pair.process,
            "value": pair.value,
            "invoke_time": pair.invoke_time,
            "complete_time": pair.complete_time,
        }
        named = _list_read(culprit, None, False, pairs)
        if named is not None:
            assert verdict is False, (named, ops)
