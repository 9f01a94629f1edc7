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


def usable_cpus() -> set[int]:
    """The CPUs this process may run on (its affinity), else all of them."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def _busy_ticks(cpus: set[int]) -> int | None:
    """Non-idle clock ticks since boot of the CPUs we may use (Linux /proc/stat), None where unreadable."""
    try:
        with open("/proc/stat") as f:
            lines = [line.split() for line in f if line.startswith("cpu") and line[3:4].isdigit()]
        busy = 0
        for parts in lines:
            if int(parts[0][3:]) in cpus:
                fields = [int(v) for v in parts[1:]]
                busy += sum(fields[:8]) - fields[3] - (fields[4] if len(fields) > 4 else 0)  # minus idle, iowait
    except (OSError, ValueError):
        return None
    return busy if lines else None


class OthersLoad:
    """How much of the machine other processes used while a block ran: 0 (only us) to 1 (every core busy).

    A speed measured beside other work is slower than the machine is: profiles record this share and are
    not kept as clean when it is high. Counts this process's own CPU time out; None where /proc is missing.
    """

    def __enter__(self) -> "OthersLoad":
        self.share: float | None = None
        self._cpus = usable_cpus()  # pinned to 2 of 64 cores, only those 2 are ours to share
        self._ticks, self._own, self._t = _busy_ticks(self._cpus), os.times(), os.times().elapsed
        return self

    def __exit__(self, *exc) -> None:
        ticks, own = _busy_ticks(self._cpus), os.times()
        if ticks is None or self._ticks is None:
            return
        hz = os.sysconf("SC_CLK_TCK")
        wall = own.elapsed - self._t
        if wall <= 0.05:
            return
        mine = (
            own.user
            + own.system
            + own.children_user
            + own.children_system
            - self._own.user
            - self._own.system
            - self._own.children_user
            - self._own.children_system
        )
        others = (ticks - self._ticks) / hz - mine
        self.share = max(0.0, min(1.0, others / (wall * len(self._cpus))))
