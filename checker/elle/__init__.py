"""An Elle-style transactional checker: dependency graphs, named anomalies, models.

``check(ops, "list-append" | "rw-register", consistency_model=...)`` returns Jepsen's
result map (``valid`` True / False / "unknown", ``anomaly-types``, ``anomalies``, ``not``,
``also-not``, ``possible``); see :mod:`checker.elle.core`.
"""

from checker.elle.core import DEFAULT_MODEL, WORKLOADS, check, check_txns
from checker.elle.history import Txn, TxnHistoryError, txns_from_ops

__all__ = [
    "DEFAULT_MODEL",
    "WORKLOADS",
    "Txn",
    "TxnHistoryError",
    "check",
    "check_txns",
    "txns_from_ops",
]
