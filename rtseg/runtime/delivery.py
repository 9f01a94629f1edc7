"""The last stage, in the calling thread (GUI toolkits want the main thread): each finished frame to every sink,
in order, then counted; a model switch marked on the first frame of the new model; every sink closed at the
end, one failing sink keeping no other (the mp4) unfinished."""

from __future__ import annotations

import time
from typing import Callable, cast

from tqdm import tqdm

from .channels import END
from .frame import FrameRecord
from .run_control import RunControl
from .sinks import Sink
from .stats import RunStats
from .timing import stage


def deliver(
    done,
    sinks: list[Sink],
    stats: RunStats,
    control: RunControl,
    live: bool,
    on_frame: Callable[[FrameRecord], None] | None,
    frame_count: int | None,
    progress: bool,
) -> None:
    """Take frames from `done` until its end, write them to `sinks`, record them in `stats`; close the sinks."""
    bar = tqdm(total=frame_count, unit="frame", dynamic_ncols=True, disable=not progress, desc="rtseg", leave=False)
    last_model = None
    try:
        while (item := control.io.get(done)) is not END:
            rec = cast(FrameRecord, item)  # the channels carry frame records, then END
            if rec.model != last_model and last_model is not None:
                rec.event = {**(rec.event or {}), "switch": {"from": last_model, "to": rec.model}}
            last_model = rec.model
            with stage(rec, "sink"):
                for sink in sinks:
                    sink.write(rec)
            for sink in sinks:
                sink.frame_done(rec)
            stats.record(rec, time.perf_counter(), live)
            if on_frame:
                on_frame(rec)
            bar.update(1)
    except BaseException as e:
        control.fail(e)
    finally:
        bar.close()
        for sink in sinks:
            try:
                sink.close()
            except Exception as e:  # one failing sink must not keep the others (the mp4) unfinished
                control.fail(e)
