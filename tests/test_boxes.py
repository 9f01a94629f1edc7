import numpy as np

from rtseg.data.boxes import boxes_from_label


def label_with(*rects, shape=(60, 80), background=3):
    lab = np.full(shape, background, np.uint8)
    for cls, (x1, y1, x2, y2) in rects:
        lab[y1:y2, x1:x2] = cls
    return lab


def test_one_box_per_component_of_each_countable_class():
    lab = label_with((8, (5, 5, 25, 20)), (9, (40, 10, 48, 30)), (10, (60, 30, 75, 55)))
    boxes, classes = boxes_from_label(lab)
    got = sorted(zip(classes.tolist(), boxes.tolist()))
    assert got == [(0, [5, 5, 25, 20]), (1, [40, 10, 48, 30]), (2, [60, 30, 75, 55])]


def test_small_blobs_and_other_classes_are_ignored():
    lab = label_with((8, (5, 5, 10, 10)), (2, (30, 0, 32, 60)), (6, (50, 5, 70, 25)))  # 25-px car, pole, sign
    boxes, classes = boxes_from_label(lab, min_area=50)
    assert len(boxes) == 0 and boxes.shape == (0, 4)


def test_touching_instances_merge_and_void_separates_them():
    merged = label_with((8, (5, 5, 25, 20)), (8, (25, 5, 45, 20)))
    assert len(boxes_from_label(merged)[0]) == 1  # documented limit: one box
    separated = merged.copy()
    separated[:, 25] = 11  # a void outline between the cars
    assert len(boxes_from_label(separated)[0]) == 2


def test_occluder_splits_an_object():
    lab = label_with((8, (5, 5, 45, 20)), (2, (24, 0, 26, 60)))  # a pole in front of a car
    boxes, _ = boxes_from_label(lab)
    assert sorted(boxes[:, 0].tolist()) == [5, 26]
