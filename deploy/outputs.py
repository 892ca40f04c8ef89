"""What an exported graph returns (`deploy.export --output`): the raw logits, or the app's post-processing
moved into the graph.

  logits  [1, K, S/stride, S/stride] float32, as trained (the app upsamples and takes the argmax)
  probs   [1, K, S, S] float32: softmax over classes of the logits upsampled to the input size
  mask    [1, S, S] class indices: argmax of the upsampled logits, uint8 (int32 where K > 255, or for
          Core ML, whose outputs cannot be uint8)

Export side only (torch); runtimes read `card["output"]`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.api import OUTPUTS  # the one list of outputs: mask, probs, logits


def mask_dtype(classes: int, target: str) -> str:
    """The mask's integer type: uint8 where it fits and the target has it, else int32."""
    return "uint8" if classes <= 255 and target != "coreml" else "int32"


class PostProcess(nn.Module):
    """logits [1, K, h, w] -> probs [1, K, S, S] or mask [1, S, S]: a module of its own so that int8
    quantizers keep it float (deploy.quantize excludes this type; quantized, the upsampled scores tie)."""

    def __init__(self, output: str, size: int, dtype: str = "uint8") -> None:
        super().__init__()
        self.output, self.size, self.dtype = output, size, getattr(torch, dtype)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(logits, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.output == "probs":
            return up.softmax(dim=1)
        return up.argmax(dim=1).to(self.dtype)


class OutputGraph(nn.Module):
    """Wraps an export graph (any inputs -> logits [1, K, h, w]) so it returns `output` at `size`x`size`."""

    def __init__(self, graph: nn.Module, output: str, size: int, dtype: str = "uint8") -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, got {output}")
        self.inner = graph  # not `graph`: TorchScript owns that name
        self.post = PostProcess(output, size, dtype) if output != "logits" else None

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        logits = self.inner(*inputs)
        return logits if self.post is None else self.post(logits)


class UnitInput(nn.Module):
    """The image input as float RGB in [0, 1] with the per-channel normalisation inside the graph: what
    MediaPipe Tasks feeds (its NormalizationOptions hold one scalar mean/std: 0 and 255 here)."""

    def __init__(self, graph: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.inner = graph
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        return self.inner((image - self.mean) / self.std, *rest)
