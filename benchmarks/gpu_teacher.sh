#!/usr/bin/env bash
# The street-scene teacher at CamVid's native 720x960, trained on one GPU: Google's DeepLab MobileNet-EdgeTPU
# (Cityscapes) fine-tuned on CamVid with drive 0006R0 held out, cross-entropy then Lovasz, the recipe of
# `benchmarks/zoo.py train edgetpu-075-dlv3-os16-360x480-cityscapes` at four times the pixels. Prepared so that
# a session lent a GPU spends its minutes training, not setting up; a 2-core CPU would take days.
#
#   bash benchmarks/gpu_teacher.sh prepare    here, with ../shared: fills .device/ (git-ignored): the JPEG
#                                             CamVid copy, the Cityscapes .tflite and the `tflite` wheel
#   bash benchmarks/gpu_teacher.sh slim       here, just before the call: the device tool sends the whole working
#                                             tree, at most 64 MiB with what it carries, and the shipped weights
#                                             are 93 MiB; this takes engines/*.pt|onnx out of the working tree
#                                             (`git checkout -- engines` puts them back) and prints what travels
#   bash benchmarks/gpu_teacher.sh train      there, on the GPU machine; checkpoints and logs to $OUT
#                                             (device tool: command "bash benchmarks/gpu_teacher.sh train",
#                                             carry [".device"], timeout_s 590)
#   RTSEG_GPU_SMOKE=1 bash benchmarks/gpu_teacher.sh train
#                                             here: the same steps for a few batches on the CPU, into
#                                             .device/out (what CI cannot run, checked before a lease)
#
# What comes back ($OUT): ce-best.pt, ce-log.csv, lovasz-best.pt, lovasz-log.csv, train.log, machine.txt.
# Each stage runs under its own time limit (CE_SECONDS, LOVASZ_SECONDS) and keeps best.pt after every
# epoch, so a stage cut short still returns its best epoch. The epoch is chosen on drive 0006R0 of the JPEG
# copy; report figures from `rtseg eval` on the PNG originals (../shared/data/camvid), never from the log.
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=.device
PY=${PYTHON:-python3}
TFLITE=deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite

prepare() {
    local shared=../shared/data
    mkdir -p "$DEV/pretrained" "$DEV/whl"
    rm -rf "$DEV/camvid-jpg" && cp -r "$shared/camvid-jpg" "$DEV/camvid-jpg" && chmod -R u+w "$DEV/camvid-jpg"
    cp "$shared/pretrained/$TFLITE" "$DEV/pretrained/"
    # the one package rtseg's trainer needs that the GPU machine lacks (pure Python; flatbuffers is there)
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux2014_x86_64 -d "$DEV/whl" tflite==2.18.0
    grep -qx "/$DEV/" .gitignore || echo "warning: add /$DEV/ to .gitignore" >&2
    du -sh "$DEV"
}

train() {
    local out=${OUT:-$DEV/out} size=720x960 device=cuda batch=8 workers=12 limit=(--epochs)
    local ce_epochs=${CE_EPOCHS:-30} lovasz_epochs=${LOVASZ_EPOCHS:-10}
    local ce_s=${CE_SECONDS:-330} lovasz_s=${LOVASZ_SECONDS:-150}
    if [ -n "${RTSEG_GPU_SMOKE:-}" ]; then  # a few batches on the CPU: the steps, not the numbers
        size=96x128 device=cpu batch=2 workers=0 ce_epochs=1 lovasz_epochs=1 limit=(--max-steps 2 --epochs)
    else
        python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$DEV"/whl/*.whl
        export PYTHONPATH=/tmp/site
    fi
    export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
    mkdir -p "$out"
    { date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no GPU";
      "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)"; } >"$out/machine.txt"
    local common=(--data "$DEV/camvid-jpg" --input-size "$size" --val-split holdout:0006R0 --device "$device"
                  --batch-size "$batch" --workers "$workers" --clip-grad 1.0 --eval-every 1)
    local runs=/tmp/rtseg-teacher
    rm -rf "$runs"
    # stage one: the Cityscapes network whole, its 11-class head from the merged Cityscapes classes
    timeout "$ce_s" "$PY" -m rtseg train "${common[@]}" --encoder edgetpu --width 0.75 \
        --pretrained "cityscapes-tflite:$DEV/pretrained/$TFLITE" --loss ce --lr 5e-4 --warmup-epochs 1 \
        "${limit[@]}" "$ce_epochs" --out "$runs/ce" 2>&1 | tee -a "$out/train.log" || true
    keep "$runs/ce" "$out" ce
    [ -f "$runs/ce/best.pt" ] || { echo "stage one kept no epoch" | tee -a "$out/train.log"; exit 1; }
    # stage two: the thin classes (the Lovasz-softmax surrogate of IoU beside cross-entropy), from stage one's best
    timeout "$lovasz_s" "$PY" -m rtseg train "${common[@]}" --encoder edgetpu --width 0.75 \
        --pretrained "$runs/ce/best.pt" --loss lovasz --lr 2e-4 --warmup-epochs 0.5 \
        "${limit[@]}" "$lovasz_epochs" --out "$runs/lovasz" 2>&1 | tee -a "$out/train.log" || true
    keep "$runs/lovasz" "$out" lovasz
}

slim() {
    rm -rf "$DEV/out"  # a smoke run's output: it would travel too
    git ls-files -z engines | grep -z -E '\.(pt|onnx)$' | xargs -0 rm -f
    local bytes
    bytes=$( (git ls-files -z | xargs -0 stat -c %s 2>/dev/null; find "$DEV" -type f -not -path "$DEV/out/*" -printf '%s\n') \
             | awk '{s += $1} END {print s}')
    echo "travels: $((bytes / 1048576)) MiB of 64 (put the weights back after the call: git checkout -- engines)"
}

keep() {  # a stage's best epoch and its log, flat in $OUT (the device tool brings back 8 files)
    [ -f "$1/best.pt" ] && cp "$1/best.pt" "$2/$3-best.pt"
    [ -f "$1/log.csv" ] && cp "$1/log.csv" "$2/$3-log.csv"
    return 0
}

case "${1:-}" in
    prepare) prepare ;;
    slim) slim ;;
    train) train ;;
    *) echo "usage: bash benchmarks/gpu_teacher.sh prepare|slim|train" >&2; exit 2 ;;
esac
