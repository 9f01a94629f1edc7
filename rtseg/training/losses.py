"""Per-pixel losses for segmentation training.

`ce` is class-weighted cross-entropy over every labelled pixel. `ohem` (online hard example mining, as in
OCNet/MMSegmentation's OHEM pixel sampler) averages only the pixels the model still gets wrong or barely
right (probability of the true class below `thresh`), but never fewer than `min_kept` of the labelled
pixels: easy Road and Sky pixels stop dominating the gradient, so thin, rare classes (Pole, SignSymbol,
Fence) that the held-out drive shows as weak get a larger share of it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ce", "ohem")


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None, ignore_index: int,
                      kind: str = "ce", thresh: float = 0.7, min_kept: float = 0.1) -> torch.Tensor:
    """Loss of `logits` (N, C, H, W) against `target` (N, H, W); `min_kept` is a share of labelled pixels."""
    logits = logits.float()
    if kind == "ce":
        return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index)
    if kind != "ohem":
        raise ValueError(f"unknown loss {kind!r}; choose from {', '.join(LOSSES)}")
    per_pixel = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction="none")
    valid = target != ignore_index
    n_valid = int(valid.sum())
    if n_valid == 0:
        return per_pixel.sum() * 0.0  # keeps the graph; nothing labelled in this batch
    with torch.no_grad():
        # probability of the true class; the void label is clamped to class 0 and masked out below
        p_true = logits.softmax(1).gather(1, target.clamp(0, logits.shape[1] - 1).unsqueeze(1)).squeeze(1)
        p_true = torch.where(valid, p_true, torch.ones_like(p_true) * 2.0)  # void never selected
        k = min(n_valid, max(1, int(min_kept * n_valid)))
        # keep everything below thresh, widened to the k hardest when fewer are that hard
        cut = max(thresh, float(p_true.flatten().kthvalue(k).values))
        hard = valid & (p_true <= cut)
    return per_pixel[hard].mean()
