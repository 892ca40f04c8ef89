"""An open_clip text tower as an artifact: CLIP BPE in numpy equal to open_clip's tokenizer, and a (tiny,
random: no CLIP weights can be downloaded here) CLIP tower exported, checked and used on the device."""
import json

import numpy as np
import pytest
import torch

from deploy.runtime import load
from deploy.tokenizer import ClipBPETokenizer, write_clip_vocab

NAMES = ["a photo of a cat.", "traffic light", "Café au lait", "X X X X red ball.", "naïve  façade &amp; co",
         "3D-printed part #2", "ÜBER straße", "日本 犬", "it's a dog's life", "tv monitor!!"]
TINY_CLIP = {"embed_dim": 64, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32,
                                             "patch_size": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}


def test_clip_bpe_matches_open_clip(tmp_path):
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    write_clip_vocab(default_bpe(), tmp_path)
    ours, _ = ClipBPETokenizer(tmp_path / "vocab.json", tmp_path / "merges.txt").encode(NAMES)
    np.testing.assert_array_equal(ours, SimpleTokenizer()(NAMES).numpy())
    assert (tmp_path / "merges.txt").read_text().startswith("#version: 0.2\n")  # the Hugging Face CLIP format


@pytest.fixture
def tiny_clip(tmp_path, monkeypatch):
    """A registered tiny CLIP config with random weights on disk: openclip:edgeseg-tiny-clip/PATH."""
    import open_clip
    from open_clip import factory

    monkeypatch.setitem(factory._MODEL_CONFIGS, "edgeseg-tiny-clip", TINY_CLIP)
    torch.manual_seed(0)
    path = tmp_path / "tiny-clip.pt"
    torch.save(open_clip.create_model("edgeseg-tiny-clip").state_dict(), path)
    return f"openclip:edgeseg-tiny-clip/{path}"


@pytest.mark.parametrize("context_tokens", [0, 2])
def test_openclip_tower_exported_and_typed_on_the_device(tiny_clip, tmp_path, context_tokens):
    from deploy.export import export
    from edgeseg.prompt_learner import embed_class_names
    from edgeseg.train import main as train

    run = tmp_path / "run"
    assert train(["--backbone", "mobilenetv3-small", "--iters", "2", "--batch-size", "2", "--img-size", "64",
                  "--val-limit", "2", "--val-interval", "2", "--pretrained", "none", "--text-encoder", tiny_clip,
                  "--context-tokens", str(context_tokens), "--out", str(run)]) == 0
    report = export(run / "best.pt", "onnx", "fp32", tmp_path / "export", open_vocab=True, text_encoder=True,
                    max_classes=16, progress=False)[0]
    folder = tmp_path / "export" / "onnx-fp32-openvocab"
    spec = json.loads((folder / "text_encoder" / "text_card.json").read_text())
    assert spec["tokenizer"] == "clip-bpe" and spec["max_length"] == 77 and spec["context_tokens"] == context_tokens
    assert (folder / "text_encoder" / "vocab.json").is_file() and (folder / "text_encoder" / "merges.txt").is_file()
    assert report["text_encoder"]["passed"] and report["text_encoder"]["min_cosine"] >= 0.9999
    predictor = load(folder)
    names = ["cat", "sofa", "window"]
    predictor.set_classes(names)
    payload = torch.load(run / "best.pt", weights_only=True)
    expected = embed_class_names(payload["card"], names, payload.get("context"))
    np.testing.assert_allclose(predictor._vocabulary[0][:3], expected, atol=1e-4)


@pytest.mark.slow
def test_openclip_tower_on_tflite_openvino_and_coreml(tiny_clip, tmp_path):
    """The same tower through the phone targets (Core ML: spec + torch simulation on Linux)."""
    from deploy.export import export
    from edgeseg.train import main as train

    run = tmp_path / "run"
    assert train(["--backbone", "mobilenetv3-small", "--iters", "2", "--batch-size", "2", "--img-size", "64",
                  "--val-limit", "2", "--val-interval", "2", "--pretrained", "none", "--text-encoder", tiny_clip,
                  "--out", str(run)]) == 0
    reports = export(run / "best.pt", "tflite,openvino,coreml", "fp32", tmp_path / "export", open_vocab=True,
                     text_encoder=True, max_classes=16, progress=False)
    for report in reports:
        assert report["text_encoder"]["passed"] and report["text_encoder"]["min_cosine"] >= 0.9999, report
    predictor = load(tmp_path / "export" / "tflite-fp32-openvocab")
    predictor.set_classes(["cat", "window"])
    assert predictor.classes == ["cat", "window"]
