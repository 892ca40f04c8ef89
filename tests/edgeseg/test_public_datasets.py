"""Real-dataset loaders on tiny fixtures written in each official layout: class mapping and ignore."""
import numpy as np
import pytest
from PIL import Image

from edgeseg.data import build_source
from edgeseg.data.classes import ADE20K_CLASSES, COCO_STUFF_CLASSES
from edgeseg.errors import UserError
from tests.conftest import write_image

RNG = np.random.default_rng(0)


def _image(path):
    return write_image(path, RNG.integers(0, 255, (24, 32, 3), dtype=np.uint8))


def test_ade20k_150_classes(ade_dataset):
    source = build_source(f"ade20k:{ade_dataset}", "train")
    assert len(source.classes) == 150 and source.classes[0] == ADE20K_CLASSES[0] == "wall"
    _, mask = source.load(0)
    assert mask[0, 0] == 255 and mask[0, 1] == 149  # 0 "other" -> ignore, 150 -> 149


def test_voc2012_layout_palette_masks_and_boundary(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for name in ("2007_000032", "2007_000033"):
        _image(root / "JPEGImages" / f"{name}.jpg")
        mask = np.zeros((24, 32), np.uint8)
        mask[5:10, 5:10] = 15  # person
        mask[4, :] = 255  # boundary
        palette = Image.fromarray(mask, mode="P")
        palette.putpalette([c for i in range(256) for c in (i, 255 - i, (7 * i) % 256)])  # colours != indices
        (root / "SegmentationClass").mkdir(parents=True, exist_ok=True)
        palette.save(root / "SegmentationClass" / f"{name}.png")
    (root / "ImageSets" / "Segmentation").mkdir(parents=True)
    (root / "ImageSets" / "Segmentation" / "train.txt").write_text("2007_000032\n")
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("2007_000033\n")
    source = build_source(f"voc:{tmp_path / 'VOCdevkit'}", "train")
    assert len(source) == 1 and len(source.classes) == 21 and source.classes[15] == "person"
    _, mask = source.load(0)
    assert mask[7, 7] == 15 and mask[0, 0] == 0 and (mask[4] == 255).all()
    assert len(build_source(f"voc:{root}", "val")) == 1


def test_cityscapes_layout_maps_label_ids_to_train_ids(tmp_path):
    for split, city in (("train", "aachen"), ("val", "frankfurt")):
        stem = f"{city}_000000_000019"
        _image(tmp_path / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
        label_ids = np.zeros((24, 32), np.uint8)  # 0 = unlabeled
        label_ids[0, :4] = [7, 26, 33, 4]  # road, car, bicycle, "static" (not evaluated)
        label_ids[1, :2] = [23, 255]  # sky, license plate id -1 stored as 255
        write_image(tmp_path / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label_ids)
    source = build_source(f"cityscapes:{tmp_path}", "train")
    assert len(source.classes) == 19 and source.classes[13] == "car"
    _, mask = source.load(0)
    assert mask[0, :4].tolist() == [0, 13, 18, 255]
    assert mask[1, :2].tolist() == [10, 255] and mask[5, 5] == 255
    assert len(build_source(f"cityscapes:{tmp_path}", "val")) == 1


def test_coco_stuff_10k_mat_annotations_map_182_ids_to_171(tmp_path):
    from scipy.io import savemat

    for name in ("COCO_train2014_000000000077", "COCO_train2014_000000000078"):
        _image(tmp_path / "images" / f"{name}.jpg")
        labels = np.zeros((24, 32), np.uint8)
        labels[0, :6] = [1, 11, 12, 13, 92, 182]  # person, fire hydrant, (unused 12), stop sign, banner, wood
        (tmp_path / "annotations").mkdir(exist_ok=True)
        savemat(tmp_path / "annotations" / f"{name}.mat", {"S": labels, "names": np.array(["x"], dtype=object)})
    (tmp_path / "imageLists").mkdir()
    (tmp_path / "imageLists" / "train.txt").write_text("COCO_train2014_000000000077\n")
    (tmp_path / "imageLists" / "test.txt").write_text("COCO_train2014_000000000078\n")
    source = build_source(f"cocostuff:{tmp_path}", "train")
    assert len(source.classes) == 171 == len(COCO_STUFF_CLASSES)
    _, mask = source.load(0)
    expected = [0, 10, 255, 11, COCO_STUFF_CLASSES.index("banner"), 170]
    assert mask[0, :6].tolist() == expected and expected[4] == 80  # the 81st class is the first stuff class
    assert source.classes[170] == "wood" and mask[3, 3] == 255  # 0 = unlabeled -> ignore
    assert len(build_source(f"cocostuff:{tmp_path}", "val")) == 1


@pytest.mark.parametrize("kind", ["voc", "cityscapes", "cocostuff"])
def test_missing_layout_is_a_clear_error(kind, tmp_path):
    with pytest.raises(UserError, match="missing"):
        build_source(f"{kind}:{tmp_path}", "train")
