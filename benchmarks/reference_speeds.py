"""Write engines/speeds.json: every shipped model variant's model-only speed on this machine, from full
`rtseg profile` measurements (taken now where the cache holds none that is clean for the current file).

The selector's first use on another machine times one of them there and scales the rest by the ratio
(rtseg/selection/reference.py), so run this on the machine the models are built on, quiet, after the zoo
changes:

    python benchmarks/reference_speeds.py            # measure what is missing, write engines/speeds.json
    python benchmarks/reference_speeds.py --check    # list what would be measured, write nothing
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment  # noqa: E402

from rtseg.core.modelinfo import measured_sizes, variant_name  # noqa: E402
from rtseg.core.paths import ENGINES_DIR  # noqa: E402
from rtseg.runtime.pipeline import inference_layout  # noqa: E402
from rtseg.selection.start import shipped_models  # noqa: E402
from rtseg.selection.profiling import ProfileCache, ensure_profiles, machine_key, model_checksum  # noqa: E402
from rtseg.selection.reference import REFERENCE_FILE, ReferenceSpeeds  # noqa: E402
from rtseg.selection.ladder import HELD_OUT_SPLIT  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="list the variants without a clean profile; write nothing")
    ap.add_argument("--out", type=Path, default=ENGINES_DIR / REFERENCE_FILE)
    args = ap.parse_args()
    streams, threads = inference_layout(None, None, live=False)  # what `rtseg run` on a file uses here
    infos = [i for i in shipped_models() if i.entry.get("qdq") != "tensorrt"]  # a TensorRT-layout file never runs on the CPU
    cache = ProfileCache(machine_key("onnxruntime", streams, threads))
    variants = {
        (i.name, s): i
        for i in infos
        for s in dict.fromkeys(measured_sizes(i, "val") + measured_sizes(i, HELD_OUT_SPLIT) + [tuple(i.input_size)])
    }
    missing = [variant_name(i, s) for (_, s), i in variants.items() if not (p := cache.get(i, s)) or not p.clean]
    print(f"{len(variants)} variants, {len(missing)} without a clean profile here: {', '.join(missing) or 'none'}")
    if args.check:
        return
    # `rtseg profile`'s own measurement of every size any split measured (the val split's call adds the held-out sizes)
    profiles = ensure_profiles(infos, "onnxruntime", streams, threads, split="val")
    speeds, dates = {}, []
    for (_, size), info in variants.items():
        p = profiles.get(variant_name(info, size)) or cache.get(info, size)
        if p is not None and p.clean:
            speeds[variant_name(info, size)] = (model_checksum(info), p.model_fps)
            dates.append(p.date)
    env = environment()
    ref = ReferenceSpeeds(env["machine"], f"{streams}x{threads}", env["date"], speeds)
    doc = {
        "command": env["command"],
        **ref.to_dict(),
        "measured": f"{min(dates, default='')} .. {max(dates, default='')}",
        "note": "model-only FPS (ONNX Runtime, CPU) from `rtseg profile` on the machine the models were built on; "
        "the selector's first use elsewhere scales them by one probe",
    }
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"wrote {args.out}: {len(speeds)} of {len(variants)} variants")


if __name__ == "__main__":
    main()
