"""`raftlab check --checker elle-*`: Jepsen EDN and JSONL txn histories, verdicts as exit
codes, the anomaly in words, results.json and the page with the cycle drawn."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checker.history import Op, read_edn, write_jsonl

WRITE_SKEW_EDN = """\
{:index 0 :type :invoke :process 0 :f :txn :value [[:r :x nil] [:append :y 1]]}
{:index 1 :type :invoke :process 1 :f :txn :value [[:r :y nil] [:append :x 1]]}
{:index 2 :type :ok :process 0 :f :txn :value [[:r :x []] [:append :y 1]]}
{:index 3 :type :ok :process 1 :f :txn :value [[:r :y []] [:append :x 1]]}
{:index 4 :type :invoke :process 2 :f :txn :value [[:r :x nil] [:r :y nil]]}
{:index 5 :type :ok :process 2 :f :txn :value [[:r :x [1]] [:r :y [1]]]}
"""


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from campaign.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["check", *args])
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else int(code)), captured.out, captured.err


def test_edn_keywords_in_nested_vectors_become_strings(tmp_path: Path) -> None:
    path = tmp_path / "history.edn"
    path.write_text(WRITE_SKEW_EDN)
    ops = read_edn(path)
    assert ops[0].f == "txn"
    assert ops[0].value == [["r", "x", None], ["append", "y", 1]]
    assert ops[2].value == [["r", "x", []], ["append", "y", 1]]


def test_edn_write_skew_by_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.edn"
    path.write_text(WRITE_SKEW_EDN)
    code, out, _ = run_cli(
        [str(path), "--checker", "elle-list-append", "--consistency-model", "serializable"],
        capsys,
    )
    assert code == 1
    assert "INVALID (serializable)" in out
    assert "G2-item: T2 → T3 → T2" in out or "G2-item: T3 → T2 → T3" in out
    assert "T2 read x = [] (the initial state) without T3's append of 1" in out
    assert "not repeatable-read" in out
    code, out, _ = run_cli(
        [str(path), "--checker", "elle-list-append", "--consistency-model",
         "snapshot-isolation"],
        capsys,
    )
    assert code == 0
    assert "VALID (snapshot-isolation)" in out


def test_jsonl_out_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ops = [
        Op(0, 0, "invoke", 0, "txn", [["w", "x", 1], ["r", "y", None]]),
        Op(1, 1, "invoke", 1, "txn", [["r", "x", None], ["w", "y", 2]]),
        Op(2, 2, "ok", 0, "txn", [["w", "x", 1], ["r", "y", 2]]),
        Op(3, 3, "ok", 1, "txn", [["r", "x", 1], ["w", "y", 2]]),
    ]
    path = tmp_path / "history.jsonl"
    write_jsonl(path, ops)
    out_dir = tmp_path / "out"
    code, out, _ = run_cli(
        [str(path), "--checker", "elle-rw-register", "--out", str(out_dir)], capsys
    )
    assert code == 1
    document = json.loads((out_dir / "results.json").read_text())
    assert document["valid"] is False
    assert document["result"]["anomaly-types"] == ["G1c"]
    steps = document["result"]["anomalies"]["G1c"][0]["steps"]
    assert {s["type"] for s in steps} == {"wr"}
    page = (out_dir / "explanation.html").read_text()
    assert "<svg" in page and "G1c" in page and "wr→" in page


def test_valid_history_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ops = [
        Op(0, 0, "invoke", 0, "txn", [["append", "x", 1]]),
        Op(1, 1, "ok", 0, "txn", [["append", "x", 1]]),
        Op(2, 2, "invoke", 0, "txn", [["r", "x", None]]),
        Op(3, 3, "ok", 0, "txn", [["r", "x", [1]]]),
    ]
    path = tmp_path / "history.jsonl"
    write_jsonl(path, ops)
    code, out, _ = run_cli([str(path), "--checker", "elle-list-append"], capsys)
    assert code == 0
    assert "VALID (strict-serializable)" in out


def test_duplicate_appends_exit_unknown(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ops = [
        Op(0, 0, "invoke", 0, "txn", [["append", "x", 1]]),
        Op(1, 1, "ok", 0, "txn", [["append", "x", 1]]),
        Op(2, 2, "invoke", 0, "txn", [["append", "x", 1]]),
        Op(3, 3, "ok", 0, "txn", [["append", "x", 1]]),
    ]
    path = tmp_path / "history.jsonl"
    write_jsonl(path, ops)
    code, out, _ = run_cli([str(path), "--checker", "elle-list-append"], capsys)
    assert code == 2
    assert "appended to key x more than once" in out


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([["w", "x", 1]], "expected micro-ops append, r, got 'w'"),
        ([["append", "x"]], "expected a micro-op [f, key, value]"),
        (7, "expected a txn value"),
    ],
)
def test_bad_txn_shapes_exit_254(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: object, message: str
) -> None:
    path = tmp_path / "history.jsonl"
    write_jsonl(path, [Op(0, 0, "invoke", 0, "txn", value)])
    code, _, err = run_cli([str(path), "--checker", "elle-list-append"], capsys)
    assert code == 254
    assert message in err


def test_bad_arguments_exit_254(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "history.edn"
    path.write_text(WRITE_SKEW_EDN)
    code, _, err = run_cli(
        [str(path), "--checker", "elle-list-append", "--consistency-model", "linearizable"],
        capsys,
    )
    assert code == 254 and "unknown model" in err
    code, _, err = run_cli([str(path), "--consistency-model", "serializable"], capsys)
    assert code == 254 and "--checker elle-*" in err


def test_a_read_that_is_not_a_list_exits_254(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "history.jsonl"
    write_jsonl(
        path,
        [
            Op(0, 0, "invoke", 0, "txn", [["r", "x", None]]),
            Op(1, 1, "ok", 0, "txn", [["r", "x", "abc"]]),
        ],
    )
    code, _, err = run_cli([str(path), "--checker", "elle-list-append"], capsys)
    assert code == 254
    assert "expected a list-append read to return a list" in err
