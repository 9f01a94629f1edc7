import numpy as np
import pytest

from rtseg.evaluation.metrics import ConfusionMatrix


def test_iou_and_miou_on_a_hand_computed_case():
    target = np.array([[0, 0, 1, 1], [2, 2, 11, 11]])
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 2]])
    cm = ConfusionMatrix(3)
    cm.update(target, pred)
    # class 0: tp 1, fp 1 (pixel (1,1)), fn 1 -> 1/3; class 1: tp 2, fp 1 -> 2/3; class 2: tp 1, fn 1 -> 1/2
    assert cm.iou() == pytest.approx([1 / 3, 2 / 3, 1 / 2])
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert cm.pixel_accuracy() == pytest.approx(4 / 6)  # void pixels do not count


def test_one_matrix_over_the_split_not_a_mean_of_images():
    cm = ConfusionMatrix(2)
    cm.update(np.zeros((1, 10), int), np.zeros((1, 10), int))          # image 1: class 0 perfect
    cm.update(np.array([[0, 1]]), np.array([[1, 1]]))                   # image 2: one class-0 pixel wrong
    assert cm.iou() == pytest.approx([10 / 11, 1 / 2])


def test_class_absent_everywhere_is_left_out_of_the_mean():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 1]), np.array([0, 1]))
    assert np.isnan(cm.iou()[2])
    assert cm.miou() == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        ConfusionMatrix(2).update(np.zeros((2, 2)), np.zeros((2, 3)))
