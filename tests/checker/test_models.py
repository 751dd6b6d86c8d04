"""Each model's semantics, step by step (Knossos' models, Porcupine's kv and etcd)."""

from __future__ import annotations

from typing import Any

import pytest

from checker.models import MODELS, ModelError, get_model
from checker.models.base import NIL, FrozenMap, freeze, items_from, items_get, items_set, thaw
from checker.op import Op


def op(f: str, value: Any = None, type: str = "ok", error: str | None = None) -> Op:  # noqa: A002
    return Op(index=0, time=0, type=type, process=0, f=f, value=freeze(value), error=error)


def run(model_name: str, ops: list[Op], init: Any = None) -> Any:
    """The state after ``ops`` in order, or None as soon as one is inconsistent."""
    model = get_model(model_name)
    state = model.init(freeze(init))
    for item in ops:
        model.validate(item)
        state = model.step(state, item)
        if state is None:
            return None
    return state


def test_registry_names_every_model() -> None:
    assert set(MODELS) == {
        "register",
        "cas-register",
        "multi-register",
        "mutex",
        "fifo-queue",
        "unordered-queue",
        "set",
        "kv",
        "counter",
        "etcd",
    }
    for name, cls in MODELS.items():
        assert cls.name == name


def test_unknown_model_and_unknown_function_are_clear_errors() -> None:
    with pytest.raises(ModelError, match="expected one of"):
        get_model("no-such-model")
    with pytest.raises(ModelError, match="no operation 'cas'"):
        get_model("register").validate(op("cas", [1, 2]))


def test_register_reads_the_last_write_and_nil_reads_constrain_nothing() -> None:
    assert run("register", [op("write", 3), op("read", 3)]) == 3
    assert run("register", [op("write", 3), op("read", 4)]) is None
    assert run("register", [op("read", None), op("write", 1), op("read", None)]) == 1
    assert run("register", [op("read", 5)]) is None  # initial nil
    assert run("register", [op("read", 5)], init=5) == 5
    assert get_model("register").is_noop(op("read", None))
    assert not get_model("register").is_noop(op("read", 1))


def test_cas_register_cas_needs_the_expected_value() -> None:
    assert run("cas-register", [op("write", 1), op("cas", [1, 2]), op("read", 2)]) == 2
    assert run("cas-register", [op("write", 1), op("cas", [3, 2])]) is None
    assert run("cas-register", [op("cas", [None, 7]), op("read", 7)]) == 7  # from nil
    assert run("cas-register", [op("read", None)], init=4) == 4
    with pytest.raises(ModelError, match=r"\[expected new\]"):
        get_model("cas-register").validate(op("cas", 3))


def test_multi_register_transactions_apply_in_order() -> None:
    txn = [["write", "x", 1], ["read", "x", 1], ["read", "y", None], ["write", "y", 2]]
    state = run("multi-register", [op("txn", txn)])
    assert state is not None and thaw(FrozenMap(state)) == {"x": 1, "y": 2}
    assert run("multi-register", [op("txn", [["read", "x", 0]])], init={"x": 0}) is not None
    assert run("multi-register", [op("txn", [["read", "x", 1]])], init={"x": 0}) is None
    assert run("multi-register", [op("txn", [["w", "x", 1], ["r", "x", 2]])]) is None
    model = get_model("multi-register")
    assert model.keys(op("txn", [["read", "b", 1], ["write", "a", 2], ["read", "b", 3]])) == (
        "b",
        "a",
    )
    with pytest.raises(ModelError, match="txn step"):
        model.validate(op("txn", [["delete", "x", 1]]))


def test_mutex_acquire_and_release_alternate() -> None:
    assert run("mutex", [op("acquire"), op("release"), op("acquire")]) is True
    assert run("mutex", [op("acquire"), op("acquire")]) is None
    assert run("mutex", [op("release")]) is None
    assert get_model("mutex").describe(False) == "free"


def test_fifo_queue_dequeues_in_order() -> None:
    assert run("fifo-queue", [op("enqueue", 1), op("enqueue", 2), op("dequeue", 1)]) == (2,)
    assert run("fifo-queue", [op("enqueue", 1), op("enqueue", 2), op("dequeue", 2)]) is None
    assert run("fifo-queue", [op("dequeue", None)]) is None  # Knossos: empty queue
    assert run("fifo-queue", [op("dequeue", 9)], init=[9, 8]) == (8,)


def test_unordered_queue_dequeues_any_queued_value_once() -> None:
    ops = [op("enqueue", 1), op("enqueue", 2), op("enqueue", 1), op("dequeue", 2)]
    state = run("unordered-queue", ops)
    assert get_model("unordered-queue").describe(state) == [1, 1]
    assert run("unordered-queue", [*ops, op("dequeue", 1), op("dequeue", 1)]) is not None
    assert run("unordered-queue", [*ops, op("dequeue", 2)]) is None


def test_set_reads_see_exactly_the_added_elements() -> None:
    assert run("set", [op("add", 1), op("add", 2), op("read", [2, 1])]) == frozenset({1, 2})
    assert run("set", [op("add", 1), op("read", [1, 2])]) is None
    assert run("set", [op("add", 1), op("read", None)]) == frozenset({1})
    assert run("set", [op("read", [])]) == frozenset()


def test_counter_adds_and_reads_the_total() -> None:
    assert run("counter", [op("add", 2), op("add", -1), op("read", 1)]) == 1
    assert run("counter", [op("add", 2), op("read", 3)]) is None
    assert run("counter", [op("read", 10)], init=10) == 10
    with pytest.raises(ModelError, match="number"):
        get_model("counter").validate(op("add", "x"))


def test_kv_get_put_append_per_key_with_string_append() -> None:
    ops = [
        op("append", ["a", "x"]),
        op("append", ["a", "y"]),
        op("get", ["a", "xy"]),
        op("get", ["b", ""]),  # an absent key reads as the empty string
        op("put", ["b", "z"]),
        op("append", ["b", "w"]),
        op("get", ["b", "zw"]),
    ]
    state = run("kv", ops)
    assert get_model("kv").describe(state) == {"a": "xy", "b": "zw"}
    assert run("kv", [op("append", ["a", "x"]), op("get", ["a", "yx"])]) is None
    assert run("kv", [op("get", ["a", None])]) == ()  # nil constrains nothing
    assert run("kv", [op("append", ["l", 1]), op("append", ["l", 2]), op("get", ["l", [1, 2]])])
    assert run("kv", [op("get", ["a", "v"])], init={"a": "v"}) is not None
    assert get_model("kv").keys(op("get", ["k", None])) == ("k",)
    with pytest.raises(ModelError, match=r"\[key value\]"):
        get_model("kv").validate(op("get", "k"))


def test_etcd_read_nil_means_absent_and_failed_cas_asserts_a_difference() -> None:
    assert run("etcd", [op("read", None)]) is NIL
    assert run("etcd", [op("write", 1), op("read", None)]) is None  # not absent any more
    assert run("etcd", [op("write", 1), op("cas", [1, 2]), op("read", 2)]) == 2
    assert run("etcd", [op("write", 1), op("cas", [0, 2])]) is None
    mismatch = op("cas", [1, 2], type="fail", error="cas_mismatch")
    assert run("etcd", [op("write", 3), mismatch]) == 3
    assert run("etcd", [op("write", 1), mismatch]) is None
    not_found = op("cas", [1, 2], type="fail", error="not_found")
    assert run("etcd", [not_found]) is NIL
    assert run("etcd", [op("write", 1), not_found]) is None
    model = get_model("etcd")
    assert model.observes_failure(mismatch)
    assert not model.observes_failure(op("cas", [1, 2], type="fail", error="not_leader"))
    assert model.is_noop(op("read", None, type="info"))  # a timed-out read
    assert not model.is_noop(op("read", None))


def test_read_only_ops_never_change_the_state() -> None:
    cases = {
        "register": (op("read", 1), 1),
        "cas-register": (op("read", 1), 1),
        "set": (op("read", [1]), frozenset({1})),
        "counter": (op("read", 4), 4),
        "kv": (op("get", ["k", "v"]), (("k", "v"),)),
        "etcd": (op("read", 2), 2),
        "multi-register": (op("txn", [["read", "x", 1]]), (("x", 1),)),
    }
    for name, (read, state) in cases.items():
        model = get_model(name)
        assert model.read_only(read), name
        assert model.step(state, read) == state, name
    assert not get_model("register").read_only(op("write", 1))
    assert not get_model("fifo-queue").read_only(op("dequeue", 1))


def test_states_are_hashable_and_nil_is_one_value() -> None:
    assert freeze({"a": [1, {"b": 2}]}) == freeze({"a": [1, {"b": 2}]})
    assert hash(freeze({"a": [1, {"b": 2}]})) == hash(freeze({"a": [1, {"b": 2}]}))
    assert thaw(freeze({"a": [1, 2]})) == {"a": [1, 2]}
    assert thaw(NIL) is None
    items = items_from({"b": 2, "a": 1})
    assert items == (("a", 1), ("b", 2))
    assert items_get(items_set(items, "c", 3), "c") == 3
    assert items_set(items, "a", None) == (("b", 2),)
    assert items_set(items_from({1: "x"}), "s", "y") == items_set(items_from({"s": "y"}), 1, "x")
