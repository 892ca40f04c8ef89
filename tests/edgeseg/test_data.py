"""Datasets: synthetic determinism, both real layouts, label mapping, augmentation, sampling."""
import numpy as np
import pytest

from edgeseg.data import IterationSampler, TrainSet, build_source
from edgeseg.data.synthetic import CLASSES, SyntheticScenes
from edgeseg.data.transforms import train_augment
from edgeseg.errors import UserError
from tests.conftest import write_image


def test_synthetic_is_deterministic_and_splits_differ():
    train, val = SyntheticScenes("train", 64), SyntheticScenes("val", 64)
    a, b = train.load(3), train.load(3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(train.load(0)[0], val.load(0)[0])
    assert len(CLASSES) >= 10
    labels = np.concatenate([train.load(i)[1].ravel() for i in range(40)])
    assert set(np.unique(labels)) == set(range(len(CLASSES)))  # every class appears


def test_generic_folder_layout(folder_dataset):
    train, val = build_source(str(folder_dataset), "train"), build_source(f"folder:{folder_dataset}", "val")
    assert train.classes == ["sky", "grass", "road"]
    assert len(train) == 11 and len(val) == 1
    image, mask = train.load(0)
    assert image.shape == (40, 48, 3) and image.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1, 2, 255} and (mask[:2] == 255).all()


def test_ade20k_layout_reduces_zero_label(ade_dataset):
    source = build_source(str(ade_dataset), "train")
    assert source.name == "ade20k" and len(source.classes) == 150 and len(source) == 3
    _, mask = source.load(0)
    assert mask[0, 0] == 255 and mask[0, 1] == 149 and mask.max() <= 255
    assert len(build_source(f"ade20k:{ade_dataset}", "val")) == 2


def test_folder_errors_name_the_file(folder_dataset):
    (folder_dataset / "masks" / "img03.png").unlink()
    with pytest.raises(UserError, match="img03.jpg has no mask"):
        build_source(str(folder_dataset), "train")


def test_out_of_range_label_is_an_error(folder_dataset):
    write_image(folder_dataset / "masks" / "img00.png", np.full((40, 48), 7, np.uint8))
    with pytest.raises(UserError, match="img00.png has label 7"):
        build_source(str(folder_dataset), "train").load(0)


def test_grayscale_rgba_and_16bit_images_convert(folder_dataset):
    write_image(folder_dataset / "images" / "img00.jpg", np.zeros((40, 48), np.uint8))
    write_image(folder_dataset / "images" / "img01.png", np.zeros((40, 48, 4), np.uint8))
    (folder_dataset / "images" / "img01.jpg").unlink()
    write_image(folder_dataset / "images" / "img02.png", np.full((40, 48), 4000, np.uint16))
    (folder_dataset / "images" / "img02.jpg").unlink()
    source = build_source(str(folder_dataset), "train")
    for i in range(3):
        assert source.load(i)[0].shape == (40, 48, 3)


def test_train_augment_crops_to_size_and_pads_with_ignore():
    rng = np.random.default_rng(0)
    image, mask = np.zeros((20, 30, 3), np.uint8), np.ones((20, 30), np.int64)
    out_image, out_mask = train_augment(image, mask, 64, rng, scale_range=(0.5, 0.5))
    assert out_image.shape == (64, 64, 3) and out_mask.shape == (64, 64)
    assert (out_mask == 255).any() and (out_mask == 1).any()


def test_sampler_is_a_function_of_seed_and_iteration():
    full = list(IterationSampler(10, 4, 6, seed=3))
    resumed = list(IterationSampler(10, 4, 6, seed=3, start_iter=2))
    assert full[2:] == resumed
    assert list(IterationSampler(10, 4, 6, seed=4)) != full
    rank0 = list(IterationSampler(10, 2, 6, seed=3, rank=0, world=2))
    rank1 = list(IterationSampler(10, 2, 6, seed=3, rank=1, world=2))
    assert [a + b for a, b in zip(rank0, rank1)] == full  # the global batch is split across ranks


def test_train_set_normalises(folder_dataset):
    source = build_source(str(folder_dataset), "train")
    image, mask = TrainSet(source, 32, [0.5] * 3, [0.5] * 3)[(0, 123)]
    assert image.shape == (3, 32, 32) and mask.shape == (32, 32)
    assert -1.01 <= float(image.min()) and float(image.max()) <= 1.01


def test_bad_data_paths():
    with pytest.raises(UserError, match="not a folder"):
        build_source("/nonexistent/data", "train")
    with pytest.raises(UserError, match="unknown dataset kind"):
        build_source("coco:/tmp", "train")
