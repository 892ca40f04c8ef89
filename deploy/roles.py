"""Layer roles for int8: which modules of an export graph play which role, found the same way for every model
(ours, LR-ASPP, any peer), so one keep-float policy treats every model alike.

Roles (`ROLES`):
  early      the backbone's layers whose output is at stride <= 4 (stem and first stages), found by running
             the graph once with hooks, whatever the backbone's module names are (timm, torchvision, ...);
  attention  attention, LayerNorm and the fusion module (a transformer's small matmuls and normalisations), and
             any library's attention module (a class named `*Attention`: timm's, ultralytics' C2PSA, ...);
  score      the cosine pixel-text score (and MVP-SEG's multi-view score, and the folded score of
             deploy.rewrites' fold-mask-score);
  embedding  the 1x1 embeddings whose output feeds a cosine score (quantized, they flip argmaxes: measured).

`KEEP_FLOAT[target]` is the one policy: the roles each int8 target keeps float, the same for every model;
a target's int8 recipe may add or drop `early` (`float_roles`). Each target turns the module paths into its
own names: PT2E by module path, ONNX node names via `onnx_module_path`, OpenVINO IgnoredScope patterns.
Export side (torch) except `onnx_module_path` and `KEEP_FLOAT`.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

ROLES = ("early", "attention", "score", "embedding")
# per target, the roles an int8 artifact keeps float: what each target's recipe was measured with
# (docs/onnx-int8-recipes.md, docs/tflite-int8-recipes.md; OpenVINO: the fusion module and the score, what its
# K_max open-vocabulary parity needed), now found by role so that every model gets the same
KEEP_FLOAT: dict[str, tuple[str, ...]] = {
    "onnx": ("early", "score", "embedding"),  # ONNX quantizes convolutions only: attention's matmuls stay float
    "openvino": ("attention", "score"),
    "tflite": ("early", "attention"),
    "coreml": ("early", "attention"),
}
EARLY_STRIDE = 4  # the `early` role: backbone outputs at this stride or finer
EMBEDDINGS = ("pixel_embed", "aux_embed", "align_embed", "align_embeds", "embed")  # heads' score-input 1x1s


def float_roles(target: str, early: bool | None = None) -> tuple[str, ...]:
    """The target's roles kept float; `early` True/False adds/drops the early layers (an int8 recipe's switch)."""
    roles = [r for r in KEEP_FLOAT[target] if r != "early" or early is None]
    if early:
        roles.insert(0, "early")
    return tuple(roles)


def _attention_types() -> tuple[type, ...]:
    from torch import nn

    from edgeseg.models.fusion import BidirectionalFusion
    from edgeseg.models.layers import Attention

    return BidirectionalFusion, Attention, nn.LayerNorm, nn.MultiheadAttention


def foreign_attention(module: torch.nn.Module) -> bool:
    """Another library's self-attention block (timm's `Attention`, ultralytics' `Attention` in C2PSA, ...): by its
    class name, the one thing those libraries share."""
    return type(module).__name__.endswith("Attention")


def _score_types() -> tuple[type, ...]:
    from deploy.rewrites import FoldedScore
    from edgeseg.models.layers import CosineScore
    from edgeseg.models.prompting import MultiViewScore

    return CosineScore, MultiViewScore, FoldedScore


def _outermost(paths: list[str]) -> list[str]:
    """The paths not inside another listed one (a kept-float parent covers its children)."""
    kept: list[str] = []
    for path in sorted(paths, key=lambda p: (p.count("."), p)):
        if not any(path.startswith(parent + ".") for parent in kept):
            kept.append(path)
    return sorted(kept)


def early_modules(graph: torch.nn.Module, example_inputs: tuple) -> list[str]:
    """The backbone's whole layers whose 4-D output is at stride <= EARLY_STRIDE of the image (the first input):
    modules under any `backbone` inside no block that ends coarser (containers — Sequential, ModuleList,
    ModuleDict — are not blocks), so the block that only starts at stride 4 (its expansion 1x1) is not split.
    One forward pass with hooks."""
    import torch
    from torch import nn

    image = example_inputs[0]
    size = max(int(image.shape[-1]), int(image.shape[-2]))  # NCHW or NHWC: the images are square
    strides: dict[str, float] = {}
    hooks = []
    for path, module in graph.named_modules():
        if "backbone" not in path.split("."):
            continue

        def record(_module, _inputs, output, path: str = path) -> None:
            if isinstance(output, torch.Tensor) and output.dim() == 4:
                strides[path] = size / max(int(output.shape[-1]), int(output.shape[-2]), 1)

        hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            graph(*example_inputs)
    finally:
        for hook in hooks:
            hook.remove()
    modules = dict(graph.named_modules())
    containers = (nn.Sequential, nn.ModuleList, nn.ModuleDict)

    def whole(path: str) -> bool:  # no enclosing block (a non-container module with a 4-D output) ends coarser
        parts = path.split(".")
        ancestors = [".".join(parts[:i]) for i in range(1, len(parts))]
        return all(strides[a] <= EARLY_STRIDE for a in ancestors
                   if a in strides and not isinstance(modules[a], containers))

    return _outermost([p for p, stride in strides.items() if stride <= EARLY_STRIDE and whole(p)])


def modules_in_roles(graph: torch.nn.Module, example_inputs: tuple, roles: tuple[str, ...]) -> list[str]:
    """The outermost module paths of `graph` (as its named_modules spells them) that play any of `roles`."""
    if unknown := [r for r in roles if r not in ROLES]:
        raise ValueError(f"unknown role(s) {unknown}; valid: {', '.join(ROLES)}")
    paths: list[str] = []
    if "early" in roles:
        paths += early_modules(graph, example_inputs)
    by_type = (_attention_types() if "attention" in roles else ()) + (_score_types() if "score" in roles else ())
    for path, module in graph.named_modules():
        if not path:  # the graph itself plays no role (e.g. a test graph whose class is named *Attention)
            continue
        parts = path.split(".")
        if (by_type and isinstance(module, by_type)) or ("attention" in roles and foreign_attention(module)):
            paths.append(path)
        elif "embedding" in roles and "head" in parts and parts[-1] in EMBEDDINGS:
            paths.append(path)
    return _outermost(paths)


def onnx_module_path(node_name: str) -> str:
    """The torch module path an ONNX node came from ('' when the exporter gave it none):
    `/head/fusion/blocks.0/ffn/ffn.0/MatMul` -> `head.fusion.blocks.0.ffn.0` (ONNX repeats a parent in its
    child's name: blocks.3/blocks.3.1 -> blocks.3.1)."""
    if not node_name.startswith("/"):
        return ""
    path: list[str] = []
    for part in node_name.split("/")[1:-1]:
        if path and part.startswith(path[-1] + "."):
            path[-1] = part
        else:
            path.append(part)
    return ".".join(path)


def inside(path: str, modules: list[str]) -> bool:
    """Whether module `path` is one of `modules` or inside one."""
    return any(path == m or path.startswith(m + ".") for m in modules)


def as_called(modules: list[str], called: list[str]) -> list[str]:
    """Module paths as an exporter that scopes nodes by the modules *called* spells them (`called`: the module
    paths its nodes carry): a parent whose forward never ran is not in its names — a rewrite that calls
    `self.model.backbone` directly gets nodes `/backbone/...`, not `/model/backbone/...` — so leading parts that
    name no called top-level module are dropped."""
    tops = {path.split(".")[0] for path in called if path}
    spelled = []
    for path in modules:
        parts = path.split(".")
        while len(parts) > 1 and parts[0] not in tops:
            parts = parts[1:]
        spelled.append(".".join(parts))
    return spelled


def openvino_patterns(modules: list[str]) -> list[str]:
    """NNCF IgnoredScope regexes for module paths: OpenVINO names nodes `__module.<path>/aten::op/...`."""
    return [rf".*\b{re.escape(path)}[./].*" for path in modules]
