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
    cm.update(np.zeros((1, 10), int), np.zeros((1, 10), int))  # image 1: class 0 perfect
    cm.update(np.array([[0, 1]]), np.array([[1, 1]]))  # image 2: one class-0 pixel wrong
    assert cm.iou() == pytest.approx([10 / 11, 1 / 2])


def test_class_absent_everywhere_is_left_out_of_the_mean():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 1]), np.array([0, 1]))
    assert np.isnan(cm.iou()[2])
    assert cm.miou() == 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        ConfusionMatrix(2).update(np.zeros((2, 2)), np.zeros((2, 3)))


def test_maps_of_another_shape_are_refused_even_with_as_many_pixels():
    # a 2x3 label map against a 3x2 prediction pairs unrelated pixels; the counts agree, so nothing but the
    # shape check can tell (2x2 against 2x3 would fail anyway, on the pixel count)
    with pytest.raises(ValueError):
        ConfusionMatrix(2).update(np.zeros((2, 3), int), np.zeros((3, 2), int))


def test_a_prediction_outside_the_scored_classes_counts_nowhere():
    cm = ConfusionMatrix(3)
    # id 3 is past the last scored class (void, as in the ground truth): that pixel is left out, not booked as
    # a miss of class 1 against some other class
    cm.update(np.array([0, 1, 1]), np.array([0, 1, 3]))
    assert cm.mat.sum() == 2
    assert cm.iou()[:2] == pytest.approx([1.0, 1.0]) and cm.pixel_accuracy() == 1.0


def test_a_class_predicted_but_absent_from_the_ground_truth_counts_as_zero():
    """A hallucinated class is a class with IoU 0, not one left out: 0.5 and 0 average to 0.25."""
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 0]), np.array([0, 1]))
    # class 0: tp 1, fn 1 -> 1/2; class 1: tp 0, fp 1 -> 0 (in the prediction, never in the truth)
    assert cm.iou() == pytest.approx([0.5, 0.0])
    assert cm.miou() == pytest.approx(0.25)


def test_void_pixels_count_nowhere_whatever_was_predicted_there():
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 1, 11, 11, 255]), np.array([0, 1, 1, 0, 1]))
    assert cm.mat.sum() == 2 and cm.miou() == 1.0 and cm.pixel_accuracy() == 1.0


def test_a_split_without_any_labelled_pixel_has_no_accuracy():
    cm = ConfusionMatrix(2)
    cm.update(np.array([11, 11]), np.array([0, 1]))
    assert np.isnan(cm.pixel_accuracy()) and np.isnan(cm.iou()).all()


@pytest.fixture
def coco():
    pytest.importorskip("pycocotools")
    from rtseg.evaluation.detmetrics import coco_map

    return coco_map


def box(x, y, s=10):
    return [x, y, x + s, y + s]


def test_box_ap_worked_by_hand_duplicates_and_misses(coco):
    """One image, two ground-truth cars; COCO samples precision at 101 recall points (0, 0.01, ... 1), each
    the best precision at that recall or beyond. A perfect detection of each: AP 1. A duplicate ranked last
    changes nothing (both cars are found before it). A duplicate ranked second: precision 1 up to recall 1/2
    (51 points), then 2/3 up to recall 1 (50 points). Missing the second car: 1 up to recall 1/2, 0 after."""
    gt = [(np.array([box(0, 0), box(50, 50)], np.float32), np.array([0, 0]))]

    def ap(boxes, scores):
        pred = [(np.array(boxes, np.float32), np.array(scores, np.float32), np.zeros(len(boxes), int))]
        return coco(gt, pred, ("Car",))["map50"]

    assert ap([box(0, 0), box(50, 50)], [0.9, 0.8]) == pytest.approx(1.0)
    assert ap([box(0, 0), box(50, 50), box(0, 0)], [0.9, 0.8, 0.7]) == pytest.approx(1.0)
    assert ap([box(0, 0), box(0, 0), box(50, 50)], [0.9, 0.85, 0.8]) == pytest.approx((51 * 1 + 50 * 2 / 3) / 101, abs=1e-3)
    assert ap([box(0, 0)], [0.9]) == pytest.approx(51 / 101, abs=1e-3)
