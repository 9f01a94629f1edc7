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
