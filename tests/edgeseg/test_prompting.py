"""The seed papers' prompting options: their math on tiny cases, and every preset trains and exports."""
import json

import numpy as np
import pytest
import torch

from edgeseg.losses import align_guided_contrastive, presence_targets
from edgeseg.models import Segmenter
from edgeseg.models.layers import l2_normalize
from edgeseg.models.prompting import (
    ContextDecoder,
    InstancePrompt,
    MultiViewScore,
    orthogonal_loss,
)
from edgeseg.presets import PRESETS
from tests.conftest import run_cli


def test_orthogonal_loss_zero_for_orthogonal_views_positive_otherwise():
    eye = torch.eye(4)[:3]  # 3 mutually orthogonal views
    views = eye.expand(2, 5, 3, 4).clone()  # [B, K, P, D]
    assert float(orthogonal_loss(views)) == pytest.approx(0.0, abs=1e-6)
    views[:, :, 1] = views[:, :, 0] + 0.5 * views[:, :, 1]  # view 1 leans towards view 0
    loss = float(orthogonal_loss(views))
    assert loss > 0.1
    parallel = torch.ones(1, 1, 3, 4)
    assert float(orthogonal_loss(parallel)) == pytest.approx(3.0, abs=1e-5)  # 3 pairs, |cos| = 1 each
    assert float(orthogonal_loss(torch.randn(1, 2, 1, 4))) == 0.0  # one view: nothing to constrain


def test_contrastive_loss_prefers_the_true_class():
    torch.manual_seed(0)
    tokens = l2_normalize(torch.randn(4, 16), -1)  # K=4 classes
    labels = torch.tensor([[[0, 1], [2, 3]]])  # [B=1, 2, 2]
    aligned = tokens[labels[0]].permute(2, 0, 1).unsqueeze(0)  # each pixel = its class embedding
    wrong = tokens[(labels[0] + 1) % 4].permute(2, 0, 1).unsqueeze(0)
    good, bad = align_guided_contrastive(aligned, tokens, labels), align_guided_contrastive(wrong, tokens, labels)
    assert float(good) < 0.1 < float(bad)
    # the gradient pulls a misaligned pixel towards its class
    pixels = wrong.clone().requires_grad_(True)
    align_guided_contrastive(pixels, tokens, labels).backward()
    moved = pixels - 0.1 * pixels.grad
    assert float(align_guided_contrastive(moved.detach(), tokens, labels)) < float(bad)
    ignored = torch.full_like(labels, 255)
    assert float(align_guided_contrastive(aligned, tokens, ignored)) == 0.0


def test_context_decoder_gamma_starts_at_1e_minus_4():
    decoder = ContextDecoder(dim=32, heads=4)
    assert torch.all(decoder.gamma == 1e-4)
    tokens, visual = torch.randn(2, 5, 32), torch.randn(2, 32, 4, 4)
    out = decoder(tokens, visual)
    assert out.shape == tokens.shape
    change = (out - tokens).abs().max()
    assert 0 < float(change) < 1e-3  # T' = T + gamma * Dec(T, V): a small but real update


def test_instance_prompt_is_identity_at_init_and_image_conditioned_after_training():
    prompt = InstancePrompt(16)
    tokens = torch.randn(2, 3, 16)
    visual = torch.randn(2, 16, 4, 4)
    assert torch.equal(prompt(tokens, visual), tokens)
    torch.nn.init.normal_(prompt.out.weight)
    out = prompt(tokens.expand(2, -1, -1).clone()[:1].expand(2, -1, -1), visual)
    assert not torch.allclose(out[0], out[1])  # same cached tokens, different images -> different prompts


def test_multiview_sums_view_maps_and_gate_suppresses_absent_classes():
    dim = 8
    score = MultiViewScore(dim, views=2, gate=True)
    with torch.no_grad():
        for view in score.views:
            torch.nn.init.eye_(view.weight)
            view.bias.zero_()
    tokens = torch.eye(dim)[:3].unsqueeze(0)  # 3 classes along axes 0, 1, 2
    pixels = torch.zeros(1, dim, 2, 2)
    pixels[0, 0] = 1.0  # every pixel is class 0; classes 1 and 2 are absent
    pixels[0, 3] = 0.2
    logits, views, presence = score(pixels, tokens)
    assert views.shape == (1, 3, 2, dim)
    cosine = score.score.cosine(pixels, tokens)
    expected = cosine * score.score.scale() + torch.nn.functional.logsigmoid(presence)[:, :, None, None]
    assert torch.allclose(logits, expected, atol=1e-5)
    assert presence[0, 0] > 0 > presence[0, 1]
    assert float(logits[0, 1].max()) < float((cosine * score.score.scale())[0, 1].max())  # gated down


def test_presence_targets_ignore_255():
    labels = torch.tensor([[[0, 2], [255, 2]], [[1, 1], [1, 1]]])
    assert presence_targets(labels, 3).tolist() == [[1, 0, 1], [0, 1, 0]]


def test_spm_freezes_backbone_and_matchers_start_neutral():
    torch.manual_seed(0)
    text = torch.randn(4, 16)
    frozen = Segmenter("mobilenetv3-small", "denseclip", text, {"freeze_backbone": True, "prompt_matcher": True})
    plain = Segmenter("mobilenetv3-small", "denseclip", text, {})
    plain.load_state_dict({k: v for k, v in frozen.state_dict().items() if not k.startswith("matchers.")})
    image = torch.randn(2, 3, 64, 64)
    frozen.eval(), plain.eval()
    assert torch.allclose(frozen(image), plain(image), atol=1e-5)  # zero-initialised prompts change nothing
    assert all(not p.requires_grad for p in frozen.backbone.parameters())
    trainable = sum(p.numel() for p in frozen.parameters() if p.requires_grad)
    assert 0 < trainable < sum(p.numel() for p in frozen.parameters()) // 2
    before = {k: v.clone() for k, v in frozen.backbone.state_dict().items()}
    frozen.train()
    assert not frozen.backbone.training  # BN statistics stay frozen too
    optimizer = torch.optim.AdamW([p for p in frozen.parameters() if p.requires_grad], lr=1e-2)
    labels = torch.randint(0, 4, (2, 64, 64))
    from edgeseg.losses import segmentation_loss

    outputs = frozen.forward_all(image)
    assert len(outputs["aux"]) == 1 + 3  # the score map + one interim semantic map per matcher
    segmentation_loss(outputs, labels)[0].backward()
    optimizer.step()
    assert all(torch.equal(before[k], v) for k, v in frozen.backbone.state_dict().items())
    assert frozen.matchers[0].prompt.weight.abs().sum() > 0  # the matchers did learn


def test_bert_context_tokens_reproduce_the_encoder_and_learn():
    from edgeseg.prompt_learner import build_prompt_learner
    from edgeseg.text import MiniLMEncoder

    learner = build_prompt_learner("minilm", ["chair", "traffic light"], 4)
    bert = learner.tower
    words = learner.ids.new_tensor(MiniLMEncoder()._model.tokenizer("a photo of a", add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        learner.ctx.copy_(bert.embeddings.word_embeddings(words))
        ours = learner()
    reference = MiniLMEncoder().encode(["a photo of a chair", "a photo of a traffic light"])
    assert np.allclose(ours.numpy(), reference, atol=1e-4)
    learner.train()
    loss = -learner()[0, 0]
    loss.backward()
    assert learner.ctx.grad is not None and learner.ctx.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in bert.parameters())


def test_clip_context_tokens_reproduce_encode_text():
    import open_clip

    from edgeseg.prompt_learner import ClipContextPrompts

    torch.manual_seed(0)
    clip = open_clip.CLIP(embed_dim=32, vision_cfg={"layers": 1, "width": 64, "patch_size": 16, "image_size": 32},
                          text_cfg={"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2})
    tokenizer = open_clip.get_tokenizer("ViT-B-32", context_length=16)
    learner = ClipContextPrompts(clip, tokenizer, ["dog", "sky"], 4)
    with torch.no_grad():
        learner.ctx.copy_(clip.token_embedding(tokenizer(["a photo of a"])[0, 1:5]))
        ours = learner()
        reference = clip.encode_text(tokenizer(["a photo of a dog.", "a photo of a sky."]), normalize=True)
    assert torch.allclose(ours, reference, atol=1e-5)


def test_preset_flags_can_be_overridden(tmp_path):
    from edgeseg.config import head_config, parse_with_config, training_parser

    parser = training_parser("t", "t")
    args = parse_with_config(parser, ["--preset", "icpc", "--no-post-prompt", "--device", "cpu"])
    assert args.head == "denseclip" and args.instance_prompt and not args.post_prompt and args.context_tokens == 8
    assert head_config(args) == {"dim": 128, "depth": 2, "heads": 4, "instance_prompt": True, "multiscale_align": True}
    proc = run_cli("edgeseg.train", "--head", "linear", "--post-prompt", "--out", str(tmp_path / "x"))
    assert proc.returncode == 2 and "--post-prompt is not available with --head linear" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_preset_trains_and_exports_to_onnx(preset, tmp_path, capsys):
    """Acceptance 2: each preset trains on CPU; its ONNX graph takes only the image and matches torch."""
    from deploy.export import main as export_main
    from edgeseg.train import main as train_main

    run = tmp_path / "run"
    assert train_main(["--preset", preset, "--backbone", "mobilenetv3-small", "--iters", "3", "--batch-size", "2",
                       "--img-size", "64", "--pretrained", "none", "--val-limit", "2", "--out", str(run)]) == 0
    card = json.loads((run / "model_card.json").read_text())
    assert card["head"] == PRESETS[preset]["head"]
    frozen_random = "warning: --freeze-backbone on a randomly initialised backbone" in capsys.readouterr().err
    assert frozen_random == bool(PRESETS[preset].get("freeze_backbone"))  # --pretrained none: say so
    assert export_main(["--checkpoint", str(run / "last.pt"), "--target", "onnx", "--precision", "fp32",
                        "--out", str(tmp_path / "export"), "--verify-images", "2"]) == 0
    report = json.loads((tmp_path / "export" / "onnx-fp32" / "parity.json").read_text())
    assert report["passed"] and report["max_abs_logit_diff"] <= 1e-3
    import onnx

    graph = onnx.load(str(tmp_path / "export" / "onnx-fp32" / "model.onnx")).graph
    assert [i.name for i in graph.input] == ["image"]
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 3, 64, 64]
    if card.get("context_tokens"):  # new vocabularies go through the learned context, not the templates
        from edgeseg.card import load_model
        from edgeseg.text import main as text_main

        model, _ = load_model(str(run / "last.pt"))
        (tmp_path / "same.txt").write_text("\n".join(card["classes"]) + "\n")
        (tmp_path / "new.txt").write_text("\n".join(["giraffe", *card["classes"][:2]]) + "\n")
        for name in ("same", "new"):
            assert text_main(["--classes", str(tmp_path / f"{name}.txt"), "--context-from", str(run / "last.pt"),
                              "--out", str(tmp_path / f"{name}.npy")]) == 0
        baked = model.text_embeddings.numpy()
        np.testing.assert_allclose(np.load(tmp_path / "same.npy"), baked, atol=1e-5)
        new = np.load(tmp_path / "new.npy")
        assert new.shape == (3, baked.shape[1])
        np.testing.assert_allclose(new[1:], baked[:2], atol=1e-5)
        assert np.abs(new[0] - baked[0]).max() > 1e-2
