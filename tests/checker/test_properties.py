"""Property tests: real sequential executions stretched into concurrent histories.

Each model's ops are executed one after another against a plain Python implementation
(a variable, a dict, a list...), each op at its own instant; then every op's interval is
stretched around that instant by a random amount, processes are assigned so that each
has one op outstanding at a time, some completions become ``info`` or disappear, and some
ops fail without effect. Such a history is linearizable by construction. Planting a
result no execution can give makes it invalid; and splitting by keys never changes a
verdict.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checker.linearizable import check
from checker.models import get_model
from checker.models.base import freeze
from checker.op import Op

MODELS = [
    "register",
    "cas-register",
    "etcd",
    "multi-register",
    "mutex",
    "fifo-queue",
    "unordered-queue",
    "set",
    "kv",
    "counter",
]
TIME_LIMIT = 60.0
PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
IMPOSSIBLE = 999  # no generated op ever writes, adds or enqueues this


@dataclass(slots=True)
class Executed:
    """One op run at its instant: what was asked, what came back, whether it took effect."""

    f: str
    invoke_value: Any
    result_value: Any
    outcome: str  # "ok" or "fail" (a definite failure: it changed nothing)
    error: str | None = None
    read: bool = False  # a read: its result may be planted


def execute(model: str, draw: Any, length: int) -> list[Executed]:
    """A real sequential run of ``length`` random ops of ``model``."""
    small = st.integers(0, 3)
    out: list[Executed] = []
    if model in ("register", "cas-register", "etcd"):
        value: Any = None
        for _ in range(length):
            kind = draw(
                st.sampled_from(
                    ["read", "write", "cas"] if model != "register" else ["read", "write"]
                )
            )
            if kind == "read":
                out.append(Executed("read", None, value, "ok", read=True))
            elif kind == "write":
                value = draw(small)
                out.append(Executed("write", value, value, "ok"))
            else:
                expected, new = draw(small), draw(small)
                if value == expected:
                    value = new
                    out.append(Executed("cas", [expected, new], [expected, new], "ok"))
                else:
                    out.append(
                        Executed("cas", [expected, new], [expected, new], "fail", "cas_mismatch")
                    )
    elif model == "multi-register":
        registers: dict[str, int] = {}
        for _ in range(length):
            txn_in, txn_out = [], []
            for _ in range(draw(st.integers(1, 3))):
                key = draw(st.sampled_from("xyz"))
                if draw(st.booleans()):
                    txn_in.append(["read", key, None])
                    txn_out.append(["read", key, registers.get(key)])
                else:
                    v = draw(small)
                    registers[key] = v
                    txn_in.append(["write", key, v])
                    txn_out.append(["write", key, v])
            out.append(
                Executed("txn", txn_in, txn_out, "ok", read=any(m[0] == "read" for m in txn_out))
            )
    elif model == "mutex":
        held = False
        for _ in range(length):
            out.append(Executed("release" if held else "acquire", None, None, "ok"))
            held = not held
    elif model in ("fifo-queue", "unordered-queue"):
        queue: list[int] = []
        for number in range(length):
            if queue and draw(st.booleans()):
                taken = queue.pop(
                    0 if model == "fifo-queue" else draw(st.integers(0, len(queue) - 1))
                )
                out.append(Executed("dequeue", None, taken, "ok", read=True))
            else:
                queue.append(number)
                out.append(Executed("enqueue", number, number, "ok"))
    elif model == "set":
        members: set[int] = set()
        for _ in range(length):
            if draw(st.booleans()):
                out.append(Executed("read", None, sorted(members), "ok", read=True))
            else:
                v = draw(st.integers(0, 9))
                members.add(v)
                out.append(Executed("add", v, v, "ok"))
    elif model == "kv":
        store: dict[str, str] = {}
        for _ in range(length):
            key = draw(st.sampled_from("abc"))
            kind = draw(st.sampled_from(["get", "put", "append"]))
            if kind == "get":
                out.append(Executed("get", [key, None], [key, store.get(key, "")], "ok", read=True))
            else:
                v = draw(st.sampled_from(["x", "y", "z"]))
                store[key] = v if kind == "put" else store.get(key, "") + v
                out.append(Executed(kind, [key, v], [key, v], "ok"))
    elif model == "counter":
        total = 0
        for _ in range(length):
            if draw(st.booleans()):
                out.append(Executed("read", None, total, "ok", read=True))
            else:
                n = draw(st.integers(-3, 3))
                total += n
                out.append(Executed("add", n, n, "ok"))
    else:  # pragma: no cover - every model above
        raise AssertionError(model)
    return out


def stretch(
    draw: Any,
    executed: list[Executed],
    *,
    allow_info: bool,
    allow_fail: bool,
    unordered: bool = False,
) -> list[Op]:
    """Invokes and completions around each op's instant, one outstanding op per process."""
    events: list[tuple[float, int, str, int | str, Executed]] = []
    free_at: dict[int, float] = {}  # process -> when its last op completed
    retired: set[int] = set()
    for number, op in enumerate(executed):
        instant = 10.0 * (number + 1)
        invoke = instant - draw(st.integers(0, 30)) - 0.5
        complete = instant + draw(st.integers(0, 30)) + 0.5
        process = next(
            (p for p, t in sorted(free_at.items()) if p not in retired and t < invoke), len(free_at)
        )
        fate = "normal"
        # An unordered queue's crashed dequeue loses which element it took: Knossos' model
        # (deterministic steps) cannot account for it, so the generator makes none.
        lossy = op.f == "dequeue" and unordered
        if allow_info and not lossy and draw(st.integers(0, 9)) == 0:
            fate = draw(st.sampled_from(["info", "never"]))
        events.append((invoke, number, "invoke", process, op))
        if fate == "never":
            retired.add(process)
            free_at[process] = float("inf")
        else:
            events.append((complete, number, "info" if fate == "info" else op.outcome, process, op))
            free_at[process] = complete
            if fate == "info":
                retired.add(process)
        if allow_fail and draw(st.integers(0, 9)) == 0:
            # An op that failed definitely: it never happened, whatever its value.
            start = instant + 1.5
            spare = 10_000 + number  # a process of its own
            ghost = Executed(*_ghost(op))
            events.append((start, number, "invoke", spare, ghost))
            events.append((start + draw(st.integers(1, 30)), number, "fail", spare, ghost))
    events.sort(key=lambda event: (event[0], event[1]))
    ops: list[Op] = []
    for index, (_, _, kind, process, op) in enumerate(events):
        if kind == "invoke":
            value = op.invoke_value
        elif kind == "ok":
            value = op.result_value
        else:
            value = op.invoke_value
        error = op.error if kind == "fail" else ("timeout" if kind == "info" else None)
        ops.append(
            Op(
                index=index,
                time=index,
                type=kind,
                process=process,
                f=op.f,
                value=value,
                error=error,
            )
        )
    return ops


def _ghost(op: Executed) -> tuple[str, Any, Any, str, str]:
    """A failed op of the same function with a value nobody else uses (no observed error)."""
    if op.f in ("write", "add", "enqueue"):
        return (op.f, IMPOSSIBLE, IMPOSSIBLE, "fail", "not_leader")
    if op.f in ("put", "append"):
        return (op.f, [op.invoke_value[0], "!"], None, "fail", "not_leader")
    return (op.f, op.invoke_value, None, "fail", "not_leader")


@st.composite
def histories(draw: Any, model: str, *, allow_info: bool = True) -> list[Op]:
    executed = execute(model, draw, draw(st.integers(1, 14)))
    return stretch(
        draw,
        executed,
        allow_info=allow_info,
        allow_fail=model != "mutex",
        unordered=model == "unordered-queue",
    )


def plant(ops: list[Op], model: str) -> list[Op] | None:
    """The same history with one read's result made impossible (None: no read to spoil)."""
    for position in range(len(ops) - 1, -1, -1):
        op = ops[position]
        if op.type != "ok" or op.f not in ("read", "get", "dequeue", "txn"):
            continue
        if model == "multi-register":
            reads = [m for m in op.value if m[0] == "read"]
            if not reads:
                continue
            value: Any = [[m[0], m[1], IMPOSSIBLE if m[0] == "read" else m[2]] for m in op.value]
        elif model == "kv":
            value = [op.value[0], "impossible"]
        elif model == "set":
            value = [*op.value, IMPOSSIBLE]
        else:
            value = IMPOSSIBLE
        spoiled = list(ops)
        spoiled[position] = Op(op.index, op.time, op.type, op.process, op.f, value, op.error)
        return spoiled
    return None


@PROPERTY_SETTINGS
@given(data=st.data(), model=st.sampled_from(MODELS))
def test_stretched_sequential_executions_are_linearizable(data: st.DataObject, model: str) -> None:
    ops = data.draw(histories(model))
    result = check(ops, model, time_limit=TIME_LIMIT)
    assert result["valid"] is True, result


@PROPERTY_SETTINGS
@given(data=st.data(), model=st.sampled_from(MODELS))
def test_a_planted_impossible_result_is_invalid(data: st.DataObject, model: str) -> None:
    if model == "mutex":
        # No read to spoil: plant two acquires in a row after everything else, in a
        # history whose every op completed (an info release could fall in between).
        ops = data.draw(histories(model, allow_info=False))
        process = max(op.process for op in ops) + 1
        for offset, kind in enumerate(["invoke", "ok", "invoke", "ok"]):
            ops.append(Op(len(ops), len(ops), kind, process + offset // 2, "acquire"))
        spoiled: list[Op] | None = ops
    else:
        ops = data.draw(histories(model))
        spoiled = plant(ops, model)
    if spoiled is None:
        return
    result = check(spoiled, model, time_limit=TIME_LIMIT)
    assert result["valid"] is False, result
    assert result["failures"][0]["op"] is not None


@PROPERTY_SETTINGS
@given(data=st.data(), model=st.sampled_from(["kv", "multi-register"]), planted=st.booleans())
def test_per_key_and_whole_agree_for_key_aware_models(
    data: st.DataObject, model: str, planted: bool
) -> None:
    ops = data.draw(histories(model))
    if planted:
        ops = plant(ops, model) or ops
    per_key = check(ops, model, time_limit=TIME_LIMIT)
    whole = check(ops, model, decompose=False, time_limit=TIME_LIMIT)
    assert per_key["valid"] == whole["valid"]
    assert per_key["valid"] != "unknown"


@PROPERTY_SETTINGS
@given(data=st.data(), model=st.sampled_from(["register", "cas-register", "etcd", "counter"]))
def test_independent_keys_agree_with_each_key_alone(data: st.DataObject, model: str) -> None:
    keys = data.draw(
        st.lists(st.sampled_from(["k1", "k2", "k3"]), min_size=1, max_size=3, unique=True)
    )
    merged: list[tuple[int, Op]] = []
    alone: dict[str, list[Op]] = {}
    for number, key in enumerate(keys):
        ops = data.draw(histories(model))
        if data.draw(st.booleans()):
            ops = plant(ops, model) or ops
        alone[key] = ops
        for op in ops:  # interleave the keys' histories; processes stay apart
            merged.append(
                (
                    op.time * len(keys) + number,
                    Op(0, 0, op.type, f"{key}/{op.process}", op.f, [key, op.value], op.error),
                )
            )
    merged.sort(key=lambda item: item[0])
    keyed = [
        Op(i, i, op.type, op.process, op.f, op.value, op.error) for i, (_, op) in enumerate(merged)
    ]
    whole = check(keyed, model, independent=True, time_limit=TIME_LIMIT)
    separately = [
        check(ops, model, independent=False, time_limit=TIME_LIMIT)["valid"]
        for ops in alone.values()
    ]
    expected = False if False in separately else True
    assert whole["valid"] is expected
    invalid_keys = sorted(
        key for key, valid in zip(alone, separately, strict=True) if valid is False
    )
    every = check(keyed, model, independent=True, all_components=True, time_limit=TIME_LIMIT)
    assert sorted(f["key"] for f in every.get("failures", [])) == invalid_keys


def test_the_generators_cover_info_fail_and_concurrency() -> None:
    """The property tests above would prove little on histories without overlap."""
    seen: Counter[str] = Counter()

    @settings(max_examples=60, deadline=None, database=None)
    @given(data=st.data())
    def sample(data: st.DataObject) -> None:
        ops = data.draw(histories("cas-register"))
        seen.update(op.type for op in ops)
        open_ops = 0
        for op in ops:
            open_ops += 1 if op.type == "invoke" else -1
            if open_ops > 1:
                seen["overlap"] += 1

    sample()
    assert seen["info"] and seen["fail"] and seen["overlap"] and seen["ok"]


# ----------------------------------------------------------------------------- reference


@dataclass(slots=True)
class RandomOp:
    f: str
    invoke_value: Any
    result_value: Any
    outcome: str  # ok, info, fail
    error: str | None
    start: int
    end: int


RANDOM_FUNCTIONS = {
    "register": ["read", "write"],
    "cas-register": ["read", "write", "cas"],
    "etcd": ["read", "write", "cas"],
    "mutex": ["acquire", "release"],
    "fifo-queue": ["enqueue", "dequeue"],
    "kv": ["get", "put", "append"],
    "counter": ["read", "add"],
}


@st.composite
def random_histories(draw: Any, model: str) -> list[Op]:
    """Random ops with random results and intervals: valid or not, by chance."""
    small = st.integers(0, 2)
    ops: list[RandomOp] = []
    for _ in range(draw(st.integers(1, 7))):
        f = draw(st.sampled_from(RANDOM_FUNCTIONS[model]))
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
        error = None
        if f in ("read", "get", "dequeue"):
            invoke_value: Any = ["k", None] if f == "get" else None
            result: Any = draw(st.one_of(st.none(), small))
            if f == "get":
                result = ["k", draw(st.sampled_from(["", "x", "xy", "yx", "y"]))]
        elif f == "cas":
            invoke_value = result = [draw(small), draw(small)]
            if outcome == "fail":
                error = draw(st.sampled_from(["cas_mismatch", "not_leader"]))
        elif f in ("put", "append"):
            invoke_value = result = ["k", draw(st.sampled_from(["x", "y"]))]
        elif f in ("acquire", "release"):
            invoke_value = result = None
        else:
            invoke_value = result = draw(small)
        start = draw(st.integers(0, 20))
        ops.append(
            RandomOp(
                f, invoke_value, result, outcome, error, start, start + draw(st.integers(1, 12))
            )
        )
    # One process per op keeps "one outstanding op per process" trivially true.
    events = []
    for number, op in enumerate(ops):
        events.append((op.start, 0, number))
        events.append((op.end, 1, number))
    events.sort()
    history: list[Op] = []
    for index, (_, kind, number) in enumerate(events):
        op = ops[number]
        if kind == 0:
            history.append(Op(index, index, "invoke", number, op.f, op.invoke_value))
        else:
            value = op.result_value if op.outcome == "ok" else op.invoke_value
            history.append(Op(index, index, op.outcome, number, op.f, value, op.error))
    return history


def reference_valid(history: list[Op], model_name: str) -> bool:
    """Linearizability by brute force: every order of every admissible subset, no pruning."""
    model = get_model(model_name)
    invokes: dict[Any, tuple[int, Op]] = {}
    views: list[Op] = []
    starts: list[int] = []
    ends: list[float] = []
    must: list[bool] = []
    for position, op in enumerate(history):
        if op.type == "invoke":
            invokes[op.process] = (position, op)
            continue
        start, invoke = invokes.pop(op.process)
        value = op.value if op.type == "ok" and op.value is not None else invoke.value
        view = Op(invoke.index, 0, op.type, op.process, op.f, freeze(value), op.error)
        if op.type == "fail" and not model.observes_failure(view):
            continue
        views.append(view)
        starts.append(start)
        ends.append(position if op.type != "info" else float("inf"))
        must.append(op.type != "info")
    for start, invoke in invokes.values():  # never completed: info
        views.append(Op(invoke.index, 0, "info", invoke.process, invoke.f, freeze(invoke.value)))
        starts.append(start)
        ends.append(float("inf"))
        must.append(False)
    count = len(views)

    @cache
    def search(done: frozenset[int], state: Any) -> bool:
        if not any(must[i] for i in range(count) if i not in done):
            return True
        for i in range(count):
            if i in done:
                continue
            if any(
                must[j] and ends[j] < starts[i] for j in range(count) if j not in done and j != i
            ):
                continue  # an op that returned before i was invoked must come first
            following = model.step(state, views[i])
            if following is not None and search(done | {i}, following):
                return True
        return False

    return search(frozenset(), model.init(None))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), model=st.sampled_from(sorted(RANDOM_FUNCTIONS)))
def test_the_search_agrees_with_brute_force(data: st.DataObject, model: str) -> None:
    history = data.draw(random_histories(model))
    expected = reference_valid(history, model)
    result = check(history, model, time_limit=TIME_LIMIT)
    assert result["valid"] is expected, (expected, result)


@st.composite
def kv_append_histories(draw: Any) -> list[Op]:
    """Random kv histories rich in appends and in reads of concatenations, on two keys.

    Reads see a random concatenation of the appended tokens (often a prefix of a real
    order, often not), so that the values the search forgets because no get starts
    with them (``model.read_horizon``) and those it keeps both occur; puts replace both.
    """
    tokens = ["a", "b"]
    ops: list[RandomOp] = []
    for _ in range(draw(st.integers(1, 8))):
        key = draw(st.sampled_from(["k", "k", "k", "j"]))
        f = draw(st.sampled_from(["get", "get", "append", "append", "append", "put"]))
        outcome = draw(st.sampled_from(["ok", "ok", "ok", "ok", "info", "fail"]))
        if f == "get":
            seen = "".join(draw(st.lists(st.sampled_from(tokens), max_size=2)))
            invoke_value: Any = [key, None]
            result: Any = [key, seen]
        else:
            invoke_value = result = [key, draw(st.sampled_from(tokens))]
        start = draw(st.integers(0, 24))
        ops.append(
            RandomOp(
                f, invoke_value, result, outcome, None, start, start + draw(st.integers(1, 14))
            )
        )
    events = []
    for number, op in enumerate(ops):
        events.append((op.start, 0, number))
        events.append((op.end, 1, number))
    events.sort()
    history: list[Op] = []
    for index, (_, kind, number) in enumerate(events):
        op = ops[number]
        if kind == 0:
            history.append(Op(index, index, "invoke", number, op.f, op.invoke_value))
        else:
            value = op.result_value if op.outcome == "ok" else op.invoke_value
            history.append(Op(index, index, op.outcome, number, op.f, value))
    return history


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_kv_appends_and_reads_agree_with_brute_force(data: st.DataObject) -> None:
    history = data.draw(kv_append_histories())
    expected = reference_valid(history, "kv")
    per_key = check(history, "kv", time_limit=TIME_LIMIT)
    whole = check(history, "kv", time_limit=TIME_LIMIT, decompose=False)
    assert per_key["valid"] is expected, (expected, per_key)
    assert whole["valid"] is expected, (expected, whole)
