"""Distil a large teacher's dense, text-aligned features into a lightweight edgeseg student.

python -m distill.train --teacher openclip:NAME/PRETRAINED|ckpt:PATH --student mobilenetv3 [--data PATH] ...

Loss = seg-weight * segmentation loss (0 = distillation only, "before" fine-tuning)
     + feature-weight * (1 - cos(projector(student pixel embeddings), teacher dense map))
     + kl-weight * tau^2 * KL(teacher scores || student logits at temperature tau).
The projector (student width -> teacher dim) is training-only: the checkpoint's `model` is a plain
edgeseg segmenter that `edgeseg.train --init` fine-tunes and `deploy.export` exports unchanged.
All edgeseg.train options apply (--student is --backbone).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

import torch
from torch import nn

from distill.cache import TeacherCache, teacher_inputs
from distill.losses import feature_cosine_loss, score_kl_loss
from distill.teachers import build_teacher
from edgeseg.card import pixel_dim
from edgeseg.config import parse_with_config, training_parser
from edgeseg.data import TrainSet
from edgeseg.errors import UserError, cli_main
from edgeseg.losses import segmentation_loss
from edgeseg.train import Run, report, train


class DistillRun(Run):
    """A training run whose loss adds feature and score-map distillation from a frozen teacher."""

    def setup(self) -> None:
        args = self.args
        # the teacher scores the training vocabulary (the seen classes under --unseen: no unseen name leaks)
        self.teacher = build_teacher(args.teacher, self.train_classes, args.teacher_config).to(self.device)
        self.projector = nn.Conv2d(pixel_dim(self.card["head_config"]), self.teacher.dim, 1)
        self.projector.to(self.device)
        self.card["distilled_from"] = self.teacher.id
        self.cache = None
        if args.teacher_cache:
            self.cache = TeacherCache.build(args.teacher_cache, self.teacher, self.train_source,
                                            args.teacher_size or args.img_size, self.device, self.world)
        print(f"distill: teacher {self.teacher.id} (dim {self.teacher.dim}), weights seg {args.seg_weight} / "
              f"feature {args.feature_weight} / kl {args.kl_weight} (tau {args.tau})"
              f"{', cached' if self.cache else ''}", file=sys.stderr)

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"projector": self.projector}

    def extra_param_groups(self) -> list[dict]:
        return [{"params": list(self.projector.parameters()), "lr_mult": 1.0, "weight_decay": self.args.weight_decay}]

    def extra_state(self) -> dict[str, Any]:
        return {"distill": {"projector": {k: v.detach().cpu() for k, v in self.projector.state_dict().items()},
                            "teacher": self.teacher.id}}

    def load_extra_state(self, payload: dict[str, Any]) -> None:
        if "distill" not in payload:
            raise UserError(f"--resume {self.args.resume}: not a distill.train checkpoint")
        self.projector.load_state_dict(payload["distill"]["projector"])

    def dataset(self, with_geometry: bool = False) -> TrainSet:
        return super().dataset(with_geometry=with_geometry or self.cache is not None)

    def compute_loss(self, outputs: dict, images: torch.Tensor, labels: torch.Tensor,
                     extra: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict]:
        args = self.args
        pixels = outputs["pixels"]
        if self.cache is not None:
            dense, scores, valid = self.cache.crops(extra[0].to(self.device), tuple(pixels.shape[-2:]))
        else:
            dense, scores = self.teacher(teacher_inputs(images, self.card, self.teacher))
            valid = None
        parts: dict[str, torch.Tensor] = {}
        if args.seg_weight:
            seg, _ = segmentation_loss(outputs, labels, self.loss_weights)
            parts["seg"] = args.seg_weight * seg
        if args.feature_weight:
            parts["feature"] = args.feature_weight * feature_cosine_loss(self.projector(pixels), dense, valid)
        if args.kl_weight:
            if valid is not None:
                valid = nn.functional.interpolate(valid, size=outputs["logits"].shape[-2:], mode="nearest")
            parts["kl"] = args.kl_weight * score_kl_loss(outputs["logits"], scores, args.tau, valid)
        total = sum(parts.values())
        return total, {k: float(v.detach()) for k, v in parts.items()}


def distill_parser() -> argparse.ArgumentParser:
    parser = training_parser("python -m distill.train", __doc__.splitlines()[0])
    parser.set_defaults(out="runs/distill")
    g = parser.add_argument_group("distillation")
    g.add_argument("--teacher", required=True, help="openclip:NAME/PRETRAINED (PRETRAINED may be a file) or ckpt:PATH")
    g.add_argument("--teacher-config", default=None, help="open_clip model config JSON for a custom NAME")
    g.add_argument("--student", dest="backbone", default=argparse.SUPPRESS, help="student backbone (alias of --backbone)")
    g.add_argument("--seg-weight", type=float, default=1.0, help="segmentation loss weight (0: distil only)")
    g.add_argument("--feature-weight", type=float, default=1.0, help="feature cosine distillation weight")
    g.add_argument("--kl-weight", type=float, default=1.0, help="score-map KL distillation weight")
    g.add_argument("--tau", type=float, default=2.0, help="KL temperature")
    g.add_argument("--teacher-cache", default=None, help="folder to cache teacher outputs in (teacher runs once)")
    g.add_argument("--teacher-size", type=int, default=None, help="teacher input size for the cache (default --img-size)")
    return parser


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    args = parse_with_config(distill_parser(), argv)
    if min(args.seg_weight, args.feature_weight, args.kl_weight) < 0 or args.tau <= 0:
        raise UserError("loss weights must be >= 0 and --tau > 0")
    if args.context_tokens:
        raise UserError("--context-tokens is not supported by distill.train; add it in the edgeseg.train fine-tune")
    return report(train(args, DistillRun))


if __name__ == "__main__":
    raise SystemExit(main())
