"""`raftlab check`: verdicts map to exit codes 0/1/2, bad input to 254 with a clear message.

Most tests call the real CLI root (`campaign.cli.main`, which maps click's errors onto
raftlab's exit codes) in-process; one runs `python3 -m campaign check` as a user would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from checker.cli import guess_model
from checker.history import Op, write_edn, write_jsonl

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CORPUS = PROJECT_ROOT / ".." / "shared" / "corpus" / "porcupine"


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from campaign.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["check", *args])
    captured = capsys.readouterr()
    code = exit_info.value.code
    return (0 if code is None else int(code)), captured.out, captured.err


def history(*events: tuple[str, int, str, object]) -> list[Op]:
    """Ops from (type, process, f, value) tuples, with indexes and times in order."""
    return [
        Op(index=i, time=1000 * i, type=type_, process=process, f=f, value=value)
        for i, (type_, process, f, value) in enumerate(events)
    ]


VALID = history(
    ("invoke", 0, "write", 1),
    ("invoke", 1, "read", None),
    ("ok", 0, "write", 1),
    ("ok", 1, "read", 1),
    ("invoke", 0, "cas", [1, 2]),
    ("ok", 0, "cas", [1, 2]),
    ("invoke", 1, "read", None),
    ("ok", 1, "read", 2),
)

# The read of 1 starts after the write of 2 completed, and nothing wrote 1 since.
INVALID = history(
    ("invoke", 0, "write", 1),
    ("ok", 0, "write", 1),
    ("invoke", 0, "write", 2),
    ("ok", 0, "write", 2),
    ("invoke", 1, "read", None),
    ("ok", 1, "read", 1),
)


def write(tmp_path: Path, ops: list[Op], name: str = "history.jsonl") -> Path:
    path = tmp_path / name
    (write_edn if name.endswith(".edn") else write_jsonl)(path, ops)
    return path


def test_valid_history_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli([str(write(tmp_path, VALID))], capsys)
    assert code == 0, out
    assert "VALID" in out and "cas-register" in out


def test_invalid_history_exits_1_and_names_the_culprit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli([str(write(tmp_path, INVALID, "history.edn"))], capsys)
    assert code == 1, out
    assert "INVALID" in out
    assert "cannot linearize" in out and "read" in out


def test_a_run_folder_is_checked_through_its_history_jsonl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write(tmp_path, INVALID)
    code, out, _ = run_cli([str(tmp_path)], capsys)
    assert code == 1 and "history.jsonl" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = run_cli([str(empty)], capsys)
    assert code == 254 and "no history.jsonl" in err


def test_init_value_changes_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    reads_5 = history(("invoke", 0, "read", None), ("ok", 0, "read", 5))
    path = write(tmp_path, reads_5)
    assert run_cli([str(path), "--model", "register", "--init", "5"], capsys)[0] == 0
    assert run_cli([str(path), "--model", "register", "--init", "0"], capsys)[0] == 1
    # EDN literal for a multi-register's initial value.
    txn = history(("invoke", 0, "txn", [["r", "x", None]]), ("ok", 0, "txn", [["r", "x", 3]]))
    txn_path = write(tmp_path, txn, "txn.jsonl")
    assert run_cli([str(txn_path), "--init", "{:x 3 :y 0}"], capsys)[0] == 0
    assert run_cli([str(txn_path), "--init", "{:x 4 :y 0}"], capsys)[0] == 1


def test_an_invalid_register_checked_without_init_says_from_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Knossos' multi-register corpus file is valid from {:x 0 :y 0} and invalid from empty
    registers: the verdict says which start it assumed, and a given --init silences it."""
    txn = history(
        ("invoke", 0, "txn", [["r", "x", None], ["r", "y", None]]),
        ("ok", 0, "txn", [["r", "x", 0], ["r", "y", 0]]),
    )
    path = write(tmp_path, txn, "txn.edn")
    code, out, _ = run_cli([str(path)], capsys)
    assert code == 1 and "no --init was given" in out
    code, out, _ = run_cli([str(path), "--init", "{:x 1 :y 0}"], capsys)
    assert code == 1 and "no --init" not in out
    code, out, _ = run_cli([str(path), "--init", "{:x 0 :y 0}"], capsys)
    assert code == 0 and "no --init" not in out
    valid = write(tmp_path, history(("invoke", 0, "read", None), ("ok", 0, "read", None)))
    code, out, _ = run_cli([str(valid)], capsys)
    assert code == 0 and "no --init" not in out


def hard_history(writers: int) -> list[Op]:
    """Many concurrent writes that never complete and a read of a value nobody wrote.

    Deciding it means trying the subsets of the pending writes; with a tiny time limit
    the search must give up and say unknown.
    """
    events: list[tuple[str, int, str, object]] = []
    for process in range(writers):
        events.append(("invoke", process, "write", process))
    for reader in range(writers, writers + 3 * writers):
        events.append(("invoke", reader, "read", None))
        events.append(("ok", reader, "read", reader % writers))
        events.append(("invoke", reader + 1000, "cas", [reader % writers, (reader + 1) % writers]))
    events.append(("invoke", 9999, "read", None))
    events.append(("ok", 9999, "read", -1))
    return history(*events)


def test_time_limit_gives_unknown_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, hard_history(40))
    code, out, _ = run_cli([str(path), "--model", "cas-register", "--time-limit", "0.001"], capsys)
    assert code == 2, out
    assert "UNKNOWN" in out


def test_out_writes_results_and_a_self_contained_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "out"
    code, out, _ = run_cli([str(write(tmp_path, INVALID)), "--out", str(out_dir)], capsys)
    assert code == 1
    results = json.loads((out_dir / "results.json").read_text(encoding="utf-8"))
    assert results["valid"] is False and results["model"] == "register"
    assert results["result"]["valid"] is False
    page = (out_dir / "explanation.html").read_text(encoding="utf-8")
    parser = HTMLParser()
    parser.feed(page)
    parser.close()
    assert "not linearizable" in page and "<svg" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page and "<script" not in page


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["--init", "{:x"], "JSON or EDN literal"),
        (["--format", "xml"], "xml"),
        (["--time-limit", "0"], "time-limit"),
        (["--time-limit", "-3"], "time-limit"),
    ],
)
def test_bad_arguments_exit_254(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], expected: str
) -> None:
    code, out, err = run_cli([str(write(tmp_path, VALID)), *args], capsys)
    assert code == 254, out + err
    assert expected in err
    assert "Traceback" not in err


def test_malformed_history_exits_254_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, VALID)
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3][:20]  # cut short: invalid JSON on line 4
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    code, out, err = run_cli([str(path)], capsys)
    assert code == 254
    assert "line 4" in err and str(path) in err
    assert "Traceback" not in err


def test_input_errors_found_while_pairing_exit_254(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    double_invoke = history(
        ("invoke", 0, "write", 1), ("invoke", 0, "write", 2), ("ok", 0, "write", 2)
    )
    code, _, err = run_cli([str(write(tmp_path, double_invoke))], capsys)
    assert code == 254, err
    assert "outstanding" in err and "Traceback" not in err


def test_ops_the_model_cannot_read_exit_254_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    odd = history(("invoke", 0, "frobnicate", 1), ("ok", 0, "frobnicate", 1))
    path = write(tmp_path, odd)
    code, _, err = run_cli([str(path), "--model", "register"], capsys)
    assert code == 254, err
    assert str(path) in err and "frobnicate" in err and "Traceback" not in err


def test_missing_file_and_unknown_model_shape_exit_254(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli([str(tmp_path / "absent.jsonl")], capsys)
    assert code == 254 and "absent.jsonl" in err
    odd = history(("invoke", 0, "frobnicate", 1), ("ok", 0, "frobnicate", 1))
    code, _, err = run_cli([str(write(tmp_path, odd))], capsys)
    assert code == 254 and "--model" in err


def test_guess_model_reads_function_names_and_value_shapes() -> None:
    assert guess_model(VALID)[0] == "cas-register"
    assert guess_model(history(("invoke", 0, "write", 1), ("ok", 0, "write", 1)))[0] == "register"
    keyed = history(
        ("invoke", 0, "write", ["k", 1]),
        ("ok", 0, "write", ["k", 1]),
        ("invoke", 1, "read", ["k", None]),
    )
    assert guess_model(keyed)[0] == "register"
    assert guess_model(history(("invoke", 0, "txn", [["w", "x", 1]])))[0] == "multi-register"
    assert guess_model(history(("invoke", 0, "acquire", None)))[0] == "mutex"
    assert guess_model(history(("invoke", 0, "enqueue", 1)))[0] == "fifo-queue"
    set_ops = history(
        ("invoke", 0, "add", 1),
        ("ok", 0, "add", 1),
        ("invoke", 0, "read", None),
        ("ok", 0, "read", [1]),
    )
    assert guess_model(set_ops)[0] == "set"
    counter = history(
        ("invoke", 0, "add", 1),
        ("ok", 0, "add", 1),
        ("invoke", 0, "read", None),
        ("ok", 0, "read", 1),
    )
    assert guess_model(counter)[0] == "counter"
    assert guess_model(history(("invoke", 0, "add", 1)))[0] is None  # set or counter? ask
    assert guess_model(history(("invoke", 0, "get", None)))[0] == "kv"


def test_guess_model_value_types_beyond_the_plain_ones() -> None:
    """The plain-type shortcut of guess_model leaves subclasses and other types to the
    full test: a str subclass is a register value, a list read is not."""

    class Name(str):
        pass

    named = history(("invoke", 0, "write", Name("a")), ("ok", 0, "write", Name("a")))
    assert guess_model(named)[0] == "register"
    listed = history(("invoke", 0, "read", None), ("ok", 0, "read", [1]))
    assert guess_model(listed)[0] is None
    keyed_list = history(
        ("invoke", 0, "write", ["k", [1]]), ("invoke", 1, "read", ["k", None]),
        ("ok", 1, "read", ["k", True]),
    )
    assert guess_model(keyed_list)[0] is None  # the written value [1] is not a register's


def corpus_or_skip() -> Path:
    if not CORPUS.is_dir():
        pytest.skip(
            f"the shared corpus is absent ({CORPUS.resolve()}): it lives outside the project"
        )
    return CORPUS


@pytest.mark.slow
def test_the_installed_command_runs_a_corpus_log_as_a_user_would(tmp_path: Path) -> None:
    corpus = corpus_or_skip()
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    # etcd_000 is not linearizable (expected.tsv); its format and model are detected.
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "campaign",
            "check",
            str(corpus / "jepsen" / "etcd_000.log"),
            "--out",
            str(tmp_path),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert "jepsen-log" in completed.stdout and "etcd" in completed.stdout
    assert (tmp_path / "explanation.html").is_file()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"index": 0, "type": "invoke"\n', encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "campaign", "check", str(bad)],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 254
    assert "line 1" in completed.stderr and "Traceback" not in completed.stderr


def test_many_files_one_line_each_and_the_worst_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    valid, invalid = tmp_path / "valid.jsonl", tmp_path / "invalid.edn"
    write_jsonl(valid, VALID)
    write_edn(invalid, INVALID)
    code, out, _ = run_cli([str(valid), str(valid)], capsys)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2 and all("VALID" in line and "valid.jsonl" in line for line in lines)
    code, out, _ = run_cli([str(valid), str(invalid), str(valid)], capsys)
    assert code == 1
    lines = out.strip().splitlines()
    assert len(lines) == 3
    assert "INVALID" in lines[1] and "invalid.edn" in lines[1] and "cannot linearize" in lines[1]
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"type": "invoke"\n', encoding="utf-8")
    code, out, _ = run_cli([str(invalid), str(broken)], capsys)
    assert code == 254
    assert "broken.jsonl: BAD INPUT" in out and "invalid.edn: INVALID" in out
    code, _, _ = run_cli([str(valid), str(valid), "--out", str(tmp_path / "o")], capsys)
    assert code == 254  # --out names one file's outputs


def test_check_imports_no_heavy_library_it_does_not_need(tmp_path: Path) -> None:
    path = tmp_path / "h.edn"
    write_edn(path, VALID)
    probe = (
        "import sys; from campaign.cli import main\n"
        "try:\n    main(['check', sys.argv[1]])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('networkx', 'edn_format', 'matplotlib', 'rich') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, str(path)],
        capture_output=True, text=True, cwd=PROJECT_ROOT, check=False,
    )
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr
