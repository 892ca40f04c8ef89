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


@pytest.mark.parametrize("head", ["fusion", "denseclip"])
def test_out_stride_8_stops_the_decoder_at_stride_8(head):
    base = Segmenter("mobilenetv3", head, torch.randn(5, 32), {"dim": 32, "heads": 2, "depth": 1}).eval()
    fast = Segmenter("mobilenetv3", head, torch.randn(5, 32), {"dim": 32, "heads": 2, "depth": 1,
                                                                "out_stride": 8}).eval()
    with torch.no_grad():
        assert base(torch.randn(1, 3, 128, 128)).shape == (1, 5, 32, 32)
        assert fast(torch.randn(1, 3, 128, 128)).shape == (1, 5, 16, 16)
    # the stride-4 level (its lateral and smoothing block) is gone, nothing else
    assert len(fast.head.decoder.laterals) == len(base.head.decoder.laterals) - 1
    with pytest.raises(UserError, match="out_stride 2"):
        Segmenter("mobilenetv3", head, torch.randn(5, 32), {"dim": 32, "heads": 2, "out_stride": 2})


def test_decoder_width_narrows_pixels_and_tokens_only():
    text = torch.randn(5, 32)
    model = Segmenter("mobilenetv3", "fusion", text, {"dim": 32, "heads": 2, "depth": 1, "decoder_width": 16}).eval()
    with torch.no_grad():
        out = model.forward_all(torch.randn(1, 3, 64, 64))
    assert out["logits"].shape == (1, 5, 16, 16)  # still stride 4
    assert out["pixels"].shape[1] == 16 and out["tokens"].shape[-1] == 16
    assert model.head.fusion.blocks[0].self_attn.q.in_features == 32  # the fusion keeps the head width
    same = Segmenter("mobilenetv3", "fusion", text, {"dim": 32, "heads": 2, "depth": 1, "decoder_width": 32})
    plain = Segmenter("mobilenetv3", "fusion", text, {"dim": 32, "heads": 2, "depth": 1})
    assert same.state_dict().keys() == plain.state_dict().keys()  # width = dim: the old model, old checkpoints load


def test_refined_fusion_head_scores_at_stride_8_and_refines_to_stride_4():
    torch.manual_seed(0)
    text = torch.randn(5, 32)
    config = {"dim": 32, "heads": 2, "depth": 1, "refine_width": 8}
    model = Segmenter("mobilenetv3", "fusion", text, config).eval()
    plain = Segmenter("mobilenetv3", "fusion", text, {"dim": 32, "heads": 2, "depth": 1, "out_stride": 8})
    with torch.no_grad():
        out = model.forward_all(torch.randn(1, 3, 128, 128))
        fewer = model(torch.randn(1, 3, 128, 128), text[:2])
    assert out["logits"].shape == (1, 5, 32, 32)  # logits at stride 4 (the card's output_stride)
    assert out["pixels"].shape == (1, 32, 16, 16)  # the D-wide pixel embeddings stay at stride 8
    assert out["aux"][-1].shape == (1, 5, 16, 16)  # the stride-8 scores are supervised on their own
    assert fewer.shape == (1, 2, 32, 32)  # any K: open-vocabulary artifacts keep working
    # the same decoder as --out-stride 8, plus only the refinement's weights
    extra = set(model.state_dict()) - set(plain.state_dict())
    assert extra and all(key.startswith("head.refine.") for key in extra)
    assert set(plain.state_dict()) <= set(model.state_dict())
    # nothing wider than the refinement (or K) at stride 4: every stride-4 conv has <= 8 outputs
    widths = [m.out_channels for m in model.head.refine.modules() if isinstance(m, torch.nn.Conv2d)]
    assert max(widths) == 8
    # the refinement conditions on the text: other class tokens change the stride-4 correction
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        base = model(image)
        swapped = model(image, text[[1, 0, 2, 3, 4]])
    assert torch.allclose(swapped[:, 0], base[:, 1], atol=1e-5)
    with pytest.raises(UserError, match="needs out_stride 4"):
        Segmenter("mobilenetv3", "fusion", text, {**config, "out_stride": 8})


def test_decoder_steps_keep_their_weights_and_order():
    """FPN-lite's upsample-add is its own weightless module (profiles file it under its level); checkpoints
    saved before load unchanged."""
    from edgeseg.models.layers import FPNLite

    decoder = FPNLite([8, 4], 6)
    assert {k.split(".")[0] for k in decoder.state_dict()} == {"laterals", "smooth"}
    coarse, finer = torch.randn(1, 6, 4, 4), [torch.randn(1, 8, 8, 8), torch.randn(1, 4, 16, 16)]
    maps = decoder.eval()(coarse, finer)
    assert [m.shape[-1] for m in maps] == [8, 16]
    up = torch.nn.functional.interpolate(coarse, size=(8, 8), mode="bilinear", align_corners=False)
    assert torch.allclose(maps[0], decoder.smooth[0](up + decoder.laterals[0](finer[0])))


def test_card_and_config_carry_the_speed_options():
    from edgeseg.card import make_card, pixel_dim
    from edgeseg.config import head_config, parse_with_config, training_parser

    args = parse_with_config(training_parser("edgeseg.train", ""), ["--out-stride", "8", "--decoder-width", "64"])
    config = head_config(args)
    assert config["out_stride"] == 8 and config["decoder_width"] == 64 and pixel_dim(config) == 64
    card = make_card(classes=["a"], backbone="mobilenetv3", head="fusion", head_config=config, img_size=128,
                     mean=[0.0] * 3, std=[1.0] * 3, text_encoder="minilm", text_dim=8)
    assert card["output_stride"] == 8
    default = head_config(parse_with_config(training_parser("edgeseg.train", ""), []))
    assert "out_stride" not in default and "decoder_width" not in default  # default cards stay as they were
    refined = head_config(parse_with_config(training_parser("edgeseg.train", ""), ["--refine-width", "32"]))
    assert refined["refine_width"] == 32 and "out_stride" not in refined
    for argv, needle in ((["--head", "linear", "--out-stride", "8"], "not available with --head linear"),
                         (["--head", "denseclip", "--decoder-width", "64"], "not available with --head denseclip"),
                         (["--decoder-width", "30"], "divisible by --heads 4"),
                         (["--refine-width", "32", "--out-stride", "8"], "drop --out-stride 8"),
                         (["--head", "denseclip", "--refine-width", "32"], "not available with --head denseclip"),
                         (["--refine-width", "-1"], "must be 0 .off. or 1..1024")):
        with pytest.raises(UserError, match=needle):
            parse_with_config(training_parser("edgeseg.train", ""), argv)


def test_family_sizes_are_the_benchmarked_models_and_flags_win(tmp_path):
    from benchmarks.peers import FAMILY
    from edgeseg.config import parse_with_config, training_parser
    from edgeseg.presets import SIZES, describe

    # each size is the model benchmarks.peers trained and docs/family-seeds.md / docs/pareto.md measured
    for size, peer in (("fast", "edgeseg-w64-d1"), ("small", "edgeseg-small")):
        sized = parse_with_config(training_parser("edgeseg.train", ""), ["--size", size])
        flagged = parse_with_config(training_parser("edgeseg.train", ""), FAMILY[peer])
        assert {k: getattr(sized, k) for k in SIZES[size]} == {k: getattr(flagged, k) for k in SIZES[size]}
    assert describe("small", SIZES) == "--backbone mobilenetv3-small --width 64 --depth 1 --out-stride 8"
    args = parse_with_config(training_parser("edgeseg.train", ""), ["--size", "small", "--depth", "2"])
    assert args.backbone == "mobilenetv3-small" and args.depth == 2  # the flag wins over the size
    config = tmp_path / "c.yaml"
    config.write_text("size: fast\n")
    assert parse_with_config(training_parser("edgeseg.train", ""), ["--config", str(config)]).decoder_width == 64
    config.write_text("size: huge\n")
    with pytest.raises(UserError, match="unknown size 'huge'"):
        parse_with_config(training_parser("edgeseg.train", ""), ["--config", str(config)])
