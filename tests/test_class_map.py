"""`rtseg eval --class-map`: a model's classes merged onto the dataset's before scoring, many to one; a
mapping that does not fit is refused in one line before anything runs or is written."""

import json

import cv2
import numpy as np
import pytest

from helpers import class_frame, run_cli

from rtseg.core.errors import RtsegError
from rtseg.data import camvid, cityscapes
from rtseg.data.classmap import ClassMap, class_map_lut, load_class_map, shipped_class_maps
from rtseg.evaluation.metrics import ConfusionMatrix

MODEL = ("road", "wall", "building", "sky")
DATA = ("Sky", "Building", "Road")
MERGE = ClassMap("test", {"road": "Road", "wall": "Building", "building": "Building", "sky": "Sky"})


def test_predicted_ids_become_dataset_ids_many_to_one():
    lut = class_map_lut(MERGE, MODEL, DATA)
    assert lut.tolist() == [2, 1, 1, 0] and lut.dtype == np.uint8
    pred = np.array([[0, 1], [2, 3]], np.uint8)  # road, wall / building, sky
    label = np.array([[2, 1], [1, 1]], np.uint8)  # Road, Building / Building, Building
    cm = ConfusionMatrix(len(DATA))
    cm.update(label, lut[pred])
    # wall and building both count as Building: 2 of the 3 Building pixels, the third predicted Sky
    assert cm.iou().tolist() == [0.0, 2 / 3, 1.0]


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({**MERGE.mapping, "tunnel": "Road"}, "'tunnel' is not among the model's classes"),
        ({**MERGE.mapping, "sky": "Heaven"}, "'Heaven' is not among the dataset's classes"),
        ({k: v for k, v in MERGE.mapping.items() if k not in ("wall", "sky")}, "the model's 'wall', 'sky' are left unmapped"),
    ],
)
def test_a_mapping_that_does_not_fit_is_refused_naming_the_offender(mapping, message):
    with pytest.raises(RtsegError, match=message) as e:
        class_map_lut(ClassMap("test", mapping), MODEL, DATA)
    assert "\n" not in str(e.value)


def test_the_shipped_cityscapes_to_camvid_mapping_maps_all_19_onto_camvid():
    assert "cityscapes-to-camvid" in shipped_class_maps()
    cmap = load_class_map("cityscapes-to-camvid")
    lut = class_map_lut(cmap, cityscapes.CLASSES, camvid.CLASSES)
    assert set(lut.tolist()) == set(range(len(camvid.CLASSES)))  # every CamVid class is reached
    named = dict(zip(cityscapes.CLASSES, (camvid.CLASSES[i] for i in lut)))
    assert named["wall"] == "Building" and named["traffic light"] == "SignSymbol" and named["terrain"] == "Tree"
    assert named["truck"] == named["bus"] == named["train"] == "Car"
    assert named["rider"] == named["motorcycle"] == named["bicycle"] == "Bicyclist"


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "no such file, nor a shipped mapping"),
        ("{not json", "not valid JSON"),
        ('["road", "Road"]', "expected a JSON object"),
        ('{"road": 3}', "expected a JSON object"),
    ],
)
def test_unreadable_mappings_are_refused(tmp_path, content, message):
    path = tmp_path / "map.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RtsegError, match=message):
        load_class_map(str(path))


@pytest.fixture
def road_vs_pavement(tmp_path):
    """Two frames the tiny model labels Road throughout; their labels: Pavement on the left, Road on the right."""
    for split in ("val", "valannot"):
        (tmp_path / "data" / split).mkdir(parents=True)
    for i in range(2):
        cv2.imwrite(str(tmp_path / "data" / "val" / f"f{i}.png"), class_frame(3))
        label = np.full((48, 64), 3, np.uint8)
        label[:, :32] = 4
        cv2.imwrite(str(tmp_path / "data" / "valannot" / f"f{i}.png"), label)
    return tmp_path / "data"


def test_eval_scores_the_merged_prediction(tiny_model, road_vs_pavement, tmp_path):
    mapping = {c: c for c in camvid.CLASSES} | {"Road": "Pavement", "Pavement": "Pavement"}  # Road predictions count as Pavement
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    res = run_cli(
        "eval",
        "--model",
        tiny_model,
        "--data",
        road_vs_pavement,
        "--class-map",
        tmp_path / "map.json",
        "--json",
        tmp_path / "r.json",
        "--quiet",
    )
    assert res.returncode == 0, res.stderr
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["per_class_iou"]["Pavement"] == pytest.approx(0.5) and r["per_class_iou"]["Road"] == 0.0
    assert r["class_map"] == str(tmp_path / "map.json") and "--class-map" in res.stdout


def test_eval_refuses_a_bad_mapping_and_writes_nothing(tiny_model, road_vs_pavement, tmp_path):
    out = tmp_path / "r.json"
    mapping = {c: c for c in camvid.CLASSES if c != "Fence"}
    (tmp_path / "map.json").write_text(json.dumps(mapping))
    res = run_cli("eval", "--model", tiny_model, "--data", road_vs_pavement, "--class-map", tmp_path / "map.json", "--json", out, "--quiet")
    assert res.returncode == 1 and not out.exists()
    assert res.stderr.strip().splitlines() == [
        f"rtseg: error: --class-map {tmp_path / 'map.json'}: the model's "
        f"'Fence' is left unmapped (map every class; its pixels would otherwise "
        f"count as void)"
    ]
    res = run_cli(
        "eval", "--model", tiny_model, "--data", road_vs_pavement, "--class-map", "cityscapes-to-camvid", "--json", out, "--quiet"
    )  # a CamVid model is not a Cityscapes one
    assert res.returncode == 1 and not out.exists() and "not among the model's classes" in res.stderr
