"""Exact export rewrites (deploy.rewrites, issue #25): each rewritten graph against the unrewritten torch graph,
and through an exported artifact run in its runtime."""
import json

import numpy as np
import pytest
import torch

from deploy.export import export
from deploy.outputs import OutputGraph
from deploy.rewrites import REWRITES, FoldedMaskScore, apply, choose
from deploy.runtime import load
from deploy.vocabulary import pad_vocabulary
from edgeseg.card import load_model
from edgeseg.data.synthetic import SyntheticScenes
from edgeseg.errors import UserError
from edgeseg.models import OpenVocabSegmenter
from edgeseg.preprocess import preprocess


def _inputs(card, count=4):
    return [torch.from_numpy(preprocess(SyntheticScenes("val", card["img_size"]).load(i)[0], card)) for i in range(count)]


def test_folded_mask_score_equals_the_cosine_argmax(tiny_run):
    model, card = load_model(str(tiny_run / "best.pt"))
    size = card["img_size"]
    folded, plain = FoldedMaskScore(model, size, "uint8").eval(), OutputGraph(model, "mask", size).eval()
    with torch.no_grad():
        for x in _inputs(card):
            # exact at the logits' stride: the same class wins every pixel
            assert torch.equal(folded.scores(x).argmax(1), model(x).argmax(1))
            # after the bilinear upsample a boundary pixel may flip (the per-pixel norm is gone), as rounding does
            assert (folded(x) == plain(x)).float().mean() >= 0.999
    # the open-vocabulary graph, random vocabularies (near ties everywhere): padded slots never win, K = 1, 5, K_max
    wrapped = OpenVocabSegmenter(model).eval()
    rng = np.random.default_rng(0)
    for count in (1, 5, 16):
        text = rng.standard_normal((count, card["text_dim"])).astype(np.float32)
        padded = [torch.from_numpy(a) for a in pad_vocabulary(text, 16, card["text_dim"])]
        with torch.no_grad():
            for x in _inputs(card, 2):
                assert torch.equal(folded.scores(x, *padded).argmax(1), wrapped(x, *padded).argmax(1))
                got = folded(x, *padded)
                assert int(got.max()) < count
                assert (got == OutputGraph(wrapped, "mask", size)(x, *padded)).float().mean() >= 0.995


def test_rewrites_apply_only_where_they_are_exact_and_asked(tiny_run):
    model, card = load_model(str(tiny_run / "best.pt"))
    mask = dict(card, output="mask", mask_dtype="uint8", rewrites=None)
    assert apply(model, mask, "openvino", "fp32")[1] == ["fold-mask-score"]
    assert apply(model, mask, "coreml", "fp32") == (None, [])  # off where it was not measured (docs/rewrites.md)
    assert apply(model, dict(mask, rewrites=["fold-mask-score"]), "coreml", "fp32")[1] == ["fold-mask-score"]
    assert apply(model, dict(mask, rewrites=[]), "openvino", "fp32") == (None, [])
    assert apply(model, dict(card, output="probs", rewrites=None), "openvino", "fp32") == (None, [])  # softmax needs scale
    # int8: on where measured faster at int8 (docs/rewrites-int8.md); asked for by name, at any precision
    assert apply(model, mask, "onnx", "int8")[1] == ["fold-mask-score"] == apply(model, mask, "tflite", "int8")[1]
    assert apply(model, mask, "openvino", "int8") == (None, [])
    assert apply(model, dict(mask, rewrites=["fold-mask-score"]), "openvino", "int8")[1] == ["fold-mask-score"]
    # the refined head's logits add a second score (stride-4 refinement): no per-pixel factor to fold, not applied
    from edgeseg.models import Segmenter

    refined = Segmenter(card["backbone"], "fusion", model.text_embeddings, {**card["head_config"], "refine_width": 8})
    assert apply(refined.eval(), mask, "openvino", "fp32") == (None, [])
    assert choose("none") == [] and choose("auto") is None and choose("fold-mask-score") == ["fold-mask-score"]
    with pytest.raises(UserError, match="unknown rewrite"):
        choose("fold-everything")
    assert all(any(r.on.values()) and r.about for r in REWRITES.values())


@pytest.mark.parametrize("target", ["onnx", "openvino", "tflite"])
def test_rewritten_artifact_matches_the_unrewritten_torch_graph(target, tiny_run, tmp_path):
    report = export(tiny_run / "best.pt", target, "fp32", tmp_path, output="mask", rewrite="fold-mask-score",
                    verify_images=4, progress=False)[0]
    folder = tmp_path / f"{target}-fp32-mask"
    assert json.loads((folder / "card.json").read_text())["rewrites_applied"] == ["fold-mask-score"]
    assert report["passed"] and report["compared"] == "masks"  # parity: against the unrewritten torch graph
    model, card = load_model(str(tiny_run / "best.pt"))
    plain = OutputGraph(model, "mask", card["img_size"]).eval()
    predictor = load(folder)
    with torch.no_grad():
        for x in _inputs(card, 2):
            assert (predictor.run(x.numpy()) == plain(x).numpy()[0]).mean() >= 0.999


def test_folded_int8_keeps_the_same_roles_float(tiny_run, tmp_path):
    """The folded graph calls the segmenter's parts directly (ONNX names them /backbone/..., not /model/...): the
    keep-float roles still find them, and the folded score plays the `score` role like the cosine it replaces."""
    import onnx

    from deploy.roles import as_called, modules_in_roles

    model, card = load_model(str(tiny_run / "best.pt"))
    folded = FoldedMaskScore(model, card["img_size"], "uint8").eval()
    image = (torch.zeros(1, 3, card["img_size"], card["img_size"]),)
    assert "score" in modules_in_roles(folded, image, ("score",))
    assert as_called(["model.backbone.body.conv_stem", "score"], ["backbone.body", "score", "post"]) == [
        "backbone.body.conv_stem", "score"]
    assert as_called(["inner.head.score"], ["inner.head"]) == ["inner.head.score"]  # a called parent stays
    report = export(tiny_run / "best.pt", "onnx", "int8", tmp_path, output="mask", verify_images=2,
                    calib_data="synthetic", calib_size=4, enforce=False, progress=False)[0]
    folder = tmp_path / "onnx-int8-mask"
    assert json.loads((folder / "card.json").read_text())["rewrites_applied"] == ["fold-mask-score"]
    graph = onnx.load(str(folder / "model.onnx")).graph
    float_convs = [n.name for n in graph.node if n.op_type == "Conv"]
    assert any(name.startswith("/backbone/body/conv_stem/") for name in float_convs)  # the `early` role: float
    assert report["compared"] == "masks" and report["pixel_agreement"] > 0.9
