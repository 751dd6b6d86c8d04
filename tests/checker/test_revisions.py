"""checker.revisions: monotonic revisions per process, and reads consistent with MVCC.

Hand-built histories, valid and violating, and a differential test of the interval sweep
against a plain pairwise search.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from checker.history import read_jsonl, write_jsonl
from checker.op import Op
from checker.revisions import (
    check_monotonic_revisions,
    check_read_revisions,
    check_revisions,
)


class History:
    """Builds a history: each call appends an invoke and its completion."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def op(
        self,
        process: int,
        f: str,
        value: object,
        *,
        type: str = "ok",
        node: str | None = "n1",
        **extra: object,
    ) -> Op:
        invoke_value = [value[0], None] if f == "read" and isinstance(value, list) else value
        self.ops.append(Op(len(self.ops), len(self.ops), "invoke", process, f, invoke_value))
        done = Op(len(self.ops), len(self.ops), type, process, f, value, None, node, dict(extra))
        self.ops.append(done)
        return done


# --- monotonic revisions ------------------------------------------------------------------


def test_revisions_that_never_go_backwards_are_valid() -> None:
    h = History()
    h.op(0, "write", ["k", 1], revision=5)
    h.op(0, "read", ["k", 1], revision=5, mod_revision=5)
    h.op(1, "write", ["k", 2], revision=6, node="n2")
    h.op(0, "read", ["k", 2], revision=9, mod_revision=6, node="n3")
    h.op(1, "read", ["k", 2], revision=7, mod_revision=6)  # below process 0's 9: fine
    result = check_monotonic_revisions(h.ops)
    assert result["valid"] is True
    assert result["observed"] == 5


def test_a_process_seeing_an_older_revision_is_named() -> None:
    h = History()
    first = h.op(3, "write", ["k", 1], revision=12, node="n1")
    h.op(4, "write", ["k", 2], revision=13)
    later = h.op(3, "read", ["k", 0], revision=9, mod_revision=4, node="n2")
    result = check_monotonic_revisions(h.ops)
    assert result["valid"] is False
    [anomaly] = result["anomalies"]
    assert anomaly["kind"] == "revision-went-backwards"
    assert [o["index"] for o in anomaly["ops"]] == [first.index, later.index]
    assert "process 3" in anomaly["explanation"]
    assert "revision 12" in anomaly["explanation"] and "revision 9" in anomaly["explanation"]
    assert "n2" in anomaly["explanation"]


def test_failed_and_info_ops_with_a_revision_count_too() -> None:
    h = History()
    h.op(0, "cas", ["k", [1, 2]], type="fail", revision=20)
    h.op(0, "read", ["k", 1], revision=19, mod_revision=3)
    assert check_monotonic_revisions(h.ops)["valid"] is False


def test_no_revision_anywhere_is_unknown_not_valid() -> None:
    h = History()
    h.op(0, "write", ["k", 1])
    h.op(0, "read", ["k", 1])
    assert check_monotonic_revisions(h.ops)["valid"] == "unknown"
    assert check_read_revisions(h.ops)["valid"] == "unknown"
    assert check_revisions(h.ops)["valid"] == "unknown"


def test_nemesis_ops_and_invokes_are_ignored() -> None:
    h = History()
    h.op(0, "write", ["k", 1], revision=5)
    h.ops.append(Op(len(h.ops), 99, "info", "nemesis", "kill", None, None, None, {"revision": 1}))
    h.op(0, "write", ["k", 1], revision=6)
    assert check_monotonic_revisions(h.ops)["valid"] is True


# --- reads consistent with MVCC -------------------------------------------------------------


def test_consistent_reads_are_valid() -> None:
    h = History()
    h.op(0, "read", ["k", None], revision=3, mod_revision=0)  # absent until 4
    h.op(1, "read", ["k", 1], revision=5, mod_revision=4, node="n2")
    h.op(2, "read", ["k", 1], revision=5, mod_revision=4, node="n3")  # same revision, agrees
    h.op(0, "read", ["k", 2], revision=8, mod_revision=6)
    h.op(1, "read", ["k", 1], revision=5, mod_revision=4)
    result = check_read_revisions(h.ops)
    assert result["valid"] is True, result
    assert result["observed"] == 5


def test_two_reads_at_one_revision_that_disagree_on_the_value() -> None:
    h = History()
    a = h.op(0, "read", ["k", 1], revision=7, mod_revision=4, node="n1")
    b = h.op(1, "read", ["k", 2], revision=7, mod_revision=4, node="n2")
    result = check_read_revisions(h.ops)
    assert result["valid"] is False
    [anomaly] = result["anomalies"]
    assert anomaly["kind"] == "same-mod-revision-different-values"
    assert {o["index"] for o in anomaly["ops"]} == {a.index, b.index}
    assert f"op {a.index}" in anomaly["explanation"] and f"op {b.index}" in anomaly["explanation"]


def test_two_reads_at_one_revision_that_disagree_on_the_mod_revision() -> None:
    h = History()
    h.op(0, "read", ["k", 1], revision=7, mod_revision=4, node="n1")
    h.op(1, "read", ["k", 1], revision=7, mod_revision=6, node="n2")
    result = check_read_revisions(h.ops)
    assert result["valid"] is False
    assert result["anomalies"][0]["kind"] == "divergent-mod-revisions"


def test_a_change_inside_another_reads_unchanged_span() -> None:
    # Read 1: k last changed at 4, unchanged through 10. Read 2 (another member, earlier
    # revision): k changed at 6. Both cannot be true, whatever the revisions of the reads.
    h = History()
    h.op(0, "read", ["k", 1], revision=10, mod_revision=4)
    h.op(1, "read", ["k", 3], revision=8, mod_revision=6, node="n2")
    assert check_read_revisions(h.ops)["valid"] is False


def test_absent_inside_a_present_span_and_present_before_absent_are_told_apart() -> None:
    h = History()
    h.op(0, "read", ["k", 1], revision=10, mod_revision=4)
    h.op(1, "read", ["k", None], revision=3, mod_revision=0)  # before the create: fine
    assert check_read_revisions(h.ops)["valid"] is True
    h.op(2, "read", ["k", None], revision=7, mod_revision=0, node="n3")  # within [4, 10]
    result = check_read_revisions(h.ops)
    assert result["valid"] is False
    assert result["anomalies"][0]["kind"] == "absent-within-present"


def test_absent_after_a_span_may_be_a_delete() -> None:
    h = History()
    h.op(0, "read", ["k", 1], revision=10, mod_revision=4)
    h.op(1, "read", ["k", None], revision=11, mod_revision=0)
    assert check_read_revisions(h.ops)["valid"] is True


def test_a_mod_revision_after_the_reads_own_revision() -> None:
    h = History()
    h.op(0, "read", ["k", 1], revision=3, mod_revision=5)
    result = check_read_revisions(h.ops)
    assert result["valid"] is False
    assert result["anomalies"][0]["kind"] == "mod-revision-after-revision"


def test_different_keys_do_not_interfere() -> None:
    h = History()
    h.op(0, "read", [1, "a"], revision=7, mod_revision=4)
    h.op(1, "read", [2, "b"], revision=7, mod_revision=6)
    assert check_read_revisions(h.ops)["valid"] is True


def test_multi_key_reads_by_key_and_as_a_whole() -> None:
    h = History()
    mods = {"acct0": 5, "acct1": 7}
    h.op(0, "read", {"0": 10, "1": 30}, revision=9, mod_revision=mods)
    h.op(1, "read", {"0": 10, "1": 30}, revision=9, mod_revision=dict(mods), node="n2")
    assert check_read_revisions(h.ops)["valid"] is True
    # Same mod_revisions for every key, different balances: the stores diverged.
    h.op(2, "read", {"0": 20, "1": 20}, revision=12, mod_revision=dict(mods), node="n3")
    result = check_read_revisions(h.ops)
    assert result["valid"] is False
    assert result["anomalies"][0]["kind"] == "same-revisions-different-values"


def test_multi_key_reads_disagreeing_on_one_keys_mod_revision() -> None:
    h = History()
    h.op(0, "read", {"0": 10, "1": 30}, revision=9, mod_revision={"acct0": 5, "acct1": 7})
    h.op(1, "read", {"0": 12, "1": 28}, revision=9, mod_revision={"acct0": 8, "acct1": 8})
    result = check_read_revisions(h.ops)
    assert result["valid"] is False
    assert {a["key"] for a in result["anomalies"]} == {"acct0", "acct1"}


def test_only_ok_reads_of_the_read_functions_count() -> None:
    h = History()
    h.op(0, "read", ["k", 1], revision=7, mod_revision=4)
    h.op(1, "read", ["k", 2], type="fail", revision=7, mod_revision=4)
    h.op(2, "write", ["k", 2], revision=7, mod_revision=4)
    assert check_read_revisions(h.ops)["valid"] is True
    assert check_read_revisions(h.ops, read_functions={"read", "write"})["valid"] is False


def test_revisions_survive_history_jsonl(tmp_path: Path) -> None:
    h = History()
    h.op(0, "read", ["k", 1], revision=7, mod_revision=4)
    h.op(0, "read", {"0": 1}, revision=6, mod_revision={"acct0": 2})
    path = tmp_path / "history.jsonl"
    write_jsonl(path, h.ops)
    back = read_jsonl(path)
    assert back[1].extra == {"revision": 7, "mod_revision": 4}
    assert back[3].extra == {"revision": 6, "mod_revision": {"acct0": 2}}
    assert check_monotonic_revisions(back)["valid"] is False
    as_maps = [op.to_dict() for op in h.ops]
    assert check_monotonic_revisions(as_maps)["valid"] is False


def test_combined_result_takes_the_worst() -> None:
    h = History()
    h.op(0, "read", ["k", 1], revision=7, mod_revision=4)
    h.op(1, "read", ["k", 2], revision=7, mod_revision=4)
    result = check_revisions(h.ops)
    assert result["valid"] is False
    assert result["checkers"]["monotonic-revisions"]["valid"] is True
    assert result["checkers"]["read-revisions"]["valid"] is False


# --- the interval sweep against a plain pairwise search --------------------------------------


def pairwise_consistent(sightings: list[tuple[int, int, int]]) -> bool:
    """(revision, mod_revision, value) of one key's reads, every pair compared directly."""
    for r1, m1, v1 in sightings:
        if m1 > r1:
            return False
        for r2, m2, v2 in sightings:
            if m1 > 0 and m2 > 0:
                if m1 == m2 and v1 != v2:
                    return False
                if m1 != m2 and max(m1, m2) <= min(r1, r2):  # [m1, r1] and [m2, r2] meet
                    return False
            elif m1 > 0 and m2 == 0 and m1 <= r2 <= r1:
                return False
    return True


sighting = st.tuples(st.integers(1, 12), st.integers(0, 12), st.integers(0, 2))


@settings(max_examples=400, deadline=None)
@given(st.lists(sighting, max_size=7))
def test_sweep_agrees_with_pairwise_search(sightings: list[tuple[int, int, int]]) -> None:
    h = History()
    for process, (revision, mod_revision, value) in enumerate(sightings):
        h.op(process, "read", ["k", value], revision=revision, mod_revision=mod_revision)
    expected = pairwise_consistent(sightings)
    result = check_read_revisions(h.ops)
    assert (result["valid"] is not False) == expected, (sightings, result)
