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

import numpy as np
import torch
import torch.nn.functional as F
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from .data.camvid import NUM_CLASSES, VOID, class_frequencies, load_split
from .data.transforms import TrainTransform, to_tensor_layout
from .errors import RtsegError
from .metrics import ConfusionMatrix
from .models import ModelSpec, build_model, parse_size


class SegDataset(Dataset):
    def __init__(self, images: list[np.ndarray], labels: list[np.ndarray], transform: TrainTransform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, lab = self.transform(self.images[i], self.labels[i])
        return torch.from_numpy(to_tensor_layout(img)), torch.from_numpy(lab.astype(np.int64))


def enet_class_weights(freq: np.ndarray, c: float = 1.02) -> np.ndarray:
    """ENet's weighting 1/ln(c + p): rare classes weigh more, bounded by 1/ln(c)."""
    w = 1.0 / np.log(c + freq)
    return (w / w.mean()).astype(np.float32)


@torch.no_grad()
def evaluate_torch(model: torch.nn.Module, images: list[np.ndarray], labels: list[np.ndarray],
                   input_size: tuple[int, int], device: torch.device, amp_dtype: torch.dtype | None) -> ConfusionMatrix:
    """Run the model at its input size, compare at the label's size (nearest), one confusion matrix."""
    import cv2

    model.eval()
    cm = ConfusionMatrix(NUM_CLASSES)
    h, w = input_size
    for img, lab in zip(images, labels):
        x = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR) if img.shape[:2] != (h, w) else img
        x = torch.from_numpy(to_tensor_layout(x))[None].to(device)
        with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
            pred = model(x).argmax(1)[0].to(torch.uint8).cpu().numpy()
        if pred.shape != lab.shape:
            pred = cv2.resize(pred, (lab.shape[1], lab.shape[0]), interpolation=cv2.INTER_NEAREST)
        cm.update(lab, pred)
    return cm


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)  # no decay on BN and biases
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def ema_with_warmup(decay: float):
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
    from .evaluate import cpu_name

    return f"{cpu_name()}, {torch.get_num_threads()} threads"


def lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="CamVid-layout folder (train/, trainannot/, val/, valannot/)")
    p.add_argument("--width", type=float, default=1.0, help="MobileNetV2 width multiplier")
    p.add_argument("--head", choices=["deeplabv3plus", "lraspp"], default="deeplabv3plus")
    p.add_argument("--output-stride", type=int, choices=[16, 32], default=16)
    p.add_argument("--input-size", default="360x480", help="HxW the model runs at (eval and export)")
    p.add_argument("--crop", default=None, help="HxW training crop (default: the input size)")
    p.add_argument("--scale", type=float, nargs=2, default=(0.5, 2.0), help="random scale range")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--weight-decay", type=float, default=0.02)
    p.add_argument("--warmup-epochs", type=float, default=5)
    p.add_argument("--ema", type=float, default=0.999, help="EMA decay of weights (0 disables)")
    p.add_argument("--no-class-weights", action="store_true", help="plain cross-entropy")
    p.add_argument("--amp", choices=["auto", "off"], default="auto", help="bf16 on CPU, fp16 on CUDA")
    p.add_argument("--workers", type=int, default=None, help="data loader workers (default: 0 on CPU)")
    p.add_argument("--eval-every", type=int, default=1)
    p.add_argument("--pretrained", default=None, help="'imagenet' (needs internet) or a local .pt state dict")
    p.add_argument("--out", default=None, help="run folder (default runs/<model name>)")
    p.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (smoke tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")


def _load_pretrained(model: torch.nn.Module, spec: ModelSpec, pretrained: str | None) -> torch.nn.Module:
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
    if not Path(pretrained).is_file():
        raise RtsegError(f"--pretrained {pretrained}: no such file (use 'imagenet' or a local .pt state dict)")
    state = torch.load(pretrained, map_location="cpu", weights_only=True)
    state = state.get("model", state)
    missing, unexpected = model.load_state_dict(state, strict=False)
    print(f"loaded {pretrained}: {len(missing)} missing, {len(unexpected)} unexpected keys")
    return model


def train(args: argparse.Namespace) -> Path:
    torch.manual_seed(args.seed)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(os.cpu_count() or 1)
    amp_dtype = None if args.amp == "off" else (torch.float16 if device.type == "cuda" else torch.bfloat16)
    input_size = parse_size(args.input_size)
    crop = parse_size(args.crop) if args.crop else input_size
    spec = ModelSpec(width=args.width, head=args.head, output_stride=args.output_stride, input_size=input_size)
    out = Path(args.out or Path("runs") / spec.name)
    out.mkdir(parents=True, exist_ok=True)

    try:
        train_imgs, train_labels = load_split(args.data, "train")
        val_imgs, val_labels = load_split(args.data, "val")
    except (FileNotFoundError, ValueError) as e:
        raise RtsegError(str(e)) from e
    freq = class_frequencies(train_labels)
    weights = None if args.no_class_weights else torch.from_numpy(enet_class_weights(freq)).to(device)

    transform = TrainTransform(crop, tuple(args.scale), base_size=input_size, rng=np.random.default_rng(args.seed))
    workers = args.workers if args.workers is not None else (0 if device.type == "cpu" else min(8, os.cpu_count() or 1))
    loader = DataLoader(SegDataset(train_imgs, train_labels, transform), batch_size=args.batch_size, shuffle=True,
                        drop_last=True, num_workers=workers, pin_memory=device.type == "cuda",
                        persistent_workers=workers > 0)

    model = _load_pretrained(build_model(spec), spec, args.pretrained).to(device).to(memory_format=torch.channels_last)
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(args.ema), use_buffers=True) if args.ema else None
    opt = torch.optim.AdamW(_param_groups(model, args.weight_decay), lr=args.lr)
    scaler = torch.amp.GradScaler(enabled=amp_dtype == torch.float16)
    steps_per_epoch = len(loader)
    total_steps = args.epochs * steps_per_epoch
    warmup = int(args.warmup_epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps, warmup))

    start_epoch, best, step = 0, -1.0, 0
    last_ckpt = out / "last.pt"
    if args.resume and last_ckpt.exists():
        ck = torch.load(last_ckpt, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        if ema is not None and ck.get("ema"):
            ema.load_state_dict(ck["ema"])
        start_epoch, best, step = ck["epoch"] + 1, ck["best_miou"], ck["step"]
        print(f"resumed from {last_ckpt} at epoch {start_epoch}, best val mIoU {best:.4f}")

    log_path = out / "log.csv"
    new_log = not log_path.exists() or start_epoch == 0
    log = open(log_path, "w" if new_log else "a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["epoch", "step", "lr", "train_loss", "val_miou", "val_pixel_acc", "epoch_seconds"])
    print(f"training {spec.name} on {device} (amp={amp_dtype}), {len(train_imgs)} train / {len(val_imgs)} val images, "
          f"{args.epochs} epochs x {steps_per_epoch} steps, logging to {log_path}")

    for epoch in range(start_epoch, args.epochs):
        model.train()
        t0, losses = time.time(), []
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{args.epochs}", leave=False, dynamic_ncols=True)
        for x, y in bar:
            x = x.to(device, non_blocking=True).to(memory_format=torch.channels_last)
            y = y.to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y, weight=weights, ignore_index=VOID)
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
        miou, acc = float("nan"), float("nan")
        final = epoch + 1 == args.epochs or (args.max_steps and step >= args.max_steps)
        if (epoch + 1) % args.eval_every == 0 or final:
            cm = evaluate_torch(ema.module if ema is not None else model, val_imgs, val_labels, input_size, device, amp_dtype)
            miou, acc = cm.miou(), cm.pixel_accuracy()
        secs = time.time() - t0
        writer.writerow([epoch + 1, step, f"{sched.get_last_lr()[0]:.6g}", f"{np.mean(losses):.5f}",
                         f"{miou:.5f}", f"{acc:.5f}", f"{secs:.1f}"])
        log.flush()
        ck = {"model": model.state_dict(), "ema": ema.state_dict() if ema is not None else None,
              "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch, "step": step,
              "best_miou": max(best, miou) if not math.isnan(miou) else best, "spec": spec.to_dict(),
              "args": vars(args), "trained_on": device_description(device)}
        torch.save(ck, out / "last.tmp")
        os.replace(out / "last.tmp", last_ckpt)  # atomic: a killed run never leaves a torn checkpoint
        if not math.isnan(miou) and miou > best:
            best = miou
            weights_only = {"model": (ema.module if ema is not None else model).state_dict(), "spec": spec.to_dict(),
                            "epoch": epoch + 1, "val_miou": miou, "args": vars(args),
                            "trained_on": device_description(device)}
            torch.save(weights_only, out / "best.pt")
        print(f"epoch {epoch + 1}/{args.epochs}  loss {np.mean(losses):.4f}  val mIoU {miou:.4f}  "
              f"acc {acc:.4f}  best {best:.4f}  {secs:.0f}s", flush=True)
        if args.max_steps and step >= args.max_steps:
            break
    log.close()
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    add_train_args(p)
    train(p.parse_args(argv))


if __name__ == "__main__":
    main()
