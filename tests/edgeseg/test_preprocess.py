"""The resizes deploy.runtime uses: training's antialiased one, and MediaPipe's, bit-exact with OpenCV's warpAffine."""
import numpy as np
import pytest

from edgeseg.data.synthetic import SyntheticScenes
from edgeseg.preprocess import logits_to_mask, resize_image, upsample_logits


@pytest.mark.parametrize("height,width", [(360, 480), (720, 1280), (1080, 1920), (384, 384)])
def test_mediapipe_resize_equals_opencv_warp_affine(height, width):
    cv2 = pytest.importorskip("cv2")  # mediapipe's own dependency; MediaPipe's CPU ImageToTensor calls warpAffine
    image = SyntheticScenes("val", max(height, width)).load(0)[0][:height, :width].copy()
    scale = np.array([[width / 128, 0, 0], [0, height / 128, 0]], np.float64)
    expected = cv2.warpAffine(image, scale, (128, 128), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_array_equal(resize_image(image, 128, "mediapipe"), expected)


def test_resizes_differ_where_antialiasing_matters_and_reject_unknown_names():
    image = SyntheticScenes("val", 512).load(0)[0]
    smooth, sampled = resize_image(image, 128), resize_image(image, 128, "mediapipe")
    assert smooth.shape == sampled.shape == (128, 128, 3) and smooth.dtype == sampled.dtype == np.uint8
    assert np.abs(smooth.astype(int) - sampled.astype(int)).mean() > 1.0  # 4x shrink: no filter vs a filter
    assert resize_image(image, 512, "mediapipe") is image  # the model's size: untouched
    with pytest.raises(ValueError, match="unknown resize"):
        resize_image(image, 128, "nearest")


def test_align_corners_upsampling_keeps_the_corners_and_matches_torch():
    torch = pytest.importorskip("torch")
    logits = np.random.default_rng(0).normal(size=(3, 8, 10)).astype(np.float32)
    for grid, align in (("half", False), ("align", True)):
        expected = torch.nn.functional.interpolate(torch.from_numpy(logits)[None], size=(37, 50), mode="bilinear",
                                                   align_corners=align)[0].numpy()
        np.testing.assert_allclose(upsample_logits(logits, 37, 50, grid), expected, atol=1e-5)
    mask = logits_to_mask(logits, 37, 50, "align")
    assert mask[0, 0] == logits[:, 0, 0].argmax() and mask[-1, -1] == logits[:, -1, -1].argmax()
