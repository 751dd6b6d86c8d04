"""set: add unique elements, read them all back at the end (Jepsen's set workload).

``add [k, e]`` appends the unique integer ``e`` to the list at key ``k`` (the KV's
``append``, so the set lives in one replicated value); after healing, the final reads
``read [k, None]`` → ok ``[k, [elements…]]`` fetch every key ever used. Keys are
replaced after ``elements_per_key`` adds, so each list (and each append's reply, which
is the whole new list) stays small however long the run.

The checker (Jepsen's ``set`` checker, plus two checks exactly-once sessions make
possible) compares the final reads with what was attempted:
- lost: an ``ok`` add (completed before the final read began) missing from the read;
- unexpected: a read element that no add attempted on that key;
- failed-but-present: a definitely ``fail``-ed add present (the ``fail`` was a lie);
- duplicated: an element present twice (an add applied twice: sessions broken);
- recovered: an ``info`` add present (fine: indeterminate ops may have happened).
``valid`` is false on any of the first four, "unknown" when a key that had adds has no
ok final read, true otherwise.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from checker.op import Op
from workloads.base import KeyRotation, OpRequest, checker_failed, client_ops, combine
from workloads.client import KVClient
from workloads.outcome import OK, Outcome

EXAMPLES = 200  # at most this many elements listed per category (the counts are exact)


@dataclass(slots=True)
class SetWorkload:
    keys: int = 3  # lists being appended to at any time
    elements_per_key: int = 500  # then the key is replaced by a fresh one
    key_prefix: str = "s"
    name: str = field(default="set", init=False)
    _keys: KeyRotation = field(init=False, repr=False)
    _next_element: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.keys < 1 or self.elements_per_key < 1:
            raise ValueError("set workload: keys and elements_per_key must be at least 1")
        self._keys = KeyRotation(self.keys, self.elements_per_key)

    def config(self) -> dict[str, Any]:
        return {
            "keys": self.keys,
            "elements_per_key": self.elements_per_key,
            "key_prefix": self.key_prefix,
        }

    def kv_key(self, key: int) -> str:
        return f"{self.key_prefix}{key}"

    def is_read(self, f: str) -> bool:
        return f == "read"

    def next_op(self, rng: random.Random) -> OpRequest:
        key = self._keys.pick(rng)
        element = self._next_element
        self._next_element += 1
        return OpRequest("add", [key, element])

    async def invoke(self, client: KVClient, request: OpRequest) -> Outcome:
        key, argument = request.value
        if request.f == "add":
            await client.append(self.kv_key(key), argument)
            return Outcome(OK, [key, argument])
        if request.f == "read":
            found = await client.get(self.kv_key(key))
            return Outcome(OK, [key, [] if found is None else found])
        raise ValueError(f"set workload: unknown f {request.f!r}")

    async def setup(self, client: KVClient) -> None:
        return None

    def final_ops(self) -> list[OpRequest]:
        """A read of every key that any add was generated for."""
        return [OpRequest("read", [key, None]) for key in sorted(self._keys.counts)]

    def check(self, history: list[Op], *, time_limit: float | None = None) -> dict[str, Any]:
        try:
            result = check_set(history)
        except Exception as error:
            result = checker_failed("set", error)
        return combine({"set": result})


def _examples(elements: set[Any]) -> list[Any]:
    return sorted(elements, key=repr)[:EXAMPLES]


def check_set(history: list[Op]) -> dict[str, Any]:
    """Jepsen's set checker over ``add [k, e]`` and final ``read [k, list]`` ops."""
    ops = client_ops(history)
    attempted: dict[Any, set[Any]] = {}  # key -> elements of every add invoked on it
    invoke_of: dict[int | str, Op] = {}
    acknowledged: dict[Any, dict[Any, int]] = {}  # key -> element -> index of the ok
    indeterminate: dict[Any, set[Any]] = {}
    failed: dict[Any, set[Any]] = {}
    final_read: dict[Any, tuple[int, list[Any]]] = {}  # key -> (invoke index, elements)
    malformed: list[int] = []

    for op in ops:
        if op.type == "invoke":
            invoke_of[op.process] = op
            if op.f == "add":
                key, element = op.value
                attempted.setdefault(key, set()).add(element)
            continue
        invocation = invoke_of.pop(op.process, None)
        if invocation is None:
            continue
        if op.f == "add":
            key, element = invocation.value
            if op.type == "ok":
                acknowledged.setdefault(key, {})[element] = op.index
            elif op.type == "info":
                indeterminate.setdefault(key, set()).add(element)
            else:
                failed.setdefault(key, set()).add(element)
        elif op.f == "read" and op.type == "ok":
            value = op.value
            if not (isinstance(value, list | tuple) and len(value) == 2):
                malformed.append(op.index)
                continue
            key, elements = value
            if elements is None:
                elements = []
            if not isinstance(elements, list | tuple):
                malformed.append(op.index)
                continue
            # The last ok read of each key is its final read.
            final_read[key] = (invocation.index, list(elements))
    # Adds that never completed (a prefix of a crashed run) are indeterminate.
    for invocation in invoke_of.values():
        if invocation.f == "add":
            key, element = invocation.value
            indeterminate.setdefault(key, set()).add(element)

    lost: set[Any] = set()
    unexpected: set[Any] = set()
    recovered: set[Any] = set()
    failed_present: set[Any] = set()
    duplicated: set[Any] = set()
    unread_keys: list[Any] = []
    acknowledged_after_read = 0
    read_count = 0
    for key in sorted(set(attempted) | set(final_read), key=repr):
        if key not in final_read:
            unread_keys.append(key)
            continue
        read_index, elements = final_read[key]
        present = Counter(elements)
        read_count += len(present)
        duplicated |= {element for element, times in present.items() if times > 1}
        unexpected |= set(present) - attempted.get(key, set())
        recovered |= set(present) & indeterminate.get(key, set())
        failed_present |= set(present) & failed.get(key, set())
        for element, ok_index in acknowledged.get(key, {}).items():
            if ok_index > read_index:
                acknowledged_after_read += 1  # acknowledged after the read began: unknowable
            elif element not in present:
                lost.add(element)

    problems = []
    if lost:
        problems.append(f"{len(lost)} acknowledged adds are missing from the final reads")
    if unexpected:
        problems.append(f"{len(unexpected)} elements were read that no add attempted")
    if failed_present:
        problems.append(f"{len(failed_present)} adds that failed definitely are present")
    if duplicated:
        problems.append(f"{len(duplicated)} elements are present more than once")
    if malformed:
        problems.append(f"{len(malformed)} reads returned something that is not a list")
    if problems:
        valid: bool | str = False
    elif unread_keys:
        valid = "unknown"
        problems.append(f"no ok final read of keys {unread_keys[:20]}: their adds are unchecked")
    else:
        valid = True
    return {
        "valid": valid,
        "explanation": "; ".join(problems) if problems else "every acknowledged add was read",
        "attempt_count": sum(len(elements) for elements in attempted.values()),
        "acknowledged_count": sum(len(elements) for elements in acknowledged.values()),
        "read_count": read_count,
        "lost_count": len(lost),
        "lost": _examples(lost),
        "unexpected_count": len(unexpected),
        "unexpected": _examples(unexpected),
        "failed_present_count": len(failed_present),
        "failed_present": _examples(failed_present),
        "duplicated_count": len(duplicated),
        "duplicated": _examples(duplicated),
        "recovered_count": len(recovered),
        "recovered": _examples(recovered),
        "acknowledged_after_read": acknowledged_after_read,
        "unread_keys": unread_keys[:EXAMPLES],
        "malformed_reads": malformed[:EXAMPLES],
    }
