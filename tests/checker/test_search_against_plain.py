"""The full search against the plain one on generated cas-register histories.

The differential tests (test_differential.py) compare every pruning with a brute force on
histories of a few ops; the search's bookkeeping for long histories (the entry list, the
windowed cache keys, the forced reads' configurations left out of the cache, the unseen
writes taken along by a later write) only shows on longer ones with many concurrent ops
and backtracking. Here: seeded histories from ``checker.generate`` (3-6 clients, up to 60
ops, few distinct values so that reads are ambiguous, info ops), some with one ok read's
value replaced (often a violation), each checked by ``check`` (all prunings, and all but
the refutations so that invalid ones are searched) and by ``checker.plain``; the verdicts
must agree.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.generate import cas_register_history
from checker.linearizable import PRUNINGS, check
from checker.plain import check_plain

SEARCHING = tuple(name for name in PRUNINGS if name != "impossible-reads")


@st.composite
def generated(draw: Any) -> list[Any]:
    clients = draw(st.integers(3, 6))
    ops = draw(st.integers(8, 60))
    seed = draw(st.integers(0, 10_000))
    value_range = draw(st.sampled_from([2, 3, None]))
    info_rate = draw(st.sampled_from([0.0, 0.0, 0.2]))
    history = cas_register_history(
        clients, ops, seed=seed, value_range=value_range, info_rate=info_rate
    )
    if draw(st.booleans()):
        reads = [op for op in history if op.type == "ok" and op.f == "read"]
        if reads:
            rng = random.Random(seed)
            rng.choice(reads).value = rng.randrange(value_range or ops)
    return history


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(history=generated())
def test_the_search_agrees_with_the_plain_search(history: list[Any]) -> None:
    expected = check_plain(history, "cas-register")["valid"]
    for prunings in (None, SEARCHING):
        got = check(history, "cas-register", prunings=prunings, explain=False)["valid"]
        assert got is expected, (prunings, [op.to_dict() for op in history])


def test_the_generated_histories_have_both_verdicts() -> None:
    verdicts: set[Any] = set()

    @settings(max_examples=40, deadline=None, derandomize=True, database=None)
    @given(history=generated())
    def one(history: list[Any]) -> None:
        verdicts.add(check_plain(history, "cas-register")["valid"])

    one()
    assert verdicts == {True, False}
