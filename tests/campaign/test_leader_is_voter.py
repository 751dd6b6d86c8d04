"""The ``leader-is-voter`` node-log check (campaign/node_checks.py): every node that became
leader was a voter of the configuration it knew then (§4.2.1, §4.2.2). Crafted logs in
the driver's real line format; the real-run side is tests/campaign/test_member_spares.py."""

from __future__ import annotations

from campaign.node_checks import CHECKERS, check_node_logs, leader_is_voter, parse_node_log

START = "2026-12-05T01:00:00.000Z {node} starting cluster=c peers=n1,n2 snapshot_index=0"


def _log(node: str, *messages: str) -> list[str]:
    lines = [START.format(node=node)]
    lines += [f"2026-12-05T01:00:{i + 1:02d}.000Z {node} {m}" for i, m in enumerate(messages)]
    return lines


def _check(logs: dict[str, list[str]]) -> dict:
    return check_node_logs(logs, [], lambda f: f == "read")["leader-is-voter"]


def test_a_voter_that_becomes_leader_is_valid() -> None:
    logs = {
        "n1": _log(
            "n1",
            "role=follower term=0 leader=None",
            "configuration voters=n1,n2,n3 learners=",
            "role=leader term=2 leader=n1",
        ),
        "n4": _log(  # a joining node: told of the members, not one itself; never leads
            "n4",
            "role=follower term=0 leader=None",
            "configuration voters=n1,n2,n3 learners=",
            "configuration voters=n1,n2,n3 learners=n4",
        ),
    }
    result = _check(logs)
    assert result["valid"] is True and result["leaderships"] == 1
    assert "leader-is-voter" in CHECKERS


def test_a_learner_that_becomes_leader_is_a_violation() -> None:
    logs = {
        "n4": _log(
            "n4",
            "role=follower term=0 leader=None",
            "configuration voters=n1,n2,n3 learners=",
            "configuration voters=n1,n2,n3 learners=n4",
            "role=candidate term=3 leader=None",
            "role=leader term=3 leader=n4",
            "commit_index=9 applied_index=9 last_log_index=9",
        )
    }
    result = _check(logs)
    assert result["valid"] is False
    assert result["leaders"] == [
        {
            "node": "n4",
            "term": 3,
            "time": "2026-12-05T01:00:05.000Z",
            "voters": ["n1", "n2", "n3"],
            "learners": ["n4"],
        }
    ]


def test_a_removed_server_that_leads_is_a_violation_even_with_logs_missing() -> None:
    logs: dict = {
        "n2": _log(
            "n2",
            "role=follower term=1 leader=n1",
            "configuration voters=n1,n2,n3 learners=",
            "configuration voters=n1,n3 learners=",
            "role=leader term=4 leader=n2",
        ),
        "n3": None,  # a missing log hides nothing a present one shows
    }
    assert _check(logs)["valid"] is False


def test_the_configuration_logged_in_the_same_ready_counts() -> None:
    """The driver logs a Ready's role line before its configuration line: a node whose
    promotion and election show in one Ready was a voter then."""
    lines = _log(
        "n4",
        "configuration voters=n1,n2,n3 learners=n4",
        "role=leader term=5 leader=n4",
        "configuration voters=n1,n2,n3,n4 learners=",
    )
    parsed = parse_node_log("n4", lines)
    (leadership,) = parsed.leaderships
    assert leadership.before is not None and "n4" not in leadership.before.voters
    assert leadership.same_ready is not None and "n4" in leadership.same_ready.voters
    assert leader_is_voter(parsed.leaderships)["valid"] is True
    # One line later it is no longer the same Ready: the configuration came too late.
    later = _log(
        "n4",
        "configuration voters=n1,n2,n3 learners=n4",
        "role=leader term=5 leader=n4",
        "peer n1 connected at 127.0.0.1:1",
        "configuration voters=n1,n2,n3,n4 learners=",
    )
    assert _check({"n4": later})["valid"] is False


def test_a_restart_forgets_the_configuration_and_none_logged_is_unknown() -> None:
    lines = _log(
        "n1",
        "configuration voters=n1,n2,n3 learners=",
        "starting cluster=c peers=n2,n3 snapshot_index=0",
        "role=leader term=7 leader=n1",  # a log cut short: no configuration this incarnation
    )
    result = _check({"n1": lines})
    assert result["valid"] == "unknown" and "n1 term 7" in result["error"]


def test_a_damaged_configuration_line_makes_a_clean_result_unknown() -> None:
    logs = {
        "n1": _log(
            "n1",
            "configuration voters=n1,n2,n3 learners=",
            "role=leader term=2 leader=n1",
            "configuration voters=n1,n2 learn",
        )
    }
    result = _check(logs)
    assert result["valid"] == "unknown" and "damaged" in result["error"]
