"""`rtseg train`: train a MobileNetV2 segmentation model on a CamVid-layout folder.

Plain loop in the spirit of torchvision's references: AdamW, warm-up then cosine LR, class-weighted
cross-entropy (CamVid's rare classes), EMA of weights, mixed precision (bf16 on CPU, fp16 on CUDA),
per-epoch validation, a CSV log and resumable checkpoints. best.pt keeps the epoch that scores best on the
selection split (--val-split: CamVid val, or a drive held out of training). `prepare` builds a run,
`train_one_epoch` and `validate` do one epoch each, `train` loops.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sized, cast

import cv2
import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..data.boxes import DET_CLASSES, boxes_from_label
from ..data.camvid import CLASSES, VOID, class_frequencies, load_pairs, selection_pairs
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, TrainTransform, to_tensor_layout
from ..core.errors import RtsegError
from ..core.modelinfo import sha256
from ..models import ModelSpec, build_model, parse_size
from ..models.detection import detection_loss, encode_targets
from .distill import Ensemble, distillation_loss
from .losses import segmentation_loss
from .pretrained import encoder_layout, head_for, load_pretrained, pretrained_file
from .train_args import add_train_args


class SegDataset(Dataset):
    """Augmented (image, label) pairs; with `boxes`, also CenterNet targets derived from the augmented label."""

    def __init__(
        self,
        images: list[np.ndarray],
        labels: list[np.ndarray],
        transform: TrainTransform,
        boxes: bool = False,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    ):
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


def validate(model: torch.nn.Module, spec: ModelSpec, samples: list[tuple[np.ndarray, np.ndarray]], amp_dtype: torch.dtype | None) -> dict:
    """Selection metrics of the model in training, measured by rtseg's evaluation through the same slot
    (preprocess, class map at label size, boxes) that `rtseg eval` uses on the exported file."""
    from ..core.modelinfo import ModelInfo
    from ..evaluation.evaluate import measure
    from ..models.torch_backend import TorchBackend
    from ..runtime.slot import ModelSlot

    info = ModelInfo(
        name=spec.name,
        path=Path(spec.name),
        task=spec.task,
        input_size=spec.input_size,
        classes=CLASSES[: spec.num_classes],
        mean=spec.mean,
        std=spec.std,
        det_classes=DET_CLASSES[: spec.num_det_classes] if spec.has_det else (),
    )
    slot = ModelSlot.for_backend(info, TorchBackend.from_module(model, spec.task, autocast=amp_dtype), pool_size=1)
    r = measure(slot, samples)
    # plain floats: best.pt must load with torch.load(weights_only=True) when it starts another run
    metrics = {"miou": float(r["miou"]), "pixel_acc": float(r["pixel_accuracy"])} if "miou" in r else {}
    if "detection" in r:
        metrics["map50"] = float(r["detection"]["map50"])
    return metrics


def selection_score(metrics: dict) -> float:
    """What best.pt maximises: mIoU, box mAP@0.5, or their mean for a multi-task model."""
    return float(np.mean([metrics[k] for k in ("miou", "map50") if k in metrics]))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
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


@dataclass
class Run:
    """Everything one training run holds: what is trained, how, on what, and where it is written."""

    args: argparse.Namespace
    spec: ModelSpec
    device: torch.device
    amp_dtype: torch.dtype | None
    run_dir: Path
    loader: DataLoader
    val_samples: list[tuple[np.ndarray, np.ndarray]]  # (BGR frame, label) of the selection split
    val_desc: str
    class_weights: torch.Tensor | None
    model: torch.nn.Module
    ema: AveragedModel | None
    opt: torch.optim.Optimizer
    sched: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    teacher: Ensemble | None = None  # one teacher or several (--distill given more than once)
    epoch: int = 0  # the next epoch to run
    step: int = 0
    best: float = -1.0
    skipped_steps: int = 0  # steps whose loss was not finite (never taken)

    @property
    def selected_model(self) -> torch.nn.Module:
        """The weights validation measures and best.pt keeps: the EMA when there is one."""
        return self.ema.module if self.ema is not None else self.model


def prepare(args: argparse.Namespace) -> Run:
    """Device, data, model (with its start), optimiser and schedule for `args`; resumed when asked."""
    torch.manual_seed(args.seed)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    amp_dtype = None if args.amp == "off" else (torch.float16 if device.type == "cuda" else torch.bfloat16)
    input_size = parse_size(args.input_size)
    encoder = encoder_layout(args)
    args.head = head_for(args, encoder)  # resolved, so the run's record names it
    spec = ModelSpec(
        width=args.width, head=args.head, output_stride=args.output_stride, input_size=input_size, task=args.task, encoder=encoder
    )
    run_dir = Path(args.out or Path("runs") / spec.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        train_pairs, val_pairs, val_desc = selection_pairs(args.data, args.val_split)
        train_imgs, train_labels = load_pairs(train_pairs)
        val_imgs, val_labels = load_pairs(val_pairs)
    except (FileNotFoundError, ValueError) as e:
        raise RtsegError(str(e)) from e
    weights = None if args.no_class_weights else torch.from_numpy(enet_class_weights(class_frequencies(train_labels))).to(device)
    crop = parse_size(args.crop) if args.crop else input_size
    transform = TrainTransform(
        crop, tuple(args.scale), base_size=input_size, rng=np.random.default_rng(args.seed), max_class_share=args.crop_max_share
    )
    workers = args.workers if args.workers is not None else (0 if device.type == "cpu" else min(8, os.cpu_count() or 1))
    loader = DataLoader(
        SegDataset(train_imgs, train_labels, transform, spec.has_det, spec.mean, spec.std),
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    calibration = [cv2.resize(im, (input_size[1], input_size[0])) for im in train_imgs[:: max(1, len(train_imgs) // 32)]]
    model = load_pretrained(build_model(spec), spec, args.pretrained, calibration)
    model = model.to(device).to(memory_format=torch.channels_last)
    start = pretrained_file(args.pretrained)
    if start is not None:  # lets export check it names the right parent
        args.pretrained_sha256 = sha256(start)
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(args.ema), use_buffers=True) if args.ema else None
    opt = torch.optim.AdamW(_param_groups(model, args.weight_decay), lr=args.lr)
    total_steps, warmup = args.epochs * len(loader), int(args.warmup_epochs * len(loader))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total_steps, warmup))
    val_samples = [(cv2.cvtColor(im, cv2.COLOR_RGB2BGR), lab) for im, lab in zip(val_imgs, val_labels)]
    if args.distill and not spec.has_seg:
        raise RtsegError("--distill: only a segmentation student learns from a teacher's class map")
    teacher = Ensemble(args.distill, spec, device) if args.distill else None
    run = Run(
        args,
        spec,
        device,
        amp_dtype,
        run_dir,
        loader,
        val_samples,
        val_desc,
        weights,
        model,
        ema,
        opt,
        sched,
        torch.amp.GradScaler(enabled=amp_dtype == torch.float16),
        teacher,
    )
    if args.resume and (run_dir / "last.pt").exists():
        resume(run)
    return run


def resume(run: Run) -> None:
    ck = torch.load(run.run_dir / "last.pt", map_location=run.device, weights_only=False)
    run.model.load_state_dict(ck["model"])
    run.opt.load_state_dict(ck["optimizer"])
    run.sched.load_state_dict(ck["scheduler"])
    if run.ema is not None and ck.get("ema"):
        run.ema.load_state_dict(ck["ema"])
    run.epoch, run.step = ck["epoch"] + 1, ck["step"]
    run.best = ck.get("best_score", ck.get("best_miou", -1.0))
    print(f"resumed from {run.run_dir / 'last.pt'} at epoch {run.epoch}, best val score {run.best:.4f}")


def train_one_epoch(run: Run) -> list[float]:
    """One pass over the training data; returns the losses of its steps (fewer with --max-steps)."""
    run.model.train()
    spec, device, losses = run.spec, run.device, []
    bar = tqdm(run.loader, desc=f"epoch {run.epoch + 1}/{run.args.epochs}", leave=False, dynamic_ncols=True)
    for batch in bar:
        x = batch[0].to(device, non_blocking=True).to(memory_format=torch.channels_last)
        y = batch[1].to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=run.amp_dtype or torch.float32, enabled=run.amp_dtype is not None):
            out = run.model(x)
            soft = run.teacher.logits(x) if run.teacher is not None else None
        loss = torch.zeros((), device=device)
        if spec.has_seg:
            logits = out if spec.task == "seg" else out["logits"]
            seg = segmentation_loss(logits, y, run.class_weights, VOID, run.args.loss, run.args.ohem_thresh, run.args.ohem_min_kept)
            if soft is not None:
                w = run.args.distill_weight
                seg = (1 - w) * seg + w * distillation_loss(logits, soft, y, VOID, run.args.distill_temperature)
            loss = loss + seg
        if spec.has_det:
            loss = loss + detection_loss(out, {k: v.to(device, non_blocking=True) for k, v in batch[2].items()})
        run.opt.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            # a bf16 overflow in one batch must not poison the weights (and every checkpoint after it):
            # the step is skipped, counted and said; the schedule goes on as if it had been taken
            run.skipped_steps += 1
            print(f"step {run.step + 1}: loss is {loss.item()}, step skipped ({run.skipped_steps} so far)")
            run.sched.step()
            run.step += 1
            continue
        run.scaler.scale(loss).backward()
        if run.args.clip_grad:
            run.scaler.unscale_(run.opt)
            torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.args.clip_grad)
        run.scaler.step(run.opt)
        run.scaler.update()
        run.sched.step()
        if run.ema is not None:
            run.ema.update_parameters(run.model)
        losses.append(loss.item())
        run.step += 1
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", lr=f"{run.sched.get_last_lr()[0]:.2e}")
        if run.args.max_steps and run.step >= run.args.max_steps:
            break
    return losses


def plain_args(args: argparse.Namespace) -> dict:
    """The options as plain values (argparse also carries the command's function): best.pt stays loadable
    with torch.load(weights_only=True) when it starts another run."""
    return {k: v for k, v in vars(args).items() if not callable(v)}


def save_checkpoints(run: Run, metrics: dict, score: float) -> None:
    """last.pt (everything to resume, written atomically) and, when the score improved, best.pt (weights)."""
    args, trained_on = run.args, device_description(run.device)
    ck = {
        "model": run.model.state_dict(),
        "ema": run.ema.state_dict() if run.ema is not None else None,
        "optimizer": run.opt.state_dict(),
        "scheduler": run.sched.state_dict(),
        "epoch": run.epoch,
        "step": run.step,
        "best_score": max(run.best, score) if not math.isnan(score) else run.best,
        "spec": run.spec.to_dict(),
        "args": plain_args(args),
        "trained_on": trained_on,
        "val_split": args.val_split,
    }
    torch.save(ck, run.run_dir / "last.tmp")
    os.replace(run.run_dir / "last.tmp", run.run_dir / "last.pt")  # a killed run never leaves a torn checkpoint
    if not math.isnan(score) and score > run.best:
        run.best = score
        torch.save(
            {
                "model": run.selected_model.state_dict(),
                "spec": run.spec.to_dict(),
                "epoch": run.epoch + 1,
                "val_metrics": metrics,
                "val_split": args.val_split,
                "args": plain_args(args),
                "trained_on": trained_on,
            },
            run.run_dir / "best.pt",
        )


class EpochLog:
    """log.csv, one row per epoch; a resumed run keeps the rows of the epochs it already has."""

    COLUMNS = ["epoch", "step", "lr", "train_loss", "val_miou", "val_pixel_acc", "val_map50", "epoch_seconds", "cpu_seconds"]

    def __init__(self, path: Path, start_epoch: int):
        kept = [r for r in csv.DictReader(open(path)) if int(r["epoch"]) <= start_epoch] if start_epoch > 0 and path.exists() else []
        self.path, self.file = path, open(path, "w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(self.COLUMNS)
        for r in kept:
            self.writer.writerow([r.get(c, "") for c in self.COLUMNS])

    def write(self, run: Run, losses: list[float], metrics: dict, secs: float, cpu: float) -> None:
        self.writer.writerow(
            [
                run.epoch + 1,
                run.step,
                f"{run.sched.get_last_lr()[0]:.6g}",
                f"{np.mean(losses):.5f}",
                *(f"{metrics.get(k, float('nan')):.5f}" for k in ("miou", "pixel_acc", "map50")),
                f"{secs:.1f}",
                f"{cpu:.1f}",
            ]
        )
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def train(args: argparse.Namespace) -> Path:
    """Train as `args` says; returns the run folder (best.pt, last.pt, log.csv)."""
    run = prepare(args)
    log = EpochLog(run.run_dir / "log.csv", run.epoch)
    print(
        f"training {run.spec.name} ({run.spec.encoder} encoder) on {run.device} (amp={run.amp_dtype}), "
        f"{len(cast(Sized, run.loader.dataset))} train images, selecting on {run.val_desc}, {args.epochs} epochs x "
        f"{len(run.loader)} steps, logging to {log.path}"
    )
    while run.epoch < args.epochs:
        t0, c0 = time.time(), time.process_time()
        losses = train_one_epoch(run)
        stopped = bool(args.max_steps and run.step >= args.max_steps)
        final = run.epoch + 1 == args.epochs or stopped
        metrics = (
            validate(run.selected_model, run.spec, run.val_samples, run.amp_dtype)
            if (run.epoch + 1) % args.eval_every == 0 or final
            else {}
        )
        score = selection_score(metrics) if metrics else float("nan")
        secs, cpu = time.time() - t0, time.process_time() - c0
        log.write(run, losses, metrics, secs, cpu)
        save_checkpoints(run, metrics, score)
        shown = "  ".join(f"val {k} {v:.4f}" for k, v in metrics.items())
        print(f"epoch {run.epoch + 1}/{args.epochs}  loss {np.mean(losses):.4f}  {shown}  best {run.best:.4f}  {secs:.0f}s", flush=True)
        run.epoch += 1
        if stopped:
            break
    log.close()
    return run.run_dir


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    add_train_args(p)
    train(p.parse_args(argv))


if __name__ == "__main__":
    main()
