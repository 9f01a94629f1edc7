"""Make the short demo clip shipped in examples/ from CamVid's val frames (one 15 Hz driving sequence).

python examples/make_clip.py ../shared/data/camvid examples/camvid_0016E5.mp4
"""

import sys
from pathlib import Path

import cv2

src, dst = Path(sys.argv[1]) / "val", sys.argv[2]
frames = sorted(src.glob("*.png"))
first = cv2.imread(str(frames[0]))
writer = cv2.VideoWriter(dst, cv2.VideoWriter_fourcc(*"mp4v"), 15, (first.shape[1], first.shape[0]))
for f in frames:
    writer.write(cv2.imread(str(f)))
writer.release()
print(f"wrote {dst}: {len(frames)} frames at 15 FPS")
