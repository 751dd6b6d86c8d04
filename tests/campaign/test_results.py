"""The results folder of conventions §2, written from plain data (as the simulation will)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime

import pytest

from campaign.results import (
    REQUIRED_FILES,
    NodeEvent,
    ResultsError,
    campaign_document,
    check_run_name,
    missing_files,
    new_run_dir,
    read_run_folder,
    write_json,
    write_run_folder,
)
from campaign.verdict import exit_code, results_document, run_checker
from checker import history

STARTED = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)


def write_synthetic_run(tmp_path, ops, *, valid=True, name="unit"):
    run_dir = new_run_dir(tmp_path, name, STARTED)
    campaign = campaign_document(
        {"name": name, "seed": 1234, "workload": "register", "nodes": 3},
        kind="test",
        argv=["raftlab", "test", "--seed", "1234"],
        started=STARTED,
    )
    results = results_document({"linearizable": {"valid": valid}})
    write_run_folder(
        run_dir,
        campaign=campaign,
        ops=ops,
        results=results,
        nemesis_records=[{"time": 1, "f": "start-partition", "value": "leader"}],
        node_logs={
            "n1": "2026-11-26T08:00:00+00:00 INFO n1 role=leader term=1\n",
            "n2": b"bytes\n",
        },
        node_events=[NodeEvent(5, "n1", "leader", 1, "n1")],
    )
    return run_dir


def test_every_file_and_both_links(tmp_path, register_history):
    run_dir = write_synthetic_run(tmp_path, register_history)
    assert run_dir == tmp_path / "unit" / "20261126T080000"
    assert missing_files(run_dir) == []
    assert set(REQUIRED_FILES) <= {path.name for path in run_dir.iterdir()}
    assert (tmp_path / "latest").resolve() == run_dir.resolve()
    assert (tmp_path / "unit" / "latest").resolve() == run_dir.resolve()
    assert not (tmp_path / "latest").readlink().is_absolute()  # the folder can be moved
    # The three history files hold the same ops, readable by the checker.
    assert history.read_jsonl(run_dir / "history.jsonl") == register_history
    assert [op.to_dict() for op in history.read_edn(run_dir / "history.edn")] == [
        op.to_dict() for op in register_history
    ]
    assert len((run_dir / "history.txt").read_text().splitlines()) >= len(register_history)
    campaign = json.loads((run_dir / "campaign.json").read_text())
    assert campaign["seed"] == 1234 and campaign["config"]["seed"] == 1234
    assert campaign["argv"] == ["raftlab", "test", "--seed", "1234"]
    assert campaign["versions"]["python"] and campaign["versions"]["trio"]
    results = json.loads((run_dir / "results.json").read_text())
    assert results["valid"] is True
    ElementTree.parse(run_dir / "junit.xml")
    assert (run_dir / "nodes" / "n2.log").read_bytes() == b"bytes\n"


def test_round_trip_and_newest_link(tmp_path, register_history, stale_history):
    first = write_synthetic_run(tmp_path, register_history)
    second = write_synthetic_run(tmp_path, stale_history, valid=False)
    assert second.name == "20261126T080000-1"  # same second: a new folder, not an overwrite
    assert (tmp_path / "latest").resolve() == second.resolve()
    data = read_run_folder(first)
    assert data.ops == register_history
    assert data.results["valid"] is True
    assert data.node_events == [NodeEvent(5, "n1", "leader", 1, "n1")]
    assert data.nemesis_records[0]["f"] == "start-partition"
    assert set(data.node_logs) == {"n1", "n2"}


def test_torn_history_tail_is_tolerated(tmp_path, register_history):
    run_dir = new_run_dir(tmp_path, "torn", STARTED)
    write_json(run_dir / "campaign.json", campaign_document({"seed": 1}, kind="test"))
    history.write_jsonl(run_dir / "history.jsonl", register_history)
    with open(run_dir / "history.jsonl", "a") as out:
        out.write('{"index": 99, "time": 1, "ty')  # a crash mid-line
    data = read_run_folder(run_dir)
    assert data.ops == register_history
    assert data.results is None and data.nemesis_records == [] and data.node_logs == {}


def test_unreadable_folders_say_why(tmp_path):
    with pytest.raises(ResultsError, match="not a directory"):
        read_run_folder(tmp_path / "absent")
    (tmp_path / "campaign.json").write_text("{not json")
    with pytest.raises(ResultsError, match="campaign.json: not valid JSON"):
        read_run_folder(tmp_path)


@pytest.mark.parametrize("bad", ["", "../up", "a/b", "latest", "-x", "x" * 101, "sp ace"])
def test_bad_run_names_are_refused(bad):
    with pytest.raises(ValueError):
        check_run_name(bad)


def test_campaign_document_requires_a_seed():
    with pytest.raises(ValueError, match="seed"):
        campaign_document({"name": "x"}, kind="test")


def test_verdicts_and_exit_codes():
    assert results_document({"a": {"valid": True}, "b": {"valid": "unknown"}})["valid"] == "unknown"
    assert results_document({"a": {"valid": False}, "b": {"valid": "unknown"}})["valid"] is False
    assert results_document({})["valid"] == "unknown"  # nothing judged is not valid
    assert [exit_code(v) for v in (True, False, "unknown", None)] == [0, 1, 2, 2]

    def broken():
        raise RuntimeError("boom")

    result = run_checker("broken", broken)
    assert result["valid"] == "unknown" and "boom" in result["error"]
