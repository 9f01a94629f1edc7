"""Video as video: key frames with motion propagation, and masks steadied across frames.

Consecutive frames at 15-30 FPS are nearly the same picture. Between key frames the last model output is
carried to the current frame by dense optical flow at model resolution (`motion`), a key frame is forced
when the warp says the carried map cannot be trusted (`keyframes`), and `--smooth` blends each frame's
class evidence with the motion-compensated evidence of the frames before it (`smoothing`). `Temporal` is
what the pipeline calls: `plan` in its (ordered) preprocess stage, `carry` in its (ordered) postprocess.
"""

from .keyframes import KeyFrames, Temporal, TemporalSettings

__all__ = ["KeyFrames", "Temporal", "TemporalSettings"]
