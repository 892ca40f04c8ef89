"""On-device prompting modules from the seed papers (all static, exportable, no text tower).

- `ContextDecoder`  DenseCLIP post-model prompting: T' = T + gamma * Dec(T, [global; pixels]),
                    pre-norm layers of self-attn, cross-attn and MLP; gamma per channel, init 1e-4.
- `InstancePrompt`  ICPC instance-conditioned prompting: the cached class tokens get an
                    image-conditioned update delta(T_k, pooled image), zero at init.
- `MultiViewScore`  MVP-SEG: P view projections of each class token, masks from the sum of the
                    per-view score maps, orthogonality between views, and a global-prompt
                    presence gate g_c = sigmoid((max_hw cos(V, p0_c) - b) / tau2).
- `PromptMatcher`   SPM semantic-aware prompt matcher: an interim semantic map of a frozen
                    backbone stage becomes a visual prompt added to the next stage's input.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.models.layers import (
    Attention,
    CosineScore,
    FeedForward,
    flatten_pixels,
    l2_normalize,
    masked_softmax,
)


class _DecoderLayer(nn.Module):
    """Pre-norm transformer decoder layer: self-attn over tokens, cross-attn to visual context, MLP."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.norm2, self.norm3, self.norm_ctx = (nn.LayerNorm(dim) for _ in range(4))
        self.self_attn = Attention(dim, heads)
        self.cross_attn = Attention(dim, heads)
        self.mlp = FeedForward(dim, ratio=4)

    def forward(self, tokens: torch.Tensor, context: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        normed = self.norm1(tokens)
        tokens = tokens + self.self_attn(normed, normed, valid)
        tokens = tokens + self.cross_attn(self.norm2(tokens), self.norm_ctx(context))
        return tokens + self.mlp(self.norm3(tokens))


class ContextDecoder(nn.Module):
    """DenseCLIP's context decoder with a learnable per-channel gamma (init 1e-4)."""

    def __init__(self, dim: int, heads: int = 4, layers: int = 3, gamma_init: float = 1e-4) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_DecoderLayer(dim, heads) for _ in range(layers))
        self.out_norm = nn.LayerNorm(dim)
        self.out = nn.Linear(dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), gamma_init))

    def forward(self, tokens: torch.Tensor, visual: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, K, D], visual [B, D, H, W] -> tokens + gamma * Dec(tokens, [global; pixels])."""
        flat = flatten_pixels(visual)
        context = torch.cat([flat.mean(dim=1, keepdim=True), flat], dim=1)
        x = tokens
        for layer in self.layers:
            x = layer(x, context, valid)
        return tokens + self.gamma * self.out(self.out_norm(x))


class InstancePrompt(nn.Module):
    """ICPC on device: T_k(image) = T_k + W2 relu(W1 [T_k; pool(V)]); W2 starts at zero (identity)."""

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or dim // 2
        self.text_in = nn.Linear(dim, hidden)
        self.image_in = nn.Linear(dim, hidden, bias=False)
        self.out = nn.Linear(hidden, dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, tokens: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """tokens [B, K, D], visual [B, D, H, W] -> image-conditioned tokens [B, K, D]."""
        pooled = visual.mean(dim=(2, 3))
        hidden = F.relu(self.text_in(tokens) + self.image_in(pooled).unsqueeze(1))
        return tokens + self.out(hidden)


def orthogonal_loss(views: torch.Tensor) -> torch.Tensor:
    """MVP-SEG orthogonal constraint: mean over classes of the sum over view pairs of |cos(v_i, v_j)|.

    views [..., K, P, D]; 0 when every class's P views are mutually orthogonal.
    """
    normed = l2_normalize(views, dim=-1)
    pairs = list(itertools.combinations(range(views.shape[-2]), 2))
    if not pairs:
        return views.new_zeros(())
    total = sum((normed[..., i, :] * normed[..., j, :]).sum(-1).abs() for i, j in pairs)
    return total.mean()


class MultiViewScore(nn.Module):
    """MVP-SEG multi-view scoring: P view tokens per class from the (global) class token p0.

    logits = scale * sum_p cos(V, view_p) (+ log g when `gate`), where g is the presence gate of the
    global prompt's map. Returns (logits, views [B, K, P, D], presence logits [B, K] or None).
    """

    def __init__(self, dim: int, views: int = 3, gate: bool = True, gate_temperature: float = 0.1) -> None:
        super().__init__()
        self.views = nn.ModuleList(nn.Linear(dim, dim) for _ in range(views))
        for layer in self.views:  # start each view near p0 with its own random direction
            nn.init.eye_(layer.weight)
            layer.weight.data.add_(torch.randn_like(layer.weight) * 0.5 / dim ** 0.5)
            nn.init.zeros_(layer.bias)
        self.score = CosineScore()
        self.gate = gate
        self.gate_temperature = gate_temperature
        self.gate_bias = nn.Parameter(torch.tensor(0.3))

    def forward(self, pixels: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        view_tokens = torch.stack([view(tokens) for view in self.views], dim=-2)  # [B, K, P, D]
        cosine = sum(self.score.cosine(pixels, view_tokens[..., p, :]) for p in range(len(self.views)))
        logits = cosine * (self.score.scale() / len(self.views))
        if not self.gate:
            return logits, view_tokens, None
        global_map = self.score.cosine(pixels, tokens)
        presence = (global_map.flatten(2).amax(dim=-1) - self.gate_bias) / self.gate_temperature  # [B, K]
        logits = logits + F.logsigmoid(presence)[:, :, None, None]
        return logits, view_tokens, presence


class PromptMatcher(nn.Module):
    """SPM prompt matcher for one stage: interim semantic map S = cos(1x1(F), T) -> prompt 1x1(softmax(S)).

    The prompt conv starts at zero so the frozen backbone's behaviour is unchanged at init.
    `class_agnostic`: the prompt is made from the softmax-weighted class tokens (D channels) instead of
    the K probabilities, so the matcher takes a vocabulary of any size (zero-shot, open vocabulary).
    """

    def __init__(self, channels: int, text_dim: int, num_classes: int, dim: int = 64,
                 class_agnostic: bool = False) -> None:
        super().__init__()
        self.pixel_proj = nn.Conv2d(channels, dim, 1)
        self.text_proj = nn.Linear(text_dim, dim)
        self.score = CosineScore()
        self.class_agnostic = class_agnostic
        self.prompt = nn.Conv2d(dim if class_agnostic else num_classes, channels, 1)
        nn.init.zeros_(self.prompt.weight)
        nn.init.zeros_(self.prompt.bias)

    def forward(self, feature: torch.Tensor, text: torch.Tensor,
                valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """feature [B, C, H, W], text [K, D_text] -> (prompted feature, interim score map [B, K, H, W]).
        `valid` [K] (1 / 0) keeps unused class slots out of the softmax."""
        tokens = self.text_proj(text)
        interim = self.score(self.pixel_proj(feature), tokens)
        probs = masked_softmax(interim, valid, dim=1)
        if self.class_agnostic:  # [D, K] @ [B, K, HW] -> [B, D, H, W]
            batch, classes, height, width = probs.shape
            probs = torch.matmul(tokens.transpose(0, 1), probs.reshape(batch, classes, -1)).reshape(
                batch, -1, height, width)
        return feature + self.prompt(probs), interim
