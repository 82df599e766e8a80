"""What the machine itself did during a measurement: busy time and the hypervisor's steal.

On a shared virtual machine the host can run other guests on this one's cores; the time
they take shows as ``steal`` in ``/proc/stat``. Latency figures from such a stretch say
more about the neighbours than about the code (a stalled load generator, a stalled Redis),
so the benchmarks print the share stolen beside their figures.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


@dataclass(frozen=True)
class CpuTimes:
    """All cores' seconds so far: busy (ours and the kernel's), stolen, in all; and the wall."""

    busy: float
    stolen: float
    total: float
    wall: float

    @classmethod
    def now(cls) -> CpuTimes:
        # user nice system idle iowait irq softirq steal [guest guest_nice, inside user]
        ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        idle, stolen = ticks[3] + ticks[4], ticks[7]
        total = sum(ticks)
        return cls(
            busy=(total - idle - stolen) / CLK_TCK,
            stolen=stolen / CLK_TCK,
            total=total / CLK_TCK,
            wall=time.perf_counter(),
        )

    def cores_since(self, before: CpuTimes) -> tuple[float, float]:
        """(busy, stolen) cores over the stretch since ``before``, each of :data:`CORES`."""
        total = self.total - before.total
        if total <= 0:
            return 0.0, 0.0
        return (
            (self.busy - before.busy) / total * CORES,
            (self.stolen - before.stolen) / total * CORES,
        )


def steal_note(stolen_cores: float) -> str:
    """A line for a figure measured while the host took ``stolen_cores`` of the machine."""
    return f"hypervisor steal {stolen_cores:.2f} of {CORES} cores ({stolen_cores / CORES:.0%})"
