"""The anomaly as a user meets it: `raftlab check` prints it; the docs say what the CLI does;
nemesis.jsonl has one format in `test` and `sim`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from campaign.cli import main
from checker.history import write_jsonl
from checker.op import Op

ROOT = Path(__file__).resolve().parents[2]
S = 1_000_000_000


def test_check_prints_the_anomaly_in_words(tmp_path: Path, capsys) -> None:
    ops = [
        Op(0, 1 * S, "invoke", 0, "write", [1, 804]),
        Op(1, int(1.1 * S), "ok", 0, "write", [1, 804]),
        Op(2, 12 * S, "invoke", 1, "write", [1, 3]),
        Op(3, int(12.2 * S), "ok", 1, "write", [1, 3]),
        Op(4, int(12.31 * S), "invoke", 2, "read", [1, None]),
        Op(5, int(12.4 * S), "ok", 2, "read", [1, 804]),
    ]
    write_jsonl(tmp_path / "history.jsonl", ops)
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(tmp_path / "history.jsonl"), "--out", str(tmp_path / "why")])
    out = capsys.readouterr().out
    assert exit_.value.code == 1
    assert (
        "stale read: process 2 read 804 from key 1 at 12.310 s, but the write of 3 by process 1 "
        "was acknowledged at 12.200 s" in out
    )
    assert "checker: linearizable (invalid, model register)" in out
    assert f"report: {tmp_path / 'why' / 'explanation.html'}" in out


def test_the_simulation_writes_nemesis_jsonl_as_test_does(tmp_path: Path) -> None:
    from raftlab import run_simulation

    result = run_simulation(
        3,
        time=6.0,
        nodes=3,
        nemesis="partition,kill",
        nemesis_interval=1.0,
        keep_all=True,
        results_dir=tmp_path,
    )
    run_dir = result.run_dir
    assert run_dir is not None
    records = [json.loads(line) for line in (run_dir / "nemesis.jsonl").read_text().splitlines()]
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    nemesis_ops = [op for op in history if op["process"] == "nemesis"]
    assert records and len(records) == len(nemesis_ops)
    for record, op in zip(records, nemesis_ops, strict=True):
        assert set(record) >= {"time", "end_time", "wall_time", "phase", "fault", "f", "value"}
        assert isinstance(record["time"], int) and record["time"] == op["time"]
        assert record["f"] == op["f"] and record["phase"] in ("start", "stop", "heal")
    assert {r["fault"] for r in records if r["phase"] != "heal"} <= {"partition", "kill"}


def test_the_readme_names_the_clock_variants_the_cli_takes() -> None:
    from nemesis.faults.clock import MODES

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for mode in MODES:
        assert f"`clock-{mode}`" in readme and f"`{mode}`" in readme
    assert "reset:" not in readme  # "reset" is what stopping does, not a variant
    assert "**130**" in readme
