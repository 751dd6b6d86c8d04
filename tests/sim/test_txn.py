"""Transactions in the simulation: list-append and rw-register on the real driver and KV,
valid on the correct build, and the ``txn-stale-reads`` bug caught by Elle with a named
anomaly (the recipe of campaign/sim/scenarios.py, a few simulated seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from campaign.sim.run import run_simulation
from campaign.sim.scenarios import SCENARIOS

pytestmark = pytest.mark.slow

# Named anomalies the bug produces: a txn's reads miss appends committed before its own
# entry while its appends land after them.
BUG_ANOMALIES = {"G-single", "G2-item", "G-nonadjacent", "lost-update"}


def _main(args: list[str]) -> int:
    from campaign.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    code = exit_info.value.code
    return code if isinstance(code, int) else 255


def test_list_append_from_the_command_line_is_valid(tmp_path: Path) -> None:
    code = _main(
        [
            "sim", "--workload", "list-append", "--seed", "1", "--time", "3", "--nodes", "3",
            "--results-dir", str(tmp_path),
        ]
    )  # fmt: skip
    results = json.loads((tmp_path / "sim" / "latest" / "results.json").read_text())
    elle = results["checkers"]["elle-list-append"]
    assert code == 0, elle
    assert elle["valid"] is True and elle["txns"]["ok"] > 100
    history = (tmp_path / "sim" / "latest" / "history.jsonl").read_text().splitlines()
    assert json.loads(history[0])["f"] == "txn"


def test_the_stale_reads_bug_is_named_and_the_correct_build_is_not(tmp_path: Path) -> None:
    codes = []
    for extra in ([], ["--without-bug"]):
        codes.append(
            _main(
                [
                    "sim",
                    "--scenario",
                    "txn-stale-reads",
                    "--seed",
                    "1",
                    "--time",
                    "3",
                    *extra,
                    "--results-dir",
                    str(tmp_path),
                ]
            )  # fmt: skip
        )
    assert codes == [1, 0]
    results = json.loads((tmp_path / "bug-txn-stale-reads" / "latest" / "results.json").read_text())
    elle = results["checkers"]["elle-list-append"]
    assert elle["valid"] is False
    assert set(elle["anomaly-types"]) & BUG_ANOMALIES, elle["anomaly-types"]
    # Durability is intact: no acknowledged append is missing from the final reads.
    assert "lost-append" not in elle["anomaly-types"]
    # Each named cycle comes with its steps in words.
    cycles = [case for kind in ("G-single", "G2-item") for case in elle["anomalies"].get(kind, [])]
    assert cycles and all(step["text"] for step in cycles[0]["steps"])


@pytest.mark.parametrize(("bug", "valid"), [(False, True), (True, False)])
def test_rw_register_in_the_simulation(bug: bool, valid: bool) -> None:
    config = SCENARIOS["txn-stale-reads"].config(3, with_bug=bug, time=3.0)
    config.workload, config.workload_options = "rw-register", {"key_count": 3}
    outcome = run_simulation(config)
    elle = outcome.checkers["elle-rw-register"]
    assert outcome.valid is valid, elle.get("anomaly-types")
    if bug:
        assert set(elle["anomaly-types"]) & BUG_ANOMALIES
