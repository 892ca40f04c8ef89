"""CNN-transformer bidirectional fusion ("CLIP for Lightweight Semantic Segmentation").

A CNN branch over the visual map and a transformer branch over the K class tokens, joined
at every block by a two-way bridge (our Mobile-Former reading of the abstract):
  vision -> text: tokens query the flattened pixels (pixels used as keys/values unprojected);
  text branch:    self-attention over the K tokens + FFN;
  text -> vision: pixels query projections of the updated tokens; added back to the map,
                  which then passes a depthwise-separable CNN block.
"""
from __future__ import annotations

import torch
from torch import nn

from edgeseg.models.layers import Attention, FeedForward, SepConv, flatten_pixels, unflatten_pixels


class BridgeBlock(nn.Module):
    """One fusion block: vision->text bridge, text transformer, text->vision bridge, CNN block."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.norm_tokens = nn.LayerNorm(dim)
        self.vision_to_text = Attention(dim, heads, project_kv=False)
        self.norm_self = nn.LayerNorm(dim)
        self.self_attn = Attention(dim, heads)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = FeedForward(dim)
        self.norm_bridge = nn.LayerNorm(dim)
        self.text_to_vision = Attention(dim, heads, project_q=False)
        self.cnn = SepConv(dim)

    def forward(self, pixels: torch.Tensor, tokens: torch.Tensor,
                valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """pixels [B, C, H, W], tokens [B, K, C] -> refined (pixels, tokens). `valid` [K] (1 / 0) masks
        unused class slots out of the token self-attention and the text->vision bridge."""
        height, width = pixels.shape[-2:]
        flat = flatten_pixels(pixels)
        tokens = tokens + self.vision_to_text(self.norm_tokens(tokens), flat)
        normed = self.norm_self(tokens)
        tokens = tokens + self.self_attn(normed, normed, valid)
        tokens = tokens + self.ffn(self.norm_ffn(tokens))
        flat = flat + self.text_to_vision(flat, self.norm_bridge(tokens), valid)
        return self.cnn(unflatten_pixels(flat, height, width)), tokens


class BidirectionalFusion(nn.Module):
    """N bridge blocks; returns the refined visual map V and refined tokens T'."""

    def __init__(self, dim: int = 128, depth: int = 2, heads: int = 4) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(BridgeBlock(dim, heads) for _ in range(depth))

    def forward(self, pixels: torch.Tensor, tokens: torch.Tensor,
                valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.blocks:
            pixels, tokens = block(pixels, tokens, valid)
        return pixels, tokens
