"""The middle stages' loops: a relay that applies one step to each frame between two channels (preprocess,
postprocess), and an inference stream (several share the backend; the reorder buffer puts frames back in order).
Each ends by passing the end on, and a failure stops the whole run (`RunControl.fail`)."""

from __future__ import annotations

import queue
from typing import Callable, cast

from .channels import END, ReorderBuffer
from .frame import FrameRecord
from .run_control import RunControl
from .timing import stage


def relay(name: str, work: Callable[[FrameRecord], None], inq, outq: queue.Queue, control: RunControl, wait_for_room: bool = False) -> None:
    """`work` on each frame from `inq`, timed as stage `name`, then on to `outq`; `wait_for_room` (live): take
    the newest frame only once the next stage can accept it."""
    io = control.io
    try:
        while True:
            if wait_for_room:
                io.wait_for_room(outq)
            item = io.get(inq)
            if item is END:
                break
            rec = cast(FrameRecord, item)  # the channels carry frame records, then END
            with stage(rec, name):
                work(rec)
            io.put(outq, rec)
    except BaseException as e:
        control.fail(e)
    finally:
        io.put(outq, END)


def infer_stream(preprocessed: queue.Queue, inferred: ReorderBuffer, control: RunControl, unreleased: dict[int, FrameRecord]) -> None:
    """One inference stream: frames the model runs on are inferred (their pooled input leaves `unreleased`),
    propagated ones pass; frames may finish out of order, the reorder buffer restores it."""
    io = control.io
    try:
        while True:
            item = io.get(preprocessed)
            if item is END:
                io.put(preprocessed, END)  # let the other streams see the end too
                break
            rec = cast(FrameRecord, item)  # the channels carry frame records, then END
            if rec.inferred:
                with stage(rec, "infer"):
                    x, rec.input = rec.input, None
                    unreleased.pop(rec.seq, None)
                    assert x is not None and rec.slot is not None, "preprocess gives a frame to infer both"
                    rec.outputs = rec.slot.infer(x)  # gives the buffer back to the pool, whatever happens
            io.put(inferred, rec, rec.seq)
    except BaseException as e:
        control.fail(e)
    finally:
        inferred.producer_done()
