"""YOLO26n-sem as a trained peer: trained by its own trainer on our data (benchmarks.peers), saved weights-only,
and our view of it (exported by our exporter) computes exactly what its own exporter's ONNX graph computes."""
import importlib.util
import json

import numpy as np
import pytest
import torch

from benchmarks.peers import load_trained
from benchmarks.yolo import HEAD, _ultralytics, build, epochs_for, process_kept
from deploy.roles import modules_in_roles
from tests.conftest import run_cli

# imported only through benchmarks.yolo (which undoes the thread settings its import makes for the whole process)
pytestmark = pytest.mark.skipif(importlib.util.find_spec("ultralytics") is None, reason="ultralytics not installed")


def test_importing_it_leaves_the_process_alone(tmp_path):
    import os

    from PIL import Image

    from edgeseg.errors import UserError
    from edgeseg.io import read_image

    before = (Image.open, torch.save, torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"))
    _ultralytics()
    assert (Image.open, torch.save, torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")) == before
    (tmp_path / "broken.jpg").write_bytes(b"not an image")  # its patched Image.open would try to pip-install pi-heif
    with pytest.raises(UserError):
        read_image(tmp_path / "broken.jpg")


def test_equal_budget_is_whole_epochs_of_at_least_the_images_seen():
    assert epochs_for(1200, 16, 2000) == 10  # 19,200 images: 9.6 epochs, rounded up
    assert epochs_for(2, 4, 11) == 1 and epochs_for(125, 16, 2000) == 1 and epochs_for(126, 16, 2000) == 2


def test_roles_find_its_early_layers_and_its_attention():
    _, view = build(4)
    image = (torch.zeros(1, 3, 64, 64),)
    # P1/2 conv, P2/4 conv and the C3k2 at stride 4: the role found by stride, as in ours and LR-ASPP
    assert modules_in_roles(view, image, ("early",)) == ["backbone.0", "backbone.1", "backbone.2"]
    assert modules_in_roles(view, image, ("attention",)) == ["backbone.10.m.0.attn"]  # C2PSA's attention
    assert view(image[0]).shape == (1, 4, 8, 8)  # logits at stride 8
    from benchmarks.peers import PEERS  # the untrained peer of the timing harness and profiles: the same model
    from edgeseg.card import make_card

    ours = make_card(classes=list("abcd"), backbone="mobilenetv3", head="fusion", head_config={}, img_size=64,
                     mean=[0.5] * 3, std=[0.2] * 3, text_encoder="minilm", text_dim=384)
    peer, card = PEERS["yolo26n-sem"](ours)
    assert card["output_stride"] == 8 and card["mean"] == [0.0] * 3 and card["img_size"] == 64
    assert sorted(peer.state_dict()) == sorted(view.state_dict())


def test_trained_peer_round_trips_and_matches_its_own_exporter(tmp_path, folder_dataset):
    import onnxruntime as ort

    flags = ["--models", "yolo26n-sem", "--iters", "2", "--batch-size", "4", "--img-size", "64",
             "--data", f"folder:{folder_dataset}", "--out", str(tmp_path / "peers")]
    proc = run_cli("benchmarks.peers", *flags)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads((tmp_path / "peers/yolo26n-sem/row.json").read_text())
    assert row["epochs"] == 1 and row["images_seen"] >= 2 * 4 and 0.0 <= row["best_mIoU"] <= 1.0
    assert (tmp_path / "peers/yolo26n-sem-data/masks/val").is_dir()  # our val split, in its layout
    model, card = load_trained(str(tmp_path / "peers/yolo26n-sem/best.pt"))  # weights only, rebuilt from its config
    assert card["head"] == HEAD and card["output_stride"] == 8 and card["classes"] == ["sky", "grass", "road"]
    assert card["mean"] == [0.0] * 3 and card["std"] == [1.0] * 3  # RGB in [0, 1], as its trainer feeds it
    # its own exporter (ONNX: bilinear x8 + argmax baked in) and our view + the same ending agree on every pixel
    with process_kept():  # its exporter's device setup sets torch's threads for the process
        onnx_file = _ultralytics().YOLO(str(tmp_path / "peers/yolo26n-sem/ultralytics/weights/best.pt")).export(
            format="onnx", imgsz=64, simplify=False, dynamic=False)
    session = ort.InferenceSession(onnx_file)
    images = torch.rand(3, 1, 3, 64, 64)
    theirs = np.stack([session.run(None, {session.get_inputs()[0].name: x.numpy()})[0][0] for x in images])
    with torch.no_grad():
        ours = np.stack([torch.nn.functional.interpolate(model(x), scale_factor=8, mode="bilinear")
                         .argmax(1)[0].numpy() for x in images])
    assert theirs.dtype == np.uint8 and (ours == theirs).mean() == 1.0
    again = run_cli("benchmarks.peers", *flags)  # unchanged budget, data and seed: reused, not retrained
    assert again.returncode == 0 and "yolo26n-sem: reusing" in again.stderr
