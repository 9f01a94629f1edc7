"""Distillation: the loss is zero when the student already matches the teacher, counts only labelled
pixels, and a run learns from a teacher checkpoint (or refuses one of other classes in one line)."""

import pytest

torch = pytest.importorskip("torch")

from helpers import run_cli  # noqa: E402
from test_models import tiny_camvid  # noqa: E402,F401  (fixture)

from rtseg.models import ModelSpec, build_model  # noqa: E402
from rtseg.training.distill import distillation_loss  # noqa: E402

VOID = 11


def test_loss_is_zero_for_a_matching_student_and_grows_with_disagreement():
    t = torch.randn(2, 11, 8, 8)
    y = torch.randint(0, 11, (2, 8, 8))
    assert distillation_loss(t.clone(), t, y, VOID).item() == pytest.approx(0.0, abs=1e-5)
    near, far = t + 0.1 * torch.randn_like(t), torch.randn(2, 11, 8, 8) * 3
    assert 0 < distillation_loss(near, t, y, VOID) < distillation_loss(far, t, y, VOID)


def test_void_pixels_do_not_count_and_sizes_may_differ():
    t, s = torch.randn(1, 11, 8, 8), torch.randn(1, 11, 8, 8)
    y = torch.randint(0, 11, (1, 8, 8))
    y_void = y.clone()
    y_void[0, :4] = VOID
    s_changed = s.clone()
    s_changed[0, :, :4] = 100.0  # only void pixels changed: same loss
    assert distillation_loss(s_changed, t, y_void, VOID).item() == pytest.approx(distillation_loss(s, t, y_void, VOID).item())
    # a teacher run at another resolution is resized to the student's
    assert distillation_loss(s, torch.randn(1, 11, 4, 4), y, VOID).item() > 0


def test_a_run_learns_from_a_teacher_checkpoint(tiny_camvid, tmp_path):  # noqa: F811
    teacher = ModelSpec(width=0.5, head="lraspp", output_stride=32, input_size=(64, 96))
    torch.save({"model": build_model(teacher).state_dict(), "spec": teacher.to_dict()}, tmp_path / "teacher.pt")
    common = (
        "train",
        "--data",
        tiny_camvid,
        *"--width 0.35 --head lraspp --output-stride 32 --input-size 64x96 --epochs 1 --batch-size 2 --warmup-epochs 0.5".split(),
    )
    res = run_cli(*common, "--distill", tmp_path / "teacher.pt", "--out", tmp_path / "run", timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (tmp_path / "run" / "best.pt").exists()
    other = ModelSpec(width=0.5, head="lraspp", output_stride=32, input_size=(64, 96), num_classes=5)
    torch.save({"model": build_model(other).state_dict(), "spec": other.to_dict()}, tmp_path / "other.pt")
    res = run_cli(*common, "--distill", tmp_path / "other.pt", "--out", tmp_path / "run2", timeout=300)
    assert res.returncode == 1 and "must segment the student's 11 classes" in res.stderr
    assert "Traceback" not in res.stderr


def test_an_ensemble_teaches_the_mean_of_its_teachers_distributions(tmp_path):
    from rtseg.training.distill import Ensemble

    torch.manual_seed(0)
    student = ModelSpec(width=0.35, head="lraspp", output_stride=32, input_size=(64, 96))
    nets, paths = [], []
    for i, (head, stride) in enumerate((("lraspp", 32), ("deeplabv3plus", 16))):
        spec = ModelSpec(width=0.35, head=head, output_stride=stride, input_size=(64, 96))
        nets.append(build_model(spec).eval())
        paths.append(tmp_path / f"t{i}.pt")
        torch.save({"model": nets[-1].state_dict(), "spec": spec.to_dict()}, paths[-1])
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        outs = [n(x) for n in nets]
        size = outs[0].shape[-2:]
        expected = sum(torch.nn.functional.interpolate(o, size=size, mode="bilinear", align_corners=False).softmax(1) for o in outs) / 2
    got = Ensemble(paths, student, torch.device("cpu")).logits(x)
    assert got.shape == outs[0].shape
    assert torch.allclose(got.exp(), expected, atol=1e-5)  # the mean of the two distributions, not of the logits
    assert torch.allclose(got.exp().sum(1), torch.ones(1, *size), atol=1e-5)
    one = Ensemble(paths[:1], student, torch.device("cpu")).logits(x)
    assert torch.allclose(one, outs[0], atol=1e-5)  # one teacher: its own logits, as before


def test_a_run_names_each_teacher_of_an_ensemble(tiny_camvid, tmp_path):  # noqa: F811
    import json

    teacher = ModelSpec(width=0.35, head="lraspp", output_stride=32, input_size=(64, 96))
    for name in ("a.pt", "b.pt"):
        torch.save({"model": build_model(teacher).state_dict(), "spec": teacher.to_dict()}, tmp_path / name)
    res = run_cli(
        "train",
        "--data",
        tiny_camvid,
        *"--width 0.35 --head lraspp --output-stride 32 --input-size 64x96 --epochs 1 --batch-size 2 --threads 1 --distill".split(),
        tmp_path / "a.pt",
        "--distill",
        tmp_path / "b.pt",
        "--out",
        tmp_path / "run",
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    res = run_cli(
        "export",
        "--checkpoint",
        tmp_path / "run" / "best.pt",
        "--out-dir",
        tmp_path / "engines",
        "--manifest",
        tmp_path / "engines" / "manifest.json",
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    manifest = json.loads((tmp_path / "engines" / "manifest.json").read_text())
    command = manifest["models"][0]["training"]["command"]
    assert f"--distill {tmp_path / 'a.pt'} --distill {tmp_path / 'b.pt'}" in command
