"""Hosts mode (``raftlab test --net netns``): each node a host of its own, faults in the kernel.

Every node runs in its own network namespace with one address on a bridge the run
creates (``10.213.X.0/24``: ``.1`` is the bridge in the root namespace, where the
campaign's clients run; node k is ``.10+k``). Nodes dial each other's addresses directly:
no proxy carries their traffic, so a cut is a cut below TCP — packets vanish, connections
stay half-open and retransmit, as between real hosts.

Faults, as a `nemesis.control.LinkMesh`:

- partitions (``apply_grudge``): nftables rules in the receiving node's namespace, one
  ``ip saddr <sender> drop`` per cut directed link, so one-way cuts are exact;
- loss (``set_loss``): ``ip saddr <sender> numgen random mod 1000000 < p·10⁶ drop`` in the
  same chain — per packet, drawn by the kernel (not from the run's seed, as with netem);
- delay / reorder (``set_delay``): ``tc netem``, which this module needs the kernel's
  ``sch_netem`` for; `unsupported_reason` refuses a delay nemesis up front when the
  kernel lacks it (some VM kernels do) rather than running without the fault;
- kill, pause, clock and disk faults act on processes and files, as with the proxies.

Every namespace's rules are replaced whole and atomically (``nft -f``: the table deleted
and written again in one transaction).

Names carry a run-specific token (``rl<token>...``) and a state file in
``/run/raftlab-netns/<token>.json`` records the owning process. Teardown (kill what runs in
the namespaces, delete them and the bridge) runs on every exit path of the run; a run
killed too hard for that (SIGKILL) leaves a state file whose owner is dead, and the next
run's `remove_leftovers` deletes what it names. Only namespaces, links and addresses this
module made are touched; nothing outside them gets a packet (the namespaces have no
route but their own /24).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import trio

Address = tuple[str, int]
Link = tuple[str, str]

PREFIX = "rl"  # every namespace, link and state file of hosts mode starts with it
SUBNET_PREFIX = "10.213"
STATE_DIR = Path("/run/raftlab-netns")
NODE_DEVICE = "eth0"
COMMAND_TIMEOUT = 10.0


class NetnsError(RuntimeError):
    """Hosts mode cannot run here (not root, a tool missing) or a command failed."""


def _run(argv: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise NetnsError(f"{' '.join(argv)}: {error}") from None
    if check and done.returncode != 0:
        raise NetnsError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")
    return done.stdout


def unavailable_reason() -> str | None:
    """Why hosts mode cannot run on this machine (None when it can)."""
    if os.geteuid() != 0:
        return (
            "--net netns needs root (it creates network namespaces, a bridge and nftables "
            "rules); run as root or use --net proxy"
        )
    for tool, package in (("ip", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"--net netns needs `{tool}` (Debian package {package}); it is not installed"
    try:
        names = _run(["ip", "netns", "list"])
    except NetnsError as error:
        return f"--net netns: `ip netns` does not work here: {error}"
    del names
    return None


_netem_cache: bool | None = None


def netem_available() -> bool:
    """Whether the kernel has tc's netem (probed once, in a scratch namespace)."""
    global _netem_cache
    if _netem_cache is None:
        token = secrets.token_hex(3)
        space, outer = f"{PREFIX}{token}probe", f"{PREFIX}{token}p0"
        try:
            _run(["ip", "netns", "add", space])
            _run(["ip", "link", "add", outer, "type", "veth", "peer", "name", "p1",
                  "netns", space])  # fmt: skip
            result = subprocess.run(
                ["ip", "netns", "exec", space, "tc", "qdisc", "add", "dev", "p1", "root",
                 "netem", "delay", "1ms"],  # fmt: skip
                capture_output=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
            _netem_cache = result.returncode == 0
        except (NetnsError, OSError, subprocess.TimeoutExpired):
            _netem_cache = False
        finally:
            _run(["ip", "link", "del", outer], check=False)
            _run(["ip", "netns", "del", space], check=False)
    return _netem_cache


def unsupported_reason(fault_names: Iterable[str]) -> str | None:
    """Why this run cannot take these faults in hosts mode (None when it can)."""
    reason = unavailable_reason()
    if reason is not None:
        return reason
    if "delay" in set(fault_names) and not netem_available():
        return (
            "--net netns: the delay fault needs tc netem, and this kernel has no sch_netem "
            "(use --net proxy for delays, or a kernel with CONFIG_NET_SCH_NETEM)"
        )
    return None


# --- leftovers -----------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _destroy(token: str, namespaces: Iterable[str], bridge: str, links: Iterable[str]) -> None:
    """Kill what runs in our namespaces, delete them, their veths and the bridge
    (idempotent). The veths go explicitly: a namespace outlives `ip netns del` while any
    mount namespace still holds its bind mount, and its veth would stay up with it."""
    for space in namespaces:
        pids = _run(["ip", "netns", "pids", space], check=False).split()
        for pid in pids:
            try:
                os.kill(int(pid), 9)  # our node processes: the namespace was made for them
            except (ProcessLookupError, ValueError):
                pass
        _run(["ip", "netns", "del", space], check=False)
    for link in links:
        _run(["ip", "link", "del", link], check=False)
    if bridge:
        _run(["ip", "link", "del", bridge], check=False)
    (STATE_DIR / f"{token}.json").unlink(missing_ok=True)


def remove_leftovers() -> list[str]:
    """Delete what runs that died without their teardown left behind (their state file
    names a process that no longer exists). Returns the tokens removed."""
    removed: list[str] = []
    if not STATE_DIR.is_dir():
        return removed
    for path in sorted(STATE_DIR.glob("*.json")):
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
            owner = int(state["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if _alive(owner) and owner != os.getpid():
            continue
        _destroy(
            path.stem, state.get("namespaces", []), state.get("bridge", ""), state.get("links", [])
        )
        removed.append(path.stem)
    return removed


# --- the mesh ------------------------------------------------------------------------------


class NetnsMesh:
    """Namespaces, a bridge and kernel rules for one run; a `LinkMesh` for the nemesis."""

    def __init__(self, node_ids: Sequence[str], *, port: int, token: str | None = None) -> None:
        self.node_ids = tuple(node_ids)
        self.port = port
        self.token = token or secrets.token_hex(3)
        self.bridge = f"{PREFIX}{self.token}br"
        self.namespaces = {node: f"{PREFIX}{self.token}{node}" for node in self.node_ids}
        self.veths = {  # the root namespace's end of each node's veth
            node: f"{PREFIX}{self.token}v{position}"
            for position, node in enumerate(self.node_ids, start=1)
        }
        self.subnet = self._free_subnet()
        self.bridge_address = f"{self.subnet}.1"
        self._nodes: dict[str, Address] = {
            node: (f"{self.subnet}.{10 + position}", port)
            for position, node in enumerate(self.node_ids, start=1)
        }
        self._blocked: dict[str, set[str]] = {node: set() for node in self.node_ids}
        self._loss: dict[Link, float] = {}
        self._delay: dict[Link, tuple[float, float, bool]] = {}
        self._up = False

    def _free_subnet(self) -> str:
        """A 10.213.X.0/24 that no address on this host is in yet (a concurrent run's)."""
        used = _run(["ip", "-o", "-4", "addr", "show"], check=False)
        start = int(self.token, 16) % 250
        for step in range(250):
            third = 1 + (start + step) % 250
            if f" {SUBNET_PREFIX}.{third}." not in used:
                return f"{SUBNET_PREFIX}.{third}"
        raise NetnsError(f"no free {SUBNET_PREFIX}.X.0/24 left on this host")

    # --- what the cluster uses --------------------------------------------------------

    @property
    def nodes(self) -> Mapping[str, Address]:
        return self._nodes

    def exec_prefix(self, node_id: str) -> list[str]:
        """Prepended to a node's command line: ``ip netns exec`` execs it in place, so the
        process handle (kill, SIGSTOP) is the node itself."""
        return ["ip", "netns", "exec", self.namespaces[node_id]]

    def peer_map(self, node_id: str) -> dict[str, Address]:
        return {peer: address for peer, address in self._nodes.items() if peer != node_id}

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Set up, report started, wait; tear down however the run ends."""
        try:
            self.setup()
            task_status.started()
            await trio.sleep_forever()
        finally:
            self.teardown()

    def setup(self) -> None:
        reason = unavailable_reason()
        if reason is not None:
            raise NetnsError(reason)
        remove_leftovers()
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        state = {
            "pid": os.getpid(),
            "namespaces": list(self.namespaces.values()),
            "bridge": self.bridge,
            "links": list(self.veths.values()),
        }
        # Written before anything exists: a crash half-way is still cleaned up next time.
        (STATE_DIR / f"{self.token}.json").write_text(json.dumps(state), encoding="utf-8")
        self._up = True
        try:
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            _run(["ip", "addr", "add", f"{self.bridge_address}/24", "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
            for node in self.node_ids:
                space, outer = self.namespaces[node], self.veths[node]
                _run(["ip", "netns", "add", space])
                _run(["ip", "-n", space, "link", "set", "lo", "up"])
                _run(["ip", "link", "add", outer, "type", "veth", "peer", "name", NODE_DEVICE,
                      "netns", space])  # fmt: skip
                _run(["ip", "link", "set", outer, "master", self.bridge])
                _run(["ip", "link", "set", outer, "up"])
                address = self._nodes[node][0]
                _run(["ip", "-n", space, "addr", "add", f"{address}/24", "dev", NODE_DEVICE])
                _run(["ip", "-n", space, "link", "set", NODE_DEVICE, "up"])
                self._write_rules(node)
        except BaseException:
            self.teardown()
            raise

    def teardown(self) -> None:
        if not self._up:
            return
        self._up = False
        _destroy(self.token, self.namespaces.values(), self.bridge, self.veths.values())

    # --- LinkMesh -----------------------------------------------------------------------

    def apply_grudge(
        self, grudge: Mapping[str, set[str] | list[str] | tuple[str, ...]], *, mode: str = "drop"
    ) -> None:
        # Both modes are the same rule here: an nftables drop below TCP *is* a black hole
        # (nothing is acknowledged, the sender's TCP retransmits with back-off), which the
        # proxies' "blackhole" mode imitates and their "drop" mode (per frame) does not.
        if mode not in ("drop", "blackhole"):
            raise ValueError(f"unknown partition mode {mode!r}; valid: drop, blackhole")
        blocked = {node: set(grudge.get(node, ())) - {node} for node in self.node_ids}
        changed = [node for node in self.node_ids if blocked[node] != self._blocked[node]]
        self._blocked = blocked
        for node in changed:
            self._write_rules(node)

    def links_touching(self, nodes: set[str] | list[str] | tuple[str, ...]) -> list[Link]:
        chosen = set(nodes)
        return [
            (source, destination)
            for source in self.node_ids
            for destination in self.node_ids
            if source != destination and (source in chosen or destination in chosen)
        ]

    def _all_links(self) -> list[Link]:
        return self.links_touching(self.node_ids)

    def set_loss(self, probability: float, links: list[Link] | None = None) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"loss probability must be within [0, 1], got {probability}")
        touched = set()
        for link in links if links is not None else self._all_links():
            if probability > 0:
                self._loss[link] = probability
            else:
                self._loss.pop(link, None)
            touched.add(link[1])
        for node in self.node_ids:
            if node in touched:
                self._write_rules(node)

    def set_delay(
        self,
        delay: float,
        jitter: float = 0.0,
        *,
        reorder: bool = False,
        links: list[Link] | None = None,
    ) -> None:
        if delay > 0 or jitter > 0:
            raise NetnsError(
                "delay in --net netns needs tc netem, refused before the run when the "
                "kernel lacks it; per-link netem is not implemented yet"
            )

    def set_cut(self, mode: str | None, links: list[Link] | None = None) -> None:
        # A cut in hosts mode is a partition: packets dropped, connections half-open.
        for source, destination in links if links is not None else self._all_links():
            if mode is None:
                self._blocked[destination].discard(source)
            else:
                self._blocked[destination].add(source)
        for node in self.node_ids:
            self._write_rules(node)

    def heal(self) -> None:
        self._blocked = {node: set() for node in self.node_ids}
        self._loss.clear()
        self._delay.clear()
        if self._up:
            for node in self.node_ids:
                self._write_rules(node)

    def describe(self) -> dict[str, object]:
        faulty: dict[str, object] = {}
        for destination, sources in self._blocked.items():
            for source in sorted(sources):
                faulty[f"{source}->{destination}"] = {"blocked": True}
        for (source, destination), probability in sorted(self._loss.items()):
            entry = faulty.setdefault(f"{source}->{destination}", {})
            entry["loss"] = probability  # type: ignore[index]
        return faulty

    # --- the rules --------------------------------------------------------------------

    def rules(self, node: str) -> str:
        """The nft script that makes `node`'s namespace drop what its faults say."""
        lines = [
            "table inet raftlab",  # created if absent, so the delete below always succeeds
            "delete table inet raftlab",
            "table inet raftlab {",
            "  chain input {",
            "    type filter hook input priority 0; policy accept;",
        ]
        for source in sorted(self._blocked[node]):
            lines.append(f"    ip saddr {self._nodes[source][0]} drop")
        for (source, destination), probability in sorted(self._loss.items()):
            if destination == node and source not in self._blocked[node]:
                threshold = round(probability * 1_000_000)
                lines.append(
                    f"    ip saddr {self._nodes[source][0]} "
                    f"numgen random mod 1000000 < {threshold} drop"
                )
        lines += ["  }", "}"]
        return "\n".join(lines) + "\n"

    def _write_rules(self, node: str) -> None:
        if not self._up:
            return
        _run(["ip", "netns", "exec", self.namespaces[node], "nft", "-f", "-"],
             stdin=self.rules(node))  # fmt: skip
