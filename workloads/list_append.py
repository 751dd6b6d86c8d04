"""list-append (Elle's): txns of appends and whole-list reads over rotating keys.

An op is ``f: "txn"`` with micro-ops ``["append", k, v]`` and ``["r", k, None]``; the
completion fills each read with the key's list (``["r", k, [1, 2, 3]]``; an absent key
reads as the empty list). Appended values are unique per key (1, 2, 3, ...), so every
read shows exactly which appends precede it and in which order: the version order of
each key is the longest read, and Elle infers ww, wr and rw dependencies from it.

Options (`workloads.txn.TxnWorkload`): ``key_count``, ``min_txn_length`` /
``max_txn_length``, ``ops_per_key``, ``read_fraction``, ``consistency_model``. Checked
by `checker.elle` (``elle-list-append``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from workloads.txn import TxnWorkload


@dataclass(slots=True)
class ListAppendWorkload(TxnWorkload):
    key_prefix: str = "la"
    name: str = field(default="list-append", init=False)

    elle_workload = "list-append"
    write_f = "append"

    def record_read(self, value: Any) -> Any:
        # raftnode reads an absent key as None: the empty list. Anything else is recorded
        # as returned (a value that is not a list is the system's doing; Elle rejects it).
        return [] if value is None else value
