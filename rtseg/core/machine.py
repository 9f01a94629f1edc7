"""One description of the machine a number was measured on, for every report rtseg writes."""
from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description() -> str:
    """'<CPU>, <N> cores, <OS> <arch>': what every benchmark and eval prints beside its figures."""
    return f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}"


def _busy_ticks() -> int | None:
    """All CPUs' non-idle clock ticks since boot (Linux /proc/stat), None where that cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]) - idle


class OthersLoad:
    """How much of the machine other processes used while a block ran: 0 (only us) to 1 (every core busy).

    A speed measured beside other work is slower than the machine is: profiles record this share and are
    not kept as clean when it is high. Counts this process's own CPU time out; None where /proc is missing.
    """

    def __enter__(self) -> "OthersLoad":
        self.share: float | None = None
        self._ticks, self._own, self._t = _busy_ticks(), os.times(), os.times().elapsed
        return self

    def __exit__(self, *exc) -> None:
        ticks, own = _busy_ticks(), os.times()
        if ticks is None or self._ticks is None:
            return
        hz = os.sysconf("SC_CLK_TCK")
        wall = own.elapsed - self._t
        if wall <= 0.05:
            return
        mine = (own.user + own.system + own.children_user + own.children_system
                - self._own.user - self._own.system - self._own.children_user - self._own.children_system)
        others = (ticks - self._ticks) / hz - mine
        self.share = max(0.0, min(1.0, others / (wall * (os.cpu_count() or 1))))
