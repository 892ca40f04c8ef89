"""deploy.export end to end: every target and precision, run in its runtime and compared with torch."""
import json
import platform

import numpy as np
import pytest
import torch
from PIL import Image

from deploy.parity import THRESHOLDS
from deploy.runtime import load
from edgeseg.card import load_model
from edgeseg.data.synthetic import SyntheticScenes
from edgeseg.errors import UserError
from edgeseg.preprocess import preprocess
from tests.conftest import run_cli

RUNNABLE = ("onnx", "openvino", "tflite")


@pytest.fixture(scope="module")
def exported_all(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export_all")
    proc = run_cli("deploy.export", "--checkpoint", str(trained_run / "best.pt"), "--target", "all",
                   "--precision", "all", "--calib-data", "synthetic", "--calib-size", "16", "--out", str(out),
                   timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("target", RUNNABLE)
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_artifact_runs_and_matches_torch(exported_all, trained_run, target, precision):
    folder = exported_all / f"{target}-{precision}"
    parity = json.loads((folder / "parity.json").read_text())
    assert parity["verified"] is True and parity["passed"] is True
    assert parity["pixel_agreement"] >= THRESHOLDS[precision]
    # Independently of the exporter's own check: load through the public runtime API and compare.
    predictor = load(folder)
    model, card = load_model(str(trained_run / "best.pt"))
    images = [SyntheticScenes("val", 128).load(i)[0] for i in range(16)]  # the exporter's 16 verification images
    agree = []
    for image in images:
        with torch.no_grad():
            reference = model(torch.from_numpy(preprocess(image, card)))[0].numpy()
        logits = predictor.predict_logits(image)
        assert logits.shape == reference.shape
        agree.append((logits.argmax(0) == reference.argmax(0)).mean())
        if precision == "fp32":
            assert np.abs(logits - reference).max() < 1e-3
    assert np.mean(agree) >= THRESHOLDS[precision]  # the product's own thresholds, not looser ones
    assert predictor.predict(images[0]).shape == (128, 128)
    if target == "tflite":  # float I/O at every precision by default (int8 included): apps need no (de)quantizing
        details = predictor.backend.inputs + [predictor.backend.output]
        assert all(d["dtype"] == np.float32 for d in details), details


@pytest.fixture(scope="module")
def exported_mediapipe(trained_run, tmp_path_factory):
    """TFLite fp32 and int8 with --mediapipe: NHWC (what --nhwc makes) plus MediaPipe's metadata; one export for
    the layout test and the stock-client test (CI time: each exported its own)."""
    out = tmp_path_factory.mktemp("export_mediapipe")
    proc = run_cli("deploy.export", "--checkpoint", str(trained_run / "best.pt"), "--target", "tflite", "--precision",
                   "fp32,int8", "--mediapipe", "--calib-data", "synthetic", "--calib-size", "16", "--out", str(out),
                   timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@pytest.mark.slow
def test_tflite_nhwc_layout_for_android(exported_all, exported_mediapipe):
    """--nhwc (here through --mediapipe, which implies it): image input [1, S, S, 3] and logits [1, h, w, K]; same
    results as the NCHW artifact, parity checked."""
    nchw = load(exported_all / "tflite-fp32")
    images = [SyntheticScenes("val", 128).load(i)[0] for i in range(3)]
    for precision in ("fp32", "int8"):
        folder = exported_mediapipe / f"tflite-{precision}-nhwc-mediapipe"
        parity = json.loads((folder / "parity.json").read_text())
        assert parity["passed"] is True and json.loads((folder / "card.json").read_text())["layout"] == "nhwc"
        predictor = load(folder)
        backend = predictor.backend
        assert list(backend.inputs[0]["shape"]) == [1, 128, 128, 3] and list(backend.output["shape"]) == [1, 32, 32, 12]
        assert backend.inputs[0]["dtype"] == np.float32
        for image in images:
            if precision == "fp32":
                assert np.abs(predictor.predict_logits(image) - nchw.predict_logits(image)).max() < 1e-4
            else:
                assert (predictor.predict(image) == nchw.predict(image)).mean() > 0.95


@pytest.mark.slow
def test_tflite_int8_io_flag_keeps_integer_io_with_the_same_results(tiny_run, tmp_path):
    """--int8-io leaves the int8 boundary tensors as the model's I/O (the image goes straight into int8 layers);
    the runtime (de)quantizes them by hand and both artifacts follow the float model."""
    from deploy.targets.tflite import Backend

    checkpoint = str(tiny_run / "best.pt")
    # the I/O mechanics, with litert_torch's own annotation: on this 6-iteration model's near-tied logits each extra
    # int8 tensor of the shipped recipe (residual sums, hard-swish gates) flips pixels (76-93 % against 93-98 %
    # per image); the shipped recipe's accuracy is gated by parity on the trained fixture and measured in
    # docs/tflite-int8-recipes.md
    for extra in ([], ["--int8-io"]):
        proc = run_cli("deploy.export", "--checkpoint", checkpoint, "--target", "tflite", "--precision", "int8",
                       "--calib-data", "synthetic", "--calib-size", "4", "--no-verify", "--tflite-int8-recipe", "litert",
                       "--out", str(tmp_path), *extra)
        assert proc.returncode == 0, proc.stderr[-2000:]
    floats = Backend(tmp_path / "tflite-int8" / "model.tflite")
    integers = Backend(tmp_path / "tflite-int8-int8io" / "model.tflite")
    assert floats.inputs[0]["dtype"] == np.float32 and floats.output["dtype"] == np.float32
    assert integers.inputs[0]["dtype"] == np.int8 and integers.output["dtype"] == np.int8
    assert floats.inputs[0]["name"] == integers.inputs[0]["name"]  # the app-facing names are kept
    assert json.loads((tmp_path / "tflite-int8-int8io" / "card.json").read_text())["int8_io"] is True
    # the float-I/O artifact keeps the stem and first stages float (the `early` role of deploy.roles); with int8 I/O
    # they are int8 too, so the two graphs differ slightly: both must follow the float model's classes
    model, card = load_model(checkpoint)
    for index in range(3):
        image = preprocess(SyntheticScenes("val", 64).load(index)[0], card)
        with torch.no_grad():
            reference = model(torch.from_numpy(image))[0].numpy().argmax(0)
        for backend in (floats, integers):  # Backend (de)quantizes int8 I/O by hand
            assert (backend(image)[0].argmax(0) == reference).mean() >= 0.9
    proc = run_cli("deploy.export", "--checkpoint", checkpoint, "--target", "onnx", "--int8-io", "--out",
                   str(tmp_path / "bad"))
    _assert_clean_failure(proc, tmp_path / "bad", "--int8-io applies to TFLite int8")
    proc = run_cli("deploy.export", "--checkpoint", checkpoint, "--target", "tflite", "--precision", "int8",
                   "--calib-data", "synthetic", "--coreml-w8a8", "--out", str(tmp_path / "bad"))
    _assert_clean_failure(proc, tmp_path / "bad", "--coreml-w8a8 applies to Core ML int8")
    proc = run_cli("deploy.export", "--checkpoint", checkpoint, "--target", "onnx", "--nhwc", "--out",
                   str(tmp_path / "bad"))
    _assert_clean_failure(proc, tmp_path / "bad", "--nhwc applies to TFLite")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_coreml_package_spec(exported_all, precision):
    from deploy.targets.coreml import spec_summary

    summary = spec_summary(exported_all / f"coreml-{precision}" / "model.mlpackage")
    assert summary["inputs"] == {"image": [1, 3, 128, 128]} and summary["image_input"]  # an RGB ImageType
    assert summary["outputs"]["logits"] == [1, 12, 32, 32]
    card = json.loads(summary["metadata"]["edgeseg_card"])
    assert card["precision"] == precision and len(card["classes"]) == 12
    # what Xcode's preview reads (coremltools' "Xcode Model Preview Types"): segmenter, labels, colours
    assert summary["metadata"]["com.apple.coreml.model.preview.type"] == "imageSegmenter"
    preview = json.loads(summary["metadata"]["com.apple.coreml.model.preview.params"])
    assert preview["labels"] == card["classes"] and len(preview["colors"]) == 12 and preview["colors"][0].startswith("#")
    assert "conv" in summary["ops"] and not any("einsum" in op for op in summary["ops"])


def test_coreml_image_input_folds_the_normalisation():
    """The Core ML graph takes RGB in [0, 1] (ImageType, scale 1/255) and normalises inside."""
    from deploy.targets.coreml import ImageInput
    from edgeseg.models import Segmenter

    model = Segmenter("mobilenetv3-small", "fusion", torch.randn(3, 16)).eval()
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    rgb = torch.rand(1, 3, 64, 64)
    normalised = (rgb - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(ImageInput(model, mean, std)(rgb), model(normalised), atol=1e-5)


@pytest.fixture(scope="module")
def exported_w8a8(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export_w8a8")
    proc = run_cli("deploy.export", "--checkpoint", str(trained_run / "best.pt"), "--target", "coreml",
                   "--precision", "int8", "--coreml-w8a8", "--calib-data", "synthetic", "--calib-size", "16",
                   "--out", str(out), timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "coreml-int8-w8a8"


@pytest.mark.slow
def test_coreml_w8a8_quantizes_activations_and_its_simulation_meets_int8_parity(exported_w8a8, exported_all):
    from deploy.targets.coreml import spec_summary

    summary = spec_summary(exported_w8a8 / "model.mlpackage")
    weights_only = spec_summary(exported_all / "coreml-int8" / "model.mlpackage")
    assert {"quantize", "dequantize", "constexpr_affine_dequantize"} <= set(summary["ops"])  # int8 activations
    assert "quantize" not in weights_only["ops"] and "constexpr_affine_dequantize" in weights_only["ops"]
    assert summary["spec_version"] >= 8 > weights_only["spec_version"]  # iOS 17 vs iOS 16
    assert summary["inputs"] == {"image": [1, 3, 128, 128]} and summary["image_input"]
    assert json.loads(summary["metadata"]["edgeseg_card"])["w8a8"] is True
    parity = json.loads((exported_w8a8 / "parity.json").read_text())
    assert parity["passed"] is True and parity["simulated"]["images"] == 16
    assert parity["simulated"]["pixel_agreement"] >= THRESHOLDS["int8"]


@pytest.mark.slow
@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML prediction needs macOS")
def test_coreml_predicts_on_macos(exported_all, exported_w8a8, trained_run):
    predictor = load(exported_all / "coreml-fp16")
    assert predictor.predict(SyntheticScenes("val", 128).load(0)[0]).shape == (128, 128)
    parity = json.loads((exported_w8a8 / "parity.json").read_text())
    assert parity["verified"] is True and parity["pixel_agreement"] >= THRESHOLDS["int8"]


@pytest.mark.slow
def test_open_vocab_matches_baked_and_follows_the_vocabulary(trained_run, tmp_path):
    checkpoint = str(trained_run / "best.pt")
    for extra in ([], ["--open-vocab"]):
        proc = run_cli("deploy.export", "--checkpoint", checkpoint, "--target", "onnx", "--out", str(tmp_path),
                       *extra)
        assert proc.returncode == 0, proc.stderr[-2000:]
    baked = load(tmp_path / "onnx-fp32")
    model, card = load_model(checkpoint)
    embeddings = model.text_embeddings.numpy()
    np.save(tmp_path / "emb.npy", embeddings)
    open_vocab = load(tmp_path / "onnx-fp32-openvocab", text_embeddings=str(tmp_path / "emb.npy"))
    images = [SyntheticScenes("val", 128).load(i)[0] for i in range(3)]
    for image in images:
        np.testing.assert_array_equal(baked.predict(image), open_vocab.predict(image))
    # Another class list (here: the classes in reverse order) changes which classes come out.
    order = np.arange(len(card["classes"]))[::-1].copy()
    reversed_vocab = load(tmp_path / "onnx-fp32-openvocab", text_embeddings=embeddings[order],
                          classes=[card["classes"][i] for i in order])
    for image in images:
        np.testing.assert_array_equal(order[reversed_vocab.predict(image)], baked.predict(image))
        assert not np.array_equal(reversed_vocab.predict(image), baked.predict(image))


def _assert_clean_failure(proc, out, needle):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr[-2000:]
    assert not any(p.suffix in (".onnx", ".xml", ".tflite", ".mlpackage") for p in out.rglob("*"))


def test_user_mistakes_leave_nothing_behind(tiny_run, tmp_path):
    checkpoint = str(tiny_run / "best.pt")
    out = tmp_path / "out"
    _assert_clean_failure(run_cli("deploy.export", "--checkpoint", checkpoint, "--target", "tensorrt",
                                  "--out", str(out)), out, "valid: onnx, openvino, coreml, tflite")
    _assert_clean_failure(run_cli("deploy.export", "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(out)),
                          out, "not found")
    _assert_clean_failure(run_cli("deploy.export", "--checkpoint", checkpoint, "--precision", "int8",
                                  "--out", str(out)), out, "--calib-data")
    few = tmp_path / "few"
    few.mkdir()
    from PIL import Image
    Image.new("RGB", (32, 32)).save(few / "one.png")
    _assert_clean_failure(run_cli("deploy.export", "--checkpoint", checkpoint, "--precision", "int8",
                                  "--calib-data", str(few), "--out", str(out)), out, "lower --calib-size")


def test_unsupported_op_is_a_one_line_error_and_no_artifact(tiny_run, tmp_path, monkeypatch):
    """A converter failure (simulated by an op ONNX lacks) becomes one line, with no folder left."""
    from deploy.export import export_one
    from edgeseg.errors import UserError

    class Unsupported(torch.nn.Module):
        def forward(self, image):
            return torch.linalg.eigvals(image[0, 0, :4, :4]).real.reshape(1, 1, 2, 2)

    card = {"open_vocab": False, "classes": ["a"], "img_size": 64, "output_stride": 32}
    with pytest.raises(UserError, match="onnx fp32 conversion failed"):
        export_one(Unsupported(), (torch.zeros(1, 3, 64, 64),), card, "onnx", "fp32", tmp_path, [], None)
    assert list(tmp_path.iterdir()) == []


def test_deploy_predict_cli_writes_masks(tiny_run, tmp_path):
    proc = run_cli("deploy.export", "--checkpoint", str(tiny_run / "best.pt"), "--target", "onnx", "--out",
                   str(tmp_path / "export"), "--verify-images", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_cli("deploy.predict", "--model", str(tmp_path / "export" / "onnx-fp32"), "--source",
                   "examples", "--out", str(tmp_path / "pred"), "--threads", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    from PIL import Image

    mask = Image.open(tmp_path / "pred" / "scene0_mask.png")
    assert mask.size == (256, 256) and mask.mode == "P"
    assert (tmp_path / "pred" / "scene0_overlay.png").is_file() and (tmp_path / "pred" / "legend.json").is_file()


@pytest.mark.slow
def test_output_mask_and_probs_in_the_graph(tiny_run, tmp_path):
    """--output mask: the upsample + argmax run in the graph ([1, S, S] uint8; Core ML int32), the runtime
    returns it resized to the image; --output probs: softmax at the input size. Both match torch."""
    import edgeseg
    from deploy.runtime import load
    from edgeseg.preprocess import logits_to_mask

    checkpoint = str(tiny_run / "best.pt")
    proc = run_cli("deploy.export", "--checkpoint", checkpoint, "--target", "onnx,openvino,tflite,coreml",
                   "--output", "mask", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_cli("deploy.export", "--checkpoint", checkpoint, "--target", "onnx", "--output", "probs",
                   "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    model, card = load_model(checkpoint)
    size = card["img_size"]
    coreml = json.loads((tmp_path / "coreml-fp32-mask" / "parity.json").read_text())
    assert coreml["passed"] and coreml["spec"]["outputs"]["mask"] == [1, size, size]
    images = [SyntheticScenes("val", size).load(i)[0] for i in range(3)]
    for target in ("onnx", "openvino", "tflite"):
        predictor = load(tmp_path / f"{target}-fp32-mask")
        assert predictor.output == "mask"
        for image in images:
            raw = predictor.run(preprocess(image, card))
            assert raw.shape == (size, size) and raw.dtype == np.uint8
            with torch.no_grad():
                expected = logits_to_mask(model(torch.from_numpy(preprocess(image, card)))[0].numpy(), size, size)
            assert (predictor.predict(image) == expected).mean() >= THRESHOLDS["fp32"]
        assert predictor.predict(images[0][:50, :40]).shape == (50, 40)  # nearest to the image size
        with pytest.raises(UserError, match="class masks"):
            predictor.predict_logits(images[0])
    probs = load(tmp_path / "onnx-fp32-probs").run(preprocess(images[0], card))
    assert probs.shape == (len(card["classes"]), size, size)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)
    api = edgeseg.load(tmp_path / "onnx-fp32-mask")
    assert api.predict(images[0]).shape == images[0].shape[:2]
    with pytest.raises(UserError, match="only output='mask'"):
        api.predict(images[0], output="probs")


@pytest.mark.slow
def test_openvino_takes_camera_frames_with_plain_openvino(tiny_run, tmp_path):
    """--uint8-input: an OpenVINO app feeds uint8 RGB NHWC frames of any size to plain openvino (no edgeseg
    code; resize, layout and mean/std in the model) and gets the mask the Predictor gives."""
    import openvino as ov

    checkpoint = str(tiny_run / "best.pt")
    for flags in (["--uint8-input", "--output", "mask"], []):
        proc = run_cli("deploy.export", "--checkpoint", checkpoint, "--target", "openvino", *flags, "--out",
                       str(tmp_path))
        assert proc.returncode == 0, proc.stderr[-2000:]
    card = json.loads((tmp_path / "openvino-fp32-mask-u8" / "card.json").read_text())
    size = card["img_size"]
    model = ov.Core().read_model(str(tmp_path / "openvino-fp32-mask-u8" / "model.xml"))
    assert model.get_rt_info(["model_info", "model_type"]).astype(str) == "Segmentation"
    assert model.get_rt_info(["model_info", "labels"]).astype(str).split() == [c.replace(" ", "_")
                                                                              for c in card["classes"]]
    # f32 pinned as the README says: on a CPU with bf16 (AVX-512 BF16 / AMX) OpenVINO runs float IRs in bf16
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    predictor = load(tmp_path / "openvino-fp32")  # the float-input artifact, through deploy.runtime
    frames = [SyntheticScenes("val", size).load(i)[0] for i in range(3)]
    for frame in frames:
        mask = compiled([frame[None]])[compiled.outputs[0]][0]
        assert mask.shape == (size, size) and mask.dtype == np.uint8
        assert (mask == predictor.predict(frame)).mean() >= THRESHOLDS["fp32"]
    big = SyntheticScenes("val", 2 * size).load(0)[0]  # any frame size: the model resizes
    assert compiled([big[None]])[compiled.outputs[0]][0].shape == (size, size)
    assert load(tmp_path / "openvino-fp32-mask-u8").predict(big).shape == big.shape[:2]


@pytest.mark.slow
def test_mediapipe_image_segmenter_opens_the_tflite_artifact(exported_mediapipe):
    """--mediapipe: MediaPipe Tasks' ImageSegmenter (stock, PyPI mediapipe) opens the artifact as is, reads its
    metadata (scalar normalisation, labels) and its category mask agrees with deploy.runtime's."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    for precision in ("fp32", "int8"):
        folder = exported_mediapipe / f"tflite-{precision}-nhwc-mediapipe"
        options = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=str(folder / "model.tflite")),
                                               output_category_mask=True, output_confidence_masks=False)
        segmenter = vision.ImageSegmenter.create_from_options(options)
        assert segmenter.labels == json.loads((folder / "card.json").read_text())["classes"]
        predictor = load(folder)
        assert predictor.card["resize"] == "mediapipe"
        # real-size frames (square and not; MediaPipe stretches them to the model's 128 x 128 input)
        for height, width in ((128, 128), (384, 384), (360, 480), (720, 1280)):
            agree = []
            for index in range(3):
                image = SyntheticScenes("val", max(height, width)).load(index)[0]
                image = np.ascontiguousarray(np.asarray(Image.fromarray(image).resize((width, height), Image.LANCZOS)))
                result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
                mask = result.category_mask.numpy_view().squeeze(-1)
                assert mask.shape == image.shape[:2]
                agree.append((mask == predictor.predict(image)).mean())
            assert np.mean(agree) >= THRESHOLDS[precision], (precision, height, width, agree)
