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
- delay / reorder (``set_delay``): an iptables rule in the receiving node's namespace,
  ``INPUT -s <sender> -j NFQUEUE --queue-num N --queue-bypass``, hands each packet of a
  delayed link to that node's `nemesis.packet_delay` process, which holds its verdict for
  ``delay`` +/- ``jitter`` (drawn from the run's seed) and keeps each link's order unless
  ``reorder``. Real packets wait, below TCP. Not ``tc netem``: many kernels (this
  machine's 6.18 among them) are built without ``sch_netem``, and nft's own ``queue``
  statement needs ``CONFIG_NFT_QUEUE``, often missing too, while iptables' NFQUEUE target
  (``xt_NFQUEUE`` through nft_compat or legacy iptables) and nfnetlink_queue are nearly
  always there. ``--queue-bypass``: if the delayer is gone, packets pass instead of being
  dropped. One delayer per node, started at the first delay and fed its table of
  ``{sender: [delay, jitter, reorder]}`` as JSON lines on stdin, so a change needs no
  restart; stopped (stdin closed: it accepts what it holds) at teardown.
  `unsupported_reason` refuses a delay nemesis up front when iptables or its NFQUEUE
  target or nfnetlink_queue is missing (probed once in a scratch namespace);
- kill, pause, clock and disk faults act on processes and files, as with the proxies.

Every namespace's rules are replaced whole and atomically (``nft -f``: the chain flushed
and written again in one transaction; ``iptables-restore --noflush`` with ``-F INPUT`` for
the NFQUEUE rules). Neither deletes a base chain: that unregisters a hook, and the kernel
then drops every packet queued in the namespace, the delayer's held ones included. The
NFQUEUE rules run first on the input hook (iptables' filter chain at priority 0, our nft
chain at 10) and an accepted packet goes on through the rest of the hook, so a delayed
link can also be cut or lossy, and a cut also drops what the delayer still held.

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
import random
import secrets
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

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


def _run(
    argv: Sequence[str], *, stdin: str | None = None, check: bool = True, cwd: Path | None = None
) -> str:
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            cwd=cwd,
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


DELAYER = ["-m", "nemesis.packet_delay"]  # run by this interpreter, in a node's namespace
DELAYER_READY_TIMEOUT = 10.0
DELAYER_STOP_TIMEOUT = 3.0
_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the delayer's cwd: `-m` finds it

_delay_probe: list[str | None] = []  # the probe's answer, once per process


def _probe_delay() -> str | None:
    for tool in ("iptables", "iptables-restore"):
        if shutil.which(tool) is None:
            return (
                f"--net netns: the delay fault needs `{tool}` (Debian package iptables) for "
                "its NFQUEUE target; it is not installed (use --net proxy for delays)"
            )
    token = secrets.token_hex(3)
    space = f"{PREFIX}{token}probe"
    try:
        # A state file as for a run: a harness killed mid-probe leaves its namespace to
        # the next run's `remove_leftovers`.
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        state = {"pid": os.getpid(), "namespaces": [space], "bridge": "", "links": []}
        (STATE_DIR / f"{token}.json").write_text(json.dumps(state), encoding="utf-8")
        _run(["ip", "netns", "add", space])
        try:
            _run(["ip", "netns", "exec", space, "iptables", "-w", "5", "-A", "INPUT", "-s",
                  "192.0.2.1", "-j", "NFQUEUE", "--queue-num", "1", "--queue-bypass"])  # fmt: skip
        except NetnsError as error:
            return (
                "--net netns: the delay fault needs iptables' NFQUEUE target "
                f"(CONFIG_NETFILTER_XT_TARGET_NFQUEUE), which this kernel refused: {error}"
            )
        try:
            _run(["ip", "netns", "exec", space, sys.executable, *DELAYER, "--queue", "1",
                  "--check"], cwd=_PACKAGE_ROOT)  # fmt: skip
        except NetnsError as error:
            return (
                "--net netns: the delay fault needs nfnetlink_queue "
                f"(CONFIG_NETFILTER_NETLINK_QUEUE), and binding a queue failed: {error}"
            )
    except (NetnsError, OSError) as error:
        return f"--net netns: could not probe for the delay fault: {error}"
    finally:
        _destroy(token, [space], "", [])
    return None


def delay_unavailable_reason() -> str | None:
    """Why hosts mode cannot delay packets here (None when it can): iptables' NFQUEUE
    target must take a rule and nfnetlink_queue a bind, tried once in a scratch namespace."""
    if not _delay_probe:
        _delay_probe.append(_probe_delay())
    return _delay_probe[0]


def unsupported_reason(fault_names: Iterable[str]) -> str | None:
    """Why this run cannot take these faults in hosts mode (None when it can)."""
    reason = unavailable_reason()
    if reason is not None:
        return reason
    if "delay" in set(fault_names):
        return delay_unavailable_reason()
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

    def __init__(
        self,
        node_ids: Sequence[str],
        *,
        port: int,
        token: str | None = None,
        seed: int | None = None,
    ) -> None:
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
        # The packet delayers (`nemesis.packet_delay`), one per node once a delay starts;
        # their queue numbers (a namespace's queues are its own) and jitter seeds, drawn in
        # node order from the run's seed (without one, from the token).
        self._delayers: dict[str, subprocess.Popen[bytes]] = {}
        self._queued: dict[str, str] = {}  # the NFQUEUE script last written, per node
        seeder = random.Random(seed if seed is not None else int(self.token, 16))
        self._delay_seeds = {node: seeder.getrandbits(63) for node in self.node_ids}
        self._queues = {node: position for position, node in enumerate(self.node_ids, 1)}
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
        self._stop_delayers()
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

    def _set_links(self, table: dict[Link, Any], fault: Any, links: list[Link] | None) -> set[str]:
        """Set `links`' entries in `table` to `fault` (every link by default; None clears
        them); returns the receiving nodes, whose rules say what their links suffer."""
        touched = set()
        for link in links if links is not None else self._all_links():
            if fault is None:
                table.pop(link, None)
            else:
                table[link] = fault
            touched.add(link[1])
        return touched

    def set_loss(self, probability: float, links: list[Link] | None = None) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"loss probability must be within [0, 1], got {probability}")
        touched = self._set_links(self._loss, probability if probability > 0 else None, links)
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
        """Delay every packet of `links` (every link by default) by ``delay`` +/-
        ``jitter`` seconds in the receiver's packet delayer; 0, 0 stops it."""
        if delay < 0 or jitter < 0:
            raise ValueError(f"delay and jitter must be >= 0, got {delay}, {jitter}")
        fault = (delay, jitter, reorder) if delay > 0 or jitter > 0 else None
        touched = self._set_links(self._delay, fault, links)
        for node in self.node_ids:
            if node in touched:
                self._write_delay(node)

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
                self._write_delay(node)

    def describe(self) -> dict[str, object]:
        faulty: dict[str, object] = {}
        for destination, sources in self._blocked.items():
            for source in sorted(sources):
                faulty[f"{source}->{destination}"] = {"blocked": True}
        for (source, destination), probability in sorted(self._loss.items()):
            entry = faulty.setdefault(f"{source}->{destination}", {})
            entry["loss"] = probability  # type: ignore[index]
        for (source, destination), (delay, jitter, reorder) in sorted(self._delay.items()):
            entry = faulty.setdefault(f"{source}->{destination}", {})
            entry.update(delay=delay, jitter=jitter, reorder=reorder)  # type: ignore[attr-defined]
        return faulty

    # --- the rules --------------------------------------------------------------------

    def rules(self, node: str) -> str:
        """The nft script that makes `node`'s namespace drop what its faults say."""
        # The chain's rules are flushed and written again, the table and chain kept (declared
        # here, a no-op once they exist): deleting a base chain unregisters its hook, and the
        # kernel then drops every packet queued in the namespace — the delayer's held ones.
        rule = "add rule inet raftlab input ip saddr"
        lines = [
            "table inet raftlab {",
            "  chain input {",
            "    type filter hook input priority 10; policy accept;",  # after NFQUEUE (0)
            "  }",
            "}",
            "flush chain inet raftlab input",
        ]
        for source in sorted(self._blocked[node]):
            lines.append(f"{rule} {self._nodes[source][0]} drop")
        for (source, destination), probability in sorted(self._loss.items()):
            if destination == node and source not in self._blocked[node]:
                threshold = round(probability * 1_000_000)
                lines.append(
                    f"{rule} {self._nodes[source][0]} numgen random mod 1000000 < {threshold} drop"
                )
        return "\n".join(lines) + "\n"

    def _write_rules(self, node: str) -> None:
        if not self._up:
            return
        _run(["ip", "netns", "exec", self.namespaces[node], "nft", "-f", "-"],
             stdin=self.rules(node))  # fmt: skip

    # --- delay: NFQUEUE rules and the packet delayers ---------------------------------

    def delay_table(self, node: str) -> dict[str, list[float | bool]]:
        """The delayer's configuration for `node`: ``{sender address: [delay, jitter,
        reorder]}`` for each delayed link into it."""
        return {
            self._nodes[source][0]: [delay, jitter, reorder]
            for (source, destination), (delay, jitter, reorder) in sorted(self._delay.items())
            if destination == node
        }

    def delay_rules(self, node: str) -> str:
        """The ``iptables-restore --noflush`` script that queues `node`'s delayed links to
        its delayer: INPUT's rules flushed and written in one commit (a whole-table restore
        would unregister the chain's hook, and the kernel drops all queued packets then)."""
        lines = ["*filter", "-F INPUT"]
        for address in self.delay_table(node):
            # --queue-bypass: with no delayer bound to the queue the packet passes; without
            # it the kernel would drop every packet of the link.
            lines.append(
                f"-A INPUT -s {address} -j NFQUEUE --queue-num {self._queues[node]} --queue-bypass"
            )
        return "\n".join([*lines, "COMMIT"]) + "\n"

    def _write_delay(self, node: str) -> None:
        if not self._up:
            return
        table, script = self.delay_table(node), self.delay_rules(node)
        if table and not self._delayers:
            self._start_delayers()
        delayer = self._delayers.get(node)
        if table and delayer is not None:  # the table first: queued packets find it
            self._configure(node, delayer, table)
        previous = self._queued.get(node)
        if script != previous and (previous is not None or table):  # changed, and not "none"
            _run(["ip", "netns", "exec", self.namespaces[node], "iptables-restore", "-w", "5",
                  "--noflush"],
                 stdin=script)  # fmt: skip
            self._queued[node] = script
        if not table and delayer is not None:  # after the rule is gone: nothing more comes
            self._configure(node, delayer, table)

    def _configure(
        self, node: str, delayer: subprocess.Popen[bytes], table: dict[str, list[float | bool]]
    ) -> None:
        assert delayer.stdin is not None
        try:
            delayer.stdin.write(json.dumps(table).encode() + b"\n")
            delayer.stdin.flush()
        except OSError as error:
            raise NetnsError(
                f"the packet delayer of {node} is gone (exit {delayer.poll()}): {error}"
            ) from None

    def _start_delayers(self) -> None:
        """One delayer per node, all at once at the first delay (the fault moves between
        nodes), waited for together: the first delay costs one interpreter start-up."""
        for node in self.node_ids:
            self._delayers[node] = subprocess.Popen(
                ["ip", "netns", "exec", self.namespaces[node], sys.executable, *DELAYER,
                 "--queue", str(self._queues[node]), "--seed", str(self._delay_seeds[node])],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                cwd=_PACKAGE_ROOT,
                # Its own session: a Ctrl-C meant for the harness must not stop it before
                # teardown closes its stdin (then it lets go of what it holds).
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + DELAYER_READY_TIMEOUT
        for node, delayer in self._delayers.items():
            assert delayer.stdout is not None
            line = b""
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                ready, _, _ = select.select([delayer.stdout], [], [], max(0.0, left))
                chunk = os.read(delayer.stdout.fileno(), 64) if ready else b""
                if not chunk:
                    raise NetnsError(
                        f"the packet delayer of {node} did not start (exit {delayer.poll()}, "
                        "its stderr above)"
                    )
                line += chunk
            if line.strip() != b"ready":
                raise NetnsError(f"the packet delayer of {node} said {line!r}")

    def _stop_delayers(self) -> None:
        """Close each delayer's stdin (it accepts what it holds and exits), wait, then kill
        what is left; never leaves a process behind."""
        delayers, self._delayers = self._delayers, {}
        self._queued.clear()
        for delayer in delayers.values():
            for stream in (delayer.stdin, delayer.stdout):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
        deadline = time.monotonic() + DELAYER_STOP_TIMEOUT
        for delayer in delayers.values():
            try:
                delayer.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                delayer.kill()
                delayer.wait()
