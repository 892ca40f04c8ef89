"""Open-vocabulary artifacts: 1..K_max class names in one static graph; padding never changes the mask."""
import json

import numpy as np
import pytest
import torch

from deploy.parity import THRESHOLDS
from deploy.runtime import load
from deploy.vocabulary import pad_vocabulary, vocabulary_names
from edgeseg.card import load_model
from edgeseg.data.synthetic import SyntheticScenes
from edgeseg.errors import UserError
from edgeseg.models import OpenVocabSegmenter
from edgeseg.preprocess import preprocess
from edgeseg.text import get_text_embeddings
from tests.conftest import run_cli

NEW_NAMES = ["cat", "sofa", "window", "bicycle"]


def test_padded_graph_equals_the_unpadded_model(tiny_run):
    model, card = load_model(str(tiny_run / "best.pt"))
    image = torch.from_numpy(preprocess(SyntheticScenes("val", 64).load(0)[0], card))
    embeddings = model.text_embeddings.numpy()
    for count in (1, 5, len(embeddings)):
        text, valid = pad_vocabulary(embeddings[:count], 40, embeddings.shape[1])
        with torch.no_grad():
            padded = OpenVocabSegmenter(model)(image, torch.from_numpy(text), torch.from_numpy(valid))
            plain = model(image, torch.from_numpy(embeddings[:count]))
        torch.testing.assert_close(padded[:, :count], plain, atol=1e-4, rtol=0)
        assert bool((padded[:, count:] < plain.amin(dim=1, keepdim=True)).all())  # unused slots can never win


@pytest.mark.slow
def test_one_artifact_segments_1_to_k_max_names_on_every_runtime(tiny_run, tmp_path):
    checkpoint = str(tiny_run / "best.pt")
    proc = run_cli("deploy.export", "--checkpoint", checkpoint, "--target", "onnx,openvino,tflite", "--precision",
                   "fp32,fp16", "--open-vocab", "--max-classes", "16", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    model, card = load_model(checkpoint)
    trained = model.text_embeddings.numpy()
    extended = np.concatenate([trained, get_text_embeddings(NEW_NAMES, card["text_encoder"])])  # 12 + 4 = 16
    names = [*card["classes"], *NEW_NAMES]
    images = [SyntheticScenes("val", 64).load(i)[0] for i in range(3)]
    for target, precision in [(t, p) for t in ("onnx", "openvino", "tflite") for p in ("fp32", "fp16")]:
        predictor = load(tmp_path / f"{target}-{precision}-openvocab")
        assert json.loads((tmp_path / f"{target}-{precision}-openvocab" / "parity.json").read_text())["passed"]
        assert predictor.max_classes == 16
        for count in (1, 5, 16):
            predictor.set_embeddings(extended[:count], names[:count])
            assert predictor.classes == names[:count]
            for image in images:
                inputs = preprocess(image, card)
                with torch.no_grad():
                    reference = model(torch.from_numpy(inputs), torch.from_numpy(extended[:count]))[0].numpy()
                logits = predictor.run(inputs)
                assert logits.shape == reference.shape
                np.testing.assert_allclose(logits, reference, atol=1e-3 if precision == "fp32" else 0.1)
                assert (logits.argmax(0) == reference.argmax(0)).mean() >= THRESHOLDS[precision]
        with pytest.raises(UserError, match="at most 16"):
            predictor.set_embeddings(np.concatenate([extended, extended[:1]]), names + ["extra"])
        with pytest.raises(UserError, match="empty"):
            predictor.set_embeddings(extended[:0], [])
        with pytest.raises(UserError, match="takes \\[K, 384\\]"):
            predictor.set_embeddings(np.zeros((2, 512), np.float32), ["a", "b"])


@pytest.mark.slow
def test_int8_open_vocab_segments_1_5_and_k_max_real_names(trained_run, tmp_path):
    """int8 on every runtime that runs here: the exporter's gate (K = 1, 16, 32 at 97 %) passes, and masks
    with 1, 5 and K_max real class names typed at run time agree with the unpadded torch model."""
    checkpoint = str(trained_run / "best.pt")
    proc = run_cli("deploy.export", "--checkpoint", checkpoint, "--target", "onnx,openvino,tflite", "--precision",
                   "int8", "--calib-data", "synthetic", "--open-vocab", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-2000:]
    model, card = load_model(checkpoint)
    names = vocabulary_names(card, 32)
    embeddings = np.concatenate([model.text_embeddings.numpy(), get_text_embeddings(names[12:], card["text_encoder"])])
    images = [preprocess(SyntheticScenes("val", 128).load(80 + i)[0], card) for i in range(10)]
    for target in ("onnx", "openvino", "tflite"):
        folder = tmp_path / f"{target}-int8-openvocab"
        parity = json.loads((folder / "parity.json").read_text())
        assert parity["passed"] and set(parity["by_classes"]) == {"1", "16", "32"}
        predictor = load(folder)
        for count in (1, 5, 32):
            predictor.set_embeddings(embeddings[:count], names[:count])
            agree = []
            for inputs in images:
                with torch.no_grad():
                    reference = model(torch.from_numpy(inputs), torch.from_numpy(embeddings[:count]))[0].numpy()
                agree.append((predictor.run(inputs).argmax(0) == reference.argmax(0)).mean())
            assert np.mean(agree) >= THRESHOLDS["int8"], (target, count, np.mean(agree))


def test_max_classes_misuse_is_a_one_line_error(tiny_run, tmp_path):
    proc = run_cli("deploy.export", "--checkpoint", str(tiny_run / "best.pt"), "--max-classes", "16",
                   "--out", str(tmp_path))
    assert proc.returncode == 2 and "applies to --open-vocab" in proc.stderr
    proc = run_cli("deploy.export", "--checkpoint", str(tiny_run / "best.pt"), "--open-vocab", "--max-classes", "3",
                   "--out", str(tmp_path))
    assert proc.returncode == 2 and "at least 12" in proc.stderr


def test_refined_head_open_vocab_artifact_passes_parity_at_1_mid_and_k_max(tmp_path):
    """The redesigned head (scores at stride 8, thin text-conditioned stride-4 refinement) keeps the open
    vocabulary: one artifact, the exporter's gate at K = 1, K_max/2 and K_max, and typed names at run time."""
    run = tmp_path / "run"
    proc = run_cli("edgeseg.train", "--backbone", "mobilenetv3-small", "--refine-width", "16", "--depth", "1",
                   "--iters", "4", "--batch-size", "2", "--img-size", "64", "--pretrained", "none", "--val-limit", "2",
                   "--out", str(run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = run_cli("deploy.export", "--checkpoint", str(run / "best.pt"), "--target", "onnx", "--precision", "fp32",
                   "--open-vocab", "--max-classes", "16", "--out", str(tmp_path / "art"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    folder = tmp_path / "art" / "onnx-fp32-openvocab"
    parity = json.loads((folder / "parity.json").read_text())
    assert parity["passed"] and set(parity["by_classes"]) == {"1", "8", "16"}
    card = json.loads((folder / "card.json").read_text())
    assert card["head_config"]["refine_width"] == 16 and card["output_stride"] == 4
    model, card = load_model(str(run / "best.pt"))
    predictor = load(folder)
    extended = np.concatenate([model.text_embeddings.numpy(), get_text_embeddings(NEW_NAMES, card["text_encoder"])])
    inputs = preprocess(SyntheticScenes("val", 64).load(0)[0], card)
    for count in (1, 5, 16):
        predictor.set_embeddings(extended[:count], [*card["classes"], *NEW_NAMES][:count])
        with torch.no_grad():
            reference = model(torch.from_numpy(inputs), torch.from_numpy(extended[:count]))[0].numpy()
        np.testing.assert_allclose(predictor.run(inputs), reference, atol=1e-3)
