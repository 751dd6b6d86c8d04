"""An async etcd client over the v3 JSON gateway, for the workloads (`workloads.client.KVClient`).

etcd serves its gRPC KV API as JSON over HTTP/1.1 (grpc-gateway): ``POST /v3/kv/range``,
``/v3/kv/put``, ``/v3/kv/txn``, ``/v3/kv/deleterange``. Keys and values are base64;
int64 fields (revisions, counts) are JSON strings; fields at their zero value are left
out (``"succeeded": false`` and an empty ``kvs`` are simply absent). Errors come back with
a non-200 status and ``{"error": MESSAGE, "code": GRPC_CODE, "message": MESSAGE}``.
HTTP is httpx's `AsyncClient`, which runs on Trio through anyio.

Values are stored as canonical JSON (sorted keys, no spaces), so lists and integers
round-trip and a ``cas`` can compare values byte for byte: ``1``, ``1.0`` and ``true``
differ, as in raftnode's KV. The operations and their definite failures match
raftnode's (ARCHITECTURE.md "The KV state machine"):

- ``get`` / ``mget``: a range (``mget``: one read-only txn of ranges, so one revision
  for all keys); linearizable, or the member's local state with ``serializable_reads``
  (unsafe on purpose: stale reads).
- ``put``: a put. ``delete``: a deleterange.
- ``cas(key, expected, new)``: one txn ``value(key) == expected ? put : range``;
  ``not_found`` when the failure branch finds no key, else ``cas_mismatch``.
- ``append(key, v)``: Jepsen's etcd append: read the list and its ``mod_revision``, then
  a txn ``mod_revision(key) == seen ? put list+[v] : range``. A lost race (the guard
  failed) applied nothing, and the failure branch hands back the fresh list, so the
  client tries again at once with it, until the op's deadline; only when every attempt
  lost does the op fail, definitely, with ``txn_conflict``. (Retrying is sound because
  every failed attempt changed nothing; failing at the first lost race would make the
  append workload mostly fails under contention.) Never retried after an attempt whose
  outcome is unknown: a second copy could append twice.
- ``transfer(from, to, n)``: read both balances and mod_revisions (one read-only txn),
  then one txn guarded by both mod_revisions putting both new balances; lost races are
  retried as for append; ``insufficient_funds`` when the balance read (the first read or
  a failure branch, both linearizable) is below ``n``; an absent account is 0.

Errors (conventions §3), as `raftnode.client.ClientError` (``code``, ``definite``,
``node``) so `workloads.outcome` maps them:

- nothing sent (connection refused, connect timeout, pool timeout): definite
  ``unavailable``; the client tries the next member until the deadline.
- sent, no answer (read timeout, connection reset or closed): ``timeout`` /
  ``connection_lost``, indefinite.
- etcd's errors by message (see `classify_gateway_error`): definite when etcd refuses
  before proposing (``no leader``, ``too many requests``, ``request is too large``,
  ``raft proposal dropped``, invalid arguments, auth); indefinite when the proposal may
  be in the log (``request timed out*``, ``leader changed``, ``server stopped``,
  ``corrupt cluster``, anything unknown). Definite refusals that may pass (no leader,
  too many requests, proposal dropped) are retried on the next member until the deadline,
  since nothing was applied; an indefinite write error is never retried.
- reads change nothing: any error is retried on the next member while time is left.

Which member: the client starts at its home node (``node``) and moves to the next
member on a connection error or a timeout (members forward writes to the leader, so any
member serves any request). ``last_node`` names the member that answered.

Revisions: ``last_revision`` is the header revision of the latest response. Every public
call replaces ``last_meta`` with a new dict holding ``revision`` (the header revision of
the call's last response) and, for reads, ``mod_revision`` (``get``: the key's, 0 when
absent; ``mget``: ``{key: mod_revision}``); `workloads.runner.perform_op` copies it into
the op, where `checker.revisions` reads it.
"""

from __future__ import annotations

import base64
import json
import math
import random
import secrets
import zlib
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
import trio

from raftnode.client import ClientError
from workloads.client import ClientFactory

DEFAULT_TIMEOUT = 2.0
CONNECT_TIMEOUT = 0.5
BACKOFF_MIN = 0.01
BACKOFF_MAX = 0.1

# grpc status codes (google.golang.org/grpc/codes) the gateway puts in "code".
GRPC_CANCELED = 1
GRPC_UNKNOWN = 2
GRPC_INVALID_ARGUMENT = 3
GRPC_DEADLINE_EXCEEDED = 4
GRPC_NOT_FOUND = 5
GRPC_PERMISSION_DENIED = 7
GRPC_RESOURCE_EXHAUSTED = 8
GRPC_FAILED_PRECONDITION = 9
GRPC_OUT_OF_RANGE = 11
GRPC_UNAVAILABLE = 14
GRPC_DATA_LOSS = 15
GRPC_UNAUTHENTICATED = 16

# etcd refuses these before proposing anything (etcdserver v3_server.go, the gRPC
# interceptors, raft's Propose): the operation did not happen. Value: our code.
DEFINITE_MESSAGES: dict[str, str] = {
    "etcdserver: no leader": "no_leader",
    "etcdserver: too many requests": "too_many_requests",
    "etcdserver: request is too large": "too_large",
    "raft proposal dropped": "proposal_dropped",
    "etcdserver: mvcc: database space exceeded": "no_space",
    "etcdserver: not capable": "not_capable",
    "etcdserver: unhealthy cluster": "unhealthy",
    "etcdserver: rpc not supported for learner": "learner",
}
# Refusals worth another try (on another member, after a pause): nothing was applied.
RETRYABLE_DEFINITE: frozenset[str] = frozenset(
    {"no_leader", "too_many_requests", "proposal_dropped", "unhealthy", "learner", "unavailable"}
)
# The proposal may be in the log and apply later: the outcome is unknown.
INDEFINITE_MESSAGES: dict[str, str] = {
    "etcdserver: request timed out": "timeout",
    "etcdserver: request timed out, possibly due to previous leader failure": "timeout",
    "etcdserver: request timed out, possibly due to connection lost": "timeout",
    "etcdserver: request timed out, waiting for the applied index took too long": "timeout",
    "etcdserver: request timed out, leader transfer took too long": "timeout",
    "etcdserver: leader changed": "leader_changed",
    "etcdserver: server stopped": "node_crashed",
    "etcdserver: request cancelled": "cancelled_by_server",
    "etcdserver: request canceled": "cancelled_by_server",
    "etcdserver: corrupt cluster": "corrupt",
}
# grpc codes whose errors are validation or permission failures: refused before proposing.
DEFINITE_GRPC_CODES: dict[int, str] = {
    GRPC_INVALID_ARGUMENT: "malformed",
    GRPC_OUT_OF_RANGE: "malformed",
    GRPC_PERMISSION_DENIED: "unauthorized",
    GRPC_UNAUTHENTICATED: "unauthorized",
    GRPC_FAILED_PRECONDITION: "refused",
    GRPC_NOT_FOUND: "refused",
    GRPC_RESOURCE_EXHAUSTED: "too_many_requests",
}


def classify_gateway_error(status: int, body: Any) -> tuple[str, bool, str]:
    """(code, definite, detail) of a gateway error response, for a write.

    By etcd's message first (exact strings of rpctypes/error.go), then by gRPC code for
    validation and permission errors. Anything else is indefinite: ``info`` is always
    safe for a write, ``fail`` is not (a fail recorded for a write that happened hides
    it from the checker).
    """
    message = ""
    grpc_code: Any = None
    if isinstance(body, dict):
        raw = body.get("error") or body.get("message") or ""
        message = raw if isinstance(raw, str) else str(raw)
        grpc_code = body.get("code")
    detail = f"HTTP {status}: {message or body!r:.200}"
    if message in DEFINITE_MESSAGES:
        return DEFINITE_MESSAGES[message], True, detail
    if message in INDEFINITE_MESSAGES:
        return INDEFINITE_MESSAGES[message], False, detail
    if isinstance(grpc_code, int) and grpc_code in DEFINITE_GRPC_CODES:
        return DEFINITE_GRPC_CODES[grpc_code], True, detail
    if grpc_code == GRPC_DEADLINE_EXCEEDED:
        return "timeout", False, detail
    return "server_error", False, detail


def encode_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_key(key: Any) -> str:
    return encode_bytes(str(key).encode("utf-8"))


def encode_value(value: Any) -> str:
    """Canonical JSON, so equal values are equal bytes (what a txn's value compare needs)."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return encode_bytes(text.encode("utf-8"))


def decode_value(data: Any) -> Any:
    """A stored value; text that is not JSON (written by someone else) comes back as is."""
    raw = base64.b64decode(data) if isinstance(data, str) else b""
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def int64(value: Any) -> int:
    """The gateway writes int64 as a string and omits zero."""
    if value is None:
        return 0
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def header_revision(body: dict[str, Any]) -> int | None:
    """The store revision in a reply's header; None when the reply has none (never a
    made-up 0, which the revision checkers would read as going backwards)."""
    header = body.get("header")
    if not isinstance(header, dict) or header.get("revision") is None:
        return None
    revision = int64(header.get("revision"))
    return revision if revision > 0 else None


@dataclass(slots=True, frozen=True)
class KeyState:
    """One key as a range saw it: ``present`` False means absent (mod_revision 0)."""

    present: bool
    value: Any
    mod_revision: int


def key_state(range_response: Any) -> KeyState:
    kvs = range_response.get("kvs") if isinstance(range_response, dict) else None
    if not kvs:
        return KeyState(False, None, 0)
    kv = kvs[0]
    return KeyState(True, decode_value(kv.get("value")), int64(kv.get("mod_revision")))


def _range_op(key: Any, *, serializable: bool = False) -> dict[str, Any]:
    request: dict[str, Any] = {"key": encode_key(key)}
    if serializable:
        request["serializable"] = True
    return {"request_range": request}


def _put_op(key: Any, value: Any) -> dict[str, Any]:
    return {"request_put": {"key": encode_key(key), "value": encode_value(value)}}


def _txn_ranges(body: dict[str, Any]) -> list[KeyState]:
    """The range results of a txn's executed branch, in order."""
    out = []
    for response in body.get("responses") or []:
        if isinstance(response, dict) and "response_range" in response:
            out.append(key_state(response["response_range"]))
    return out


def txn_failed_branch(body: dict[str, Any], ranges: int, node: str | None) -> list[KeyState]:
    """The failure branch's ranges of a guarded write txn whose ``succeeded`` is absent.

    A reply is read as "the guard failed, nothing was written" only when it holds exactly
    the failure branch's ``ranges`` range results and nothing else: a reply of any other
    shape (a put result, a short list) might be a success encoded unexpectedly, so it is
    an unknown outcome, never a definite failure."""
    responses = body.get("responses") or []
    states = _txn_ranges(body)
    if len(responses) == ranges and len(states) == ranges:
        return states
    raise ClientError(
        "malformed_reply",
        definite=False,
        node=node,
        detail=f"a txn reply neither succeeded nor holding {ranges} ranges: {body!r:.200}",
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class EtcdClient:
    """See the module docstring. Use as ``async with EtcdClient(endpoints) as client:``.

    ``endpoints`` maps member names to client URLs (``http://127.0.0.1:2379``; a bare
    ``host:port`` gets ``http://``). One client may run many requests at once (the
    benchmark does); ``last_meta`` then describes whichever call finished last.
    """

    def __init__(
        self,
        endpoints: dict[str, str],
        *,
        node: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        serializable_reads: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT,
        client_id: str | None = None,
        max_connections: int = 100,
    ) -> None:
        if not endpoints:
            raise ValueError("the etcd client needs at least one endpoint")
        if node is not None and node not in endpoints:
            raise ValueError(f"node {node!r} is not one of the endpoints {sorted(endpoints)}")
        if not (timeout > 0 and math.isfinite(timeout)):
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        self.endpoints = {name: _base_url(url) for name, url in endpoints.items()}
        self.node_ids = sorted(self.endpoints)
        self.timeout = timeout
        self.serializable_reads = serializable_reads
        self.connect_timeout = connect_timeout
        self.client_id = client_id or f"etcd-{secrets.token_hex(6)}"
        self.rng = random.Random(zlib.crc32(self.client_id.encode()))
        self.last_node: str | None = None
        self.last_revision: int | None = None
        self.last_meta: dict[str, Any] = {}
        self._preferred = node if node is not None else self.node_ids[0]
        self._max_connections = max_connections
        self._http: httpx.AsyncClient | None = None

    # --- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        # verify=False: plain HTTP only, and building the default TLS context costs ~70 ms
        # per client, which a run that makes a client per process would pay many times.
        self._http = httpx.AsyncClient(
            verify=False,
            trust_env=False,
            limits=httpx.Limits(
                max_connections=self._max_connections,
                max_keepalive_connections=self._max_connections,
            ),
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            with trio.CancelScope(shield=True):
                await http.aclose()

    # --- operations (workloads.client.KVClient) --------------------------------------

    async def get(self, key: Any) -> Any:
        meta = self._begin()
        body = await self._request(
            "/v3/kv/range",
            {"key": encode_key(key), **({"serializable": True} if self.serializable_reads else {})},
            write=False,
            deadline=self._deadline(),
            meta=meta,
        )
        state = key_state(body)
        meta["mod_revision"] = state.mod_revision
        return state.value

    async def mget(self, keys: list[Any]) -> dict[Any, Any]:
        meta = self._begin()
        keys = list(keys)
        body = await self._request(
            "/v3/kv/txn",
            {"success": [_range_op(k, serializable=self.serializable_reads) for k in keys]},
            write=False,
            deadline=self._deadline(),
            meta=meta,
        )
        states = _txn_ranges(body)
        if len(states) != len(keys):
            raise ClientError(
                "malformed_reply",
                definite=True,
                node=self.last_node,
                detail=f"{len(states)} range results for {len(keys)} keys",
            )
        meta["mod_revision"] = {str(k): s.mod_revision for k, s in zip(keys, states, strict=True)}
        return {k: s.value for k, s in zip(keys, states, strict=True)}

    async def put(self, key: Any, value: Any) -> None:
        meta = self._begin()
        await self._request(
            "/v3/kv/put",
            {"key": encode_key(key), "value": encode_value(value)},
            write=True,
            deadline=self._deadline(),
            meta=meta,
        )

    async def delete(self, key: Any) -> None:
        meta = self._begin()
        await self._request(
            "/v3/kv/deleterange",
            {"key": encode_key(key)},
            write=True,
            deadline=self._deadline(),
            meta=meta,
        )

    async def cas(self, key: Any, expected: Any, new: Any) -> None:
        meta = self._begin()
        body = await self._request(
            "/v3/kv/txn",
            {
                "compare": [
                    {
                        "key": encode_key(key),
                        "target": "VALUE",
                        "result": "EQUAL",
                        "value": encode_value(expected),
                    }
                ],
                "success": [_put_op(key, new)],
                "failure": [_range_op(key)],
            },
            write=True,
            deadline=self._deadline(),
            meta=meta,
        )
        if body.get("succeeded") is True:
            return
        # The txn went through the log and its failure branch read the key at apply time:
        # an authoritative, definite answer.
        [state] = txn_failed_branch(body, 1, self.last_node)
        code = "cas_mismatch" if state.present else "not_found"
        raise ClientError(code, definite=True, node=self.last_node)

    async def append(self, key: Any, value: Any) -> list[Any]:
        meta = self._begin()
        deadline = self._deadline()
        [state] = await self._read_for_write([key], deadline, meta)
        while True:
            current = state.value if state.present else []
            if not isinstance(current, list):
                raise ClientError(
                    "malformed",
                    definite=True,
                    node=self.last_node,
                    detail=f"the value at {key!r} is not a list: {current!r:.80}",
                )
            new_list = [*current, value]
            body = await self._request(
                "/v3/kv/txn",
                {
                    "compare": [_mod_guard(key, state.mod_revision)],
                    "success": [_put_op(key, new_list)],
                    "failure": [_range_op(key)],
                },
                write=True,
                deadline=deadline,
                meta=meta,
            )
            if body.get("succeeded") is True:
                return new_list
            [state] = self._lost_race(body, 1, deadline)

    async def transfer(self, from_key: Any, to_key: Any, amount: int) -> None:
        meta = self._begin()
        if not _is_int(amount) or amount < 0:
            raise ClientError("malformed", definite=True, detail=f"bad amount {amount!r}")
        deadline = self._deadline()
        if str(from_key) == str(to_key):
            [source] = await self._read_for_write([from_key], deadline, meta)
            _balance(source, from_key, self.last_node, amount)  # raises insufficient_funds
            return
        source, target = await self._read_for_write([from_key, to_key], deadline, meta)
        while True:
            source_balance = _balance(source, from_key, self.last_node, amount)
            target_balance = _balance(target, to_key, self.last_node, 0)
            body = await self._request(
                "/v3/kv/txn",
                {
                    "compare": [
                        _mod_guard(from_key, source.mod_revision),
                        _mod_guard(to_key, target.mod_revision),
                    ],
                    "success": [
                        _put_op(from_key, source_balance - amount),
                        _put_op(to_key, target_balance + amount),
                    ],
                    "failure": [_range_op(from_key), _range_op(to_key)],
                },
                write=True,
                deadline=deadline,
                meta=meta,
            )
            if body.get("succeeded") is True:
                return
            source, target = self._lost_race(body, 2, deadline)

    # --- helpers of the read-modify-write operations ---------------------------------

    async def _read_for_write(
        self, keys: list[Any], deadline: float, meta: dict[str, Any]
    ) -> list[KeyState]:
        """The linearizable read a guarded write starts from. Nothing is written yet, so
        its failure is a definite failure of the whole op (``read_failed``), whatever the
        read's own error was (a read timeout is not a write's unknown outcome)."""
        try:
            body = await self._request(
                "/v3/kv/txn",
                {"success": [_range_op(k) for k in keys]},
                write=False,
                deadline=deadline,
                meta=meta,
            )
        except ClientError as error:
            raise ClientError(
                "read_failed",
                definite=True,
                node=error.node,
                detail=f"the read before the write failed: {error}",
            ) from None
        states = _txn_ranges(body)
        if len(states) != len(keys):
            raise ClientError(
                "read_failed", definite=True, node=self.last_node, detail="short txn reply"
            )
        return states

    def _lost_race(self, body: dict[str, Any], count: int, deadline: float) -> list[KeyState]:
        """A guard failed: nothing was applied; the failure branch read the keys afresh.
        Try again with them while time is left, else fail definitely."""
        states = txn_failed_branch(body, count, self.last_node)
        if trio.current_time() >= deadline:
            raise ClientError(
                "txn_conflict",
                definite=True,
                node=self.last_node,
                detail=f"every guarded txn lost a race within {self.timeout} s",
            )
        return states

    # --- the request loop ------------------------------------------------------------

    def _begin(self) -> dict[str, Any]:
        meta: dict[str, Any] = {}
        self.last_meta = meta
        return meta

    def _deadline(self) -> float:
        return trio.current_time() + self.timeout

    async def _request(
        self,
        path: str,
        body: dict[str, Any],
        *,
        write: bool,
        deadline: float,
        meta: dict[str, Any],
    ) -> dict[str, Any]:
        """POST ``body`` to a member until an answer, a write's unknown outcome, or the
        deadline. Returns the 200 reply's JSON; records its revision in ``meta`` and the
        member in ``last_node``."""
        if self._http is None:
            raise RuntimeError("use EtcdClient inside 'async with'")
        node = self._preferred
        last: ClientError | None = None
        misses = 0
        while True:
            remaining = deadline - trio.current_time()
            if remaining <= 0:
                if last is not None:
                    raise last  # definite, or a read: nothing of this call took effect
                raise ClientError(
                    "unavailable", definite=True, node=node, detail="no time left to send"
                )
            try:
                reply = await self._post(node, path, body, remaining)
            except ClientError as error:
                last = error
                if write and not error.definite:
                    self._preferred = self._next_node(node)
                    raise
                if error.code == "timeout":  # a read with no time left
                    self._preferred = self._next_node(node)
                    raise
                if error.definite and error.code not in RETRYABLE_DEFINITE:
                    raise
                # Nothing happened (or a read): try the next member, pausing once every
                # member has been tried.
                misses += 1
                node = self._next_node(node)
                self._preferred = node
                await self._backoff(misses, deadline)
                continue
            self.last_node = node
            revision = header_revision(reply)
            if revision is not None:
                self.last_revision = revision
                meta["revision"] = revision
            return reply

    async def _post(
        self, node: str, path: str, body: dict[str, Any], remaining: float
    ) -> dict[str, Any]:
        """One HTTP request to one member; every failure as a classified ClientError."""
        assert self._http is not None
        url = self.endpoints[node] + path
        timeout = httpx.Timeout(
            remaining, connect=max(min(self.connect_timeout, remaining), 0.001), pool=remaining
        )
        try:
            # A backstop: httpx's timeouts are per phase, this bounds the whole call.
            with trio.fail_after(remaining + 0.5):
                response = await self._http.post(url, json=body, timeout=timeout)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            # The request never left: definite.
            raise ClientError(
                "unavailable", definite=True, node=node, detail=f"{type(error).__name__}: {error}"
            ) from None
        except (httpx.ReadTimeout, httpx.WriteTimeout, trio.TooSlowError):
            raise ClientError(
                "timeout", definite=False, node=node, detail=f"no answer within {remaining:.3g} s"
            ) from None
        except httpx.HTTPError as error:
            # Reset, closed or broken mid-request: it may have been received and applied.
            raise ClientError(
                "connection_lost",
                definite=False,
                node=node,
                detail=f"{type(error).__name__}: {error}",
            ) from None
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        if response.status_code == 200 and isinstance(parsed, dict):
            return parsed
        if response.status_code == 200:
            raise ClientError(
                "malformed_reply",
                definite=False,
                node=node,
                detail=f"not a JSON object: {response.text[:120]!r}",
            )
        code, definite, detail = classify_gateway_error(response.status_code, parsed)
        raise ClientError(code, definite=definite, node=node, detail=detail)

    def _next_node(self, node: str) -> str:
        index = self.node_ids.index(node)
        return self.node_ids[(index + 1) % len(self.node_ids)]

    async def _backoff(self, misses: int, deadline: float) -> None:
        if misses < len(self.node_ids):
            return  # first go round the members without waiting
        delay = min(BACKOFF_MAX, BACKOFF_MIN * 2 ** (misses - len(self.node_ids)))
        delay *= 0.5 + self.rng.random()
        await trio.sleep(max(0.0, min(delay, deadline - trio.current_time())))


def _mod_guard(key: Any, mod_revision: int) -> dict[str, Any]:
    """``mod_revision(key) == seen``; 0 matches an absent key (etcd compares an absent
    key's mod_revision as 0), so creating a key is guarded too."""
    compare: dict[str, Any] = {"key": encode_key(key), "target": "MOD", "result": "EQUAL"}
    compare["mod_revision"] = str(mod_revision)
    return compare


def _balance(state: KeyState, key: Any, node: str | None, needed: int) -> int:
    balance = state.value if state.present else 0
    if not _is_int(balance):
        raise ClientError(
            "malformed", definite=True, node=node, detail=f"balance of {key!r} is {balance!r:.60}"
        )
    if balance < needed:
        raise ClientError("insufficient_funds", definite=True, node=node)
    return balance


def _base_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def make_etcd_client_factory(
    endpoints: dict[str, str], *, timeout: float = DEFAULT_TIMEOUT, serializable_reads: bool = False
) -> ClientFactory:
    """The workloads' `ClientFactory` for an etcd cluster: one `EtcdClient` per process,
    starting at the process's home member."""
    checked = dict(endpoints)
    if not checked:
        raise ValueError("the etcd client factory needs at least one endpoint")

    def factory(*, process: int, client_id: str, node: str | None) -> EtcdClient:
        home = node if node in checked else None
        return EtcdClient(
            checked,
            node=home,
            timeout=timeout,
            serializable_reads=serializable_reads,
            client_id=client_id,
        )

    return factory
