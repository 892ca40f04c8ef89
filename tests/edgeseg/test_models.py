"""Backbones, heads and the fusion module: shapes, registries, gradient flow."""
import pytest
import torch

from edgeseg.errors import UserError
from edgeseg.models import BACKBONES, HEADS, Segmenter
from edgeseg.models.backbone import Backbone, backbone_spec
from edgeseg.models.fusion import BridgeBlock


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_builds_four_strided_stages(name):
    backbone = Backbone(name)
    features = backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in features] == backbone.channels
    last = 64 // backbone_spec(name).output_stride  # 2, or 4 where the last stage is dilated (LR-ASPP's)
    assert [f.shape[-1] for f in features] == [16, 8, 4, last]
    assert len(backbone.mean) == 3 and len(backbone.std) == 3


@pytest.mark.parametrize("head", list(HEADS))
@pytest.mark.parametrize("backbone", ["mobilenetv3", "efficientnet"])
def test_head_output_shapes(head, backbone):
    model = Segmenter(backbone, head, torch.randn(7, 32), {"dim": 32, "heads": 2, "depth": 1}).eval()
    with torch.no_grad():
        out = model.forward_all(torch.randn(2, 3, 96, 96))
    stride = {"linear": 32, "lraspp": 8}.get(head, 4)  # the card's output_stride
    assert out["logits"].shape == (2, 7, 96 // stride, 96 // stride)
    assert all(a.shape[:2] == (2, 7) for a in out["aux"])
    assert len(out["aux"]) == (0 if head in ("linear", "lraspp") else 1)


def test_unknown_names_list_valid_ones():
    with pytest.raises(UserError, match="valid: mobilenetv3"):
        Backbone("resnet9000")
    with pytest.raises(UserError, match="valid: fusion, denseclip, linear"):
        Segmenter("mobilenetv3", "nope", torch.randn(3, 8))


def test_fusion_bridge_gradients_flow_both_ways():
    block = BridgeBlock(dim=16, heads=2)
    pixels = torch.randn(2, 16, 5, 5, requires_grad=True)
    tokens = torch.randn(2, 4, 16, requires_grad=True)
    new_pixels, new_tokens = block(pixels, tokens)
    # vision -> text: the tokens' output depends on the pixels
    grad_pixels, = torch.autograd.grad(new_tokens.sum(), pixels, retain_graph=True)
    assert grad_pixels.abs().sum() > 0
    # text -> vision: the pixels' output depends on the tokens
    grad_tokens, = torch.autograd.grad(new_pixels.pow(2).sum(), tokens)
    assert grad_tokens.abs().sum() > 0


def test_text_embeddings_drive_the_classifier():
    torch.manual_seed(0)
    text = torch.randn(5, 16)
    model = Segmenter("mobilenetv3-small", "fusion", text, {"dim": 32, "heads": 2}).eval()
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        baked = model(image)
        same = model(image, text)
        swapped = model(image, text[[1, 0, 2, 3, 4]])
        fewer = model(image, text[:3])
    assert torch.allclose(baked, same)
    assert torch.allclose(swapped[:, 0], baked[:, 1], atol=1e-5)  # permuting classes permutes the logits
    assert fewer.shape[1] == 3  # the fusion head takes any number of classes (open vocabulary)
