"""Named recipes of the seed papers' methods (`--preset NAME`): option defaults a config file or the
command line can still override. Each maps onto the options of edgeseg.train; README lists them."""
from __future__ import annotations

from typing import Any

from edgeseg.registry import Registry

PRESETS: Registry[dict[str, Any]] = Registry("preset", {
    # DenseCLIP: context tokens through the text tower, post-model prompting, aux pixel-text CE 0.4.
    "denseclip": {"head": "denseclip", "context_tokens": 8, "post_prompt": True, "aux_weight": 0.4},
    # ICPC on DenseCLIP: + instance-conditioned prompts, align-guided contrastive loss, multi-scale alignment.
    "icpc": {"head": "denseclip", "context_tokens": 8, "post_prompt": True, "instance_prompt": True,
             "contrastive_weight": 0.5, "multiscale_align": True, "aux_weight": 0.4},
    # MVP-SEG: 3 part views per class + orthogonal loss, global prompt refining (presence gate).
    "mvp": {"head": "denseclip", "views": 3, "ortho_weight": 0.1, "presence_gate": True, "presence_weight": 0.1},
    # Prompt-matched tuning: frozen backbone, prompt matchers between its stages.
    "spm": {"head": "denseclip", "freeze_backbone": True, "prompt_matcher": True},
    # Ours: the fusion head on a frozen ImageNet backbone with SPM's prompt matchers, the best row of
    # benchmarks.ablation (README); needs pretrained weights (a frozen random backbone is useless).
    "edgeseg": {"head": "fusion", "freeze_backbone": True, "prompt_matcher": True},
})


# The model family (`--size NAME`): speed/accuracy points of the accuracy-latency frontier (README, docs/pareto.md,
# docs/family-seeds.md). `base` is the default model; the others trade mIoU for latency.
SIZES: Registry[dict[str, Any]] = Registry("size", {
    "base": {"backbone": "mobilenetv3", "width": 128, "depth": 2, "out_stride": 4, "decoder_width": None},
    # a 64-wide decoder / pixel embedding and one fusion block (benchmarks.peers: edgeseg-w64-d1)
    "fast": {"backbone": "mobilenetv3", "width": 128, "depth": 1, "out_stride": 4, "decoder_width": 64},
    # MobileNetV3-Small, 64-wide head, one fusion block, logits at stride 8 (benchmarks.peers: edgeseg-small)
    "small": {"backbone": "mobilenetv3-small", "width": 64, "depth": 1, "out_stride": 8, "decoder_width": None},
})


def describe(name: str, table: dict[str, dict[str, Any]] | None = None) -> str:
    """The flags a preset (or a `SIZES` entry) stands for, as a user would type them."""
    flags = []
    for key, value in (table or PRESETS)[name].items():
        if value is None:
            continue
        flag = "--" + key.replace("_", "-")
        flags.append(flag if value is True else f"{flag} {value}")
    return " ".join(flags)
