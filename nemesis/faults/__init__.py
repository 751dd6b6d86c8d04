"""Fault packages (conventions §4). A new fault is one file plus one line in ``FAULTS``."""

from __future__ import annotations

from nemesis.faults.base import TARGETS, Fault, FaultEvent
from nemesis.faults.clock import ClockFault
from nemesis.faults.delay import DelayFault
from nemesis.faults.disk import DiskFault
from nemesis.faults.kill import KillFault
from nemesis.faults.loss import LossFault
from nemesis.faults.member import MemberFault
from nemesis.faults.partition import SHAPES, PartitionFault
from nemesis.faults.pause import PauseFault
from nemesis.faults.transfer import TransferFault

# name -> the class; each takes its variants (shapes, targets or modes) as its first
# argument, empty meaning all of them.
FAULTS: dict[str, type] = {
    "partition": PartitionFault,
    "kill": KillFault,
    "pause": PauseFault,
    "delay": DelayFault,
    "loss": LossFault,
    "clock": ClockFault,
    "disk": DiskFault,
    "transfer": TransferFault,
    "member": MemberFault,
}

__all__ = ["FAULTS", "SHAPES", "TARGETS", "Fault", "FaultEvent"]
