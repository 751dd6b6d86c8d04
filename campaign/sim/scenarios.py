"""Bug scenarios: for each teaching bug switch, a simulated run that exercises it.

A bug switch is worth having only if the harness can catch it. Each ``BugScenario`` is
a recipe (workload, nemesis, timing and network conditions: ``SimConfig`` fields) chosen
so that the bug's damage becomes a real violation — of linearizability, set or bank
invariants, an explicit Raft invariant (election safety, state machine safety, a
monotonic commit index) or an explicit liveness bound — plus a fixed list of seeds.
``bench/bug_matrix.py`` runs every recipe over its seeds; ``tests/sim/test_bugs.py``
runs the cheapest detecting seed of each.

The correct build runs every recipe too, with no switch on, over ``CORRECT_SEEDS``:
whatever a recipe catches must be the bug's doing, not the recipe's.

Recipes were found by exploration (the run's ``--seed`` replays it exactly); a change to
the core, the driver or the simulation's random streams can move which seeds detect, so
each recipe lists several.

Two bugs need an interleaving no random schedule reached: ``vote-twice`` and
``commit-old-term`` are hand-built schedules (``SimConfig.schedule``) naming nodes and
exact times, read off seed 1's elections with fixed link delays. They replay on seed 1
only; a change that moves seed 1's election timing needs the times re-read (each step's
comment says which event it follows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from campaign.sim.run import SimConfig

CORRECT_BUILD = "correct"


@dataclass(frozen=True, slots=True)
class BugScenario:
    bug: str
    why: str  # how the recipe exposes the bug, and what should catch it
    options: dict[str, Any]  # SimConfig fields other than seed and bugs
    seeds: tuple[int, ...]  # the matrix's fixed seeds
    # Seeds for CI, cheapest first: the test passes at the first that detects (several, so
    # that a change moving one seed's schedule does not silently drop the check). Empty:
    # no detecting seed is known.
    test_seeds: tuple[int, ...]
    test_time: float | None = None  # a shorter time that still detects with test_seeds
    expected_checkers: tuple[str, ...] = field(default=())  # what caught it in exploration

    def config(self, seed: int, *, with_bug: bool = True, time: float | None = None) -> SimConfig:
        options = dict(self.options)
        if time is not None:
            options["time"] = time
        workload_options = dict(options.pop("workload_options", {}))
        return SimConfig(
            seed=seed,
            name=f"bug-{self.bug}" if with_bug else f"correct-{self.bug}",
            bugs=[self.bug] if with_bug else [],
            workload_options=workload_options,
            **options,
        )


SCENARIOS: dict[str, BugScenario] = {
    scenario.bug: scenario
    for scenario in (
        BugScenario(
            bug="stale-local-reads",
            why=(
                "the leader is cut off from the rest; clients still reach it (client "
                "traffic is not partitioned) and it answers reads from its own state while "
                "a new leader accepts writes; slow, jittery links keep followers' applied "
                "state behind the leader's too, and they answer reads as well: stale reads "
                "(linearizability)"
            ),
            options=dict(
                time=20.0,
                nodes=3,
                workload="register",
                workload_options=dict(active_keys=2, value_range=1000, ops_per_key=60),
                concurrency="10n",
                rate=300.0,
                nemesis="partition:leader",
                nemesis_interval=1.0,
                heartbeat_ms=50.0,
                election_timeout_ms=300.0,
                base_delay=0.01,
                jitter=0.08,
            ),
            seeds=(1, 2, 3, 4, 5, 6),
            test_seeds=(4, 5, 3),
            test_time=6.0,
            expected_checkers=("linearizable",),
        ),
        BugScenario(
            bug="readindex-before-noop",
            why=(
                "the leader is cut off just as it acknowledges writes, so the commit index "
                "it last sent is lost with the cut; slow, jittery links let a follower's "
                "heartbeat answer confirm the new leader's read round before its no-op "
                "commits (a lagging follower rejects the no-op first), so reads are "
                "answered from an applied state missing acknowledged writes "
                "(linearizability)"
            ),
            options=dict(
                time=20.0,
                nodes=3,
                workload="register",
                workload_options=dict(active_keys=2, value_range=1000, ops_per_key=60),
                concurrency="10n",
                rate=300.0,
                nemesis="partition:leader",
                nemesis_interval=1.0,
                heartbeat_ms=50.0,
                election_timeout_ms=300.0,
                base_delay=0.01,
                jitter=0.08,
            ),
            seeds=(1, 2, 3, 4, 5, 6, 7, 8),
            test_seeds=(7, 8, 2),
            test_time=20.0,
            expected_checkers=("linearizable",),
        ),
        BugScenario(
            bug="no-dedup",
            why=(
                "the leader is killed while appends are in flight; clients retry with the "
                "same session sequence number, and without deduplication a retried "
                "append lands twice in a list (linearizability of the append workload)"
            ),
            options=dict(
                time=15.0,
                nodes=3,
                workload="append",
                concurrency="10n",
                rate=300.0,
                nemesis="kill:leader",
                nemesis_interval=1.0,
                heartbeat_ms=50.0,
                election_timeout_ms=300.0,
            ),
            seeds=(1, 2, 3, 4, 5, 6),
            test_seeds=(5, 1, 4),
            test_time=6.0,
            expected_checkers=("linearizable",),
        ),
        BugScenario(
            bug="txn-stale-reads",
            why=(
                "list-append txns on a few keys, many clients, 10 ms links: the leader "
                "takes a txn's reads from its applied state when it proposes the txn, and "
                "the appends committed before the txn's own entry are missing from them, "
                "while its appends land after them; Elle names the cycles (G-single, "
                "G2-item), lost updates, and incompatible orders (a read after the txn's "
                "own append shows it right after the stale prefix). No acknowledged append "
                "is lost, so only an isolation checker sees it"
            ),
            options=dict(
                time=10.0,
                nodes=3,
                workload="list-append",
                workload_options=dict(key_count=3, max_txn_length=4),
                concurrency="5n",
                rate=200.0,
                nemesis="partition",
                nemesis_interval=2.0,
                heartbeat_ms=50.0,
                election_timeout_ms=300.0,
                base_delay=0.01,
                jitter=0.01,
            ),
            seeds=(1, 2, 3, 4, 5, 6),
            test_seeds=(1, 2, 3),
            test_time=3.0,
            expected_checkers=("elle-list-append",),
        ),
        BugScenario(
            bug="no-fsync",
            why=(
                "every node loses power together: what was acknowledged but never made "
                "durable is gone (set loss), and a forgotten vote elects two leaders in "
                "one term"
            ),
            options=dict(time=20.0, workload="set", nemesis="crash:all", nemesis_interval=3.0),
            seeds=(1, 2, 3, 4, 5, 6),
            test_seeds=(1, 2),
            test_time=6.0,
            expected_checkers=("set", "election-safety"),
        ),
        BugScenario(
            bug="forget-vote",
            why=(
                "a majority restarts: term and vote come back as 0 while the log holds "
                "later terms, which the core refuses to start from (a node crash), and "
                "the cluster cannot commit within the liveness bound"
            ),
            options=dict(
                time=20.0, workload="register", nemesis="kill:majority", nemesis_interval=2.0
            ),
            seeds=(1, 2, 3, 4, 5, 6),
            test_seeds=(3, 1),
            test_time=6.0,
            expected_checkers=("node-crashes", "liveness"),
        ),
        BugScenario(
            bug="truncate-always",
            why=(
                "links jitter more than appends are apart and duplicate some messages, so a "
                "follower gets stale appends after newer ones; truncating after their "
                "matching prev index erases entries it already acknowledged, which the "
                "leader counted toward commitment; the leader is then killed or cut off, "
                "and a node missing those entries wins: acknowledged appends vanish "
                "(linearizability) and two nodes commit different entries at one index "
                "(state machine safety)"
            ),
            options=dict(
                time=20.0,
                nodes=3,
                workload="append",
                rate=200.0,
                nemesis="kill:leader,partition:leader",
                nemesis_interval=1.0,
                heartbeat_ms=50.0,
                election_timeout_ms=300.0,
                base_delay=0.002,
                jitter=0.03,
                duplicate=0.05,
            ),
            seeds=(1, 2, 3, 4, 5, 6),
            test_seeds=(2, 9, 10),
            test_time=6.0,
            expected_checkers=("linearizable", "state-machine-safety"),
        ),
        BugScenario(
            bug="commit-regress",
            why=(
                "fast elections, jittery links and frequent partitions deliver stale "
                "appends whose leader_commit is below the follower's commit index; "
                "without the max the commit index moves backwards (Figure 2)"
            ),
            options=dict(
                time=20.0,
                nodes=3,
                workload="append",
                nemesis="partition",
                nemesis_interval=1.0,
                rate=150.0,
                heartbeat_ms=50.0,
                election_timeout_ms=300.0,
                base_delay=0.005,
                jitter=0.1,
            ),
            seeds=(1, 2, 3, 4, 5, 6),
            test_seeds=(8, 7),
            test_time=6.0,
            expected_checkers=("commit-monotonic",),
        ),
        BugScenario(
            bug="no-prevote-checkquorum",
            why=(
                "long one-way cuts (a node hears nobody but is heard): without check-quorum "
                "a leader cut off that way never steps down and its followers keep "
                "hearing it, and without pre-vote a cut-off follower keeps raising terms; "
                "no write commits within 5 election timeouts although a majority is "
                "connected (the availability bound)"
            ),
            options=dict(
                time=30.0,
                nodes=3,
                workload="register",
                nemesis="partition:one-way",
                nemesis_interval=10.0,
                liveness_timeouts=5,
            ),
            seeds=(1, 2, 3, 4, 5, 6, 7, 8, 9),
            test_seeds=(3, 4, 6),
            test_time=20.0,
            expected_checkers=("availability",),
        ),
        BugScenario(
            bug="vote-twice",
            why=(
                "a follower's vote cleared on a same-term step-down, replayed with exact "
                "faults on seed 1's timing (fixed 10 ms links): n1 stops hearing the "
                "leader n3 (term 1) and falls behind; n2 is killed; n3 campaigns in term 2 "
                "and is paused right after asking, so n1 grants its vote and its timer "
                "makes it a pre-candidate before n3 hears the grant; n3 resumes and wins "
                "term 2, and its first append (which n1 cannot match) turns the "
                "pre-candidate n1 back into a follower of term 2: the bug clears its vote; "
                "n3 is then cut off. n2 restarts still in term 1 with a log longer than "
                "n1's, pre-votes and campaigns for term 2 and n1 votes again: two leaders "
                "in term 2 (election safety). With the vote kept, n1 refuses and n2 wins "
                "term 3."
            ),
            options=dict(
                time=6.0,
                nodes=3,
                workload="append",
                rate=50.0,
                heartbeat_ms=50.0,
                election_timeout_ms=300.0,
                base_delay=0.01,
                jitter=0.0,
                recovery_time=1.0,
                nemesis="partition,kill,pause",
                schedule=[
                    # n1 stops hearing the leader n3 (term 1): n3 and n2 commit without it.
                    dict(fault="partition", option="n3>n1", start=1.0, duration=1.0),
                    # n2 is down (still in term 1) until n3 is cut off in term 2.
                    dict(fault="kill", option="n2", start=1.5, duration=2.7),
                    # n3 has just asked n1 for its vote in term 2 (2.420): n1 grants it and
                    # becomes a pre-candidate (2.850) before n3, paused, hears the grant.
                    dict(fault="pause", option="n3", start=2.4205, duration=0.7),
                    # n3's first append as leader reached n1 (3.131): cut n3 off before
                    # the entries n1 lacks follow. n1 and n2 still hear each other.
                    dict(fault="partition", option="n3>n1+n2|n2>n3", start=3.1325, duration=2.5),
                ],
            ),
            # The schedule is timed to seed 1's elections; other seeds elect other nodes
            # at other times.
            seeds=(1,),
            test_seeds=(1,),
            test_time=6.0,
            expected_checkers=("election-safety",),
        ),
        BugScenario(
            bug="commit-old-term",
            why=(
                "Figure 8 of the Raft paper, replayed with exact partitions on seed 1's "
                "timing (fixed 10 ms links; one entry per append, so a follower can "
                "acknowledge an old-term entry apart from the new leader's no-op): the "
                "leader n3 (term 1) is cut off while clients append entries 13-16 to it; "
                "n2 wins term 2 with n1's vote and every link is cut just before its no-op "
                "(index 13, term 2) reaches n1; n3 and n1 meet again, n3 wins term 3 and "
                "brings n1 its term-1 entry 13 alone; on that ack n3 counts a majority for "
                "an old-term entry and commits it (the bug), and n3 is cut off before its "
                "no-op follows; n2 wins term 4 with n1's vote (its last term 2 beats n1's "
                "1) and overwrites index 13. Two nodes commit different entries at index "
                "13 (state machine safety) and an acknowledged append vanishes "
                "(linearizability). The correct build never commits entry 13 of term 1."
            ),
            options=dict(
                time=6.0,
                nodes=3,
                workload="append",
                rate=50.0,
                heartbeat_ms=50.0,
                election_timeout_ms=300.0,
                base_delay=0.01,
                jitter=0.0,
                max_entries_per_append=1,
                recovery_time=1.0,
                nemesis="partition",
                schedule=[
                    # n3 (leader of term 1) alone: it keeps taking appends it cannot commit.
                    # (It ends before the next step starts: a step ending a hair after the
                    # next one starts, as float sums can, would heal the next cut.)
                    dict(fault="partition", option="n3|n1+n2", start=1.0, duration=0.301),
                    # n2 has just won term 2 (1.301): its no-op must not reach n1.
                    dict(fault="partition", option="n1|n2|n3", start=1.3015, duration=0.7),
                    # n2 alone: n3 wins term 3 with n1 and sends it entry 13 (term 1).
                    dict(fault="partition", option="n2|n1+n3", start=2.0015, duration=0.839),
                    # n1's ack reached n3 (2.840), which committed entry 13: cut n3 off
                    # before its no-op reaches n1; n2 and n1 elect n2 in term 4.
                    dict(fault="partition", option="n3|n1+n2", start=2.8405, duration=2.0),
                ],
            ),
            # The schedule is timed to seed 1's elections; other seeds elect other nodes
            # at other times, so only seed 1 replays Figure 8.
            seeds=(1,),
            test_seeds=(1,),
            test_time=6.0,
            expected_checkers=("state-machine-safety", "linearizable"),
        ),
        BugScenario(
            bug="learner-quorum",
            why=(
                "the member fault adds a spare node as a learner and leaves it one; the "
                "leader is then cut off from the other voters but not from the learner "
                "(a partition of the voters), so the leader and the learner alone commit "
                "and acknowledge writes until check-quorum deposes it; the voters' new "
                "leader never had them and overwrites them: two entries committed at one "
                "index (state machine safety) and lost writes (linearizability); the "
                "configuration-aware commit-quorum check sees the commit itself"
            ),
            options=dict(
                time=15.0,
                nodes=3,
                rate=100.0,
                workload="register",
                nemesis="member:learner,partition:leader",
                nemesis_interval=1.5,
                heartbeat_ms=50.0,
                election_timeout_ms=300.0,
                recovery_time=2.0,
            ),
            seeds=(1, 2, 3, 4, 5, 6),
            test_seeds=(1, 3, 4),
            expected_checkers=("commit-quorum", "state-machine-safety", "linearizable"),
        ),
    )
}

# The correct build runs every recipe over these seeds and must be valid on all of them.
CORRECT_SEEDS: tuple[int, ...] = (1, 2, 3)


def detectable() -> list[BugScenario]:
    """The scenarios with a known detecting seed (what CI must keep catching)."""
    return [scenario for scenario in SCENARIOS.values() if scenario.test_seeds]


def correct_configs(seeds: tuple[int, ...] = CORRECT_SEEDS) -> list[SimConfig]:
    """Every recipe with no bug switch on, over ``seeds``."""
    return [
        scenario.config(seed, with_bug=False) for scenario in SCENARIOS.values() for seed in seeds
    ]
