"""Small exportable building blocks: attention by plain matmul, conv blocks, cosine score maps."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_act(in_ch: int, out_ch: int, kernel: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    """Conv -> BN -> (ReLU)."""
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, groups=groups, bias=False),
                               nn.BatchNorm2d(out_ch)]
    if act:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SepConv(nn.Module):
    """Depthwise 3x3 + pointwise conv with a residual: the CNN branch's block."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dw = conv_bn_act(dim, dim, 3, groups=dim)
        self.pw = conv_bn_act(dim, dim, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.pw(self.dw(x)))


class Attention(nn.Module):
    """Multi-head attention with plain Linear + matmul (no einsum, no fused MHA kernel).

    `project_kv=False` uses the key/value inputs as they are (Mobile-Former style cheap
    pixel keys); then `kv_dim` must equal `dim`.
    """

    def __init__(self, dim: int, heads: int, kv_dim: int | None = None, project_q: bool = True,
                 project_kv: bool = True) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        kv_dim = kv_dim or dim
        self.heads, self.head_dim = heads, dim // heads
        self.q = nn.Linear(dim, dim) if project_q else nn.Identity()
        self.k = nn.Linear(kv_dim, dim) if project_kv else nn.Identity()
        self.v = nn.Linear(kv_dim, dim) if project_kv else nn.Identity()
        self.out = nn.Linear(dim, dim)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, query: torch.Tensor, context: torch.Tensor, key_valid: torch.Tensor | None = None) -> torch.Tensor:
        """`key_valid` [N_context] (1 = a key, 0 = a padded one) takes padded keys out of the attention."""
        q, k, v = self._split(self.q(query)), self._split(self.k(context)), self._split(self.v(context))
        logits = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        weights = masked_softmax(logits, key_valid, dim=-1)
        out = torch.matmul(weights, v).transpose(1, 2)
        return self.out(out.reshape(query.shape[0], query.shape[1], -1))


class FeedForward(nn.Sequential):
    """Linear -> GELU -> Linear."""

    def __init__(self, dim: int, ratio: int = 2) -> None:
        super().__init__(nn.Linear(dim, dim * ratio), nn.GELU(), nn.Linear(dim * ratio, dim))


def flatten_pixels(x: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, H*W, C]."""
    return x.flatten(2).transpose(1, 2)


def unflatten_pixels(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[B, H*W, C] -> [B, C, H, W]."""
    return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], height, width)


def masked_softmax(logits: torch.Tensor, valid: torch.Tensor | None, dim: int) -> torch.Tensor:
    """Softmax over `dim` restricted to the slots where `valid` (a 0/1 vector along `dim`) is 1: the plain
    softmax times the mask, renormalised. Equal to a softmax over the valid slots alone, and every value
    stays in [0, 1] (no large negative bias), so int8 quantization keeps its resolution."""
    if valid is None:
        return torch.softmax(logits, dim=dim)
    shape = [1] * logits.dim()
    shape[dim] = -1
    # exp / sum written out (no SOFTMAX op: TFLite's int8 softmax fixes its output scale to 1/256)
    weights = torch.exp(logits - logits.amax(dim=dim, keepdim=True)) * valid.reshape(shape)
    return weights / weights.sum(dim=dim, keepdim=True).clamp(min=1e-12)


def mask_class_maps(maps: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Class maps [B, K, H, W] whose unused slots (valid 0) are set just below the lowest map at each pixel,
    so they never win the argmax; no constant of its own, so the value range (and int8 scale) barely moves."""
    if valid is None:
        return maps
    keep = valid.reshape(1, -1, 1, 1)
    floor = maps.amin(dim=1, keepdim=True) - 1.0
    return maps * keep + floor * (1.0 - keep)


def l2_normalize(x: torch.Tensor, dim: int, eps: float = 1e-12) -> torch.Tensor:
    """x / ||x|| along `dim`, written as x * rsqrt(sum x^2) so converters keep the broadcast layout-safe
    (F.normalize's expand_as breaks litert's NHWC rewrite under PT2E int8)."""
    return x * torch.rsqrt((x * x).sum(dim=dim, keepdim=True) + eps)


class CosineScore(nn.Module):
    """Pixel-text score map <norm(V), norm(T)> * scale, with a learnable temperature (init 1/0.07)."""

    def __init__(self, init_temperature: float = 0.07, max_scale: float = 100.0) -> None:
        super().__init__()
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / init_temperature)))
        self.max_log_scale = math.log(max_scale)

    def cosine(self, pixels: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """pixels [B, D, H, W], text [K, D] or [B, K, D] -> cosine [B, K, H, W] in [-1, 1]."""
        b, d, h, w = pixels.shape
        pixels = l2_normalize(pixels, dim=1).flatten(2)
        text = l2_normalize(text, dim=-1)
        if text.dim() == 2:
            text = text.unsqueeze(0).expand(b, -1, -1)
        return torch.matmul(text, pixels).reshape(b, -1, h, w)

    def scale(self) -> torch.Tensor:
        return self.log_scale.clamp(max=self.max_log_scale).exp()

    def forward(self, pixels: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.cosine(pixels, text) * self.scale()


class UpAdd(nn.Module):
    """A decoder step's merge: the coarser map upsampled to the lateral's size, plus the lateral (no weights; a
    module so that runtimes' profiles file the resize and add under their decoder level)."""

    def forward(self, coarse: torch.Tensor, lateral: torch.Tensor) -> torch.Tensor:
        return F.interpolate(coarse, size=lateral.shape[-2:], mode="bilinear", align_corners=False) + lateral


class FPNLite(nn.Module):
    """Top-down decoder: a coarse map plus lateral 1x1s of finer stages -> one map per finer stage."""

    def __init__(self, lateral_channels: list[int], dim: int) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(conv_bn_act(c, dim) for c in lateral_channels)
        self.merges = nn.ModuleList(UpAdd() for _ in lateral_channels)
        self.smooth = nn.ModuleList(SepConv(dim) for _ in lateral_channels)

    def forward(self, coarse: torch.Tensor, finer: list[torch.Tensor]) -> list[torch.Tensor]:
        """`finer` goes from coarse to fine (e.g. [F2, F1]); the map after each top-down step, coarse to fine
        (the last one is the finest)."""
        x, maps = coarse, []
        for feature, lateral, merge, smooth in zip(finer, self.laterals, self.merges, self.smooth):
            x = smooth(merge(x, lateral(feature)))
            maps.append(x)
        return maps
