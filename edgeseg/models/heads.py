"""Segmentation heads: every head scores pixels against (projected) class text embeddings.

Registry `HEADS`: `fusion` (ours: bidirectional fusion + FPN-lite), `denseclip` (score map
concatenated to the last stage + FPN-lite, no fusion), `linear` (linear probe on the last stage).
Each head maps (features [F1..F4], text [K, D]) -> {"logits": [B, K, H/4, W/4] (H/8 with `out_stride=8`,
H/32 for linear), "aux": [score maps supervised by the auxiliary loss]}.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.errors import UserError
from edgeseg.models.fusion import BidirectionalFusion
from edgeseg.models.layers import (
    Attention,
    CosineScore,
    FPNLite,
    SepConv,
    conv_bn_act,
    flatten_pixels,
    mask_class_maps,
    masked_softmax,
    unflatten_pixels,
)
from edgeseg.models.prompting import ContextDecoder, InstancePrompt, MultiViewScore
from edgeseg.registry import Registry

HeadOutput = dict[str, object]


def _resize_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


OUT_STRIDES = (4, 8)  # where the FPN-lite decoders stop; stride 8 skips the stride-4 level (LR-ASPP's output stride)


def decoder_levels(coarsest: int, out_stride: int) -> list[int]:
    """Backbone stage indices the decoder merges, coarse to fine: from stage `coarsest` down to stride 4
    (stage 0) or stride 8 (stage 1)."""
    if out_stride not in OUT_STRIDES:
        raise UserError(f"out_stride {out_stride} is not one of {', '.join(map(str, OUT_STRIDES))}")
    return list(range(coarsest, OUT_STRIDES.index(out_stride) - 1, -1))


class LinearHead(nn.Module):
    """Linear probe: 1x1 projection of the last stage, cosine against projected text."""

    def __init__(self, channels: list[int], text_dim: int, num_classes: int, dim: int = 128, **_: object) -> None:
        super().__init__()
        self.pixel_proj = nn.Conv2d(channels[-1], dim, 1)
        self.text_proj = nn.Linear(text_dim, dim)
        self.score = CosineScore()

    def forward(self, features: list[torch.Tensor], text: torch.Tensor, valid: torch.Tensor | None = None) -> HeadOutput:
        pixels, tokens = self.pixel_proj(features[-1]), self.text_proj(text)
        return {"logits": mask_class_maps(self.score(pixels, tokens), valid), "aux": [], "pixels": pixels, "tokens": tokens}


class TokenPrompts(nn.Module):
    """The on-device prompt options applied to the class tokens before scoring (in this order):
    ICPC instance-conditioned update, then DenseCLIP post-model prompting."""

    def __init__(self, dim: int, heads: int, instance_prompt: bool = False, post_prompt: bool = False) -> None:
        super().__init__()
        self.instance = InstancePrompt(dim) if instance_prompt else None
        self.post = ContextDecoder(dim, heads) if post_prompt else None

    def forward(self, tokens: torch.Tensor, visual: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        if self.instance is not None:
            tokens = self.instance(tokens, visual)
        if self.post is not None:
            tokens = self.post(tokens, visual, valid)
        return tokens


def classify(score: CosineScore, multiview: MultiViewScore | None, pixels: torch.Tensor,
             tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Final pixel-class scores: one cosine map per class, or MVP-SEG's P views (+ presence gate)."""
    if multiview is None:
        return score(pixels, tokens), {}
    logits, views, presence = multiview(pixels, tokens)
    return logits, ({"views": views} if presence is None else {"views": views, "presence": presence})


def score_weighted_tokens(cosine: torch.Tensor, tokens: torch.Tensor, scale: torch.Tensor,
                          valid: torch.Tensor | None = None) -> torch.Tensor:
    """K-independent summary of K score maps: per pixel, the class tokens averaged with the softmax of
    their scores. cosine [B, K, H, W], tokens [B, K, D] -> [B, D, H, W] whatever K is."""
    batch, classes, height, width = cosine.shape
    weights = masked_softmax(cosine * scale, valid, dim=1).reshape(batch, classes, height * width)
    return torch.matmul(tokens.transpose(1, 2), weights).reshape(batch, tokens.shape[-1], height, width)


class DenseCLIPHead(nn.Module):
    """DenseCLIP on a non-CLIP backbone: an attention pool over [global; pixels] of the last stage,
    a pixel-text score map concatenated onto it (kept as cosine in [-1, 1] so int8 quantization keeps
    both ranges), FPN-lite to stride 4, and the text embeddings as classifier.

    The concatenated K score maps fix K (the closed-set form, DenseCLIP's own). `class_agnostic`
    concatenates instead the score-weighted class tokens (D channels, any K): the form used for
    zero-shot training and any vocabulary other than the trained one."""

    def __init__(self, channels: list[int], text_dim: int, num_classes: int, dim: int = 128, heads: int = 4,
                 post_prompt: bool = False, instance_prompt: bool = False, multiscale_align: bool = False,
                 views: int = 1, presence_gate: bool = False, class_agnostic: bool = False, out_stride: int = 4,
                 **_: object) -> None:
        super().__init__()
        self.levels = decoder_levels(2, out_stride)
        self.reduce = conv_bn_act(channels[-1], dim)
        self.norm = nn.LayerNorm(dim)
        self.attn_pool = Attention(dim, heads)
        self.text_proj = nn.Linear(text_dim, dim)
        self.prompts = TokenPrompts(dim, heads, instance_prompt, post_prompt)
        self.score = CosineScore()
        self.class_agnostic = class_agnostic
        self.merge = conv_bn_act(dim + (dim if class_agnostic else num_classes), dim, 3)
        self.decoder = FPNLite([channels[i] for i in self.levels], dim)
        self.align_embeds = nn.ModuleList(nn.Conv2d(dim, dim, 1) for _ in range(2)) if multiscale_align else None
        self.pixel_embed = nn.Conv2d(dim, dim, 1)
        self.multiview = MultiViewScore(dim, views, presence_gate) if views > 1 else None

    def forward(self, features: list[torch.Tensor], text: torch.Tensor, valid: torch.Tensor | None = None) -> HeadOutput:
        x = self.reduce(features[-1])
        height, width = x.shape[-2:]
        flat = flatten_pixels(x)
        context = torch.cat([flat.mean(dim=1, keepdim=True), flat], dim=1)
        dense = flat + self.attn_pool(self.norm(flat), self.norm(context))
        dense_map = unflatten_pixels(dense, height, width)
        tokens = self.text_proj(text).unsqueeze(0).expand(x.shape[0], -1, -1)
        tokens = self.prompts(tokens, dense_map, valid)
        cosine = self.score.cosine(dense_map, tokens)
        scores = score_weighted_tokens(cosine, tokens, self.score.scale(), valid) if self.class_agnostic else cosine
        x = self.merge(torch.cat([dense_map, scores], dim=1))
        maps = self.decoder(x, [features[i] for i in self.levels])
        aux = [cosine * self.score.scale()]
        if self.align_embeds is not None:  # ICPC multi-scale alignment at strides 16 and 8
            aux += [self.score(embed(m), tokens) for embed, m in zip(self.align_embeds, maps[:2])]
        pixels = self.pixel_embed(maps[-1])
        logits, extras = classify(self.score, self.multiview, pixels, tokens)
        return {"logits": mask_class_maps(logits, valid), "aux": aux, "pixels": pixels, "tokens": tokens, **extras}


class TextRefine(nn.Module):
    """The thin text-conditioned stride-4 step of the refined fusion head: the stride-4 backbone features and the
    stride-8 pixel embeddings, both projected to `width` channels, one depthwise-separable block, then a cosine
    score against the class tokens projected to `width`, added to the stride-8 scores upsampled. No tensor wider
    than `width` (or K) runs at stride 4; any K, so open-vocabulary artifacts keep working."""

    def __init__(self, feature_channels: int, pixel_dim: int, width: int) -> None:
        super().__init__()
        self.lateral = conv_bn_act(feature_channels, width, act=False)
        self.coarse = conv_bn_act(pixel_dim, width, act=False)
        self.block = SepConv(width)
        self.embed = nn.Conv2d(width, width, 1)
        self.tokens = nn.Linear(pixel_dim, width)
        self.score = CosineScore()

    def forward(self, feature: torch.Tensor, pixels: torch.Tensor, logits: torch.Tensor,
                tokens: torch.Tensor) -> torch.Tensor:
        """feature [B, C, H, W] (stride 4), pixels [B, D, H/2, W/2] and logits [B, K, H/2, W/2] (stride 8),
        tokens [B, K, D] -> logits [B, K, H, W]."""
        x = self.block(F.relu(self.lateral(feature) + _resize_to(self.coarse(pixels), feature)))
        return _resize_to(logits, feature) + self.score(self.embed(x), self.tokens(tokens))


class FusionHead(nn.Module):
    """Ours: stages 3+4 merged at stride 16, N bidirectional fusion blocks with the class tokens,
    FPN-lite to stride 4 (or 8), cosine of pixel embeddings against the refined tokens. `decoder_width`
    (default: `dim`) narrows the decoder, the pixel embeddings and the scored tokens: the stride-4 work is most of
    the head's time at 512² (docs/profile.md). `refine_width` R > 0 stops the decoder, the pixel embeddings and
    the scores at stride 8 and adds a thin text-conditioned stride-4 step (TextRefine, R channels): logits still
    at `out_stride` 4, with no `fine`-wide tensor at stride 4."""

    def __init__(self, channels: list[int], text_dim: int, num_classes: int, dim: int = 128, heads: int = 4,
                 depth: int = 2, post_prompt: bool = False, instance_prompt: bool = False,
                 multiscale_align: bool = False, views: int = 1, presence_gate: bool = False, out_stride: int = 4,
                 decoder_width: int | None = None, refine_width: int = 0, **_: object) -> None:
        super().__init__()
        if refine_width and out_stride != 4:
            raise UserError(f"refine_width {refine_width} refines to stride 4; it needs out_stride 4, not {out_stride}")
        self.levels = decoder_levels(1, 8 if refine_width else out_stride)
        fine = decoder_width or dim
        self.reduce4 = conv_bn_act(channels[3], dim)
        self.reduce3 = conv_bn_act(channels[2], dim)
        self.text_proj = nn.Sequential(nn.Linear(text_dim, dim), nn.LayerNorm(dim))
        self.fusion = BidirectionalFusion(dim, depth, heads)
        self.prompts = TokenPrompts(dim, heads, instance_prompt, post_prompt)
        self.token_out = nn.Linear(dim, fine)
        self.aux_embed = nn.Conv2d(dim, fine, 1)
        self.align_embed = nn.Conv2d(fine, fine, 1) if multiscale_align else None
        self.narrow = conv_bn_act(dim, fine) if fine != dim else nn.Identity()
        self.decoder = FPNLite([channels[i] for i in self.levels], fine)
        self.pixel_embed = nn.Conv2d(fine, fine, 1)
        self.score = CosineScore()
        self.multiview = MultiViewScore(fine, views, presence_gate) if views > 1 else None
        self.refine = TextRefine(channels[0], fine, refine_width) if refine_width else None

    def fused(self, features: list[torch.Tensor], text: torch.Tensor,
              valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The fused stride-16 map x and the scored class tokens [B, K, fine] (image-conditioned)."""
        f3 = self.reduce3(features[2])
        x = f3 + _resize_to(self.reduce4(features[3]), f3)
        tokens = self.text_proj(text).unsqueeze(0).expand(x.shape[0], -1, -1)
        x, tokens = self.fusion(x, tokens, valid)
        return x, self.token_out(self.prompts(tokens, x, valid))

    def decode(self, features: list[torch.Tensor], x: torch.Tensor) -> list[torch.Tensor]:
        """The decoder's maps, coarse to fine; the last one feeds `pixel_embed`."""
        return self.decoder(self.narrow(x), [features[i] for i in self.levels])

    def forward(self, features: list[torch.Tensor], text: torch.Tensor, valid: torch.Tensor | None = None) -> HeadOutput:
        x, tokens = self.fused(features, text, valid)
        aux = [self.score(self.aux_embed(x), tokens)]
        maps = self.decode(features, x)
        if self.align_embed is not None and len(maps) > 1:  # ICPC multi-scale alignment: add stride 8 to stride 16
            aux.append(self.score(self.align_embed(maps[0]), tokens))
        pixels = self.pixel_embed(maps[-1])
        logits, extras = classify(self.score, self.multiview, pixels, tokens)
        if self.refine is not None:  # the stride-8 scores are supervised on their own too (deep supervision)
            aux.append(logits)
            logits = self.refine(features[0], pixels, logits, tokens)
        return {"logits": mask_class_maps(logits, valid), "aux": aux, "pixels": pixels, "tokens": tokens, **extras}


class LRASPPHead(nn.Module):
    """torchvision's LR-ASPP decoder (Howard et al., 2019) as a peer to compare against: a plain K-way classifier
    from the stride-8 and last features, logits at stride 8; it ignores the text (closed set). With the
    `mobilenetv3-os16` backbone this is torchvision's lraspp_mobilenet_v3_large."""

    def __init__(self, channels: list[int], text_dim: int, num_classes: int, dim: int = 128, **_: object) -> None:
        super().__init__()
        from torchvision.models.segmentation.lraspp import LRASPPHead as TorchvisionLRASPP

        self.decoder = TorchvisionLRASPP(channels[1], channels[-1], num_classes, dim)

    def forward(self, features: list[torch.Tensor], text: torch.Tensor, valid: torch.Tensor | None = None) -> HeadOutput:
        return {"logits": self.decoder({"low": features[1], "high": features[-1]}), "aux": []}


HEADS: Registry[Callable[..., nn.Module]] = Registry("head", {
    "fusion": FusionHead,
    "denseclip": DenseCLIPHead,
    "linear": LinearHead,
    "lraspp": LRASPPHead,  # a peer (no text): benchmarks.peers trains it like ours
})

# Prompting options (head_config keys) each head accepts; edgeseg.config rejects the others.
TOKEN_HEAD_OPTIONS = frozenset({"post_prompt", "instance_prompt", "multiscale_align", "views", "presence_gate",
                                "out_stride"})
HEAD_OPTIONS: dict[str, frozenset[str]] = {
    "fusion": TOKEN_HEAD_OPTIONS | {"decoder_width", "refine_width"},
    "denseclip": TOKEN_HEAD_OPTIONS,
    "linear": frozenset(),
    "lraspp": frozenset(),
}

# Heads whose graph does not depend on K, so open-vocab artifacts accept any number of classes.
CLASS_AGNOSTIC_HEADS = frozenset({"fusion", "linear"})


def accepts_any_k(card: dict) -> bool:
    """Whether the model a card describes takes a vocabulary of any size (its graph has no K-sized layer)."""
    config = card.get("head_config") or {}
    if config.get("class_agnostic"):
        return True
    return card["head"] in CLASS_AGNOSTIC_HEADS and not config.get("prompt_matcher")


def build_head(name: str, channels: list[int], text_dim: int, num_classes: int, **config: object) -> nn.Module:
    """Build a head by name; the error lists the valid names."""
    return HEADS.lookup(name)(channels, text_dim, num_classes, **config)
