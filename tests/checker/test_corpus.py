"""Porcupine's test corpus: every verdict must equal ``expected.tsv``, none undecided.

The corpus lives in ``../shared/corpus/porcupine`` (Jepsen etcd logs checked with the
etcd model, kv logs checked per key with the kv model); those tests skip when it is
absent. The importers' own tests (meaning carried into ops, bad input) need no corpus.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from checker.history import HistoryError
from checker.importers import read_jepsen_log, read_porcupine_kv
from checker.linearizable import check

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "porcupine"
EXPECTED = CORPUS / "expected.tsv"
# Generous: the whole corpus takes about two seconds; a budget is no way to pass here.
TIME_LIMIT = 120.0

needs_corpus = pytest.mark.skipif(
    not EXPECTED.is_file(), reason=f"Porcupine corpus not found at {CORPUS.resolve()}"
)

VERDICTS = {"linearizable": True, "not": False}


def corpus_rows() -> list[tuple[str, str, str]]:
    if not EXPECTED.is_file():
        return []
    with EXPECTED.open(encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    return [(row["file"], row["format"], row["expected_verdict"]) for row in rows]


def load(file: str, format_name: str) -> tuple[list, str]:
    if format_name.startswith("jepsen-etcd-log"):
        return read_jepsen_log(CORPUS / file), "etcd"
    if format_name == "edn-kv-log":
        return read_porcupine_kv(CORPUS / file), "kv"
    raise AssertionError(f"unknown corpus format {format_name!r}")


@needs_corpus
def test_the_corpus_is_complete() -> None:
    rows = corpus_rows()
    judged = [row for row in rows if row[2] in VERDICTS]
    assert len(judged) == 108
    for file, _, _ in rows:
        assert (CORPUS / file).is_file(), file


@needs_corpus
@pytest.mark.parametrize("nil_read", ["absent", "unknown"])
@pytest.mark.parametrize(
    ("file", "format_name", "expected"),
    [row for row in corpus_rows() if row[2] in VERDICTS],
    ids=lambda value: str(value),
)
def test_verdict_matches_expected(
    file: str, format_name: str, expected: str, nil_read: str
) -> None:
    """Under both meanings of a nil read: "absent" is Porcupine's (and ``raftlab check``'s
    default for these formats); Knossos' "unknown" changes no verdict of this corpus either
    (its etcd logs' nil reads never decide one, its kv logs hold none)."""
    ops, model = load(file, format_name)
    result = check(ops, model, time_limit=TIME_LIMIT, nil_read=nil_read)
    assert result["nil_read"] == nil_read
    assert result["valid"] != "unknown", result.get("error")
    assert result["valid"] is VERDICTS[expected]
    if result["valid"] is False:
        failure = result["failures"][0]
        assert failure["op"] is not None
        assert failure["states"], "an explanation names the states the model could be in"


@needs_corpus
def test_empty_log_has_no_operations() -> None:
    empty = [row for row in corpus_rows() if row[2] not in VERDICTS]
    assert empty, "expected the corpus' empty log"
    for file, format_name, _ in empty:
        ops, model = load(file, format_name)
        assert ops == []
        assert check(ops, model)["valid"] is True


@needs_corpus
@pytest.mark.parametrize("name", ["c01-ok", "c01-bad", "c10-ok", "c10-bad"])
def test_kv_whole_map_agrees_with_per_key(name: str) -> None:
    """Porcupine also checks these with an unpartitioned map model (kvNoPartitionModel)."""
    ops = read_porcupine_kv(CORPUS / "kv" / f"{name}.txt")
    per_key = check(ops, "kv", time_limit=TIME_LIMIT)
    whole = check(ops, "kv", decompose=False, time_limit=TIME_LIMIT)
    assert per_key["component_count"] == len({op.value[0] for op in ops})
    assert whole["component_count"] == 1
    assert whole["valid"] is per_key["valid"] is name.endswith("-ok")


# ----------------------------------------------------------------------------- importers


def test_jepsen_log_lines_carry_the_etcd_tests_meaning() -> None:
    lines = [
        "INFO  jepsen.core - Running test",  # another logger: skipped
        "INFO  jepsen.util - 0\t:invoke\t:cas\t[1 2]",
        "INFO  jepsen.util - 0   :fail   :cas    [1 2]",  # spaces instead of tabs
        "",
        "INFO  jepsen.util - 1\t:invoke\t:read\tnil",
        "INFO  jepsen.util - 1\t:fail\t:read\t:timed-out",
        "INFO  jepsen.util - 2\t:invoke\t:write\t4",
        "INFO  jepsen.util - 2\t:info\t:write\t:timed-out",
        "2015-06-01 10:00:00,123{GMT}\tINFO\tjepsen.util - 3\t:invoke\t:read\tnil",
        "INFO  jepsen.util - 3\t:ok\t:read\t4",
        "INFO  jepsen.util - :nemesis\t:info\t:start\t{:n1 :isolated}",
    ]
    ops = read_jepsen_log(lines)
    assert [(op.index, op.time) for op in ops] == [(i, i) for i in range(9)]
    failed_cas = ops[1]
    assert (failed_cas.type, failed_cas.f, failed_cas.value, failed_cas.error) == (
        "fail",
        "cas",
        [1, 2],
        "cas_mismatch",
    )
    assert (ops[3].type, ops[3].value, ops[3].error) == ("fail", None, "timed-out")
    assert (ops[5].type, ops[5].value, ops[5].error) == ("info", 4, "timed-out")
    assert (ops[7].process, ops[7].value) == (3, 4)
    assert ops[8].process == "nemesis"
    assert ops[8].value == {"n1": "isolated"}


def test_jepsen_log_bad_lines_are_named(tmp_path: Path) -> None:
    for bad, expected in [
        ("INFO  jepsen.util - 0\t:invoke\t:write\t[1", "EDN value"),
        ("INFO  jepsen.util - 0\t:started\t:write\t1", "op type"),
        ("just some words", "expected an op"),
    ]:
        log = tmp_path / "bad.log"
        log.write_text("INFO  jepsen.util - 0\t:invoke\t:read\tnil\n" + bad + "\n")
        with pytest.raises(HistoryError, match=expected) as error:
            read_jepsen_log(log)
        assert error.value.line == 2
        assert error.value.path == str(log)
    with pytest.raises(HistoryError, match="no such file"):
        read_jepsen_log(tmp_path / "missing.log")
    (tmp_path / "binary.log").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(HistoryError, match="UTF-8"):
        read_jepsen_log(tmp_path / "binary.log")


def test_porcupine_kv_maps_become_keyed_ops() -> None:
    lines = [
        '{:process 0, :type :invoke, :f :append, :key "0", :value "x 0 0 y"}',
        '{:process 0, :type :ok, :f :append, :key "0", :value "x 0 0 y"}',
        '{:process 1, :type :invoke, :f :get, :key "0", :value nil}',
        '{:process 1, :type :ok, :f :get, :key "0", :value "x \\"quoted\\" y"}',  # not flat
        '{:process 2, :type :invoke, :f :put, :key [1 2], :value "a"}',
    ]
    ops = read_porcupine_kv(lines)
    assert [op.value for op in ops] == [
        ["0", "x 0 0 y"],
        ["0", "x 0 0 y"],
        ["0", None],
        ["0", 'x "quoted" y'],
        [(1, 2), "a"],
    ]
    assert [op.f for op in ops] == ["append", "append", "get", "get", "put"]
    assert ops[1].type == "ok" and ops[4].process == 2


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('{:process 0, :type :invoke, :f :get, :key "0"', "EDN"),
        ("{:process 0, :type :invoke, :f :get, :value nil}", ":key"),
        ('{:process 0, :type :begun, :f :get, :key "0"}', ":type"),
        ('{:process "x y" :type :invoke, :f 3, :key "0"}', ":f"),
        ("[1 2 3]", "EDN map"),
        ('{:process 0, :type :ok, :f :get, :key "0"} {:process 0}', "one EDN map"),
    ],
)
def test_porcupine_kv_bad_lines_are_named(line: str, expected: str) -> None:
    good = '{:process 0, :type :invoke, :f :get, :key "0", :value nil}'
    with pytest.raises(HistoryError, match=expected) as error:
        read_porcupine_kv([good, "", line])
    assert error.value.line == 3
