"""`Result`: what rtseg says about one frame, as arrays a user can compute with directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import RtsegError
from ..runtime.postprocess import Detection, Postprocessor
from ..runtime.schema import frame_record
from ..runtime.sources import as_bgr


@dataclass
class Result:
    """One frame's segmentation (and boxes, for box models), in frame pixels.

    >>> import numpy as np, rtseg
    >>> with rtseg.Segmenter(backend="onnxruntime") as seg:       # the default model
    ...     res = seg(np.full((240, 320, 3), 90, np.uint8))       # a BGR frame
    >>> res.mask.shape, res.mask.dtype                            # class ids at frame size
    ((240, 320), dtype('uint8'))
    >>> road = res.mask == res.classes.index("Road")              # boolean (H, W) array, no Python loop
    >>> 0.0 <= res.class_share.get("Road", 0.0) <= 1.0            # share of the frame's pixels
    True
    >>> res.boxes.shape, res.scores.shape     # (N, 4) x1 y1 x2 y2 and (N,): none from a segmentation model
    ((0, 4), (0,))

    A box model's `res.box_classes[res.class_ids[i]]` names box i.
    """

    mask: np.ndarray | None  # (H, W) uint8 class ids at frame size; None for a box-only model
    classes: tuple[str, ...]  # class id -> name (ids not listed, e.g. void, are unlabelled)
    palette_rgb: list[tuple[int, int, int]]  # class id -> RGB colour of the overlay and legend
    shares: np.ndarray | None  # (num classes,) share of the frame's pixels per class
    boxes: np.ndarray  # (N, 4) float32 x1, y1, x2, y2 in frame pixels (origin top-left)
    scores: np.ndarray  # (N,) float32 in 0..1
    class_ids: np.ndarray  # (N,) int indices into `box_classes`
    box_classes: tuple[str, ...]  # box class id -> name (empty for segmentation-only models)
    ms: dict[str, float]  # milliseconds per step: preprocess, infer, postprocess (and capture, sink)
    model: str  # the model that produced it (with @HxW at another input size)
    frame: np.ndarray | None = field(default=None, repr=False)  # the BGR frame it describes
    index: int = 0  # position in the stream (0 for single frames)
    time: float | None = None  # stream time (files), wall clock (live), None for single images
    file: str | None = None  # the image file it came from (image sources)
    inferred: bool = True  # False: carried from the last key frame by motion (keyframe=N)
    _post: Postprocessor | None = field(default=None, repr=False)  # draws the overlay in the model's colours
    _drawn: np.ndarray | None = field(default=None, repr=False)  # the overlay the pipeline already drew

    @classmethod
    def of(
        cls,
        slot,
        mask: np.ndarray | None,
        shares: np.ndarray | None,
        detections: list[Detection],
        ms: dict[str, float],
        frame: np.ndarray | None,
        index: int = 0,
        time: float | None = None,
        file: str | None = None,
        model: str | None = None,
        drawn: np.ndarray | None = None,
        inferred: bool = True,
    ) -> "Result":
        """A result from what a model slot produced for `frame` (boxes become arrays)."""
        if detections:
            boxes = np.array([d.box for d in detections], np.float32)
            scores = np.array([d.score for d in detections], np.float32)
            ids = np.array([d.class_id for d in detections], int)
        else:
            boxes, scores, ids = np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), int)
        return cls(
            mask,
            slot.info.classes,
            slot.info.palette_rgb,
            shares,
            boxes,
            scores,
            ids,
            slot.post.det_classes,
            ms,
            model or slot.name,
            frame,
            index,
            time,
            file,
            inferred,
            slot.post,
            drawn,
        )

    @property
    def class_share(self) -> dict[str, float]:
        """Class name -> share of the frame's pixels (empty for a box-only model)."""
        return {} if self.shares is None else {n: float(s) for n, s in zip(self.classes, self.shares)}

    @property
    def detections(self) -> list[Detection]:
        return [
            Detection((float(b[0]), float(b[1]), float(b[2]), float(b[3])), float(s), int(c))
            for b, s, c in zip(self.boxes, self.scores, self.class_ids)
        ]

    def overlay(self, frame: np.ndarray | None = None, alpha: float | None = None, legend: bool | None = None) -> np.ndarray:
        """The frame with the class colours blended in and the boxes drawn.

        Args:
            frame: another BGR frame to draw on (default: the one this result describes).
            alpha, legend: default to the model's settings (`Segmenter(alpha=..., legend=...)`).

        Returns:
            A BGR uint8 array of the frame's size. Results from `stream` return the overlay the pipeline drew
            (do not draw on it in place: copy it first).
        """
        if frame is None and alpha is None and legend is None and self._drawn is not None:
            return self._drawn  # the pipeline's own drawing, with the run's settings
        image = self.frame if frame is None else as_bgr(frame)
        if image is None or self._post is None:
            raise RtsegError("this result holds no frame to draw on: pass overlay(frame)")
        post = self._post  # the model's own drawer; a new one only for other settings (it builds a colour table)
        if (alpha is not None and alpha != post.alpha) or (legend is not None and legend != post.legend):
            post = Postprocessor(
                self.palette_rgb,
                self.classes,
                post.alpha if alpha is None else alpha,
                self.box_classes,
                post.score_threshold,
                post.legend if legend is None else legend,
            )
        return post.overlay(image, self.mask, self.detections)

    def save(self, path: str | Path, what: str = "overlay") -> Path:
        """Write the overlay or the class-id map to `path`, whole or not at all; the image this result
        describes is never overwritten.

        Args:
            path: where; its suffix picks the format (any OpenCV writes; a mask needs .png).
            what: "overlay" or "mask" (a single-channel PNG of class ids, CamVid's label format).

        Returns:
            The path written.

        Example:
            >>> import numpy as np, rtseg, tempfile, pathlib
            >>> with rtseg.Segmenter(backend="onnxruntime") as seg:
            ...     res = seg(np.zeros((120, 160, 3), np.uint8))
            >>> folder = pathlib.Path(tempfile.mkdtemp())
            >>> res.save(folder / "mask.png", what="mask").name, res.save(folder / "overlay.jpg").exists()
            ('mask.png', True)
        """
        return save_result(self, Path(path), what)

    def show(self, title: str = "rtseg") -> None:
        """The overlay in a notebook (inline) or a window (any key closes it); one line of error without a display."""
        show_result(self, title)

    def _repr_png_(self) -> bytes | None:
        """Jupyter shows a result as its overlay."""
        import cv2

        try:
            ok, data = cv2.imencode(".png", self.overlay())
        except RtsegError:  # no frame kept to draw on
            return None
        return data.tobytes() if ok else None

    def to_dict(self) -> dict:
        """The frame as plain JSON values: the same record `rtseg run --json` writes (rtseg/schemas/frame.schema.json)."""
        return frame_record(
            self.index,
            self.time,
            self.model,
            self.ms,
            self.classes,
            self.shares,
            self.box_classes,
            self.detections,
            self.file,
            inferred=self.inferred,
        )

    def to_supervision(self):
        """A `supervision.Detections`: the boxes (box models), or one region per class present (segmentation)."""
        return as_supervision(self)


# -- what a Result does beyond holding its arrays: kept out of the class, which a reader takes in at once ----
def save_result(res: Result, path: Path, what: str) -> Path:
    """`Result.save`: the overlay or the class-id map to `path`, atomically, never over the image it describes."""
    import cv2

    from ..runtime.atomic_write import write_file_atomically
    from ..runtime.output_plan import same_file

    if what not in ("overlay", "mask"):
        raise RtsegError(f"what= must be 'overlay' or 'mask', not {what!r}")
    if what == "mask" and (res.mask is None or path.suffix.lower() != ".png"):
        raise RtsegError(
            "a mask is saved as .png (class ids need a lossless format)"
            if res.mask is not None
            else "this model gives no class map: save the overlay"
        )
    if res.file is not None and same_file(path, Path(res.file)):
        raise RtsegError(f"{path} is the image this result describes: save it elsewhere")
    image = res.overlay() if what == "overlay" or res.mask is None else res.mask  # a mask was checked above
    try:
        ok, data = cv2.imencode(path.suffix or ".png", image)
    except cv2.error:
        ok = False
    if not ok:
        raise RtsegError(f"cannot encode an image as {path.suffix or 'nothing'}: give .png, .jpg, .bmp or .webp")
    write_file_atomically(path, data.tobytes(), "the result")
    return path


def show_result(res: Result, title: str) -> None:
    """`Result.show`: inline in a notebook, else a window."""
    try:
        from IPython import get_ipython

        if get_ipython() is not None and getattr(get_ipython(), "kernel", None) is not None:
            from IPython.display import display

            display(res)
            return
    except ImportError:
        pass
    from ..runtime.sinks import display_available

    if not display_available():
        raise RtsegError("no display to show a window on: res.save('overlay.png') writes it instead")
    import cv2

    cv2.imshow(title, res.overlay())
    cv2.waitKey(0)
    cv2.destroyWindow(title)


def as_supervision(res: Result):
    """`Result.to_supervision`: the boxes, or one region per class present."""
    try:
        import supervision as sv
    except ImportError as e:
        raise RtsegError("to_supervision() needs supervision: pip install supervision") from e
    names = res.box_classes
    if len(res.boxes):
        return sv.Detections(
            xyxy=res.boxes.astype(np.float32),
            confidence=res.scores.astype(np.float32),
            class_id=res.class_ids.astype(int),
            data={"class_name": np.array([names[c] if c < len(names) else str(c) for c in res.class_ids])},
        )
    if res.mask is None:
        return sv.Detections.empty()
    present = [k for k in np.unique(res.mask) if k < len(res.classes)]
    masks = np.stack([res.mask == k for k in present]) if present else np.zeros((0, *res.mask.shape), bool)
    return sv.Detections(
        xyxy=sv.mask_to_xyxy(masks).astype(np.float32),
        mask=masks,
        class_id=np.array(present, int),
        data={"class_name": np.array([res.classes[k] for k in present])},
    )
