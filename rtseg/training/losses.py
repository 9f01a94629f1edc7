"""Per-pixel losses for segmentation training.

`ce` is class-weighted cross-entropy over every labelled pixel. `ohem` (online hard example mining, as in
OCNet/MMSegmentation's OHEM pixel sampler) averages only the pixels the model still gets wrong or barely
right (probability of the true class below `thresh`), but never fewer than `min_kept` of the labelled
pixels: easy Road and Sky pixels stop dominating the gradient, so thin, rare classes (Pole, SignSymbol,
Fence) that the held-out drive shows as weak get a larger share of it. `lovasz` adds to `ce` the
Lovasz-softmax loss (Berman, Rannen Triki and Blaschko, CVPR 2018): a convex, piecewise-linear surrogate
of 1 - IoU per class, averaged over the classes present, so a class counts by its IoU rather than by its
pixel count: a thin class's few pixels weigh in it as much as the Road's many.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("ce", "ohem", "lovasz")


def segmentation_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    ignore_index: int,
    kind: str = "ce",
    thresh: float = 0.7,
    min_kept: float = 0.1,
) -> torch.Tensor:
    """Loss of `logits` (N, C, H, W) against `target` (N, H, W); `min_kept` is a share of labelled pixels."""
    logits = logits.float()
    if kind == "ce":
        return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index)
    if kind == "lovasz":
        if not (target != ignore_index).any():
            return logits.sum() * 0.0  # keeps the graph; nothing labelled (cross-entropy would be NaN)
        return F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index) + lovasz_softmax(
            logits.softmax(1), target, ignore_index
        )
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


def lovasz_softmax(probs: torch.Tensor, target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """The Lovasz extension of the Jaccard loss, per class present in `target`, averaged over them.

    `probs` (N, C, H, W) class probabilities, `target` (N, H, W); `ignore_index` pixels take no part. For
    one-hot `probs` it equals the mean of 1 - IoU over the present classes; all classes are sorted at once.
    """
    classes = probs.shape[1]
    flat_target = target.reshape(-1)
    valid = flat_target != ignore_index
    p = probs.permute(0, 2, 3, 1).reshape(-1, classes)[valid]
    if p.numel() == 0:
        return probs.sum() * 0.0  # keeps the graph; nothing labelled in this batch
    fg = F.one_hot(flat_target[valid], classes).to(p.dtype)
    errors, order = (fg - p).abs().sort(0, descending=True)
    fg_sorted = fg.gather(0, order)
    gts = fg_sorted.sum(0)
    # the Jaccard loss after each pixel of the sorted errors; its increments are the gradient of the extension
    jaccard = 1.0 - (gts - fg_sorted.cumsum(0)) / (gts + (1.0 - fg_sorted).cumsum(0))
    jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    per_class = (errors * jaccard).sum(0)
    return per_class[gts > 0].mean()
