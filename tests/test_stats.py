import pytest

from rtseg.runtime.frame import FrameRecord
from rtseg.runtime.stats import EXIT_NOTHING_DECODED, RateMeter, RunStats


def frame_read_at(t_captured: float, capture_ms: float) -> FrameRecord:
    return FrameRecord(
        index=0, image=None, source_time=None, label="0", t_captured=t_captured, ms={"capture": capture_ms, "infer": 1.0}, model="m"
    )


def test_a_files_latency_counts_its_decoding_and_a_live_frames_does_not():
    # read 5 ms, done 20 ms after the read: a file's frame was there to decode, so the 5 ms are latency we
    # add; a camera's read() mostly waits for the next frame, which is not
    for live, expected in ((False, 25.0), (True, 20.0)):
        stats = RunStats()
        stats.record(frame_read_at(10.0, 5.0), t_done=10.020, live=live)
        assert list(stats.latency_ms) == [pytest.approx(expected)]
        # the summary's end-to-end line is where a user reads it
        line = next(line for line in stats.summary().splitlines() if line.startswith("end-to-end"))
        assert f"{expected:.2f}" in line


def test_the_frame_rate_is_read_over_the_last_window_only():
    meter = RateMeter(window_s=1.0)
    for k in range(5):
        meter.tick(k * 0.25)  # 4 FPS for a second
    assert meter.fps == pytest.approx(4.0)
    meter.tick(1.5)  # a frame after a 0.5 s stall: the last second holds 4 frames, 3 intervals
    assert meter.fps == pytest.approx(3.0)
    for t in (2.0, 2.5, 3.0):
        meter.tick(t)  # then 2 FPS: the fast frames have left the window
    assert meter.fps == pytest.approx(2.0)


def test_a_run_that_decoded_no_frame_fails_unless_it_was_stopped():
    # a script must not take a run that produced nothing for a success
    assert RunStats(frames_in=0).exit_code == EXIT_NOTHING_DECODED
    # but Ctrl-C before the first frame is not that error, nor is a run that read its frames
    assert RunStats(frames_in=0, interrupted=True).exit_code == 0
    assert RunStats(frames_in=3, frames_out=3).exit_code == 0


def test_every_frame_counts_in_the_stage_timings_the_frames_per_model_and_the_rate():
    stats = RunStats()
    for k in range(3):
        stats.record(frame_read_at(10.0 + k, 5.0), t_done=10.020 + k, live=False)
    # the summary's per-stage percentiles are over the whole run, not its last frame
    assert len(stats.stage_ms["infer"]) == 3 and stats.frames_by_model == {"m": 3}
    # the run's time starts as the first read began (5 ms before it returned): 3 frames in 2.025 s
    assert stats.seconds == pytest.approx(2.025) and stats.fps == pytest.approx(3 / 2.025)


def test_the_live_readings_carry_the_recent_latency():
    # the live view and --stats read `counts()` while the run goes on: its p95 comes from the recent frames
    stats = RunStats()
    assert stats.counts(dropped=0)["latency_ms_p95"] is None  # nothing finished yet
    for k in range(20):
        stats.record(frame_read_at(float(k), 5.0), t_done=k + 0.030, live=True)
    assert stats.counts(dropped=0)["latency_ms_p95"] == pytest.approx(30.0)


def test_another_programs_share_of_the_cpus_leaves_out_our_own_time(monkeypatch):
    # a profile timed beside other work is marked busy by OthersLoad; this process's own CPU time (its
    # children's too) is the measurement itself and must not count as another program's
    import os

    from rtseg.core import machine

    hz = os.sysconf("SC_CLK_TCK")
    times = iter([os.times_result((0.0, 0.0, 0.0, 0.0, 0.0))] * 2 + [os.times_result((1.0, 0.2, 0.5, 0.3, 1.0))])
    ticks = iter([0, int(2.0 * hz)])  # the CPUs were busy 2 s in all: exactly our 1.2 s and our children's 0.8 s
    monkeypatch.setattr(machine, "usable_cpus", lambda: {0, 1})
    monkeypatch.setattr(machine, "_busy_ticks", lambda cpus: next(ticks))
    monkeypatch.setattr(machine.os, "times", lambda: next(times))
    with machine.OthersLoad() as load:
        pass
    assert load.share == pytest.approx(0.0, abs=0.01)


def test_the_summary_says_only_what_happened():
    assert RunStats().fps == 0.0  # no time elapsed: no rate, not a made-up one
    one = RunStats(frames_in=2)
    for k in range(2):
        one.record(frame_read_at(float(k), 1.0), t_done=k + 0.01, live=False)
    assert "models:" not in one.summary()  # one model ran: no per-model line
    two = RunStats(frames_in=2)
    for k, model in enumerate(("a", "b")):
        rec = frame_read_at(float(k), 1.0)
        rec.model = model
        two.record(rec, t_done=k + 0.01, live=False)
    assert "models: a 1 frames, b 1 frames" in two.summary()
    # with key frames: the note that infer times are key frames' only when some frames were propagated
    one.temporal = {"keyframe": "2", "smooth": False, "forced_keyframes": 0}
    assert "infer times are key frames'" not in one.summary()
    one.frames_inferred = 1
    assert "infer times are key frames'" in one.summary()


def test_the_live_rate_is_read_over_the_last_second_by_default():
    meter = RateMeter()
    for t in (0.6, 0.7, 0.8, 1.5, 2.0, 2.5):  # a burst, then 2 FPS
        meter.tick(t)
    assert meter.fps == pytest.approx(2.0)  # a 2 s window would still hold the burst's last frame


def test_reports_name_the_machine():
    import os

    from rtseg.core.machine import machine_description

    assert f"{os.cpu_count()} cores" in machine_description()
