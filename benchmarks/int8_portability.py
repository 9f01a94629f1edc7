"""Do the INT8 files give the same class maps on a CPU without VNNI as on the CPU that gated them?

x86 CPUs without VNNI (AVX2: Haswell to Coffee Lake, AMD before Zen 4) run ONNX Runtime's uint8 x int8
kernels with VPMADDUBSW, whose pairwise sums saturate at 16 bits; CPUs with VNNI (where our gate ran) do
not. QEMU's user-mode emulator with `-cpu Haswell` makes ONNX Runtime pick the AVX2 kernels on this VNNI
machine, so both can be compared on the same frames. For each INT8 file: class maps under emulation
against native ones, and each against the FP32 model's (native; FP32 does not depend on VNNI), on every
`--step`-th frame of the held-out drive, plain and under the five photometric stresses.

    python benchmarks/int8_portability.py --models engines/X-int8.onnx,/old/X-int8.onnx --out benchmarks/results/int8_portability_cpu

Needs `qemu-x86_64` (Debian: apt-get install qemu-user).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, header_markdown, write_report  # noqa: E402

# run in a child (natively or under QEMU): class maps of one model on the listed frames, saved as .npz
CHILD = r"""
import json, sys, time, cv2, numpy as np
from rtseg.core.modelinfo import resolve_model
from rtseg.runtime.slot import load_slot
from rtseg.data.photometric import stress
model, frames, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
slot = load_slot(resolve_model(model), "onnxruntime", threads=1)
maps, ms = {}, []
for i, (path, kind) in enumerate(frames):
    img = cv2.imread(path)
    img = img if kind == "plain" else stress(img, kind)
    t = time.perf_counter()
    maps[f"{i}"] = slot.process(img).mask
    ms.append(1e3 * (time.perf_counter() - t))
np.savez_compressed(out, ms=np.array(ms), **maps)
"""


def class_maps(model: str, frames: list, emulate: bool, work: Path) -> list[np.ndarray]:
    out = work / f"{abs(hash((model, emulate)))}.npz"
    cmd = [sys.executable, "-c", CHILD, model, json.dumps(frames), str(out)]
    if emulate:
        cmd = ["qemu-x86_64", "-cpu", "Haswell", *cmd]
    subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL)
    data = np.load(out)
    return [data[f"{i}"] for i in range(len(frames))], data["ms"]


def main() -> None:
    from rtseg.core.modelinfo import resolve_model
    from rtseg.data.camvid import eval_pairs
    from rtseg.data.photometric import STRESSES

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", required=True, help="comma-separated INT8 model names or .onnx paths")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "camvid"))
    p.add_argument("--split", default="holdout:0006R0")
    p.add_argument("--step", type=int, default=4, help="every N-th frame of the split")
    p.add_argument("--out", default="benchmarks/results/int8_portability_cpu")
    args = p.parse_args()
    if not shutil.which("qemu-x86_64"):
        sys.exit("needs qemu-x86_64 (apt-get install qemu-user)")
    env = environment()
    pairs = eval_pairs(args.data, args.split)[:: args.step]
    frames = [(str(img), kind) for img, _ in pairs for kind in ("plain", *STRESSES)]
    rows, doc = [], {"environment": env, "split": args.split, "frames": len(frames), "models": {}}
    with tempfile.TemporaryDirectory() as d:
        work = Path(d)
        for model in args.models.split(","):
            info = resolve_model(model)
            base = info.entry.get("base_model")
            native, ms = class_maps(model, frames, False, work)
            emulated, _ = class_maps(model, frames, True, work)
            fp32 = class_maps(base, frames, False, work)[0] if base else None

            def agree(a, b):
                return float(np.mean([np.mean(x == y) for x, y in zip(a, b)]))

            r = {
                "file": str(info.path),
                "native_vs_haswell": agree(native, emulated),
                "worst_frame_native_vs_haswell": float(min(np.mean(x == y) for x, y in zip(native, emulated))),
                "fp32_vs_native": agree(fp32, native) if fp32 else None,
                "fp32_vs_haswell": agree(fp32, emulated) if fp32 else None,
                "native_ms_per_frame": {
                    "median": float(np.median(ms)),
                    "p10": float(np.percentile(ms, 10)),
                    "p90": float(np.percentile(ms, 90)),
                },
            }
            doc["models"][model] = r
            t = r["native_ms_per_frame"]
            rows.append(
                f"| {model} | {100 * r['native_vs_haswell']:.2f} | {100 * r['worst_frame_native_vs_haswell']:.2f} | "
                + (f"{100 * r['fp32_vs_native']:.2f} | {100 * r['fp32_vs_haswell']:.2f} |" if fp32 else "- | - |")
                + f" {t['median']:.1f} ({t['p10']:.1f}-{t['p90']:.1f}) |"
            )
            print(rows[-1], flush=True)
    lines = [
        "# INT8 class maps on a CPU without VNNI (QEMU `-cpu Haswell`) against this VNNI CPU",
        "",
        header_markdown(env),
        f"- frames: every {args.step}th frame of {args.split}, plain and under {len(STRESSES)} photometric "
        f"stresses ({', '.join(STRESSES)}): {len(frames)} in all; pixels of equal class, mean over frames",
        "",
        "- last column: `slot.process` per frame natively, one inference thread, median (10th-90th percentile); "
        "files run one after another, so only a rough comparison (other work shared the 2 cores)",
        "",
        "| model file | native = Haswell (%) | worst frame (%) | FP32 = INT8 native (%) | FP32 = INT8 Haswell (%) | native ms/frame |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ]
    write_report(Path(args.out), lines, doc)


if __name__ == "__main__":
    main()
