"""A task that kills its own worker process the first time it meets a given item.

Imported by name in worker processes (the test puts this folder on sys.path, which
forked and spawned workers inherit), so it must stay a plain top-level module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def die_once(item: dict[str, Any]) -> dict[str, Any]:
    """``{"n", "dir", "victim"}``: the victim's first attempt ends its process abruptly."""
    attempts = Path(item["dir"]) / f"attempt-{item['n']}"
    with attempts.open("a") as file:
        file.write(f"{os.getpid()}\n")
    if item["n"] == item["victim"] and len(attempts.read_text().split()) == 1:
        os._exit(17)  # a lost worker: no exception, no reply
    return {"n": item["n"], "pid": os.getpid()}
