"""Peer models put through the same export + timing harness as ours."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from edgeseg.card import make_card


class LRASPPLogits(nn.Module):
    """torchvision LR-ASPP MobileNetV3-Large, logits at stride 8 (the final upsample left out,
    as ours leaves out its stride-4 -> full-size upsample)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large

        model = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
        self.backbone, self.classifier = model.backbone, model.classifier

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(image))


def lraspp(card: dict) -> tuple[nn.Module, dict]:
    """LR-ASPP with our class count (random weights: latency does not depend on them)."""
    peer_card = make_card(classes=card["classes"], backbone="lraspp_mobilenet_v3_large", head="lraspp",
                          head_config={}, img_size=card["img_size"], mean=card["mean"], std=card["std"],
                          text_encoder="none", text_dim=1, open_vocab=False)
    peer_card["output_stride"] = 8
    return LRASPPLogits(len(card["classes"])).eval(), peer_card


def other_head(head: str) -> Callable[[dict], tuple[nn.Module, dict]]:
    """Our model with another head (same backbone, classes and text embeddings)."""

    def build(card: dict) -> tuple[nn.Module, dict]:
        from edgeseg.card import build_model

        peer_card = dict(card, head=head, output_stride=32 if head == "linear" else 4)
        return build_model(peer_card).eval(), peer_card

    return build


PEERS: dict[str, Callable[[dict], tuple[nn.Module, dict]]] = {
    "lraspp": lraspp,
    "linear": other_head("linear"),
    "denseclip": other_head("denseclip"),
}
