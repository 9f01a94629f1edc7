"""The model zoo's recipes: one command per model, to train it, then ship it (export + measured eval).

    python benchmarks/zoo.py list
    python benchmarks/zoo.py train NAME [--data ../shared/data/camvid] [-- extra rtseg-train args]
    python benchmarks/zoo.py ship NAME [--default]   # export best.pt, eval on val, record in the manifest

Training resumes from runs/NAME/last.pt when interrupted. On a GPU add nothing: rtseg train uses CUDA
and fp16 when present; bigger batches there are fine (pass `-- --batch-size 16 --lr 6e-3`).
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> rtseg train arguments (the recipe); every model: AdamW, warm-up + cosine, ENet class weights,
# scale 0.6-1.8 / crop / flip / colour jitter, EMA, bf16 on CPU or fp16 on GPU (rtseg train's defaults)
ZOO = {
    "mnv2-050-lraspp-os32-240x320": "--width 0.5 --head lraspp --output-stride 32 --input-size 240x320 --epochs 200",
    "mnv2-050-dlv3p-os16-240x320": "--width 0.5 --head deeplabv3plus --output-stride 16 --input-size 240x320 --epochs 200",
    "mnv2-050-dlv3p-os16-360x480": "--width 0.5 --head deeplabv3plus --output-stride 16 --input-size 360x480 --epochs 160",
    "mnv2-100-lraspp-os32-360x480": "--width 1.0 --head lraspp --output-stride 32 --input-size 360x480 --epochs 200",
    "mnv2-100-dlv3p-os16-360x480": "--width 1.0 --head deeplabv3plus --output-stride 16 --input-size 360x480 --epochs 200",
    "mnv2-100-dlv3p-os16-480x640": "--width 1.0 --head deeplabv3plus --output-stride 16 --input-size 480x640 --epochs 200",
    "mnv2-050-centernet-os16-240x320": "--task det --width 0.5 --output-stride 16 --input-size 240x320 --epochs 120",
    "mnv2-050-centernet-os16-360x480": "--task det --width 0.5 --output-stride 16 --input-size 360x480 --epochs 160",
    "mnv2-050-lraspp+centernet-os32-240x320": "--task segdet --width 0.5 --head lraspp --output-stride 32 "
                                              "--input-size 240x320 --epochs 80",
    "mnv2-050-dlv3p+centernet-os16-360x480": "--task segdet --width 0.5 --head deeplabv3plus --output-stride 16 "
                                             "--input-size 360x480 --epochs 160",
}
COMMON = "--scale 0.6 1.8 --eval-every 2"


def run(cmd: list[str]) -> None:
    print("+ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["list", "train", "ship"])
    p.add_argument("name", nargs="?")
    p.add_argument("--data", default=str(ROOT.parent / "shared/data/camvid"))
    p.add_argument("--default", action="store_true", help="ship: make it the manifest's default model")
    p.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more rtseg train arguments")
    args = p.parse_args()
    if args.action == "list":
        for name, recipe in ZOO.items():
            print(f"{name:<40} rtseg train --data DATA {recipe} {COMMON}")
        return
    if args.name not in ZOO:
        sys.exit(f"unknown zoo model {args.name!r}; see: python benchmarks/zoo.py list")
    run_dir = ROOT / "runs" / args.name
    rtseg = [sys.executable, "-m", "rtseg"]
    if args.action == "train":
        extra = [a for a in args.extra if a != "--"]
        run(rtseg + ["train", "--data", args.data, *ZOO[args.name].split(), *COMMON.split(), "--out", str(run_dir),
                     "--resume", *extra])
    else:
        run(rtseg + ["export", "--checkpoint", str(run_dir / "best.pt"), "--name", args.name]
            + (["--set-default"] if args.default else []))
        run(rtseg + ["eval", "--model", args.name, "--data", args.data, "--split", "val", "--update-manifest", "--quiet"])


if __name__ == "__main__":
    main()
