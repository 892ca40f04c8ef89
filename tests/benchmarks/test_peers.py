"""The trained peer is torchvision's LR-ASPP layer for layer; the frontier keeps only unbeaten points."""
import torch

from benchmarks.pareto import frontier
from edgeseg.models.segmenter import Segmenter
from tests.conftest import run_cli


def test_lraspp_peer_is_torchvision_lraspp_mobilenet_v3_large():
    from torchvision.models.segmentation import lraspp_mobilenet_v3_large

    ours = Segmenter("mobilenetv3-os16", "lraspp", torch.randn(12, 384)).eval()
    reference = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=12)
    shapes = sorted(tuple(p.shape) for p in [*ours.backbone.parameters(), *ours.head.parameters()])
    assert shapes == sorted(tuple(p.shape) for p in reference.parameters())
    features = ours.backbone(torch.zeros(1, 3, 128, 128))
    assert [f.shape[-1] for f in features] == [32, 16, 8, 8]  # last stage dilated: output stride 16
    assert ours(torch.zeros(1, 3, 128, 128)).shape == (1, 12, 16, 16)  # logits at stride 8, like torchvision's


def test_frontier_keeps_points_no_other_beats():
    points = [(10.0, 50.0), (12.0, 49.0), (15.0, 60.0), (9.0, 40.0), (20.0, 60.0)]
    assert frontier(points) == [(9.0, 40.0), (10.0, 50.0), (15.0, 60.0)]


def test_peers_and_pareto_bad_input_is_one_line(tmp_path):
    proc = run_cli("benchmarks.peers", "--models", "edgeseg,segformer", "--out", str(tmp_path))
    assert proc.returncode == 2 and "unknown model(s) segformer" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("benchmarks.pareto", "--models", f"ours={tmp_path / 'missing.pt'}")
    assert proc.returncode == 2 and "not found (train it: python -m benchmarks.peers)" in proc.stderr
