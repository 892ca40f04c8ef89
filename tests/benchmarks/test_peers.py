"""The trained peer is torchvision's LR-ASPP layer for layer; the frontier keeps only unbeaten points."""
import pytest
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


@pytest.mark.parametrize("name", ["edgeseg-r32-d1", "edgeseg-v4s-r32-d1"])
def test_family_peer_is_the_model_its_family_flags_train(name):
    """PEERS' family members (random weights, for profiles) are the models edgeseg.train builds from FAMILY's flags:
    the same backbone and every tensor of the same shape."""
    from benchmarks.peers import FAMILY, PEERS
    from edgeseg.card import make_card
    from edgeseg.config import head_config, parse_with_config, training_parser

    args = parse_with_config(training_parser("edgeseg.train", ""), FAMILY[name])
    card = make_card(classes=list("abc"), backbone="mobilenetv3", head="fusion", head_config={"dim": 128, "depth": 2,
                     "heads": 4}, img_size=64, mean=[0.0] * 3, std=[1.0] * 3, text_encoder="minilm", text_dim=384)
    model, peer_card = PEERS[name](card)
    trained = Segmenter(args.backbone, args.head, torch.zeros(3, 384), head_config(args))
    assert peer_card["backbone"] == args.backbone and peer_card["output_stride"] == 4
    assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in trained.state_dict().items()}
    assert model.head.refine is not None and len(model.head.fusion.blocks) == 1
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 3, 16, 16)


def test_frontier_keeps_points_no_other_beats():
    points = [(10.0, 50.0), (12.0, 49.0), (15.0, 60.0), (9.0, 40.0), (20.0, 60.0)]
    assert frontier(points) == [(9.0, 40.0), (10.0, 50.0), (15.0, 60.0)]


def test_peers_and_pareto_bad_input_is_one_line(tmp_path):
    proc = run_cli("benchmarks.peers", "--models", "edgeseg,segformer", "--out", str(tmp_path))
    assert proc.returncode == 2 and "unknown model(s) segformer" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("benchmarks.pareto", "--models", f"ours={tmp_path / 'missing.pt'}")
    assert proc.returncode == 2 and "not found (train it: python -m benchmarks.peers)" in proc.stderr
    proc = run_cli("benchmarks.pareto", "--models", f"ours={tmp_path / 'missing.pt'}", "--rounds", "0")
    assert proc.returncode == 2 and "--rounds and --runs must be at least 1" in proc.stderr


def test_peers_seeds_give_mean_and_std_and_rows_are_reused_after_a_move(tmp_path):
    import json
    import shutil

    flags = ["--models", "edgeseg-small", "--seeds", "0,1", "--iters", "2", "--batch-size", "2", "--img-size", "64",
             "--val-limit", "2", "--pretrained", "none"]
    proc = run_cli("benchmarks.peers", *flags, "--out", str(tmp_path / "a"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "a/edgeseg-small/best.pt").is_file() and (tmp_path / "a/edgeseg-small-seed1/best.pt").is_file()
    rows = json.loads((tmp_path / "a/peers.json").read_text())
    assert [r["seed"] for r in rows] == [0, 1] and all(r["device"].startswith("CPU") for r in rows)
    values = [100 * r["best_mIoU"] for r in rows]
    line = next(l for l in (tmp_path / "a/peers.md").read_text().splitlines() if l.startswith("| edgeseg-small"))
    assert f"{sum(values) / 2:.1f} ± " in line and "| 2 |" in line
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # finished rows moved elsewhere (a GPU run's, say) are reused
    again = run_cli("benchmarks.peers", *flags, "--out", str(tmp_path / "b"))
    assert again.returncode == 0 and again.stderr.count("reusing") == 2
    assert run_cli("benchmarks.peers", *flags, "--seed", "3", "--out", str(tmp_path)).returncode == 2


def test_ratio_table_pairs_rounds():
    from benchmarks.pareto import ratio_table

    def row(model, p50s):
        return {"model": model, "target": "onnx", "precision": "fp32", "threads": 2, "p50_rounds_ms": p50s}

    rows = [row("edgeseg", [2.0, 3.0, 4.0]), row("lraspp", [1.0, 3.0, 2.0])]  # per round: 2.0, 1.0, 2.0
    text = ratio_table(rows, ["edgeseg", "lraspp"], 2)
    assert "| edgeseg | 2.00 (1.00–2.00) |" in text and "median of the 3 rounds' ratios" in text
    assert ratio_table(rows, ["edgeseg"], 2) == ""  # no reference peer timed: no table
    rows[1]["passed"] = False  # the peer's artifact below its parity threshold: the cell is not a valid ratio
    assert "2.00 (1.00–2.00) **invalid: lraspp below parity** |" in ratio_table(rows, ["edgeseg", "lraspp"], 2)
    rows.append(row("yolo26n-sem", [1.0, 1.0, 1.0]))  # a second reference peer: its own table beside
    assert "| edgeseg | 3.00 (2.00–4.00) |" in ratio_table(rows, ["edgeseg", "lraspp", "yolo26n-sem"], 2,
                                                         "yolo26n-sem")
