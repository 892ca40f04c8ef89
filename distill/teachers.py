"""Teachers: a large model read densely into a text-aligned map, plus its pixel-class scores.

  openclip:NAME/PRETRAINED  an open_clip ViT image tower read MaskCLIP-style: after the first L-1 blocks,
                            the last block's value path (ln_1 -> value projection -> out_proj) for every
                            patch token, then ln_post and the joint-space projection -> [D, h, w], aligned
                            with the same model's text embeddings of the class names.
  ckpt:PATH                 a trained (larger) edgeseg checkpoint: its pixel embeddings and logits.

Every teacher maps images normalised with *its own* mean/std to (dense [B, D, h, w], scores [B, K, h, w]).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.card import pixel_dim
from edgeseg.errors import UserError

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


def maskclip_dense(visual: nn.Module, image: torch.Tensor) -> torch.Tensor:
    """MaskCLIP dense features of an open_clip VisionTransformer: [B, 3, H, W] -> [B, D, H/p, W/p]."""
    x = visual.conv1(image)
    batch, width, grid_h, grid_w = x.shape
    x = x.flatten(2).transpose(1, 2)
    cls = visual.class_embedding.to(x.dtype).expand(batch, 1, -1)
    pos = visual.positional_embedding.to(x.dtype)
    side = int(math.isqrt(pos.shape[0] - 1))
    patch_pos = pos[1:]
    if (grid_h, grid_w) != (side, side):  # other input sizes: bicubic resize of the position grid
        grid = patch_pos.reshape(1, side, side, width).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(grid_h, grid_w), mode="bicubic", align_corners=False)
        patch_pos = grid.permute(0, 2, 3, 1).reshape(grid_h * grid_w, width)
    x = torch.cat([cls, x], dim=1) + torch.cat([pos[:1], patch_pos], dim=0)
    x = visual.ln_pre(x)
    blocks = visual.transformer.resblocks
    if not getattr(visual.transformer, "batch_first", True):
        raise UserError("open_clip teacher: sequence-first transformers are not supported")
    for block in blocks[:-1]:
        x = block(x)
    last = blocks[-1]
    value_weight = last.attn.in_proj_weight[2 * width:]
    value_bias = last.attn.in_proj_bias[2 * width:] if last.attn.in_proj_bias is not None else None
    values = F.linear(last.ln_1(x), value_weight, value_bias)
    x = last.ls_1(last.attn.out_proj(values))[:, 1:]
    x = visual.ln_post(x) @ visual.proj
    return x.transpose(1, 2).reshape(batch, -1, grid_h, grid_w)


class OpenCLIPTeacher(nn.Module):
    """A CLIP image tower read densely, scored against the same CLIP's text embeddings of the classes."""

    def __init__(self, clip: nn.Module, text_embeddings: torch.Tensor, name: str = "openclip") -> None:
        super().__init__()
        visual = clip.visual
        if not all(hasattr(visual, attr) for attr in ("conv1", "class_embedding", "transformer", "proj")):
            raise UserError(f"teacher {name}: only open_clip ViT image towers can be read densely")
        self.visual = visual.eval().requires_grad_(False)
        self.register_buffer("text", F.normalize(text_embeddings.float(), dim=-1))
        self.logit_scale = float(clip.logit_scale.exp()) if hasattr(clip, "logit_scale") else 100.0
        cfg = getattr(visual, "preprocess_cfg", {}) or {}
        self.mean = list(cfg.get("mean", OPENAI_MEAN))
        self.std = list(cfg.get("std", OPENAI_STD))
        self.id = name
        self.dim = int(visual.proj.shape[1])

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dense = maskclip_dense(self.visual, image)
        cosine = torch.einsum("bdhw,kd->bkhw", F.normalize(dense, dim=1), self.text)
        return dense, cosine * self.logit_scale


class CheckpointTeacher(nn.Module):
    """A trained edgeseg model: pixel embeddings (dense) and logits (scores)."""

    def __init__(self, path: str, classes: Sequence[str]) -> None:
        super().__init__()
        from edgeseg.card import load_model

        model, card = load_model(path)
        full = list(card["classes"])
        if list(classes) != full and not set(classes) < set(full):
            raise UserError(f"--teacher ckpt:{path}: its {len(card['classes'])} classes differ from the data's "
                            f"{len(classes)}; train the teacher on the same data")
        trained = [c for c in full if c not in (card.get("unseen") or [])]
        if leaked := [c for c in trained if c not in classes]:  # zero-shot: the teacher must not know them either
            raise UserError(f"--teacher ckpt:{path} was trained on {', '.join(leaked[:3])}{' ...' if len(leaked) > 3 else ''}, "
                            "held out here (--unseen); distilling it would leak them: use a teacher trained with "
                            "the same --unseen")
        self.register_buffer("rows", torch.tensor([full.index(c) for c in classes]), persistent=False)
        self.model = model.eval().requires_grad_(False)
        self.mean, self.std = list(card["mean"]), list(card["std"])
        self.id = f"ckpt:{Path(path).name} ({card['backbone']}/{card['head']})"
        self.dim = pixel_dim(card["head_config"])

    @torch.no_grad()
    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.model.forward_all(image, self.model.text_embeddings[self.rows])
        return outputs["pixels"], outputs["logits"]


def _openclip_teacher(spec: str, classes: Sequence[str], config: str | None) -> OpenCLIPTeacher:
    import open_clip

    from edgeseg.text import OpenCLIPEncoder, class_embeddings

    name, _, pretrained = spec.partition("/")
    if config:
        if not Path(config).is_file():
            raise UserError(f"--teacher-config {config} not found")
        open_clip.add_model_config(config)
    if not name or not pretrained:
        raise UserError(f"bad teacher 'openclip:{spec}': use openclip:NAME/PRETRAINED "
                        "(PRETRAINED: an open_clip tag whose weights are cached, or a local checkpoint file)")
    encoder = OpenCLIPEncoder(spec)  # loads with the hub offline, for that call only  # clear error when the weights are not on disk
    text = torch.from_numpy(class_embeddings(encoder, classes))
    return OpenCLIPTeacher(encoder._model, text, f"openclip:{name}/{Path(pretrained).name}")


TEACHERS: dict[str, Callable[[str, Sequence[str], str | None], nn.Module]] = {
    "openclip": _openclip_teacher,
    "ckpt": lambda spec, classes, config: CheckpointTeacher(spec, classes),
}


def build_teacher(spec: str, classes: Sequence[str], config: str | None = None) -> nn.Module:
    """`openclip:NAME/PRETRAINED` or `ckpt:PATH` -> a frozen teacher module."""
    kind, _, rest = spec.partition(":")
    if kind not in TEACHERS or not rest:
        raise UserError(f"bad --teacher '{spec}'; use openclip:NAME/PRETRAINED or ckpt:PATH")
    if kind == "ckpt" and not Path(rest).is_file():
        raise UserError(f"--teacher ckpt:{rest}: checkpoint not found")
    return TEACHERS[kind](rest, classes, config)


def renormalize(image: torch.Tensor, mean: Sequence[float], std: Sequence[float], to_mean: Sequence[float],
                to_std: Sequence[float]) -> torch.Tensor:
    """Images normalised with (mean, std) -> normalised with (to_mean, to_std)."""
    def col(values: Sequence[float]) -> torch.Tensor:
        return torch.tensor(np.asarray(values, dtype=np.float32), device=image.device).view(1, -1, 1, 1)

    return (image * col(std) + col(mean) - col(to_mean)) / col(to_std)
