"""History I/O: round trips, Jepsen EDN quirks, pairing, and bad input for every reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.history import (
    HistoryError,
    HistoryWriter,
    Op,
    detect_format,
    iter_jsonl,
    pair_operations,
    parse_literal,
    read_edn,
    read_history,
    read_jsonl,
    write_edn,
    write_jsonl,
    write_txt,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CORPUS = SHARED / "corpus" / "porcupine"

ODD_VALUES = [
    None,
    0,
    -7,
    2**70,
    1.5,
    True,
    "",
    "tab\there",
    'line\nbreak and "quotes" and \\ backslash',
    "unicode é ☃ 😀",
    [],
    [1, [2, [3, None]], "x"],
    {"x": 0, "y": [1, 2], "nested": {"deep": None}},
    {"with space": 1, "nil": 2, "1a": 3},
    ["k", {"inner": ["a\tb"]}],
]


def make_ops(values: list[object]) -> list[Op]:
    ops: list[Op] = []
    for i, value in enumerate(values):
        ops.append(
            Op(index=2 * i, time=1000 * i, type="invoke", process=i % 3, f="write", value=value)
        )
        ops.append(
            Op(
                index=2 * i + 1,
                time=1000 * i + 500,
                type="ok" if i % 2 else "info",
                process=i % 3,
                f="write",
                value=value,
                error=None if i % 2 else "timeout",
                node="n1" if i % 4 == 0 else None,
                extra={"latency": i} if i % 5 == 0 else {},
            )
        )
    ops.append(
        Op(
            index=len(ops),
            time=10**9,
            type="info",
            process="nemesis",
            f="start-partition",
            value="majority",
        )
    )
    return ops


def test_jsonl_round_trip_keeps_odd_values(tmp_path: Path) -> None:
    ops = make_ops(ODD_VALUES)
    path = tmp_path / "history.jsonl"
    write_jsonl(path, ops)
    assert read_jsonl(path) == ops
    # One op per line, even with newlines inside values.
    assert len(path.read_text(encoding="utf-8").splitlines()) == len(ops)


def test_edn_round_trip_keeps_odd_values(tmp_path: Path) -> None:
    ops = make_ops(ODD_VALUES)
    path = tmp_path / "history.edn"
    write_edn(path, ops)
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) == len(ops)
    assert text.splitlines()[0].startswith(
        "{:index 0, :type :invoke, :f :write, :process 0, :value nil"
    )
    assert ":process :nemesis" in text and ":error :timeout" in text
    assert read_edn(path) == ops


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(st.characters(blacklist_categories=("Cs",)), max_size=6), children, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(json_values, min_size=1, max_size=5))
def test_round_trips_any_json_like_value(tmp_path: Path, values: list[object]) -> None:
    ops = make_ops(values)
    jsonl = tmp_path / "h.jsonl"
    edn = tmp_path / "h.edn"
    write_jsonl(jsonl, ops)
    write_edn(edn, ops)
    assert read_jsonl(jsonl) == ops
    assert read_edn(edn) == ops


def test_history_writer_appends_and_flushes_each_op(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    ops = make_ops([1, 2])
    writer = HistoryWriter(path)
    writer.write(ops[0])
    # Flushed already: a reader sees it while the writer is still open (a crash keeps it).
    assert read_jsonl(path) == ops[:1]
    writer.write(ops[1].to_dict())
    writer.close()
    with HistoryWriter(path) as again:  # appends, does not truncate
        again.write_all(ops[2:])
    assert read_jsonl(path) == ops


def test_torn_last_line_is_an_error_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    ops = make_ops([1, 2])
    write_jsonl(path, ops)
    with open(path, "a", encoding="utf-8") as stream:
        stream.write('{"index": 99, "type": "inv')
    with pytest.raises(HistoryError) as error:
        read_jsonl(path)
    assert error.value.line == len(ops) + 1
    assert "cut short" in str(error.value)
    assert read_jsonl(path, allow_torn_tail=True) == ops


def test_txt_is_one_tab_separated_line_per_op(tmp_path: Path) -> None:
    ops = make_ops(["a\tb", None, [1, 2]])
    path = tmp_path / "history.txt"
    write_txt(path, ops)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(ops)
    assert all(line.count("\t") == 4 for line in lines)
    assert lines[0].split("\t") == ["0", "invoke", "write", '"a\\tb"', ""]
    assert lines[1].split("\t") == ["0", "info", "write", '"a\\tb"', "timeout"]
    assert lines[2].split("\t")[3] == "nil"


JEPSEN_VECTOR = """\
; a Knossos-style test file: one vector of ops, records, tags, unknown keys
[#jepsen.history.Op{:index 0, :time 10, :type :invoke, :process 0, :f :write, :value 3}
 {:index 1, :time 15, :type :invoke, :process 1, :f :read, :value nil}
 {:index 2, :time 20, :type :ok, :process 0, :f :write, :value 3,
  :debug #object[java.lang.Object 0x1f "thing"], :mystery/key #{:a :b}}
 #_ {:index 99 :type :bogus}
 {:index 3, :time 25, :type :info, :process :nemesis, :f :start, :value #my.ns/Custom [1 2]}
 {:index 4, :time 30, :type :fail, :process 1, :f :read, :value nil, :error :timeout}
 {:index 5, :time 31, :type :invoke, :process 2, :f :cas, :value [3 4], :created #inst "2020-01-01T00:00:00Z"}]
"""


def test_reads_a_jepsen_edn_vector_with_tags_and_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "knossos.edn"
    path.write_text(JEPSEN_VECTOR, encoding="utf-8")
    ops = read_edn(path)
    assert [op.index for op in ops] == [0, 1, 2, 3, 4, 5]
    assert ops[0] == Op(index=0, time=10, type="invoke", process=0, f="write", value=3)
    assert ops[2].extra["debug"].startswith("#object")
    assert ops[2].extra["mystery/key"] == ["a", "b"]
    assert ops[3].process == "nemesis" and ops[3].value.startswith("#my.ns/Custom")
    assert ops[4].error == "timeout"
    assert ops[5].value == [3, 4] and ops[5].extra["created"].startswith("2020-01-01")
    assert detect_format(path) == "edn"
    assert read_history(path) == ops


def test_reads_a_history_edn_of_one_map_per_line(tmp_path: Path) -> None:
    path = tmp_path / "history.edn"
    lines = [
        "{:type :invoke, :f :read, :process 0, :value nil}",
        "",
        "{:type :ok, :f :read, :process 0, :value 1} ; trailing comment",
        "{:type :invoke, :f :txn, :process 1, :value [[:r :x nil] [:w :y 2]]}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ops = read_edn(path)
    # No :index or :time in the file: both default to the position in the history.
    assert [(op.index, op.time) for op in ops] == [(0, 0), (1, 1), (2, 2)]
    assert ops[1].value == 1
    assert ops[2].value == [["r", "x", None], ["w", "y", 2]]


def test_many_lines_are_parsed_in_batches_and_errors_still_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "history.edn"
    lines = [
        f"{{:index {i}, :type :invoke, :f :read, :process {i}, :value nil}}" for i in range(1000)
    ]
    lines[733] = "{:index 733, :type :invoke, :f :read, :process}"  # odd number of forms in a map
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(HistoryError) as error:
        read_edn(path)
    assert error.value.line == 734
    del lines[733]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert len(read_edn(path)) == 999


# --------------------------------------------------------------------------- pairing


def op(index: int, type_: str, process: int | str, f: str = "write", value: object = None) -> Op:
    return Op(index=index, time=index, type=type_, process=process, f=f, value=value)


def test_pairing_matches_invokes_and_completions_per_process() -> None:
    history = [
        op(0, "invoke", 0, "write", 1),
        op(1, "invoke", 1, "read"),
        op(2, "info", "nemesis", "start-partition"),
        op(3, "ok", 1, "read", 1),
        op(4, "fail", 0, "write", 1),
        op(5, "invoke", 2, "cas", [1, 2]),
        op(6, "invoke", 0, "read"),
        op(7, "info", 0, "read"),
    ]
    paired = pair_operations(history)
    assert [(p.process, p.f, p.type) for p in paired.operations] == [
        (0, "write", "fail"),
        (1, "read", "ok"),
        (2, "cas", "info"),  # no completion: counts as info
        (0, "read", "info"),
    ]
    read = paired.operations[1]
    assert read.value == 1 and read.invoke_position == 1 and read.complete_position == 3
    missing = paired.operations[2]
    assert missing.completion is None and missing.complete_position is None
    assert missing.value == [1, 2]
    assert [n.index for n in paired.nemesis] == [2]


def test_pairing_refuses_a_second_invoke_while_one_is_outstanding() -> None:
    history = [op(0, "invoke", 0), op(1, "invoke", 1), op(2, "invoke", 0, "read")]
    with pytest.raises(HistoryError) as error:
        pair_operations(history, source="h.jsonl")
    message = str(error.value)
    assert "h.jsonl" in message and "op index 2" in message and "op index 0" in message
    assert "one outstanding operation per process" in message


def test_pairing_refuses_an_ok_without_invoke() -> None:
    with pytest.raises(HistoryError, match="no outstanding invoke"):
        pair_operations([op(0, "invoke", 0), op(1, "ok", 1)])
    # A lone info (a crashed client Jepsen logged) is kept aside, not an error.
    assert len(pair_operations([op(0, "info", 4)]).orphan_infos) == 1


# --------------------------------------------------------------------------- bad input


GOOD_JSON = '{"index": 0, "time": 1, "type": "invoke", "process": 0, "f": "read", "value": null}'


@pytest.mark.parametrize(
    ("second_line", "expected"),
    [
        ('{"index": 1, "type": "ok", "process": 0, "f": "re', "invalid JSON"),
        ("[1, 2, 3]", "expected an operation map, got list"),
        ('{"index": 1, "process": 0, "f": "read"}', "expected a 'type' key"),
        ('{"index": 1, "type": "ok", "f": "read"}', "expected a 'process' key"),
        ('{"index": 1, "type": "ok", "process": 0}', "expected a 'f' key"),
        (
            '{"index": 1, "type": "done", "process": 0, "f": "read"}',
            "one of invoke, ok, fail, info",
        ),
        ('{"index": 1, "type": "ok", "process": 1.5, "f": "read"}', "'process' to be an integer"),
        ('{"index": 1, "type": "ok", "process": true, "f": "read"}', "'process' to be an integer"),
        ('{"index": 1, "type": "ok", "process": 0, "f": 7}', "'f' to be a non-empty name"),
        ('{"index": -1, "type": "ok", "process": 0, "f": "read"}', "'index' to be a non-negative"),
        (
            '{"index": 1, "time": "noon", "type": "ok", "process": 0, "f": "read"}',
            "'time' to be an integer",
        ),
        ('{"index": 1, "type": "ok", "process": 0, "f": "read", "node": [1]}', "'node'"),
    ],
)
def test_jsonl_bad_input_names_the_line(tmp_path: Path, second_line: str, expected: str) -> None:
    path = tmp_path / "history.jsonl"
    path.write_text(GOOD_JSON + "\n\n" + second_line + "\n", encoding="utf-8")
    with pytest.raises(HistoryError) as error:
        read_jsonl(path)
    assert error.value.line == 3
    assert str(path) in str(error.value) and "line 3" in str(error.value)
    assert expected in str(error.value)
    with pytest.raises(HistoryError):
        read_history(path)


GOOD_EDN = "{:index 0, :time 1, :type :invoke, :process 0, :f :read, :value nil}"


@pytest.mark.parametrize(
    ("second_line", "expected"),
    [
        ("{:index 1, :type :ok, :process 0, :f :read", "to close"),
        ("{:index 1, :type :ok, :process 0, :f :read}}", "unmatched '}'"),
        ("{:index 1, :type :ok, :process 0, :f :read]", "expected '}' to close"),
        ('{:index 1, :type :ok, :process 0, :f :read, :value "open', "closing '\"'"),
        ("{:index 1, :type :ok, :process 0, :f}", "syntax error"),
        ("{:index 1, :type :ok, :process 0, :f :read, :value ~x }", "syntax error"),
        ("[1 2 3]", "expected an operation map"),
        ("{:index 1, :process 0, :f :read}", "expected a 'type' key"),
        ("{:index 1, :type :ok, :f :read}", "expected a 'process' key"),
        ("{:index 1, :type :finished, :process 0, :f :read}", "one of invoke, ok, fail, info"),
        ("{:index 1, :type :ok, :process [0], :f :read}", "'process' to be an integer"),
        ("{:index 1, :type :ok, :process 0, :f nil}", "'f' to be a non-empty name"),
        ('{:index "one", :type :ok, :process 0, :f :read}', "'index'"),
        ("{:index 1, :type :ok, :process 0, :f :read, :value #{1 2]}", "to close '#{'"),
    ],
)
def test_edn_bad_input_names_the_line(tmp_path: Path, second_line: str, expected: str) -> None:
    path = tmp_path / "history.edn"
    path.write_text(
        GOOD_EDN + "\n" + second_line + "\n" + GOOD_EDN.replace(":index 0", ":index 2") + "\n",
        encoding="utf-8",
    )
    with pytest.raises(HistoryError) as error:
        read_edn(path)
    assert error.value.line == 2, str(error.value)
    assert "line 2" in str(error.value)
    assert expected in str(error.value)


def test_edn_tag_at_the_end_of_input_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "history.edn"
    path.write_text(GOOD_EDN + "\n#jepsen.history.Op\n", encoding="utf-8")
    with pytest.raises(HistoryError, match="a form after this tag") as error:
        read_edn(path)
    assert error.value.line == 2


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
@pytest.mark.parametrize("suffix", [".jsonl", ".edn"])
def test_empty_files_are_refused_by_every_reader(tmp_path: Path, content: str, suffix: str) -> None:
    path = tmp_path / f"history{suffix}"
    path.write_text(content, encoding="utf-8")
    reader = read_jsonl if suffix == ".jsonl" else read_edn
    with pytest.raises(HistoryError, match="empty"):
        reader(path)
    with pytest.raises(HistoryError, match="empty"):
        read_history(path)


def test_missing_file_and_undecodable_bytes(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match="no such file"):
        read_history(tmp_path / "nope.jsonl")
    binary = tmp_path / "history.jsonl"
    binary.write_bytes(GOOD_JSON.encode() + b"\n\xff\xfe\x00\n")
    with pytest.raises(HistoryError, match="UTF-8") as error:
        read_jsonl(binary)
    assert error.value.line is not None
    with pytest.raises(HistoryError):
        list(iter_jsonl(tmp_path))  # a directory


def test_unrecognisable_content_asks_for_a_format(tmp_path: Path) -> None:
    path = tmp_path / "mystery.dat"
    path.write_text("hello world\n", encoding="utf-8")
    with pytest.raises(HistoryError, match="--format"):
        read_history(path)


def test_parse_literal_takes_json_and_edn() -> None:
    assert parse_literal("0") == 0
    assert parse_literal('{"x": 0}') == {"x": 0}
    assert parse_literal("{:x 0 :y 0}") == {"x": 0, "y": 0}
    assert parse_literal("nil") is None
    assert parse_literal("[1 2 :a]") == [1, 2, "a"]
    for bad in ("", "{:x", "1 2", ")"):
        with pytest.raises(ValueError, match="literal"):
            parse_literal(bad)


# --------------------------------------------------------------------------- the corpus


def corpus_or_skip() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is absent ({CORPUS}): it lives outside the project")
    return CORPUS


def test_detects_the_corpus_formats() -> None:
    corpus = corpus_or_skip()
    assert detect_format(corpus / "jepsen" / "etcd_000.log") == "jepsen-log"
    assert detect_format(corpus / "kv" / "c01-ok.txt") == "porcupine-kv"


def test_corpus_formats_are_read_through_the_importers_with_lines_named(tmp_path: Path) -> None:
    log = tmp_path / "etcd.log"
    log.write_text(
        "INFO  jepsen.util - 0\t:invoke\t:read\tnil\nINFO  jepsen.util - 0\t:bogus\t:read\t3\n",
        encoding="utf-8",
    )
    assert detect_format(log) == "jepsen-log"
    with pytest.raises(HistoryError) as error:
        read_history(log)
    assert error.value.line == 2
    kv = tmp_path / "kv.txt"
    kv.write_text(
        '{:process 0, :type :invoke, :f :get, :key "1", :value nil}\n'
        '{:process 0, :type :ok, :f :get, :key "1", :value "x"}\n',
        encoding="utf-8",
    )
    assert detect_format(kv) == "porcupine-kv"
    ops = read_history(kv)
    assert [(op.type, op.f) for op in ops] == [("invoke", "get"), ("ok", "get")]
