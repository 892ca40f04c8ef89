"""The segmenter: backbone -> head scored against text embeddings baked in as a buffer."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgeseg.models.backbone import Backbone
from edgeseg.models.heads import build_head
from edgeseg.models.prompting import PromptMatcher


class Segmenter(nn.Module):
    """Image [B, 3, H, W] (normalised) -> class logits [B, K, H/4, W/4].

    The class text embeddings live in the buffer `text_embeddings` [K, D] (baked into exports);
    passing `text_embeddings` to `forward` overrides them (open-vocabulary use).
    """

    def __init__(self, backbone: str, head: str, text_embeddings: torch.Tensor,
                 head_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        config = dict(head_config or {})
        self.freeze_backbone = bool(config.pop("freeze_backbone", False))
        use_matchers = bool(config.pop("prompt_matcher", False))
        class_agnostic = bool(config.get("class_agnostic", False))
        self.backbone = Backbone(backbone)
        num_classes, text_dim = text_embeddings.shape
        self.head = build_head(head, self.backbone.channels, text_dim, num_classes, **config)
        self.register_buffer("text_embeddings", text_embeddings.clone().float())
        self.matchers = nn.ModuleList(PromptMatcher(c, text_dim, num_classes, class_agnostic=class_agnostic) for c in self.backbone.channels[:3]) \
            if use_matchers else None
        if self.freeze_backbone:  # SPM: the shared backbone is never updated (weights nor BN statistics)
            self.backbone.requires_grad_(False)

    def train(self, mode: bool = True) -> "Segmenter":
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def forward_all(self, image: torch.Tensor, text_embeddings: torch.Tensor | None = None,
                    valid: torch.Tensor | None = None) -> dict[str, Any]:
        """Logits plus the auxiliary outputs the training losses need. `valid` [K] (1 for a class, 0 for an
        unused slot of a padded vocabulary) keeps unused slots out of every softmax over classes and
        below every real class in the logits."""
        text = self.text_embeddings if text_embeddings is None else text_embeddings
        if self.matchers is None:
            return self.head(self.backbone(image), text, valid)
        interim: list[torch.Tensor] = []

        def match(stage: int, feature: torch.Tensor) -> torch.Tensor:
            feature, semantic = self.matchers[stage](feature, text, valid)
            interim.append(semantic)
            return feature

        outputs = self.head(self.backbone(image, match), text, valid)
        outputs["aux"] = list(outputs["aux"]) + interim  # interim semantic maps are supervised too
        return outputs

    def forward(self, image: torch.Tensor, text_embeddings: torch.Tensor | None = None,
                valid: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_all(image, text_embeddings, valid)["logits"]


class OpenVocabSegmenter(nn.Module):
    """Export wrapper whose graph takes (image, text_embeddings [K_max, D], valid [K_max]): any 1..K_max
    classes in one static-shape graph; slots with valid 0 never win and do not change the others."""

    def __init__(self, model: Segmenter) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor, text_embeddings: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        return self.model(image, text_embeddings, valid)
