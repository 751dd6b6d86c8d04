"""The targets raftlab can test: built-ins plus those other packages register.

A new built-in target is one file plus one line in ``BUILTIN_TARGETS``. A third-party
package adds one without forking raftlab through the entry-point group
``raftlab.targets``, e.g. in its pyproject.toml::

    [project.entry-points."raftlab.targets"]
    mydb = "mydb_raftlab:MyDbTarget"

The entry point names a `Target` class (instantiated with no arguments) or instance.
A built-in name wins over an entry point of the same name.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from typing import Any

from campaign.targets.base import (
    ClusterSpec,
    Target,
    TargetCluster,
    TargetError,
    TargetOption,
    check_faults,
    parse_target_options,
)

ENTRY_POINT_GROUP = "raftlab.targets"
DEFAULT_TARGET = "raftnode"

# name -> "module:attribute"; imported only when used.
BUILTIN_TARGETS: dict[str, str] = {
    "raftnode": "campaign.targets.raftnode:RaftnodeTarget",
    "etcd": "campaign.targets.etcd:EtcdTarget",
}


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return {entry.name: entry for entry in found if entry.name not in BUILTIN_TARGETS}


def target_names() -> list[str]:
    """Every target name: the built-ins first, then registered ones (sorted)."""
    return [*BUILTIN_TARGETS, *sorted(_entry_points())]


def _instantiate(loaded: Any, name: str) -> Target:
    target = loaded() if isinstance(loaded, type) else loaded
    for attribute in ("options", "unsupported_faults", "ports_needed", "make_cluster"):
        if not hasattr(target, attribute):
            raise TargetError(f"target {name!r} ({loaded!r}) has no {attribute!r}")
    return target


def get_target(name: str) -> Target:
    """The target called ``name``; TargetError listing the known names otherwise."""
    if name in BUILTIN_TARGETS:
        module_name, _, attribute = BUILTIN_TARGETS[name].partition(":")
        return _instantiate(getattr(importlib.import_module(module_name), attribute), name)
    entry = _entry_points().get(name)
    if entry is None:
        raise TargetError(f"unknown target {name!r}; known: {', '.join(target_names())}")
    try:
        loaded = entry.load()
    except Exception as error:  # a broken plug-in is a clear error, not a crash
        raise TargetError(
            f"target {name!r} (entry point {entry.value!r}) failed to load: "
            f"{type(error).__name__}: {error}"
        ) from error
    return _instantiate(loaded, name)


__all__ = [
    "BUILTIN_TARGETS",
    "DEFAULT_TARGET",
    "ENTRY_POINT_GROUP",
    "ClusterSpec",
    "Target",
    "TargetCluster",
    "TargetError",
    "TargetOption",
    "check_faults",
    "get_target",
    "parse_target_options",
    "target_names",
]
