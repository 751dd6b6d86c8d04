"""perform_op copies a client's per-call metadata (``last_meta``) into the op's extra keys,
and those keys reach history.jsonl and come back when it is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from checker.history import read_jsonl
from workloads.base import OpRequest
from workloads.recorder import HistoryRecorder
from workloads.register import RegisterWorkload
from workloads.runner import call_metadata, perform_op


class Refused(Exception):
    code = "cas_mismatch"
    definite = True


class MetaClient:
    """Answers from a dict; each call replaces ``last_meta`` as the etcd client does."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.revision = 0
        self.last_meta: dict[str, Any] = {}
        self.last_node = "n2"

    def _meta(self, **more: Any) -> None:
        self.last_meta = {"revision": self.revision, **more}

    async def get(self, key: str, /) -> Any:
        self._meta(mod_revision=7 if key in self.data else 0)
        return self.data.get(key)

    async def put(self, key: str, value: Any, /) -> None:
        self.revision += 1
        self.data[key] = value
        self._meta()

    async def cas(self, key: str, expected: Any, new: Any, /) -> None:
        self._meta(index="not an op field to overwrite")
        raise Refused()


async def test_metadata_lands_in_the_ops_and_the_history_file(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    workload = RegisterWorkload()
    client = MetaClient()
    recorder = HistoryRecorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.write_to, path)
        write = await perform_op(workload, client, recorder, 0, OpRequest("write", [1, 3]))
        read = await perform_op(workload, client, recorder, 0, OpRequest("read", [1, None]))
        cas = await perform_op(workload, client, recorder, 0, OpRequest("cas", [1, [0, 1]]))
        recorder.close()
    assert write.extra == {"revision": 1}
    assert read.extra == {"revision": 1, "mod_revision": 7}
    assert cas.type == "fail" and cas.extra == {"revision": 1}  # "index" is dropped
    back = read_jsonl(path)
    assert [op.extra for op in back if op.type != "invoke"] == [
        {"revision": 1},
        {"revision": 1, "mod_revision": 7},
        {"revision": 1},
    ]
    assert all(op.extra == {} for op in back if op.type == "invoke")
    assert back[3].node == "n2"


def test_stale_or_missing_metadata_adds_nothing() -> None:
    client = MetaClient()
    before = client.last_meta
    assert call_metadata(client, before) == {}  # the call never replaced it
    assert call_metadata(object(), None) == {}  # a client without metadata
    client.last_meta = {"revision": 4}
    assert call_metadata(client, before) == {"revision": 4}
