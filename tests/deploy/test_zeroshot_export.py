"""An open-vocab ONNX export of a zero-shot model, evaluated on all names (unseen included), matches torch."""
import numpy as np
import pytest

from deploy.runtime import load
from edgeseg.card import load_model
from edgeseg.data.attributes import SyntheticAttributes
from edgeseg.io import load_checkpoint
from edgeseg.evaluate import control_embeddings
from edgeseg.metrics import ConfusionMatrix
from edgeseg.predict import torch_logits_fn
from edgeseg.preprocess import logits_to_mask, preprocess
from edgeseg.zeroshot import zero_shot_metrics
from tests.conftest import ROOT, run_cli

SPLIT = ROOT / "configs" / "splits" / "synthetic-attributes-unseen.txt"


def _scores(logits_fn, card, source, count):
    confusion = ConfusionMatrix(len(card["classes"]))
    predictions = []
    for index in range(count):
        image, mask = source.load(index)
        prediction = logits_to_mask(logits_fn(preprocess(image, card)), *mask.shape)
        confusion.update(prediction, mask)
        predictions.append(prediction)
    summary = confusion.summary(card["classes"])
    return dict(summary, **zero_shot_metrics(summary["per_class_iou"], card["unseen"])), np.stack(predictions)


def test_open_vocab_onnx_scores_unseen_names_like_torch(tmp_path):
    run = tmp_path / "z"
    proc = run_cli("edgeseg.train", "--data", "synthetic-attributes", "--unseen", str(SPLIT), "--head", "denseclip",
                   "--backbone", "mobilenetv3-small", "--pretrained", "none", "--img-size", "64", "--batch-size", "4",
                   "--iters", "10", "--val-limit", "2", "--out", str(run))
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("deploy.export", "--checkpoint", str(run / "last.pt"), "--target", "onnx", "--open-vocab",
                   "--out", str(tmp_path / "export"))
    assert proc.returncode == 0, proc.stderr
    model, card = load_model(str(run / "last.pt"))
    source = SyntheticAttributes("val", 64)
    payload = load_checkpoint(run / "last.pt")
    for text in (model.text_embeddings.numpy(), control_embeddings(card, payload.get("context"), "shuffle")):
        predictor = load(tmp_path / "export" / "onnx-fp32-openvocab", text_embeddings=text)
        artifact, artifact_masks = _scores(predictor.run, card, source, 8)
        reference, torch_masks = _scores(torch_logits_fn(model, "cpu", text), card, source, 8)
        assert (artifact_masks == torch_masks).mean() >= 0.999
        for key in ("mIoU_seen", "mIoU_unseen", "hIoU"):
            assert artifact[key] == pytest.approx(reference[key], abs=2e-3), key
    # the unseen rows are really used: the artifact's unseen-class logits follow the embeddings given, as torch's do
    image = preprocess(source.load(0)[0], card)
    unseen = [card["classes"].index(name) for name in card["unseen"]]
    real, shuffled = model.text_embeddings.numpy(), control_embeddings(card, payload.get("context"), "shuffle")
    outputs = {}
    for name, text in (("real", real), ("shuffled", shuffled)):
        artifact_logits = load(tmp_path / "export" / "onnx-fp32-openvocab", text_embeddings=text).run(image)
        np.testing.assert_allclose(artifact_logits, torch_logits_fn(model, "cpu", text)(image), atol=1e-4)
        outputs[name] = artifact_logits
    assert np.abs(outputs["real"][unseen] - outputs["shuffled"][unseen]).max() > 1e-2
