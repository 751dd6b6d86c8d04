"""Failover on a connection reset, in the deterministic simulation: when the leader's
process dies its peers see its connections closed and start a pre-vote at once. Proven
here: no term ever has two leaders, histories stay valid, a new leader comes well within
one election timeout; and a partition (no reset) still waits the full timeout."""

from __future__ import annotations

import re
import statistics

from campaign.sim.run import SimConfig, run_simulation

ELECTION_MS = 250.0
HEARTBEAT_MS = 50.0
# A follower's timer runs from the last heartbeat it got, up to one heartbeat before the
# fault: the earliest a timeout can fire after it.
FULL_TIMEOUT = (ELECTION_MS - HEARTBEAT_MS) / 1000


def _config(seed: int, nemesis: str, resets: bool) -> SimConfig:
    return SimConfig(
        seed=seed,
        time=8.0,
        nodes=3,
        rate=40.0,
        workload="register",
        nemesis=nemesis,
        nemesis_interval=1.5,
        heartbeat_ms=HEARTBEAT_MS,
        election_timeout_ms=ELECTION_MS,
        recovery_time=1.0,
        connection_resets=resets,
    )


def _leader_lines(outcome) -> list[tuple[float, str, int]]:
    """(time, node, term) of every 'role=leader' line."""
    out = []
    for node, text in outcome.node_logs.items():
        for line in text.splitlines():
            stamp, _, rest = line.partition(" ")
            match = re.search(r"role=leader term=(\d+)", rest)
            if match:
                out.append((float(stamp), node, int(match.group(1))))
    return sorted(out)


def _gaps(outcome, start_f: str) -> list[float]:
    """Seconds from each fault start to the next leader elected elsewhere."""
    leaders = _leader_lines(outcome)
    gaps = []
    for record in outcome.nemesis_records:
        if record["f"] != start_f:
            continue
        at = _seconds(record)
        after = [t for t, _node, _term in leaders if t > at]
        if after:
            gaps.append(after[0] - at)
    return gaps


def test_a_reset_elects_faster_and_never_two_leaders() -> None:
    fast: list[float] = []
    slow: list[float] = []
    for seed in (1, 2, 3):
        for resets, gaps in ((True, fast), (False, slow)):
            outcome = run_simulation(_config(seed, "kill:leader", resets))
            failing = {n: r for n, r in outcome.checkers.items() if r.get("valid") is not True}
            assert outcome.valid is True, (seed, resets, failing)
            assert outcome.checkers["election-safety"]["valid"] is True
            terms = [(term, node) for _t, node, term in _leader_lines(outcome)]
            assert len({t for t, _ in terms}) == len(set(terms)), "two leaders in one term"
            gaps.extend(_gaps(outcome, "kill"))
    assert len(fast) >= 6 and len(slow) >= 6
    # Without resets a follower waits at least one election timeout; with them the
    # median failover is well under it.
    assert min(slow) >= FULL_TIMEOUT, slow
    assert statistics.median(fast) < 0.6 * ELECTION_MS / 1000, (fast, slow)
    assert statistics.median(fast) < statistics.median(slow) / 2, (fast, slow)


def test_a_partition_still_waits_the_full_election_timeout() -> None:
    gaps: list[float] = []
    for seed in (1, 2):
        outcome = run_simulation(_config(seed, "partition:leader", True))
        assert outcome.valid is True
        gaps.extend(_gaps(outcome, "start-partition"))
    assert gaps
    assert min(gaps) >= FULL_TIMEOUT, gaps


def _seconds(record: dict) -> float:
    """A nemesis record's time in simulated seconds (nemesis.jsonl's format records
    nanoseconds on the history's clock; older records held seconds)."""
    time = record["time"]
    return time / 1e9 if time > 1e6 else time
