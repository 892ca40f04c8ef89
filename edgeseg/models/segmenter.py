"""The segmenter: backbone -> head scored against text embeddings baked in as a buffer."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgeseg.models.backbone import Backbone
from edgeseg.models.heads import build_head


class Segmenter(nn.Module):
    """Image [B, 3, H, W] (normalised) -> class logits [B, K, H/4, W/4].

    The class text embeddings live in the buffer `text_embeddings` [K, D] (baked into exports);
    passing `text_embeddings` to `forward` overrides them (open-vocabulary use).
    """

    def __init__(self, backbone: str, head: str, text_embeddings: torch.Tensor,
                 head_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.backbone = Backbone(backbone)
        num_classes, text_dim = text_embeddings.shape
        self.head = build_head(head, self.backbone.channels, text_dim, num_classes, **(head_config or {}))
        self.register_buffer("text_embeddings", text_embeddings.clone().float())

    def forward_all(self, image: torch.Tensor, text_embeddings: torch.Tensor | None = None) -> dict[str, Any]:
        """Logits plus the auxiliary outputs the training losses need."""
        text = self.text_embeddings if text_embeddings is None else text_embeddings
        return self.head(self.backbone(image), text)

    def forward(self, image: torch.Tensor, text_embeddings: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_all(image, text_embeddings)["logits"]


class OpenVocabSegmenter(nn.Module):
    """Export wrapper whose graph takes (image, text_embeddings [K, D])."""

    def __init__(self, model: Segmenter) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, text_embeddings: torch.Tensor) -> torch.Tensor:
        return self.model(image, text_embeddings)
