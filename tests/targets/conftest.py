"""Make ``target_helpers`` importable: the suite runs with ``--import-mode=importlib``,
which puts no test directory on ``sys.path``. The helper module's name is unique."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from target_helpers import etcd_binary  # noqa: E402, F401  (a fixture)
