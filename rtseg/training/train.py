"""`rtseg train`: train a MobileNetV2 segmentation model on a CamVid-layout folder.

Plain loop in the spirit of torchvision's references: AdamW, warm-up then cosine LR, class-weighted
cross-entropy (CamVid's rare classes), EMA of weights, mixed precision (bf16 on CPU, fp16 on CUDA),
per-epoch val mIoU, a CSV log and resumable checkpoints. Selection is on val mIoU (best.pt).
"""
from __future__ import annotations

import argparse
import csv
import math
import os
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..data.boxes import DET_CLASSES, boxes_from_label
from ..data.camvid import NUM_CLASSES, VOID, class_frequencies, load_pairs, selection_pairs
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, TrainTransform, to_tensor_layout
from ..core.errors import RtsegError
from ..evaluation.detmetrics import coco_map
from ..evaluation.metrics import ConfusionMatrix
from ..core.modelinfo import sha256
from ..models import ModelSpec, build_model, parse_size
from ..models.detection import decode, detection_loss, encode_targets
from .train_args import add_train_args


class SegDataset(Dataset):
    """Augmented (image, label) pairs; with `boxes`, also CenterNet targets derived from the augmented label."""

    def __init__(self, images: list[np.ndarray], labels: list[np.ndarray], transform: TrainTransform, boxes: bool = False,
                 mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.images, self.labels, self.transform, self.boxes = images, labels, transform, boxes
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        img, lab = self.transform(self.images[i], self.labels[i])
        x, y = torch.from_numpy(to_tensor_layout(img, self.mean, self.std)), torch.from_numpy(lab.astype(np.int64))
        if not self.boxes:
            return x, y
        return x, y, encode_targets(*boxes_from_label(lab), lab.shape)


def enet_class_weights(freq: np.ndarray, c: float = 1.02) -> np.ndarray:
    """ENet's weighting 1/ln(c + p): rare classes weigh more, bounded by 1/ln(c)."""
    w = 1.0 / np.log(c + freq)
    return (w / w.mean()).astype(np.float32)


@torch.no_grad()
def evaluate_torch(model: torch.nn.Module, spec: ModelSpec, images: list[np.ndarray], labels: list[np.ndarray],
                   device: torch.device, amp_dtype: torch.dtype | None) -> dict:
    """Val metrics of a PyTorch model at its input size: mIoU (one confusion matrix) and/or box AP."""
    import cv2

    model.eval()
    cm = ConfusionMatrix(NUM_CLASSES)
    gts, preds = [], []
    h, w = spec.input_size
    for img, lab in zip(images, labels):
        x = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR) if img.shape[:2] != (h, w) else img
        x = torch.from_numpy(to_tensor_layout(x, spec.mean, spec.std))[None].to(device)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            out = model(x)
        if spec.has_seg:
            logits = out if spec.task == "seg" else out["logits"]
            pred = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()
            if pred.shape != lab.shape:
                pred = cv2.resize(pred, (lab.shape[1], lab.shape[0]), interpolation=cv2.INTER_NEAREST)
            cm.update(lab, pred)
        if spec.has_det:
            boxes, scores, classes = decode({k: v.float() for k, v in out.items() if k != "logits"})
            scale = np.array([lab.shape[1] / w, lab.shape[0] / h] * 2, np.float32)
            preds.append((boxes[0].cpu().numpy() * scale, scores[0].cpu().numpy(), classes[0].cpu().numpy()))
            gts.append(boxes_from_label(lab))
    metrics = {}
    if spec.has_seg:
        metrics |= {"miou": cm.miou(), "pixel_acc": cm.pixel_accuracy()}
    if spec.has_det:
        metrics["map50"] = coco_map(gts, preds, DET_CLASSES[: spec.num_det_classes])["map50"]
    return metrics


def selection_score(metrics: dict) -> float:
    """What best.pt maximises: mIoU, box mAP@0.5, or their mean for a multi-task model."""
    return float(np.mean([metrics[k] for k in ("miou", "map50") if k in metrics]))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)  # no decay on BN and biases
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def ema_with_warmup(decay: float) -> Callable:
    """EMA update whose decay ramps up as (1 + n) / (10 + n): early averages are not stuck at the init."""

    @torch.no_grad()
    def update(ema_params: list[torch.Tensor], params: list[torch.Tensor], num_averaged) -> None:
        n = int(num_averaged)
        d = min(decay, (1 + n) / (10 + n))
        if torch.is_floating_point(ema_params[0]):
            torch._foreach_lerp_(ema_params, params, 1.0 - d)
        else:  # integer buffers (BN's num_batches_tracked): just follow the model
            for e, p in zip(ema_params, params):
                e.copy_(p)

    return update


def device_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from ..core.machine import cpu_name

    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


TFLITE_PREFIXES = ("imagenet-tflite:", "voc-tflite:")


def encoder_layout(args: argparse.Namespace) -> str:
    """--encoder, or what --pretrained needs: Google's TFLite weights only fit TF-Slim's layout."""
    pretrained = args.pretrained or ""
    tflite = pretrained.startswith(TFLITE_PREFIXES)
    if args.encoder is None:
        return "slim" if tflite else "tv"
    if tflite and args.encoder != "slim":
        raise RtsegError(f"--pretrained {pretrained}: TF-Slim weights need --encoder slim")
    return args.encoder


def _load_pretrained(model: torch.nn.Module, spec: ModelSpec, pretrained: str | None,
                     calibration: list[np.ndarray] | None = None) -> torch.nn.Module:
    if pretrained is None:
        return model
    if pretrained == "imagenet":
        try:
            imagenet = build_model(spec, pretrained="imagenet")
        except Exception as e:  # no internet, hub down, proxy...
            raise RtsegError(f"could not download torchvision's ImageNet MobileNetV2 weights ({e.__class__.__name__}: "
                               f"{str(e).splitlines()[0] if str(e) else ''}); pass --pretrained PATH to a local file") from e
        model.encoder.load_state_dict(imagenet.encoder.state_dict())
        return model
    if pretrained.startswith(TFLITE_PREFIXES):
        return load_tflite_backbone(model, spec, pretrained, calibration or [])
    if not Path(pretrained).is_file():
        raise RtsegError(f"--pretrained {pretrained}: no such file (use 'imagenet', voc-tflite:PATH, "
                         f"imagenet-tflite:PATH or a local .pt state dict)")
    try:
        state = torch.load(pretrained, map_location="cpu", weights_only=True)
        state = state.get("model", state)
    except Exception as e:
        raise RtsegError(f"--pretrained {pretrained}: not a readable PyTorch state dict ({e.__class__.__name__})") from e
    if not isinstance(state, dict):
        raise RtsegError(f"--pretrained {pretrained}: not a state dict (found {type(state).__name__})")
    return load_matching(model, state, pretrained)


def load_tflite_backbone(model: torch.nn.Module, spec: ModelSpec, pretrained: str,
                         calibration: list[np.ndarray]) -> torch.nn.Module:
    """Google's MobileNetV2 (ImageNet) or DeepLabV3 (VOC) backbone from a TFLite file into the encoder, with
    its folded batch norms unfolded on `calibration` images (models/tflite_mnv2.py says why)."""
    from ..models.tflite_mnv2 import load_backbone, read_slim_tflite, unfold_batchnorm

    kind, path = pretrained.split(":", 1)
    if not Path(path).is_file():
        raise RtsegError(f"--pretrained {pretrained}: no such file")
    slim = read_slim_tflite(path)
    expected = {"imagenet-tflite": "imagenet", "voc-tflite": "deeplab"}[kind]
    if slim.kind != expected:
        raise RtsegError(f"--pretrained {pretrained}: the file is a{'n ImageNet classifier' if slim.kind == 'imagenet' else ' DeepLab model'}; "
                         f"use {'imagenet' if slim.kind == 'imagenet' else 'voc'}-tflite:{path}")
    if slim.width != spec.width:
        raise RtsegError(f"--pretrained {pretrained}: a width-{slim.width:g} MobileNetV2, the model is width {spec.width:g}")
    placed = load_backbone(model.encoder, slim)
    batches = [torch.from_numpy(np.stack([to_tensor_layout(im, spec.mean, spec.std) for im in calibration[i:i + 8]]))
               for i in range(0, len(calibration), 8)]
    unfolded = unfold_batchnorm(model, batches) if batches else 0
    print(f"loaded {pretrained}: {placed} convolutions of the {slim.kind} backbone (width {slim.width:g}); "
          f"{unfolded} batch norms unfolded on {len(calibration)} training images")
    return model


def load_matching(model: torch.nn.Module, state: dict, source: str) -> torch.nn.Module:
    """Load what matches by name and shape (another size, head or task shares the encoder) and say what did
    not. The encoder must match almost whole: a file of another width shares a few tensors by chance."""
    own = model.state_dict()
    loadable = {k: v for k, v in state.items() if k in own and getattr(v, "shape", None) == own[k].shape}
    encoder = [k for k, v in own.items() if k.startswith("encoder.") and v.ndim]  # BN step counters always match
    matched = sum(k in loadable for k in encoder)
    if matched < 0.9 * len(encoder):
        raise RtsegError(f"--pretrained {source}: only {matched} of {len(encoder)} encoder weights match this model "
                         f"(another width?)")
    model.load_state_dict(loadable, strict=False)
    other_shape = sum(1 for k in state if k in own and k not in loadable)
    print(f"loaded {source}: {len(loadable)} of {len(own)} tensors ({len(own) - len(loadable) - other_shape} not in "
          f"the file, {other_shape} of another shape; {len(state) - len(loadable) - other_shape} unused)")
    return model


def train(args: argparse.Namespace) -> Path:
    torch.manual_seed(args.seed)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(getattr(args, "threads", None) or os.cpu_count() or 1)
    amp_dtype = None if args.amp == "off" else (torch.float16 if device.type == "cuda" else torch.bfloat16)
    input_size = parse_size(args.input_size)
    crop = parse_size(args.crop) if args.crop else input_size
    spec = ModelSpec(width=args.width, head=args.head, output_stride=args.output_stride, input_size=input_size,
                     task=args.task, encoder=encoder_layout(args))
    run_dir = Path(args.out or Path("runs") / spec.name)
    run_dir.mkdir(parents=True, exist_ok=True)

    try:
        train_pairs, val_pairs, val_desc = selection_pairs(args.data, args.val_split)
        train_imgs, train_labels = load_pairs(train_pairs)
        val_imgs, val_labels = load_pairs(val_pairs)
    except (FileNotFoundError, ValueError) as e:
        raise RtsegError(str(e)) from e
    freq = class_frequencies(train_labels)
    weights = None if args.no_class_weights else torch.from_numpy(enet_class_weights(freq)).to(device)

    transform = TrainTransform(crop, tuple(args.scale), base_size=input_size, rng=np.random.default_rng(args.seed))
    workers = args.workers if args.workers is not None else (0 if device.type == "cpu" else min(8, os.cpu_count() or 1))
    loader = DataLoader(SegDataset(train_imgs, train_labels, transform, spec.has_det, spec.mean, spec.std),
                        batch_size=args.batch_size, shuffle=True,
                        drop_last=True, num_workers=workers, pin_memory=device.type == "cuda",
                        persistent_workers=workers > 0)

    calibration = [cv2.resize(im, (input_size[1], input_size[0])) for im in train_imgs[::max(1, len(train_imgs) // 32)]]
    model = _load_pretrained(build_model(spec), spec, args.pretrained, calibration)
    model = model.to(device).to(memory_format=torch.channels_last)
    if args.pretrained and args.pretrained != "imagenet":  # lets export check it names the right parent
        args.pretrained_sha256 = sha256(Path(args.pretrained.split(":", 1)[1] if args.pretrained.startswith(TFLITE_PREFIXES)
                                             else args.pretrained))
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(args.ema), use_buffers=True) if args.ema else None
    opt = torch.optim.AdamW(_param_groups(model, args.weight_decay), lr=args.lr)
    scaler = torch.amp.GradScaler(enabled=amp_dtype == torch.float16)
    steps_per_epoch = len(loader)
    total_steps = args.epochs * steps_per_epoch
    warmup = int(args.warmup_epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps, warmup))

    start_epoch, best, step = 0, -1.0, 0
    last_ckpt = run_dir / "last.pt"
    if args.resume and last_ckpt.exists():
        ck = torch.load(last_ckpt, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if ema is not None and ck.get("ema"):
            ema.load_state_dict(ck["ema"])
        start_epoch, step = ck["epoch"] + 1, ck["step"]
        best = ck.get("best_score", ck.get("best_miou", -1.0))
        print(f"resumed from {last_ckpt} at epoch {start_epoch}, best val score {best:.4f}")

    log_path = run_dir / "log.csv"
    columns = ["epoch", "step", "lr", "train_loss", "val_miou", "val_pixel_acc", "val_map50", "epoch_seconds", "cpu_seconds"]
    kept = []
    if start_epoch > 0 and log_path.exists():  # resuming: keep the epochs already logged, in today's columns
        kept = [r for r in csv.DictReader(open(log_path)) if int(r["epoch"]) <= start_epoch]
    log = open(log_path, "w", newline="")
    writer = csv.writer(log)
    writer.writerow(columns)
    for r in kept:
        writer.writerow([r.get(c, "") for c in columns])
    print(f"training {spec.name} ({spec.encoder} encoder) on {device} (amp={amp_dtype}), {len(train_imgs)} train images, "
          f"selecting on {val_desc}, "
          f"{args.epochs} epochs x {steps_per_epoch} steps, logging to {log_path}")

    for epoch in range(start_epoch, args.epochs):
        model.train()
        t0, c0, losses = time.time(), time.process_time(), []
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False, dynamic_ncols=True)
        for batch in bar:
            x = batch[0].to(device, non_blocking=True).to(memory_format=torch.channels_last)
            y = batch[1].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                out = model(x)
            loss = torch.zeros((), device=device)
            if spec.has_seg:
                logits = out if spec.task == "seg" else out["logits"]
                loss = loss + F.cross_entropy(logits.float(), y, weight=weights, ignore_index=VOID)
            if spec.has_det:
                targets = {k: v.to(device, non_blocking=True) for k, v in batch[2].items()}
                loss = loss + detection_loss(out, targets)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            losses.append(loss.item())
            step += 1
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{sched.get_last_lr()[0]:.2e}")
            if args.max_steps and step >= args.max_steps:
                break
        metrics: dict = {}
        final = epoch + 1 == args.epochs or (args.max_steps and step >= args.max_steps)
        if (epoch + 1) % args.eval_every == 0 or final:
            metrics = evaluate_torch(ema.module if ema is not None else model, spec, val_imgs, val_labels, device, amp_dtype)
        score = selection_score(metrics) if metrics else float("nan")
        secs, cpu = time.time() - t0, time.process_time() - c0
        writer.writerow([epoch + 1, step, f"{sched.get_last_lr()[0]:.6g}", f"{np.mean(losses):.5f}",
                         *(f"{metrics.get(k, float('nan')):.5f}" for k in ("miou", "pixel_acc", "map50")),
                         f"{secs:.1f}", f"{cpu:.1f}"])
        log.flush()
        ck = {"model": model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
              "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch, "step": step,
              "best_score": max(best, score) if not math.isnan(score) else best, "spec": spec.to_dict(),
              "args": vars(args), "trained_on": device_description(device), "val_split": args.val_split}
        torch.save(ck, run_dir / "last.tmp")
        os.replace(run_dir / "last.tmp", last_ckpt)  # atomic: a killed run never leaves a torn checkpoint
        if not math.isnan(score) and score > best:
            best = score
            weights_only = {"model": (ema.module if ema is not None else model).state_dict(), "spec": spec.to_dict(),
                            "epoch": epoch + 1, "val_metrics": metrics, "val_split": args.val_split, "args": vars(args),
                            "trained_on": device_description(device)}
            torch.save(weights_only, run_dir / "best.pt")
        shown = "  ".join(f"val {k} {v:.4f}" for k, v in metrics.items())
        print(f"epoch {epoch + 1}/{args.epochs}  loss {np.mean(losses):.4f}  {shown}  best {best:.4f}  {secs:.0f}s",
              flush=True)
        if args.max_steps and step >= args.max_steps:
            break
    log.close()
    return run_dir


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    add_train_args(p)
    train(p.parse_args(argv))


if __name__ == "__main__":
    main()
