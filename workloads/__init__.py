"""Workloads: op generators, client workers, the history recorder and workload checkers.

A new workload is one file with a class of the `workloads.base.Workload` shape plus one
registration line in `WORKLOADS` below.
"""

from __future__ import annotations

from typing import Any

from workloads.append import AppendWorkload
from workloads.bank import BankWorkload
from workloads.base import Workload
from workloads.register import RegisterWorkload
from workloads.set import SetWorkload

# --workload name -> class; the class's keyword options are its config().
WORKLOADS: dict[str, type] = {
    "register": RegisterWorkload,
    "set": SetWorkload,
    "append": AppendWorkload,
    "bank": BankWorkload,
}


def make_workload(name: str, **options: Any) -> Workload:
    """The workload called ``name`` with ``options`` (as stored by its ``config()``).

    Raises ValueError with the known names for an unknown name or option.
    """
    workload_class = WORKLOADS.get(name)
    if workload_class is None:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(sorted(WORKLOADS))}")
    try:
        return workload_class(**options)
    except TypeError as error:  # an unknown option
        raise ValueError(f"workload {name!r}: {error}") from None
