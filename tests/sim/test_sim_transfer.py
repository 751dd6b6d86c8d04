"""Leadership transfer (§3.10) in the deterministic simulation: the ``transfer`` fault
hands leadership over under load; the target leads at once, no term has two leaders and
the history stays linearizable."""

from __future__ import annotations

import re

from campaign.sim.run import SimConfig, run_simulation


def test_transfers_under_load_move_leadership_and_stay_valid() -> None:
    outcome = run_simulation(
        SimConfig(
            seed=4,
            time=8.0,
            nodes=3,
            rate=60.0,
            workload="register",
            nemesis="transfer",
            nemesis_interval=1.0,
            recovery_time=1.0,
        )
    )
    failing = {n: r for n, r in outcome.checkers.items() if r.get("valid") is not True}
    assert outcome.valid is True, failing
    transfers = [
        r for r in outcome.nemesis_records if r["f"] == "start-transfer" and "to" in r["value"]
    ]
    assert len(transfers) >= 3
    # Each target became leader soon after it was asked (well within one election
    # timeout: TimeoutNow makes it campaign at once).
    took_over = 0
    for record in transfers:
        at, target = _seconds(record), record["value"]["to"]
        for line in outcome.node_logs[target].splitlines():
            stamp, _, rest = line.partition(" ")
            match = re.search(r"role=leader term=\d+", rest)
            if match and at <= float(stamp) <= at + 0.3:
                took_over += 1
                break
    assert took_over >= len(transfers) - 1, (took_over, len(transfers))


def _seconds(record: dict) -> float:
    """A nemesis record's time in simulated seconds (nemesis.jsonl's format records
    nanoseconds on the history's clock; older records held seconds)."""
    time = record["time"]
    return time / 1e9 if time > 1e6 else time
