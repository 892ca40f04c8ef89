"""distill: the MaskCLIP dense teacher, the losses, the cache geometry, and the CLI end to end."""
import json

import numpy as np
import pytest
import torch

from distill.cache import TeacherCache
from distill.losses import feature_cosine_loss, score_kl_loss
from distill.teachers import OpenCLIPTeacher, maskclip_dense
from edgeseg.io import load_checkpoint
from tests.conftest import run_cli

TINY_CLIP = {"embed_dim": 32,
             "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
             "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2}}


def tiny_clip():
    import open_clip

    torch.manual_seed(0)
    return open_clip.CLIP(**TINY_CLIP).eval()


def test_dense_teacher_map_is_the_hand_computed_value_path():
    clip = tiny_clip()
    visual = clip.visual
    with torch.no_grad():  # non-trivial LayerNorm/bias weights, so every term of the path matters
        for param in visual.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    image = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        dense = maskclip_dense(visual, image)
        # by hand: run the first L-1 blocks with open_clip's own embedding, then the last block's attention
        # restricted to the diagonal (each token attends to itself only = its value path), ln_post, proj
        x = visual._embeds(image)
        for block in visual.transformer.resblocks[:-1]:
            x = block(x)
        last = visual.transformer.resblocks[-1]
        n = x.shape[1]
        only_self = torch.full((n, n), float("-inf")).fill_diagonal_(0.0)
        y = last.ln_1(x)
        attended = last.attn(y, y, y, need_weights=False, attn_mask=only_self)[0]
        expected = (visual.ln_post(attended[:, 1:]) @ visual.proj).transpose(1, 2).reshape(2, 32, 4, 4)
    assert dense.shape == (2, 32, 4, 4)  # the text dimension, on the 4x4 patch grid
    assert torch.allclose(dense, expected, atol=1e-5)
    # other input sizes: the position grid is resized, the map follows the patch grid
    assert maskclip_dense(visual, torch.randn(1, 3, 96, 128)).shape == (1, 32, 6, 8)


def test_dense_teacher_scores_are_aligned_with_the_text_embeddings():
    clip = tiny_clip()
    with torch.no_grad():
        image = torch.randn(1, 3, 64, 64)
        dense = maskclip_dense(clip.visual, image)
        # text "embeddings" = the dense features of two pixels: each pixel must score highest for itself
        text = torch.stack([dense[0, :, 0, 0], dense[0, :, 3, 3]])
        teacher = OpenCLIPTeacher(clip, text, "tiny")
        _, scores = teacher(image)
    assert scores.shape == (1, 2, 4, 4) and teacher.dim == 32
    assert scores[0, 0, 0, 0] > scores[0, 1, 0, 0] and scores[0, 1, 3, 3] > scores[0, 0, 3, 3]
    assert float(scores[0, 0, 0, 0]) == pytest.approx(teacher.logit_scale, rel=1e-4)  # cos = 1


def test_losses_zero_when_student_equals_teacher_positive_otherwise():
    torch.manual_seed(0)
    feats, scores = torch.randn(2, 8, 5, 5), torch.randn(2, 4, 5, 5)
    assert float(feature_cosine_loss(feats, feats)) == pytest.approx(0.0, abs=1e-6)
    assert float(feature_cosine_loss(feats * 3.0, feats)) == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert float(feature_cosine_loss(torch.randn(2, 8, 5, 5), feats)) > 0.5
    assert float(score_kl_loss(scores, scores, tau=2.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(score_kl_loss(torch.randn(2, 4, 5, 5), scores, tau=2.0)) > 0.01
    # the teacher map is resized to the student's, and invalid pixels do not count
    assert feature_cosine_loss(feats, torch.randn(2, 8, 3, 3)).ndim == 0
    valid = torch.zeros(2, 1, 5, 5)
    assert float(feature_cosine_loss(torch.randn(2, 8, 5, 5), feats, valid)) == 0.0


def test_cache_crop_follows_the_augmentation_box(tmp_path):
    """A cached map cut with the crop's box equals the map of the crop itself (identity teacher)."""
    from edgeseg.data.transforms import train_augment

    image = np.zeros((40, 60, 3), np.uint8)
    image[..., 0] = np.arange(60)[None, :] * 4  # a horizontal ramp in red
    image[..., 1] = np.arange(40)[:, None] * 6  # a vertical ramp in green
    folder = tmp_path / "cache"
    folder.mkdir()
    full = np.asarray(torch.nn.functional.interpolate(
        torch.from_numpy(image).permute(2, 0, 1)[None].float(), size=(32, 32), mode="bilinear",
        align_corners=False)[0])
    np.save(folder / "dense.npy", full[None].astype(np.float16))
    np.save(folder / "scores.npy", full[None, :2].astype(np.float16))
    cache = TeacherCache(folder)
    for seed in range(6):
        geometry: list[float] = []
        crop, _ = train_augment(image, np.zeros((40, 60), np.int64), 32, np.random.default_rng(seed),
                                scale_range=(1.0, 1.5), geometry=geometry)
        dense, _, valid = cache.crops(torch.tensor([[0.0, *geometry]]), (8, 8))
        assert bool(valid.all())
        target = torch.nn.functional.avg_pool2d(torch.from_numpy(crop.astype(np.float32)).permute(2, 0, 1)[None], 4)
        for channel in (0, 1):  # the ramps (photometric jitter changes offsets/contrast, not direction)
            got, want = dense[0, channel].flatten(), target[0, channel].flatten()
            assert np.corrcoef(got.numpy(), want.numpy())[0, 1] > 0.9


def test_distill_cli_with_an_edgeseg_teacher_then_init_and_export(tiny_run, tmp_path):
    out = tmp_path / "student"
    proc = run_cli("distill.train", "--teacher", f"ckpt:{tiny_run / 'best.pt'}", "--student", "mobilenetv3-small",
                   "--width", "64", "--iters", "3", "--batch-size", "2", "--img-size", "64", "--pretrained", "none",
                   "--val-limit", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "distill: teacher ckpt:best.pt" in proc.stderr
    payload = load_checkpoint(out / "last.pt")
    assert payload["distill"]["projector"]["weight"].shape == (128, 64, 1, 1)  # student 64 -> teacher 128
    assert not any(k.startswith(("projector", "teacher")) for k in payload["model"])  # the teacher never ships
    assert payload["card"]["distilled_from"].startswith("ckpt:best.pt")
    tuned = tmp_path / "tuned"
    proc = run_cli("edgeseg.train", "--init", str(out / "last.pt"), "--backbone", "mobilenetv3-small", "--width", "64",
                   "--iters", "2", "--batch-size", "2", "--img-size", "64", "--val-limit", "2", "--out", str(tuned))
    assert proc.returncode == 0, proc.stderr
    init_line = next(line for line in proc.stderr.splitlines() if line.startswith("init:"))
    loaded, total = map(int, init_line.split()[1].split("/"))
    assert loaded == total - 1  # everything but the text-embedding buffer
    proc = run_cli("deploy.export", "--checkpoint", str(out / "best.pt"), "--target", "onnx", "--precision", "fp32",
                   "--out", str(tmp_path / "export"), "--verify-images", "2")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "export" / "onnx-fp32" / "parity.json").read_text())
    assert report["passed"] and report["max_abs_logit_diff"] <= 1e-3


def test_distill_cli_with_a_tiny_openclip_teacher_and_cache(tmp_path):
    config = tmp_path / "tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    weights = tmp_path / "tiny-clip.pt"
    torch.save(tiny_clip().state_dict(), weights)
    args = ["distill.train", "--teacher", f"openclip:tiny-clip/{weights}", "--teacher-config", str(config),
            "--student", "mobilenetv3-small", "--iters", "2", "--batch-size", "2", "--img-size", "64",
            "--pretrained", "none", "--val-limit", "2", "--teacher-cache", str(tmp_path / "cache")]
    proc = run_cli(*args, "--out", str(tmp_path / "a"))
    assert proc.returncode == 0, proc.stderr
    assert "teacher cache written" in proc.stderr
    dense = np.load(next((tmp_path / "cache").glob("*/dense.npy")))
    assert dense.shape[1:] == (32, 4, 4)  # [N, text dim, 64/16, 64/16]
    proc = run_cli(*args, "--out", str(tmp_path / "b"))  # the second run reuses the cache
    assert proc.returncode == 0 and "teacher cache: " in proc.stderr


def test_missing_teacher_weights_is_a_clear_error(tmp_path):
    proc = run_cli("distill.train", "--teacher", "openclip:ViT-B-16/openai", "--iters", "1", "--out", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "ViT-B-16/openai" in proc.stderr and "openclip:NAME/PATH" in proc.stderr
    proc = run_cli("distill.train", "--teacher", f"ckpt:{tmp_path / 'nope.pt'}", "--out", str(tmp_path))
    assert proc.returncode == 2 and "checkpoint not found" in proc.stderr
