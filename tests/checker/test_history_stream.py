"""The chunked readers (issue 14) against the general ones: the same Ops, the same errors,
and memory that does not grow with the file beyond the Ops themselves."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker import history
from checker.generate import cas_register_history
from checker.history import (
    HistoryError,
    _iter_edn_fast,
    _iter_edn_general,
    _iter_jsonl_general,
    read_edn,
    read_jsonl,
    write_edn,
    write_jsonl,
)

SETTINGS = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# --------------------------------------------------------------------------- generated ops

ATOMS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "a", "a b", "x,y", "q\"q", "tab\t", "back\\", "é", "[1]", "}{", "nil"]),
)
VALUES = st.recursive(
    ATOMS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["k", "v", "f"]), inner, max_size=2)
    ),
    max_leaves=6,
)


@st.composite
def ops(draw: Any) -> dict[str, Any]:
    nemesis = draw(st.integers(0, 5)) == 0
    op: dict[str, Any] = {
        "index": draw(st.integers(0, 10**6)),
        "time": draw(st.integers(-5, 10**12)),
        "type": draw(st.sampled_from(["invoke", "ok", "fail", "info"])),
        "process": "nemesis" if nemesis else draw(st.one_of(st.integers(-1, 9), st.just("p"))),
        "f": draw(st.sampled_from(["read", "write", "cas", "start-partition", "txn"])),
        "value": draw(VALUES),
    }
    if draw(st.booleans()):
        op["error"] = draw(VALUES)
    if draw(st.integers(0, 3)) == 0:
        op["node"] = draw(st.sampled_from(["n1", "", "n 2"]))
    if draw(st.integers(0, 4)) == 0:
        op[draw(st.sampled_from(["extra", "key", "k2"]))] = draw(VALUES)
    return op


# Lines the fast reader must leave to the general one, or refuse with the same words.
ODD_JSON_LINES = [
    "",
    "   ",
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":007}',
    '{"index":01,"time":2,"type":"ok","process":0,"f":"read","value":1}',
    '{"index":1,"time":2,"type":"done","process":0,"f":"read","value":1}',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"","value":1}',
    '{"index":1,"time":2.5,"type":"ok","process":0,"f":"read","value":1}',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":[1,,2]}',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":nul}',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":1,"value":2}',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":1} x',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":"\\u0041"}',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":1,"node":null}',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":1,"error":[1,[2,[3]]]}',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":' + "9" * 5000 + "}",
    '{"index": 1, "time": 2, "type": "ok", "process": 0, "f": "read", "value": [1, 2]}',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":1}\r',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":1,"x":2,"index":5}',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":1,"x":2,"x":[3]}',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":1,"revision":7,"node":"n1"}',
    '{"index":1,"time":2,"type":"ok","process":0,"f":"read","value":1',
    "[1, 2]",
]


def _jsonl_text(draw: Any) -> str:
    records = draw(st.lists(ops(), min_size=1, max_size=12))
    lines = []
    for record in records:
        spaced = draw(st.integers(0, 3)) == 0
        lines.append(
            json.dumps(record, ensure_ascii=draw(st.booleans()))
            if spaced
            else json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        )
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from(ODD_JSON_LINES)))
    ending = draw(st.sampled_from(["\n", "\n", "\r\n"]))
    text = ending.join(lines)
    return text + draw(st.sampled_from(["", ending]))


def _outcome(read: Any) -> Any:
    """The Ops with their types (repr tells 1, 1.0 and True apart), or the error."""
    try:
        return [repr(op.to_dict()) for op in read()]
    except HistoryError as error:
        return ("error", str(error), error.line)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few lines, so that a history spans many of them."""
    monkeypatch.setattr(history, "_CHUNK_CHARS", 200)


@SETTINGS
@given(data=st.data(), torn=st.booleans())
def test_jsonl_fast_reader_gives_the_general_readers_ops_and_errors(
    tmp_path: Path, small_chunks: None, data: st.DataObject, torn: bool
) -> None:
    text = _jsonl_text(data.draw)
    path = tmp_path / "history.jsonl"
    path.write_text(text, encoding="utf-8", newline="")
    fast = _outcome(lambda: read_jsonl(path, allow_torn_tail=torn))
    general = _outcome(lambda: list(_iter_jsonl_general(path, allow_torn_tail=torn)))
    assert fast == general, text


def test_jsonl_values_keep_their_types_and_shapes(tmp_path: Path) -> None:
    values = [None, True, False, 1, 1.0, -0.0, 2.5e-7, "1", [], [1, [2, 3]], {"k": [None]},
              {"a": 1, "b": "x"}, [{"a": 1}], 10**19]
    records = [
        {"index": i, "time": i, "type": "ok", "process": i % 3, "f": "write", "value": value}
        for i, value in enumerate(values)
    ]
    records.append({"index": 99, "time": 99, "type": "info", "process": "nemesis",
                    "f": "kill", "value": None, "error": "timeout", "node": "n1"})
    path = tmp_path / "history.jsonl"
    write_jsonl(path, records)
    got = read_jsonl(path)
    assert [repr(op.value) for op in got[:-1]] == [repr(value) for value in values]
    assert got[-1].process == "nemesis" and got[-1].error == "timeout" and got[-1].node == "n1"
    # each op has its own list and its own extra map, as json.loads gives
    assert got[9].value is not got[8].value and got[0].extra is not got[1].extra


def test_a_long_usual_history_reads_the_same_by_both_paths(tmp_path: Path) -> None:
    ops_written = cas_register_history(5, 3_000, seed=3, info_rate=0.1)
    path = tmp_path / "history.jsonl"
    write_jsonl(path, ops_written)
    assert read_jsonl(path) == list(_iter_jsonl_general(path)) == ops_written
    edn = tmp_path / "history.edn"
    write_edn(edn, ops_written)
    fast = _iter_edn_fast(edn)
    assert fast is not None
    assert fast == list(_iter_edn_general(edn)) == ops_written


# --------------------------------------------------------------------------- EDN

EDN_ATOMS = ["nil", "true", "false", "0", "-3", "1.5", "1e3", '"s"', '"a b"', ":k", ":x-y",
             "[1 2]", "[]", "[:a nil 1.0]", "[[1 2]]", "{:a 1}", "#{1}", "\\c", "sym", '"q\\"q"']


# Per key: values op_from_mapping takes as they are, then values it refuses or converts.
EDN_KNOWN = {
    "index": (["0", "7", "123456"], ["-1", "01", '"1"', "1.0"]),
    "time": (["0", "-5", "99", "12345678901"], ["1.5", "nil", "+3"]),
    "type": ([":invoke", ":ok", ":fail", ":info"], [":done", '"ok"']),
    "process": (["0", "3", "-1", ":nemesis"], ['"p"', "[0]", "true"]),
    "f": ([":read", ":write", ":cas", ":start"], ["nil", '"f"']),
    "node": (['"n1"', ":n2"], ["1", "nil"]),
}


@st.composite
def edn_lines(draw: Any, keys: list[str]) -> str:
    parts = []
    for key in keys:
        usual, odd = EDN_KNOWN.get(key, (EDN_ATOMS[:12], EDN_ATOMS[12:]))
        choices = odd if draw(st.integers(0, 30)) == 0 else usual
        parts.append(f":{key} {draw(st.sampled_from(choices))}")
    if "error" not in keys and draw(st.integers(0, 3)) == 0:
        parts.append(f":error {draw(st.sampled_from(EDN_ATOMS))}")
    line = "{" + draw(st.sampled_from([", ", " ", ","])).join(parts) + "}"
    return draw(st.sampled_from(["", " ", "\t"])) + line + draw(st.sampled_from(["", " "]))


@SETTINGS
@given(data=st.data(), vector=st.booleans())
def test_edn_chunked_reader_gives_the_general_readers_ops_or_falls_back(
    tmp_path: Path, small_chunks: None, data: st.DataObject, vector: bool
) -> None:
    base = ["index", "time", "type", "process", "f", "value"]
    keys = data.draw(st.permutations(base + data.draw(st.sampled_from([[], ["error"], ["node"], ["x"]]))))
    usual = data.draw(st.lists(edn_lines(list(keys)), min_size=1, max_size=10))
    lines = []
    for line in usual:  # other shapes in between
        lines.append(line)
        if data.draw(st.integers(0, 6)) == 0:
            other = data.draw(st.permutations(base))
            lines.append(data.draw(edn_lines(list(other))))
        if data.draw(st.integers(0, 12)) == 0:
            lines.append(data.draw(st.sampled_from(["", "  ", "; note", "{:type :ok", "]"])))
    text = "\n".join(lines) + "\n"
    if vector:
        text = "[" + text.rstrip("\n") + "]\n"
    path = tmp_path / "history.edn"
    path.write_text(text, encoding="utf-8")
    general = _outcome(lambda: list(_iter_edn_general(path, fast_forms=False)))  # edn_format
    fast = _iter_edn_fast(path)
    if fast is not None:
        assert [repr(op.to_dict()) for op in fast] == general, text
    assert _outcome(lambda: read_edn(path)) == general, text


# --------------------------------------------------------------------------- memory


def _extra_memory(read: Any) -> tuple[int, int]:
    """(peak of what reading allocated beyond what it returns, what it returns)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base, _ = tracemalloc.get_traced_memory()
        result = read()
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result
    return peak - kept, kept - base


@pytest.mark.parametrize("suffix", [".jsonl", ".edn"])
def test_reading_holds_a_chunk_at_a_time_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    """The memory a read needs beyond the Ops it returns is a chunk's, whatever the file's
    size: the raw text is never held whole (tracemalloc counts every allocation)."""
    monkeypatch.setattr(history, "_CHUNK_CHARS", 16_384)
    ops_written = cas_register_history(4, 6_000, seed=5)
    path = tmp_path / f"history{suffix}"
    (write_jsonl if suffix == ".jsonl" else write_edn)(path, ops_written)
    size = path.stat().st_size
    assert size > 600_000
    extra, kept = _extra_memory(lambda: history.read_history(path))
    assert extra < 400_000, (extra, size)  # a whole-file read holds > size characters
    small = tmp_path / f"small{suffix}"
    (write_jsonl if suffix == ".jsonl" else write_edn)(small, ops_written[:1_500])
    extra_small, _ = _extra_memory(lambda: history.read_history(small))
    assert extra < extra_small + 200_000, (extra, extra_small)  # no growth with the file
