"""Model cost: parameter counts and GFLOPs (torch's FlopCounterMode, 1 MAC = 2 FLOPs)."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def gflops(model: torch.nn.Module, img_size: int = 512) -> float:
    """Forward GFLOPs for one image of img_size x img_size (convs, matmuls, linears)."""
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, 3, img_size, img_size))
    model.train(was_training)
    return counter.get_total_flops() / 1e9
