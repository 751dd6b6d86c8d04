"""rw-register (Elle's): txns of register writes and reads over rotating keys.

An op is ``f: "txn"`` with micro-ops ``["w", k, v]`` and ``["r", k, None]``; the
completion fills each read with the key's value (``["r", k, 3]``; ``None`` for a key never
written, the initial state). Written values are unique per key (1, 2, 3, ...), so a read
names the txn that wrote what it saw (wr edges); the version order is only partly known
and Elle infers what the history allows (initial state first, writes following reads).

Options (`workloads.txn.TxnWorkload`): ``key_count``, ``min_txn_length`` /
``max_txn_length``, ``ops_per_key``, ``read_fraction``, ``consistency_model``. Checked
by `checker.elle` (``elle-rw-register``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workloads.txn import TxnWorkload


@dataclass(slots=True)
class RWRegisterWorkload(TxnWorkload):
    key_prefix: str = "rw"
    name: str = field(default="rw-register", init=False)

    elle_workload = "rw-register"
    write_f = "w"
