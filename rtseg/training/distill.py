"""Knowledge distillation for segmentation: a frozen, more accurate teacher's per-pixel class
distribution as a second target for the student (Hinton et al.'s softened KL, pixel-wise as in
"Structured Knowledge Distillation for Dense Prediction"). The teacher's soft targets say which classes a
thin or ambiguous pixel could be, which one-hot labels cannot; the fast models learn from the best one.
Several teachers act as one ensemble (their class distributions averaged): two models that err on different
pixels (a Cityscapes-started network and a VOC-started one) teach better together than either alone.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..core.errors import RtsegError
from ..models import ModelSpec, build_model


class Teacher:
    """A trained rtseg checkpoint (best.pt) run frozen in eval mode on the student's batches."""

    def __init__(self, checkpoint: str | Path, student: ModelSpec, device: torch.device):
        try:
            ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
            self.spec = ModelSpec.from_dict(ck["spec"])
            model = build_model(self.spec)
            model.load_state_dict(ck["model"])
        except (OSError, KeyError, RuntimeError, ValueError) as e:
            raise RtsegError(f"--distill {checkpoint}: not an rtseg checkpoint with weights and spec ({e.__class__.__name__})") from e
        if not self.spec.has_seg or self.spec.num_classes != student.num_classes:
            raise RtsegError(f"--distill {checkpoint}: the teacher must segment the student's {student.num_classes} classes")
        self.model = model.to(device).eval().to(memory_format=torch.channels_last)
        for p in self.model.parameters():
            p.requires_grad_(False)
        # the batch arrives normalised for the student; the teacher may want another normalisation
        s_mean, s_std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in (student.mean, student.std))
        t_mean, t_std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in (self.spec.mean, self.spec.std))
        self.scale, self.shift = s_std / t_std, (s_mean - t_mean) / t_std
        self.same_input = torch.allclose(self.scale, torch.ones_like(self.scale)) and not self.shift.any()

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x if self.same_input else x * self.scale + self.shift
        out = self.model(x)
        return out if self.spec.task == "seg" else out["logits"]


class Ensemble:
    """Several teachers as one: the mean of their class distributions, returned as log-probabilities so the
    loss's temperature softens the ensemble's distribution as it would one teacher's logits."""

    def __init__(self, checkpoints: list[str | Path], student: ModelSpec, device: torch.device):
        self.teachers = [Teacher(c, student, device) for c in checkpoints]

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.teachers) == 1:
            return self.teachers[0].logits(x)
        outs = [t.logits(x).float() for t in self.teachers]
        size = outs[0].shape[-2:]  # teachers of other output strides meet at the first one's resolution
        probs = [F.interpolate(o, size=size, mode="bilinear", align_corners=False) if o.shape[-2:] != size else o for o in outs]
        return torch.log(torch.stack([o.softmax(1) for o in probs]).mean(0).clamp_min(1e-8))


def distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, ignore_index: int, temperature: float = 2.0
) -> torch.Tensor:
    """T² · KL(teacher ‖ student) over the softened class distributions, averaged over labelled pixels
    (void pixels carry no label, but their teacher targets are no better there: they are left out too)."""
    student, teacher = student.float(), teacher.float()
    if teacher.shape[-2:] != student.shape[-2:]:
        teacher = F.interpolate(teacher, size=student.shape[-2:], mode="bilinear", align_corners=False)
    log_p_s = F.log_softmax(student / temperature, dim=1)
    p_t = F.softmax(teacher / temperature, dim=1)
    kl = (p_t * (torch.log(p_t.clamp_min(1e-8)) - log_p_s)).sum(1)  # (N, H, W)
    valid = target != ignore_index
    if not valid.any():
        return kl.sum() * 0.0
    return kl[valid].mean() * temperature**2
