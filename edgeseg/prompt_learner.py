"""DenseCLIP/CoOp context tokens: learnable prompt vectors trained through the frozen text tower.

The prompt of class k is `[start] ctx_1 .. ctx_N <name of k> [end]`; the N context vectors are shared
by the classes and are the only trainable part. The tower runs during training only: after each
step the resulting class embeddings are written into the segmenter's `text_embeddings` buffer, which
is what checkpoints hold and exports bake in (the text tower never ships).

Towers: `minilm` (BERT: mean-pooled last layer) and `openclip:NAME/PRETRAINED` (CLIP: end-token feature
projected into the joint space), behind `build_prompt_learner(encoder_id, classes, n)`.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from edgeseg.errors import UserError
from edgeseg.models.layers import l2_normalize


class ContextPrompts(nn.Module):
    """Base: holds `ctx` [N, width] and a frozen tower; forward() -> L2-normalised class embeddings [K, D]."""

    token_buffers: tuple[str, ...] = ()  # names of the tokenized-class buffers encode() takes

    def __init__(self, tower: nn.Module, n_ctx: int, width: int) -> None:
        super().__init__()
        if n_ctx < 1:
            raise UserError("--context-tokens must be positive")
        self.tower = tower.eval().requires_grad_(False)
        self.ctx = nn.Parameter(torch.randn(n_ctx, width) * 0.02)

    def train(self, mode: bool = True) -> "ContextPrompts":
        super().train(mode)
        self.tower.eval()  # frozen: no dropout, no statistics
        return self

    def context_state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps (the tower is rebuilt from the encoder id)."""
        return {"ctx": self.ctx.detach().cpu()}

    def forward(self) -> torch.Tensor:
        """The class embeddings [K, D] of the classes the learner was built with."""
        return self.encode(*self.tokens)

    @torch.no_grad()
    def embed(self, names: Sequence[str]) -> torch.Tensor:
        """Embeddings [N, D] of any class names through the current context (no gradient): new or
        held-out vocabularies of a model trained with context tokens."""
        return self.encode(*(t.to(self.ctx.device) for t in self.tokenize(names)))

    @property
    def tokens(self) -> tuple[torch.Tensor, ...]:
        return tuple(getattr(self, name) for name in self.token_buffers)

    def tokenize(self, names: Sequence[str]) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def encode(self, *tokens: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class BertContextPrompts(ContextPrompts):
    """Context tokens for a BERT sentence encoder (all-MiniLM-L6-v2): mean pooling over the sequence."""

    token_buffers = ("ids", "mask")

    def __init__(self, bert: nn.Module, tokenizer: Callable, classes: Sequence[str], n_ctx: int) -> None:
        super().__init__(bert, n_ctx, bert.config.hidden_size)
        self.tokenizer = tokenizer
        ids, mask = self.tokenize(classes)
        self.register_buffer("ids", ids, persistent=False)
        self.register_buffer("mask", mask, persistent=False)

    def tokenize(self, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tokenizer, n_ctx = self.tokenizer, self.ctx.shape[0]
        pieces = [tokenizer(name, add_special_tokens=False)["input_ids"] for name in names]
        length = 2 + n_ctx + max(len(ids) for ids in pieces)
        ids = torch.full((len(pieces), length), tokenizer.pad_token_id, dtype=torch.long)
        mask = torch.zeros(len(pieces), length, dtype=torch.long)
        for k, name_ids in enumerate(pieces):
            row = [tokenizer.cls_token_id] + [tokenizer.pad_token_id] * n_ctx + name_ids + [tokenizer.sep_token_id]
            ids[k, :len(row)] = torch.tensor(row)
            mask[k, :len(row)] = 1
        return ids, mask

    def encode(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        embeds = self.tower.embeddings.word_embeddings(ids)
        n = self.ctx.shape[0]
        ctx = self.ctx.unsqueeze(0).expand(embeds.shape[0], -1, -1).to(embeds.dtype)
        embeds = torch.cat([embeds[:, :1], ctx, embeds[:, 1 + n:]], dim=1)
        hidden = self.tower(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(1) / weights.sum(1)
        return l2_normalize(pooled, -1)


class ClipContextPrompts(ContextPrompts):
    """Context tokens for an open_clip text tower (DenseCLIP's prompt learner): the end token's feature."""

    token_buffers = ("ids", "end")

    def __init__(self, clip: nn.Module, tokenizer: Callable, classes: Sequence[str], n_ctx: int) -> None:
        super().__init__(clip, n_ctx, clip.token_embedding.weight.shape[1])
        self.tokenizer = tokenizer
        ids, end = self.tokenize(classes)
        self.register_buffer("ids", ids, persistent=False)
        self.register_buffer("end", end, persistent=False)

    def tokenize(self, names: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        placeholder = " ".join(["X"] * self.ctx.shape[0])
        ids = self.tokenizer([f"{placeholder} {name}." for name in names])
        return ids, ids.argmax(dim=-1)  # the end token has the largest id

    def encode(self, ids: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        clip = self.tower
        embeds = clip.token_embedding(ids)
        n = self.ctx.shape[0]
        ctx = self.ctx.unsqueeze(0).expand(embeds.shape[0], -1, -1).to(embeds.dtype)
        x = torch.cat([embeds[:, :1], ctx, embeds[:, 1 + n:]], dim=1) + clip.positional_embedding
        x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask))
        x = x[torch.arange(x.shape[0]), end]
        projection = clip.text_projection
        x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
        return l2_normalize(x, -1)


def build_prompt_learner(encoder_id: str, classes: Sequence[str], n_ctx: int) -> ContextPrompts:
    """The context-token learner for a text encoder id (`minilm` or `openclip:NAME/PRETRAINED`)."""
    from edgeseg.text import MiniLMEncoder, OpenCLIPEncoder

    if encoder_id == "minilm":
        encoder = MiniLMEncoder()
        return BertContextPrompts(encoder._model[0].auto_model, encoder._model.tokenizer, classes, n_ctx)
    if encoder_id.startswith("openclip:"):
        encoder = OpenCLIPEncoder(encoder_id.split(":", 1)[1])
        if not hasattr(encoder._model, "token_embedding"):
            raise UserError(f"--context-tokens: {encoder_id} has no plain CLIP text tower (token_embedding)")
        return ClipContextPrompts(encoder._model, encoder._tokenizer, classes, n_ctx)
    raise UserError(f"--context-tokens is not supported for text encoder '{encoder_id}'")


def embeddings_from_checkpoint(path: str, classes: Sequence[str],
                               text_encoder: str | None = None) -> tuple[np.ndarray, str]:
    """Class embeddings [K, D] for `classes` through the learned context of a checkpoint trained with
    --context-tokens (what its baked-in buffer holds for its own classes); returns (embeddings, encoder id).
    A `text_encoder` other than the checkpoint's is refused before any tower is loaded."""
    from edgeseg.card import check_card
    from edgeseg.io import load_checkpoint

    payload = load_checkpoint(path)
    card = check_card(payload["card"], path)
    if not card.get("context_tokens") or "context" not in payload:
        raise UserError(f"{path} was not trained with --context-tokens; encode with --text-encoder instead")
    if text_encoder and text_encoder != card["text_encoder"]:
        raise UserError(f"--text-encoder {text_encoder} differs from the checkpoint's {card['text_encoder']}; drop it")
    learner = build_prompt_learner(card["text_encoder"], classes, int(card["context_tokens"])).eval()
    with torch.no_grad():
        learner.ctx.copy_(payload["context"]["ctx"])
        return learner().float().numpy(), card["text_encoder"]


def embed_class_names(card: dict, names: Sequence[str], context: dict | None = None) -> np.ndarray:
    """Embeddings [N, D] of any class names for the model a card describes: through its learned context
    tokens when it was trained with them (`context` = the checkpoint's "context" entry), else with the
    card's text encoder and the template ensemble — the way its own buffer was made."""
    from edgeseg.text import get_text_embeddings

    if card.get("context_tokens"):
        if context is None:
            raise UserError("this model was trained with --context-tokens: pass its checkpoint (with the learned "
                            "context) to embed new class names")
        learner = build_prompt_learner(card["text_encoder"], names, int(card["context_tokens"])).eval()
        with torch.no_grad():
            learner.ctx.copy_(context["ctx"])
            return learner().float().numpy()
    emb = get_text_embeddings(list(names), card["text_encoder"])
    if emb.shape[1] != int(card["text_dim"]):
        raise UserError(f"text encoder {card['text_encoder']} gives {emb.shape[1]}-d embeddings but the model "
                        f"expects {card['text_dim']}")
    return emb
