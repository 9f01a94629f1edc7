"""Segment a camera, a video, an image folder or a stream, live: rtseg's answer to jetson-inference's segnet.py.

python examples/segnet.py examples/camvid_0016E5.mp4 --output overlay.mp4
python examples/segnet.py 0 --target-fps 30          # camera 0, the most accurate model that holds 30 FPS
"""

import argparse

import cv2

import rtseg

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("source", help="video, image, folder, glob, rtsp:// URL, or a camera index")
p.add_argument("--model", help="model name or .onnx path (default: the shipped default)")
p.add_argument("--target-fps", type=float, help="let the selector choose (and keep) a model for this rate")
p.add_argument("--output", help="write the overlay video here (H.264 with PyAV installed)")
p.add_argument("--no-show", action="store_true", help="no window")
args = p.parse_args()
source = int(args.source) if args.source.isdigit() else args.source

with rtseg.stream(source, model=args.model, target_fps=args.target_fps, output=args.output, legend=True) as results:
    for res in results:
        top = max(res.class_share, key=res.class_share.get) if res.class_share else "-"
        print(f"frame {res.index}: {res.model}, {sum(res.ms.values()):.1f} ms, mostly {top}", end="\r")
        if not args.no_show:
            cv2.imshow("rtseg", res.overlay())
            if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                break
print(f"\n{results.stats.frames_out} frames, {results.stats.fps:.1f} FPS")
