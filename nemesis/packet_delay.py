"""A userspace packet delayer for hosts mode: delay and reorder *packets*, below TCP.

Why this exists: hosts mode (`nemesis.netns`) faults the network in the kernel, and the
usual tool for delay, ``tc netem``, needs ``sch_netem``, which some kernels lack (this
machine's 6.18 has no ``CONFIG_NET_SCH_NETEM``, nor nft's own ``queue`` statement,
``CONFIG_NFT_QUEUE``). What such kernels do have is nfnetlink_queue and the iptables
``NFQUEUE`` target: a rule hands each matching packet to a userspace process, which gives
the kernel a verdict for it later. Holding the verdict *is* the delay; releasing packets
in another order than they came *is* reordering. The packets are the real ones (TCP
segments, retransmissions, ACKs), so TCP reacts as it would on a slow path, unlike the
proxies, which delay whole frames above TCP.

How it runs: one process per receiving node, inside that node's namespace::

    ip netns exec NS python3 -m nemesis.packet_delay --queue N --seed S

The harness (`nemesis.netns.NetnsMesh`) adds ``iptables -A INPUT -s SENDER -j NFQUEUE
--queue-num N --queue-bypass`` for each delayed link into the node, and writes this
process's configuration as JSON lines on its stdin, a whole table each time::

    {"10.213.7.11": [0.1, 0.05, false]}      # source: [delay_s, jitter_s, reorder]

Each packet from a configured source waits ``delay`` +/- ``jitter`` seconds (uniform,
never below 0, drawn from ``random.Random(seed)``: the same rule as the proxies'
``delay``/``jitter`` and netem's). Without ``reorder`` a packet is never released before
an earlier one from the same source (release times per source never go backwards), so
the order of the link is kept; with it each packet's draw stands alone and a short draw
overtakes a long one. A packet from an unconfigured source is released at once, or right
after the source's packets still held, so healing a link does not reorder it either.
A malformed configuration line is reported on stderr and ignored (the previous table
stays); it never stops the delayer. On EOF on stdin, SIGTERM or SIGINT it accepts every
packet it holds and exits: closing the queue while packets are held would drop them.

Protocol: nfnetlink_queue over a raw ``AF_NETLINK``/``NETLINK_NETFILTER`` socket, written
with the standard library's ``socket`` and ``struct`` (constants from the kernel's uapi
``linux/netfilter/nfnetlink.h`` and ``nfnetlink_queue.h``). Not python-netfilterqueue:
it wraps the C library libnetfilter_queue (a compiled extension and a system library),
and it is not among the project's allowed dependencies; the part of the protocol needed
here is a bind, a packet message and a verdict, a few dozen lines.
"""

from __future__ import annotations

import argparse
import errno
import heapq
import ipaddress
import json
import math
import os
import random
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

# --- protocol constants (linux/netlink.h, nfnetlink.h, nfnetlink_queue.h, netfilter.h) ---

NETLINK_NETFILTER = 12
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLMSG_ERROR = 2
NLMSG_DONE = 3
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_PAYLOAD = 10
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_PACKET = 2
NFQA_CFG_F_FAIL_OPEN = 1 << 0  # a full queue accepts packets instead of dropping them
NFQA_CFG_F_GSO = 1 << 2  # GRO'd super-packets queued whole: fewer messages, no resegmenting
NF_ACCEPT = 1
NLA_TYPE_MASK = 0x3FFF  # strips NLA_F_NESTED and NLA_F_NET_BYTEORDER

# Netlink headers are in host order; nfgenmsg's res_id (the queue number) and the
# netfilter structs inside attributes are big-endian.
_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, seq, port id
_NFGENMSG = struct.Struct("!BBH")  # family, version (NFNETLINK_V0 = 0), res_id
_NLATTR = struct.Struct("=HH")  # length (header included, padding not), type
_PACKET_HDR = struct.Struct("!IHB")  # packet id, hw protocol, hook (packed: 7 bytes)
_VERDICT_HDR = struct.Struct("!II")  # verdict, packet id

COPY_BYTES = 20  # an IPv4 header without options: enough for the source address
QUEUE_MAXLEN = 16384  # packets held at once (default 1024; beyond it, fail-open passes them)
RECEIVE_BUFFER = 8 << 20  # packet messages waiting for us; an overrun fails open too
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # root may exceed rmem_max
VERDICTS_PER_SEND = 128  # verdicts share one datagram: the kernel reads each message in it
MAX_CONFIG_LINE = 1 << 20  # a table line is ~40 bytes per source; beyond this, garbage
READS_PER_WAKE = 256  # then release what is due, so a flood cannot starve the releases


# --- encoding and decoding (pure: the unit tests check them against hand-built bytes) ---


def _align(length: int) -> int:
    return (length + 3) & ~3  # NLMSG_ALIGN / NLA_ALIGN: every part starts 4-byte aligned


def encode_attribute(kind: int, payload: bytes) -> bytes:
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, kind) + payload + bytes(_align(length) - length)


def encode_message(kind: int, queue: int, attributes: bytes, *, flags: int, seq: int) -> bytes:
    """One nfnetlink_queue message: nlmsghdr, nfgenmsg for `queue`, attributes."""
    body = _NFGENMSG.pack(socket.AF_UNSPEC, 0, queue) + attributes
    message_type = (NFNL_SUBSYS_QUEUE << 8) | kind
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), message_type, flags, seq, 0) + body


def encode_bind(queue: int, seq: int) -> bytes:
    """Bind `queue`, copy the first COPY_BYTES of each packet, fail open, take GSO whole;
    acknowledged, so a refused bind (EBUSY: another process has the queue) is seen."""
    flags = NFQA_CFG_F_FAIL_OPEN | NFQA_CFG_F_GSO
    attributes = b"".join(
        (
            # The command comes first: the kernel applies the others to the bound queue.
            encode_attribute(NFQA_CFG_CMD, struct.pack("!BBH", NFQNL_CFG_CMD_BIND, 0, 0)),
            encode_attribute(NFQA_CFG_PARAMS, struct.pack("!IB", COPY_BYTES, NFQNL_COPY_PACKET)),
            encode_attribute(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", QUEUE_MAXLEN)),
            encode_attribute(NFQA_CFG_MASK, struct.pack("!I", flags)),  # FLAGS needs MASK
            encode_attribute(NFQA_CFG_FLAGS, struct.pack("!I", flags)),
        )
    )
    return encode_message(
        NFQNL_MSG_CONFIG, queue, attributes, flags=NLM_F_REQUEST | NLM_F_ACK, seq=seq
    )


def encode_verdict(queue: int, packet_id: int, verdict: int = NF_ACCEPT) -> bytes:
    """A verdict, not acknowledged: the kernel still answers an error if it has one."""
    attributes = encode_attribute(NFQA_VERDICT_HDR, _VERDICT_HDR.pack(verdict, packet_id))
    return encode_message(NFQNL_MSG_VERDICT, queue, attributes, flags=NLM_F_REQUEST, seq=0)


@dataclass(frozen=True, slots=True)
class Packet:
    """A queued packet: its id (for the verdict) and IPv4 source (None if not IPv4)."""

    packet_id: int
    source: str | None


@dataclass(frozen=True, slots=True)
class Answer:
    """The kernel's acknowledgement (``error`` 0) or error (a positive errno) for `seq`."""

    seq: int
    error: int


def decode_attributes(data: bytes) -> dict[int, bytes]:
    attributes: dict[int, bytes] = {}
    position = 0
    while position + _NLATTR.size <= len(data):
        length, kind = _NLATTR.unpack_from(data, position)
        if length < _NLATTR.size or position + length > len(data):
            raise ValueError(f"attribute of length {length} at {position} overruns the message")
        attributes[kind & NLA_TYPE_MASK] = data[position + _NLATTR.size : position + length]
        position += _align(length)
    return attributes


def _source_of(header: bytes) -> str | None:
    if len(header) >= 20 and header[0] >> 4 == 4:
        return socket.inet_ntoa(header[12:16])
    return None


def decode(data: bytes) -> Iterator[Packet | Answer]:
    """The packets and answers in one datagram from the kernel (other messages skipped)."""
    position = 0
    while position + _NLMSGHDR.size <= len(data):
        length, kind, _, seq, _ = _NLMSGHDR.unpack_from(data, position)
        if length < _NLMSGHDR.size or position + length > len(data):
            raise ValueError(f"netlink message of length {length} at {position} overruns")
        body = data[position + _NLMSGHDR.size : position + length]
        position += _align(length)
        if kind == NLMSG_ERROR:  # int32 -errno (0: an acknowledgement), then our header
            (code,) = struct.unpack_from("=i", body)
            yield Answer(seq, -code)
        elif kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
            attributes = decode_attributes(body[_NFGENMSG.size :])
            if NFQA_PACKET_HDR not in attributes:
                raise ValueError("packet message without NFQA_PACKET_HDR")
            (packet_id, _, _) = _PACKET_HDR.unpack_from(attributes[NFQA_PACKET_HDR])
            yield Packet(packet_id, _source_of(attributes.get(NFQA_PAYLOAD, b"")))
        elif kind == NLMSG_DONE:
            return


# --- the schedule (pure: no socket, no clock of its own) ---------------------------------


@dataclass(frozen=True, slots=True)
class LinkDelay:
    delay: float
    jitter: float
    reorder: bool


def parse_config(line: str) -> dict[str, LinkDelay]:
    """``{"SOURCE": [delay_s, jitter_s, reorder], ...}`` -> the table (ValueError, with
    what is wrong, for anything else: the whole line is refused, never half applied)."""
    try:
        table = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(table, dict):
        raise ValueError("expected an object {source address: [delay_s, jitter_s, reorder]}")
    parsed: dict[str, LinkDelay] = {}
    for source, entry in table.items():
        try:
            address = str(ipaddress.IPv4Address(source))
        except ValueError:
            raise ValueError(f"{source!r} is not an IPv4 address") from None
        if not (isinstance(entry, list) and len(entry) == 3):
            raise ValueError(f"{source}: expected [delay_s, jitter_s, reorder], got {entry!r}")
        delay, jitter, reorder = entry
        for name, value in (("delay", delay), ("jitter", jitter)):
            numeric = isinstance(value, int | float) and not isinstance(value, bool)
            if not (numeric and math.isfinite(value) and value >= 0):
                raise ValueError(f"{source}: {name} must be a number of seconds >= 0")
        if not isinstance(reorder, bool):
            raise ValueError(f"{source}: reorder must be true or false")
        parsed[address] = LinkDelay(float(delay), float(jitter), reorder)
    return parsed


class Schedule:
    """When each held packet is released: a heap of (release time, arrival, packet id)."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.table: dict[str, LinkDelay] = {}
        self._held: list[tuple[float, int, int]] = []
        self._arrivals = 0  # breaks ties in arrival order
        self._last: dict[str, float] = {}  # latest release so far per source

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, packet: Packet, now: float) -> float:
        """Schedule `packet`, arrived at `now`; returns its release time."""
        link = self.table.get(packet.source) if packet.source is not None else None
        release = now
        if link is not None:
            draw = link.delay
            if link.jitter > 0:
                draw = max(
                    0.0, self.rng.uniform(link.delay - link.jitter, link.delay + link.jitter)
                )
            release = now + draw
        if packet.source is not None:
            last = self._last.get(packet.source, release)
            if link is None or not link.reorder:
                release = max(release, last)  # never before an earlier packet of the source
            self._last[packet.source] = max(last, release)
        self._arrivals += 1
        heapq.heappush(self._held, (release, self._arrivals, packet.packet_id))
        return release

    def next_release(self) -> float | None:
        return self._held[0][0] if self._held else None

    def pop_due(self, now: float) -> list[int]:
        due: list[int] = []
        while self._held and self._held[0][0] <= now:
            due.append(heapq.heappop(self._held)[2])
        return due

    def pop_all(self) -> list[int]:
        ids = [entry[2] for entry in sorted(self._held)]
        self._held.clear()
        return ids


# --- the process -------------------------------------------------------------------------


def _log(message: str) -> None:
    sys.stderr.write(f"packet_delay[{os.getpid()}]: {message}\n")
    sys.stderr.flush()


def open_queue(queue: int, schedule: Schedule | None = None, timeout: float = 5.0) -> socket.socket:
    """A netlink socket bound to `queue` (OSError with the kernel's errno when refused).
    Packets that come before the acknowledgement are held in `schedule`."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:  # not privileged for FORCE: the ordinary option, capped by rmem_max
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((0, 0))  # the kernel picks our port id
        sock.settimeout(timeout)
        sock.send(encode_bind(queue, seq=1))
        while True:
            for item in decode(sock.recv(65536)):
                if isinstance(item, Answer) and item.seq == 1:
                    if item.error:
                        raise OSError(
                            item.error, f"binding queue {queue}: {os.strerror(item.error)}"
                        )
                    sock.setblocking(False)
                    return sock
                if isinstance(item, Packet) and schedule is not None:
                    schedule.hold(item, time.monotonic())
    except BaseException:
        sock.close()
        raise


def _send_verdicts(sock: socket.socket, queue: int, ids: list[int]) -> None:
    for start in range(0, len(ids), VERDICTS_PER_SEND):
        batch = b"".join(encode_verdict(queue, i) for i in ids[start : start + VERDICTS_PER_SEND])
        sock.setblocking(True)  # a verdict must not be lost to EAGAIN
        try:
            sock.send(batch)
        except OSError as error:  # never seen; the kernel drops these when we close
            _log(f"{len(ids[start : start + VERDICTS_PER_SEND])} verdicts not sent: {error}")
        finally:
            sock.setblocking(False)


def run(queue: int, seed: int) -> int:
    schedule = Schedule(seed)
    try:
        sock = open_queue(queue, schedule)
    except OSError as error:
        _log(f"cannot bind nfnetlink queue {queue}: {error}")
        return 1
    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    # The signal wakes the select through this pair (set_wakeup_fd writes a byte to it).
    wake_read, wake_write = socket.socketpair()
    wake_read.setblocking(False)
    wake_write.setblocking(False)
    signal.set_wakeup_fd(wake_write.fileno())
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, "netlink")
    selector.register(sys.stdin.fileno(), selectors.EVENT_READ, "config")
    selector.register(wake_read, selectors.EVENT_READ, "signal")
    pending = b""
    overruns = 0
    try:
        try:
            print("ready", flush=True)  # the harness waits for this before counting on it
        except BrokenPipeError:
            stop = True  # the harness gave up on us already
        while not stop:
            upcoming = schedule.next_release()
            timeout = None if upcoming is None else max(0.0, upcoming - time.monotonic())
            for key, _ in selector.select(timeout):
                if key.data == "netlink":
                    for _ in range(READS_PER_WAKE):
                        try:
                            data = sock.recv(65536)
                        except BlockingIOError:
                            break
                        except OSError as error:
                            if error.errno != errno.ENOBUFS:
                                raise
                            # The kernel could not queue messages to us: with fail-open
                            # those packets passed undelayed. Said once per 1000.
                            if overruns % 1000 == 0:
                                _log("receive buffer overrun: some packets passed undelayed")
                            overruns += 1
                            continue
                        try:
                            items = list(decode(data))
                        except (ValueError, struct.error) as error:
                            _log(f"undecodable message from the kernel ignored: {error}")
                            continue
                        now = time.monotonic()
                        for item in items:
                            if isinstance(item, Packet):
                                schedule.hold(item, now)
                            elif item.error:
                                _log(f"the kernel refused a verdict: {os.strerror(item.error)}")
                elif key.data == "config":
                    chunk = os.read(sys.stdin.fileno(), 65536)
                    if not chunk:
                        stop = True  # the harness closed our stdin (or died)
                        break
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    if len(pending) > MAX_CONFIG_LINE:  # no newline in sight: not a config
                        _log(f"configuration line over {MAX_CONFIG_LINE} bytes ignored")
                        pending = b""
                    for line in lines:
                        if not line.strip():
                            continue
                        try:
                            schedule.table = parse_config(line.decode("utf-8", "replace"))
                        except ValueError as error:
                            _log(f"configuration line ignored ({error}): {line[:200]!r}")
                else:
                    try:
                        wake_read.recv(64)
                    except BlockingIOError:
                        pass
            _send_verdicts(sock, queue, schedule.pop_due(time.monotonic()))
    finally:
        # Everything held is accepted before the socket closes: closing it would make the
        # kernel drop whatever is still queued.
        _send_verdicts(sock, queue, schedule.pop_all())
        sock.close()
    return 0


def check(queue: int) -> int:
    """Bind and release `queue` once: exit 0 when this kernel can queue packets to us."""
    try:
        open_queue(queue).close()
    except OSError as error:
        print(f"nfnetlink_queue unusable: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python3 -m nemesis.packet_delay",
        description="Delay packets queued by iptables' NFQUEUE target (hosts mode's delay).",
    )
    parser.add_argument("--queue", type=int, required=True, help="the NFQUEUE number")
    parser.add_argument("--seed", type=int, default=0, help="seeds the jitter draws")
    parser.add_argument(
        "--check", action="store_true", help="bind the queue once and exit (a probe)"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.queue <= 65535:
        parser.error("--queue must be within 0..65535")
    return check(args.queue) if args.check else run(args.queue, args.seed)


if __name__ == "__main__":
    sys.exit(main())
