"""How a run stops: gracefully (stop reading, finish what is in flight), at once (an error, a second Ctrl-C), or
by a signal; and the first error, kept for the run to raise once every stage has let go."""

from __future__ import annotations

import signal
import threading
from typing import Callable

from .channels import AbortAware


class RunControl:
    """The stop and abort flags every stage watches, the channels' abort-aware puts and gets (`io`), the first
    error and the signal that stopped the run. `on_stop` adds what a stop must also do (interrupt a source's
    reconnect wait, close a live mailbox)."""

    def __init__(self) -> None:
        self.stopping = threading.Event()  # graceful: stop reading, drain what is in flight
        self.aborting = threading.Event()  # immediate: an error, or a second Ctrl-C
        self.io = AbortAware(self.aborting)
        self.error: BaseException | None = None
        self.signal: int | None = None  # the signal that stopped the run, if one did
        self._on_stop: list[Callable[[], None]] = []

    def on_stop(self, action: Callable[[], None]) -> None:
        self._on_stop.append(action)

    def stop(self) -> None:
        """Stop reading; frames already read are still processed and written."""
        self.stopping.set()
        for action in self._on_stop:
            action()

    def abort(self) -> None:
        """Stop every stage at once; the sinks are still closed."""
        self.stop()
        self.aborting.set()

    def fail(self, e: BaseException) -> None:
        """A stage failed: keep the first error and stop everything."""
        if self.error is None:
            self.error = e
        self.abort()

    def install_signal_handlers(self) -> Callable[[], object] | None:
        """Ctrl-C and SIGTERM stop the run (a second one aborts it); returns what restores the old handlers, or
        None off the main thread (where Python allows no handlers)."""
        if threading.current_thread() is not threading.main_thread():
            return None

        def on_signal(signum, _frame):
            self.signal = self.signal or signum
            if self.stopping.is_set():
                self.abort()  # second signal: stop at once, still finalising the sinks
            else:
                self.stop()

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        return lambda: [signal.signal(s, h) for s, h in old.items()]
