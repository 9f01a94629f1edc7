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
