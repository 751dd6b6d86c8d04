"""`raftlab analyze DIR`: re-check a stored run, rewrite its verdict files, exit by verdict."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from campaign.cli import main
from campaign.results import (
    campaign_document,
    missing_files,
    new_run_dir,
    update_latest_links,
    write_json,
)
from campaign.verdict import results_document
from checker import history

STARTED = datetime(2026, 11, 26, 9, 0, 0, tzinfo=UTC)


def stored_run(tmp_path, ops, *, claimed_valid=None):
    """A run folder as a crashed harness leaves it: campaign.json and history.jsonl only
    (plus a results.json claiming `claimed_valid`, whatever the history says, if given)."""
    run_dir = new_run_dir(tmp_path, "stored", STARTED)
    campaign = campaign_document(
        {"name": "stored", "seed": 5, "workload": "register", "workload_options": {}},
        kind="test",
        argv=["raftlab", "test"],
        started=STARTED,
    )
    write_json(run_dir / "campaign.json", campaign)
    history.write_jsonl(run_dir / "history.jsonl", ops)
    if claimed_valid is not None:
        write_json(
            run_dir / "results.json", results_document({"linearizable": {"valid": claimed_valid}})
        )
    update_latest_links(run_dir)
    return run_dir


def analyze(*args: str) -> int:
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", *args])
    return exit_.value.code


def test_stale_read_is_found_again_and_files_rewritten(tmp_path, stale_history, capsys):
    run_dir = stored_run(tmp_path, stale_history, claimed_valid=True)
    assert analyze(str(run_dir)) == 1
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is False and results["reanalyzed"] is True
    assert results["checkers"]["linearizable"]["valid"] is False
    # The files the crash did not write are there now (nemesis.jsonl had nothing to say).
    assert set(missing_files(run_dir)) == {"nemesis.jsonl", "nodes/<id>.log"}
    report = (run_dir / "report.html").read_text()
    assert "INVALID" in report and "rl-explain" in report  # the checker's explanation
    assert 'failures="1"' in (run_dir / "junit.xml").read_text()
    assert "valid=False" in capsys.readouterr().out


def test_valid_history_exits_zero_through_latest_links(tmp_path, register_history):
    run_dir = stored_run(tmp_path, register_history, claimed_valid=False)
    assert analyze(str(tmp_path)) == 0  # results/ → latest → the run
    assert json.loads((run_dir / "results.json").read_text())["valid"] is True


def test_unknown_workload_is_unknown_not_a_crash(tmp_path, register_history):
    run_dir = stored_run(tmp_path, register_history, claimed_valid=True)
    campaign = json.loads((run_dir / "campaign.json").read_text())
    campaign["config"]["workload"] = "no-such-workload"
    (run_dir / "campaign.json").write_text(json.dumps(campaign))
    assert analyze(str(run_dir)) == 2
    results = json.loads((run_dir / "results.json").read_text())
    assert "no-such-workload" in json.dumps(results)


def test_bad_folders_are_bad_arguments(tmp_path, register_history, capsys):
    assert analyze(str(tmp_path / "absent")) == 254
    assert analyze(str(tmp_path)) == 254  # exists, but holds no run
    run_dir = stored_run(tmp_path, register_history, claimed_valid=True)
    with open(run_dir / "history.jsonl", "r+") as history:
        lines = history.readlines()
        lines[3] = "{oops\n"
        history.seek(0)
        history.writelines(lines)
    assert analyze(str(run_dir)) == 254
    assert "history.jsonl" in capsys.readouterr().err


def test_verdicts_of_checkers_that_need_the_run_are_kept(tmp_path, register_history):
    """A simulation's election-safety verdict cannot be recomputed from the history: a
    re-analysis keeps it (marked) rather than turning an invalid run valid."""
    run_dir = stored_run(tmp_path, register_history)
    results = results_document(
        {"linearizable": {"valid": True}, "election-safety": {"valid": False}}
    )
    results["replay"] = "raftlab sim --seed 5"
    write_json(run_dir / "results.json", results)
    assert analyze(str(run_dir)) == 1
    rewritten = json.loads((run_dir / "results.json").read_text())
    assert rewritten["checkers"]["election-safety"] == {"valid": False, "carried_over": True}
    assert rewritten["checkers"]["linearizable"]["valid"] is True
    assert rewritten["replay"] == "raftlab sim --seed 5"
