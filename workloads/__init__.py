"""Workloads: op generators, client workers, the history recorder and workload checkers.

A new workload is one file with a class of the `workloads.base.Workload` shape plus one
registration line in `WORKLOADS` below.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from workloads.append import AppendWorkload
from workloads.bank import BankWorkload
from workloads.base import Workload
from workloads.list_append import ListAppendWorkload
from workloads.register import RegisterWorkload
from workloads.rw_register import RWRegisterWorkload
from workloads.set import SetWorkload

# --workload name -> class; the class's keyword options are its config().
WORKLOADS: dict[str, type] = {
    "register": RegisterWorkload,
    "set": SetWorkload,
    "append": AppendWorkload,
    "bank": BankWorkload,
    "list-append": ListAppendWorkload,
    "rw-register": RWRegisterWorkload,
}


def workload_options(name: str) -> dict[str, Any]:
    """The keyword options of workload ``name``, each with its default (what
    ``--workload-option KEY=VALUE`` may set)."""
    workload_class = WORKLOADS[name]
    if dataclasses.is_dataclass(workload_class):
        return {
            item.name: item.default
            for item in dataclasses.fields(workload_class)
            if item.init and not item.name.startswith("_")
        }
    parameters = inspect.signature(workload_class).parameters.values()
    return {
        p.name: None if p.default is inspect.Parameter.empty else p.default
        for p in parameters
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _options_text(options: dict[str, Any]) -> str:
    return ", ".join(f"{name} (default {default!r})" for name, default in options.items())


def make_workload(name: str, **options: Any) -> Workload:
    """The workload called ``name`` with ``options`` (as stored by its ``config()``).

    Raises ValueError with the known names for an unknown name or option, and naming the
    expected type for a value of the wrong type (an int option given "abc").
    """
    workload_class = WORKLOADS.get(name)
    if workload_class is None:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(sorted(WORKLOADS))}")
    known = workload_options(name)
    # (`set` is the workloads.set module in this namespace: no set arithmetic here)
    unknown = sorted(option for option in options if option not in known)
    if unknown:
        raise ValueError(
            f"workload {name!r} has no option {', '.join(map(repr, unknown))}; "
            f"its options: {_options_text(known) or 'none'}"
        )
    for option, value in options.items():
        default = known[option]
        if isinstance(default, bool) or default is None:
            continue
        if isinstance(default, int | float) and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            kind = "a number" if isinstance(default, float) else "an integer"
            raise ValueError(f"workload {name!r}: option {option} takes {kind}, got {value!r}")
        if isinstance(default, int) and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"workload {name!r}: option {option} takes an integer, got {value!r}")
        if isinstance(default, str) and not isinstance(value, str):
            raise ValueError(f"workload {name!r}: option {option} takes a string, got {value!r}")
    try:
        return workload_class(**options)
    except TypeError as error:  # a check the class makes itself
        raise ValueError(
            f"workload {name!r}: {error}; its options: {_options_text(known)}"
        ) from None
