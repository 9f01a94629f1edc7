"""Training losses: OHEM averages exactly the hard pixels (never void, never fewer than its minimum share)."""

import pytest

torch = pytest.importorskip("torch")
import torch.nn.functional as F  # noqa: E402

from rtseg.training.losses import segmentation_loss  # noqa: E402

VOID = 11


def confident(target: torch.Tensor, right: torch.Tensor, classes: int = 11) -> torch.Tensor:
    """Logits that give the true class probability ~1 where `right`, and ~0 elsewhere."""
    logits = torch.zeros(target.shape[0], classes, *target.shape[1:])
    wrong = (target.clamp(max=classes - 1) + 1) % classes
    cls = torch.where(right, target.clamp(max=classes - 1), wrong)
    logits.scatter_(1, cls.unsqueeze(1), 20.0)
    return logits


def test_ohem_averages_only_the_pixels_it_gets_wrong():
    target = torch.randint(0, 11, (2, 16, 16))
    right = torch.rand(2, 16, 16) > 0.3
    logits = confident(target, right)
    per_pixel = F.cross_entropy(logits, target, reduction="none")
    expected = per_pixel[~right].mean()
    assert segmentation_loss(logits, target, None, VOID, "ohem", min_kept=0.05) == pytest.approx(float(expected), rel=1e-5)
    # plain cross-entropy is diluted by the easy pixels
    assert segmentation_loss(logits, target, None, VOID, "ce") < expected


def test_ohem_keeps_its_minimum_share_and_never_void():
    target = torch.randint(0, 11, (1, 20, 20))
    target[0, :5] = VOID
    logits = confident(target, torch.ones_like(target, dtype=torch.bool))  # all easy
    logits[0, :, :5] = torch.randn(11, 5, 20) * 5  # void pixels look hard, but must not count
    loss = segmentation_loss(logits, target, None, VOID, "ohem", min_kept=0.5)
    per_pixel = F.cross_entropy(logits, target, ignore_index=VOID, reduction="none")
    valid = per_pixel[target != VOID]
    assert float(loss) == pytest.approx(float(valid.sort(descending=True).values[: valid.numel() // 2].mean()), rel=1e-3)


def test_ohem_gradients_flow_and_an_unlabelled_batch_gives_zero():
    target = torch.full((1, 4, 4), VOID)
    logits = torch.randn(1, 11, 4, 4, requires_grad=True)
    loss = segmentation_loss(logits, target, None, VOID, "ohem")
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None


def test_unknown_loss_is_refused():
    with pytest.raises(ValueError, match="unknown loss"):
        segmentation_loss(torch.zeros(1, 2, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long), None, VOID, "focal")


def test_lovasz_on_hard_predictions_is_one_minus_the_mean_iou_of_the_present_classes():
    from rtseg.training.losses import lovasz_softmax

    torch.manual_seed(0)
    target = torch.randint(0, 5, (2, 12, 12))
    target[0, :3] = VOID
    pred = torch.where(torch.rand(2, 12, 12) < 0.3, torch.randint(0, 6, (2, 12, 12)), target.clamp(max=5))
    probs = F.one_hot(pred, 11).permute(0, 3, 1, 2).float()
    valid = target != VOID
    ious = [
        ((pred == c) & (target == c) & valid).sum() / (((pred == c) | (target == c)) & valid).sum()
        for c in range(11)
        if ((target == c) & valid).any()
    ]  # class 5 is predicted, never true: not counted
    assert float(lovasz_softmax(probs, target, VOID)) == pytest.approx(1 - float(torch.stack(ious).mean()), abs=1e-6)
    right = F.one_hot(target.clamp(max=10), 11).permute(0, 3, 1, 2).float()
    assert float(lovasz_softmax(right, target, VOID)) == pytest.approx(0.0, abs=1e-7)


def reference_lovasz(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Berman et al.'s lovasz_softmax_flat (classes='present'), class by class, as published."""
    p, t = probs.permute(0, 2, 3, 1).reshape(-1, probs.shape[1]), target.reshape(-1)
    p, t = p[t != VOID], t[t != VOID]
    losses = []
    for c in range(p.shape[1]):
        fg = (t == c).double()
        if fg.sum() == 0:
            continue
        errors, perm = (fg - p[:, c]).abs().sort(0, descending=True)
        fg_sorted = fg[perm]
        gts = fg_sorted.sum()
        jaccard = 1.0 - (gts - fg_sorted.cumsum(0)) / (gts + (1 - fg_sorted).cumsum(0))
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
        losses.append(torch.dot(errors, jaccard))
    return torch.stack(losses).mean()


def test_lovasz_matches_the_published_algorithm_in_value_and_gradient():
    from rtseg.training.losses import lovasz_softmax

    torch.manual_seed(1)
    target = torch.randint(0, 12, (2, 10, 14))  # 11 = void among them
    logits = torch.randn(2, 11, 10, 14, dtype=torch.float64, requires_grad=True)
    ours = lovasz_softmax(logits.softmax(1), target, VOID)
    (grad_ours,) = torch.autograd.grad(ours, logits)
    ref = reference_lovasz(logits.softmax(1), target)
    (grad_ref,) = torch.autograd.grad(ref, logits)
    assert ours.item() == pytest.approx(ref.item(), abs=1e-12)
    assert torch.allclose(grad_ours, grad_ref, atol=1e-12)


def test_lovasz_loss_is_cross_entropy_plus_lovasz_and_an_unlabelled_batch_gives_zero():
    from rtseg.training.losses import lovasz_softmax

    target = torch.randint(0, 11, (1, 8, 8))
    logits = torch.randn(1, 11, 8, 8)
    total = segmentation_loss(logits, target, None, VOID, "lovasz")
    expected = F.cross_entropy(logits, target) + lovasz_softmax(logits.softmax(1), target, VOID)
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    empty = torch.randn(1, 11, 4, 4, requires_grad=True)
    loss = segmentation_loss(empty, torch.full((1, 4, 4), VOID), None, VOID, "lovasz")
    loss.backward()
    assert loss.item() == 0.0 and empty.grad is not None
