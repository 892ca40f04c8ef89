"""Ultralytics YOLO26n-sem as a trained peer (issue 25): trained by its own trainer and recipe on our data,
then scored, exported and timed exactly like our models.

- The data: the same train and val splits (`edgeseg.data.build_source`), written once in its dataset layout
  (images/{train,val}/*.png, masks/{train,val}/*.png with 255 = ignore, data.yaml).
- The budget: the same images seen as `--iters` x `--batch-size` of edgeseg.train, rounded up to whole epochs.
- Its recipe, not ours: its augmentation, losses (CE + Dice + P4 auxiliary), class weights and optimizer
  ('auto'), from random init (its model config; nothing is downloaded). The best epoch is chosen by its own
  validation on our val split, then scored with *our* mIoU (`edgeseg.evaluate`).
- The checkpoint: a weights-only edgeseg checkpoint (card + state dict; head `yolo26-sem`), rebuilt from the
  model config by `load` — so `benchmarks.pareto` exports it with the same exporter, the same class-mask graph
  ending (bilinear upsample + argmax), the same int8 keep-float policy by role and the same parity gates.

Needs ultralytics (run offline: YOLO_OFFLINE=1): `pip install -e .[peers]` and `pip install --no-deps
ultralytics==8.4.190`; `make install-all` does both.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from edgeseg.card import make_card
from edgeseg.errors import UserError

NAME = "yolo26n-sem"
# What differs from our rows, for the tables that show it (benchmarks.peers, benchmarks.pareto)
RECIPE = (f"{NAME}: Ultralytics' YOLO26n-sem (its yolo26-sem.yaml at scale n, random init), trained by its own "
          "trainer and recipe (its augmentation, CE + Dice + P4 auxiliary losses, ENet class weights, optimizer "
          "'auto' = AdamW at its own lr for short runs, best epoch by its validation) on the same train split for the "
          "same images seen (iterations x batch) rounded up to whole epochs (each row's epochs, images_seen); scored "
          "with our mIoU on the same val split; exported by our exporter with the same class-mask ending (bilinear x8 "
          "+ argmax, what its own ONNX/OpenVINO exporter bakes in: a test checks the two masks agree on every "
          "pixel), the same int8 keep-float roles (early layers found by stride; C2PSA's attention) and parity gates")
CONFIG = "yolo26n-sem.yaml"  # ultralytics' yolo26-sem.yaml at scale n
HEAD = "yolo26-sem"  # the card's head: what `load` dispatches on


def _ultralytics():
    """The ultralytics package, offline (its own progress bars kept); a clear error where it is not installed."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    with process_kept():
        try:
            import ultralytics
        except ImportError as exc:
            raise UserError(f"the {NAME} peer needs ultralytics: pip install -e .[peers] && pip install --no-deps "
                            "ultralytics==8.4.190 (make install-all does both)") from exc
    return ultralytics


@contextlib.contextmanager
def process_kept() -> Iterator[None]:
    """Undo what ultralytics does to the whole process on import, and its trainer and exporter on each run:
    PIL.Image.open and torch.save patched (a broken image then makes it try to pip-install a HEIF plugin),
    OMP_NUM_THREADS=1 for every process started after it, torch's threads set to min(8, cores - 1), OpenCV's to
    0 — so a peer loaded or trained in a process changes nothing for the models measured beside it."""
    from PIL import Image

    try:
        import cv2
    except ImportError:
        cv2 = None
    saved = (Image.open, torch.save, torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"),
             cv2.getNumThreads() if cv2 else None)
    try:
        yield
    finally:
        Image.open, torch.save = saved[0], saved[1]
        torch.set_num_threads(saved[2])
        if saved[3] is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved[3]
        if cv2 is not None:
            cv2.setNumThreads(saved[4])


class YoloSemLogits(nn.Module):
    """An ultralytics SemanticSegmentationModel as our pipeline sees a model: image in [0, 1] (the card's mean 0,
    std 1) -> logits at stride 8. Its layers are split where its config splits them, `backbone` (up to the
    C2PSA) and `head`, so layer roles (deploy.roles: `early` by stride under `backbone`) find them as in ours."""

    def __init__(self, model: nn.Module, backbone_layers: int) -> None:
        super().__init__()
        layers = list(model.model)
        self.backbone = nn.ModuleList(layers[:backbone_layers])
        self.head = nn.ModuleList(layers[backbone_layers:])
        self.save = set(model.save)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        saved: list[torch.Tensor | None] = []
        x: Any = image
        for layer in [*self.backbone, *self.head]:
            if layer.f != -1:  # ultralytics' routing: the layer reads earlier outputs by index
                x = saved[layer.f] if isinstance(layer.f, int) else [x if j == -1 else saved[j] for j in layer.f]
            x = layer(x)
            saved.append(x if layer.i in self.save else None)
        return x  # SemanticSegment in eval mode: [B, K, H/8, W/8] (its export-mode upsample/argmax is ours here)


def build(num_classes: int) -> tuple[nn.Module, nn.Module]:
    """(ultralytics model, our view of it) from the model config, random init."""
    _ultralytics()
    from ultralytics.nn.tasks import SemanticSegmentationModel

    model = SemanticSegmentationModel(CONFIG, nc=num_classes, verbose=False)
    return model, YoloSemLogits(model, len(model.yaml["backbone"])).eval()


def card_for(classes: list[str], img_size: int, **extra: Any) -> dict:
    """Its card: RGB in [0, 1] (what its trainer feeds), logits at stride 8, no text side."""
    return make_card(classes=classes, backbone=NAME, head=HEAD, head_config={"config": CONFIG}, img_size=img_size,
                     mean=[0.0, 0.0, 0.0], std=[1.0, 1.0, 1.0], text_encoder="none", text_dim=1, open_vocab=False,
                     **{**extra, "output_stride": 8})


def load(payload: dict) -> tuple[nn.Module, dict]:
    """Rebuild from a weights-only checkpoint payload (card + the ultralytics model's state dict)."""
    card = payload["card"]
    model, view = build(len(card["classes"]))
    try:
        model.load_state_dict(payload["model"], strict=True)
    except RuntimeError as exc:
        raise UserError(f"{NAME} checkpoint weights do not fit {CONFIG} with {len(card['classes'])} classes: "
                        f"{str(exc).splitlines()[0]}") from exc
    return view.eval(), card


def write_dataset(spec: str | None, img_size: int, root: Path) -> Path:
    """Our train and val splits in its layout under `root` (made once; a finished one is reused); -> data.yaml."""
    import yaml
    from PIL import Image

    from edgeseg.data import build_source
    from edgeseg.io import atomic_write

    data_yaml = root / "data.yaml"
    if data_yaml.is_file():
        return data_yaml
    sources = {split: build_source(spec, split, img_size) for split in ("train", "val")}
    for split, source in sources.items():
        for kind in ("images", "masks"):
            (root / kind / split).mkdir(parents=True, exist_ok=True)
        for i in range(len(source)):
            image, mask = source.load(i)
            if mask.max(initial=0) > 255:
                raise UserError(f"{source.describe(i)}: class ids above 255 do not fit its PNG masks")
            Image.fromarray(image).save(root / "images" / split / f"{i:05d}.png")
            Image.fromarray(mask.astype(np.uint8)).save(root / "masks" / split / f"{i:05d}.png")
    classes = sources["train"].classes
    text = yaml.safe_dump({"path": str(root.resolve()), "train": "images/train", "val": "images/val",
                           "masks_dir": "masks", "names": dict(enumerate(classes))}, sort_keys=False)
    atomic_write(data_yaml, lambda tmp: tmp.write_text(text))  # written last: its presence means complete
    return data_yaml


def epochs_for(iters: int, batch: int, train_images: int) -> int:
    """Whole epochs that see at least `iters` x `batch` images (the equal budget, rounded up)."""
    return max(1, math.ceil(iters * batch / train_images))


def train(out: Path, *, iters: int, batch: int, img_size: int, seed: int, data: str | None,
          dataset_root: Path) -> dict:
    """Train one seed with its trainer into OUT/ultralytics, save OUT/best.pt (ours) and return its row."""
    from benchmarks.ablation import training_device
    from benchmarks.cost import count_params, gflops
    from edgeseg.data import build_source
    from edgeseg.evaluate import evaluate_model
    from edgeseg.io import save_checkpoint

    ultralytics = _ultralytics()
    data_yaml = write_dataset(data, img_size, dataset_root)
    classes = build_source(data, "train", img_size).classes
    train_images = len(list((dataset_root / "images" / "train").glob("*.png")))
    epochs = epochs_for(iters, batch, train_images)
    yolo = ultralytics.YOLO(CONFIG, task="semantic")
    started = time.time()
    with process_kept():  # its CPU device setup sets torch's threads to min(8, cores - 1): its recipe, its run only
        yolo.train(data=str(data_yaml), epochs=epochs, imgsz=img_size, batch=batch, seed=seed, deterministic=True,
                   workers=0, device=0 if torch.cuda.is_available() else "cpu", project=str(out.resolve()),
                   name="ultralytics", exist_ok=True, plots=False, amp=torch.cuda.is_available(), verbose=False)
    seconds = time.time() - started
    best = yolo.model  # ultralytics reloads its best epoch into the model when training ends
    card = card_for(classes, img_size, dataset=data or "synthetic-scenes", pretrained="none", seed=seed)
    payload = {"card": card, "model": {k: v.detach().cpu().clone() for k, v in best.float().state_dict().items()}}
    save_checkpoint(out / "best.pt", payload)
    view, card = load(payload)  # rebuilt from its config, as benchmarks.pareto will (tests load the file back)
    miou = evaluate_model(view, card, build_source(data, "val", img_size), progress=False)["mIoU"]
    print(f"== {NAME} seed {seed}: {epochs} epochs, our val mIoU {100 * miou:.1f}", file=sys.stderr)
    return {"variant": NAME, "flags": f"ultralytics {ultralytics.__version__} {CONFIG}, its recipe, {epochs} epochs",
            "head": HEAD, "backbone": NAME, "pretrained": "none", "iters": math.ceil(epochs * train_images / batch),
            "batch": batch, "img_size": img_size, "seed": seed, "epochs": epochs,
            "images_seen": epochs * train_images, "final_mIoU": miou, "best_mIoU": miou,
            "params_M": count_params(view) / 1e6, "trainable_M": count_params(view) / 1e6,
            "gflops_512": gflops(view, 512), "train_seconds": round(seconds, 1), "device": training_device()}
