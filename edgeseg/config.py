"""Training options: argparse defaults, overridden by a YAML --config, overridden by the command line."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from edgeseg.errors import UserError
from edgeseg.losses import LossWeights
from edgeseg.models import BACKBONES, HEADS
from edgeseg.models.heads import HEAD_OPTIONS, OUT_STRIDES
from edgeseg.presets import PRESETS, SIZES, describe
from edgeseg.text import DEFAULT_ENCODER


def training_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options shared by edgeseg.train and distill.train."""
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config", default=None, help="YAML file of option: value (command-line flags win)")
    p.add_argument("--backbone", default="mobilenetv3", help=f"one of: {', '.join(BACKBONES)}")
    p.add_argument("--head", default="fusion", help=f"one of: {', '.join(HEADS)}")
    p.add_argument("--pretrained", default="auto", help="auto | none | PATH to a timm state dict")
    p.add_argument("--data", default=None, help="default: the embedded synthetic-scenes; ade20k:PATH, folder:PATH or PATH")
    p.add_argument("--text-encoder", default=DEFAULT_ENCODER, help="minilm or openclip:NAME/PRETRAINED")
    p.add_argument("--iters", type=int, default=2000, help="training iterations")
    p.add_argument("--batch-size", type=int, default=16, help="images per iteration (per process)")
    p.add_argument("--img-size", type=int, default=128, help="square crop / static model input size")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate of the head")
    p.add_argument("--backbone-lr-mult", type=float, default=None,
                   help="backbone lr multiplier (default 0.1 with ImageNet weights, 1.0 from random init)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup-iters", type=int, default=None, help="linear warm-up (default: 5%% of --iters)")
    p.add_argument("--aux-weight", type=float, default=0.4, help="weight of the auxiliary pixel-text CE loss")
    p.add_argument("--size", default=None, choices=list(SIZES),
                   help="a member of the model family (sets --backbone/--width/--depth/--out-stride/--decoder-width/--refine-width; "
                        "flags given win): " + "; ".join(f"{n} = {describe(n, SIZES)}" for n in SIZES))
    p.add_argument("--width", type=int, default=128, help="head width (token / pixel embedding dim)")
    p.add_argument("--depth", type=int, default=2, help="number of fusion bridge blocks")
    p.add_argument("--heads", type=int, default=4, help="attention heads in the head")
    p.add_argument("--out-stride", type=int, default=4, choices=OUT_STRIDES,
                   help="stride of the logits (fusion/denseclip): 8 stops the decoder at stride 8, like LR-ASPP — "
                        "about a quarter less time at 512² (docs/profile.md)")
    p.add_argument("--decoder-width", type=int, default=None,
                   help="fusion head: width of the decoder, pixel embeddings and scored tokens (default: --width); "
                        "narrower is faster at stride 4")
    p.add_argument("--refine-width", type=int, default=0,
                   help="fusion head: 0 = decoder and scores at stride 4; R > 0 = decoder and scores at stride 8 plus "
                        "a thin (R-channel) text-conditioned stride-4 refinement, logits still at stride 4 (docs/heads.md)")
    g = p.add_argument_group("prompting (the seed papers' methods; see --preset)")
    g.add_argument("--preset", default=None, choices=sorted(PRESETS),
                   help="named method: sets the options below (explicit flags and --config still win)")
    g.add_argument("--context-tokens", type=int, default=0,
                   help="DenseCLIP/CoOp: N learnable context tokens trained through the text tower (0 = off)")
    g.add_argument("--post-prompt", action=argparse.BooleanOptionalAction, default=False,
                   help="DenseCLIP post-model prompting: T' = T + gamma*Dec(T, V), gamma init 1e-4")
    g.add_argument("--instance-prompt", action=argparse.BooleanOptionalAction, default=False,
                   help="ICPC: image-conditioned update of the cached class embeddings")
    g.add_argument("--contrastive-weight", type=float, default=0.0, help="ICPC align-guided pixel-text contrastive loss")
    g.add_argument("--multiscale-align", action=argparse.BooleanOptionalAction, default=False,
                   help="ICPC: supervised score maps at more decoder scales")
    g.add_argument("--views", type=int, default=1, help="MVP-SEG: prompt views per class (1 = off)")
    g.add_argument("--ortho-weight", type=float, default=0.1, help="MVP-SEG orthogonal loss between views (--views > 1)")
    g.add_argument("--presence-gate", action=argparse.BooleanOptionalAction, default=False,
                   help="MVP-SEG global prompt refining: gate out classes absent from the image (--views > 1)")
    g.add_argument("--presence-weight", type=float, default=0.1, help="classification loss of the presence gate")
    g.add_argument("--class-agnostic", action=argparse.BooleanOptionalAction, default=None,
                   help="K-independent head/matcher layers (any vocabulary size at test time; default: on with --unseen)")
    g.add_argument("--freeze-backbone", action=argparse.BooleanOptionalAction, default=False,
                   help="SPM: frozen backbone (weights and BN statistics)")
    g.add_argument("--prompt-matcher", action=argparse.BooleanOptionalAction, default=False,
                   help="SPM: semantic-aware prompt matchers between backbone stages")
    z = p.add_argument_group("zero-shot protocol (generalized, inductive; see README 'Open vocabulary, measured')")
    z.add_argument("--unseen", default=None, metavar="NAMES|FILE",
                   help="hold these classes out of training (comma list or split file, one name per line): "
                        "their pixels are ignored and their names never embedded; evaluation scores all names")
    p.add_argument("--val-interval", type=int, default=None, help="validate every N iters (default: iters/5)")
    p.add_argument("--val-limit", type=int, default=None, help="validate on the first N val images only")
    p.add_argument("--log-interval", type=int, default=10, help="write a metrics.csv row every N iters")
    p.add_argument("--ckpt-interval", type=int, default=None, help="write last.pt every N iters (default: val interval)")
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")
    p.add_argument("--out", default="runs/train", help="output folder")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision (default: on with CUDA)")
    s = p.add_argument_group("speed and scale (torchrun --nproc_per_node N -m edgeseg.train ... for several processes)")
    s.add_argument("--amp-dtype", choices=("fp16", "bf16"), default=None,
                   help="autocast dtype with --amp (default fp16 + GradScaler on CUDA, bf16 on CPU)")
    s.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="NHWC memory format (default: on with CUDA)")
    s.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False, help="torch.compile the model")
    s.add_argument("--sync-bn", action=argparse.BooleanOptionalAction, default=False,
                   help="SyncBatchNorm across processes (CUDA)")
    s.add_argument("--scale-lr", action=argparse.BooleanOptionalAction, default=False,
                   help="linear scaling rule: multiply --lr by the number of processes")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue from OUT/last.pt (or the given checkpoint)")
    p.add_argument("--init", default=None, help="start from the weights of this checkpoint (e.g. from distill.train)")
    p.add_argument("--seed", type=int, default=0)
    return p


def parse_with_config(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse argv; a --config YAML sets defaults first (unknown keys are an error, nothing is eval'd).

    Precedence, lowest first: the family size (--size, else the YAML's `size:`), the preset (--preset, else the
    YAML's `preset:`), the YAML's other keys, the command line."""
    pre, _ = parser.parse_known_args(argv)
    values: dict = {}
    if pre.config:
        path = Path(pre.config)
        if not path.is_file():
            raise UserError(f"--config {path} not found")
        try:
            values = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise UserError(f"--config {path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
        if not isinstance(values, dict):
            raise UserError(f"--config {path} must be a mapping of option: value")
        known = {a.dest for a in parser._actions}
        values = {str(k).replace("-", "_"): v for k, v in values.items()}
        if unknown := sorted(set(values) - known):
            raise UserError(f"--config {path}: unknown option(s) {', '.join(unknown)}")
        unseen = values.get("unseen")
        if isinstance(unseen, str) and (path.parent / unseen).is_file():  # split files relative to the config
            values["unseen"] = str(path.parent / unseen)
        elif isinstance(unseen, list):
            values["unseen"] = ",".join(str(v) for v in unseen)
        for table, key in ((PRESETS, "preset"), (SIZES, "size")):
            if values.get(key) is not None:
                table.lookup(values[key], where=f"--config {path}")
    size = pre.size or values.get("size")
    if size:
        parser.set_defaults(**SIZES[size])
    preset = pre.preset or values.get("preset")
    if preset:
        parser.set_defaults(**PRESETS[preset])
    if values:
        parser.set_defaults(**{k: v for k, v in values.items()
                               if not (k == "preset" and pre.preset) and not (k == "size" and pre.size)})
    args = parser.parse_args(argv)
    check_args(args)
    return args


def check_args(args: argparse.Namespace) -> None:
    """Reject values that would fail later with a less helpful message."""
    BACKBONES.lookup(args.backbone)
    HEADS.lookup(args.head)
    for name in ("iters", "batch_size", "img_size"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be positive")
    if args.img_size % 32:
        raise UserError(f"--img-size {args.img_size} must be a multiple of 32 (the backbone stride)")
    if args.width % args.heads:
        raise UserError(f"--width {args.width} must be divisible by --heads {args.heads}")
    allowed = HEAD_OPTIONS[args.head]
    for option in ("post_prompt", "instance_prompt", "multiscale_align", "presence_gate"):
        if getattr(args, option) and option not in allowed:
            raise UserError(f"--{option.replace('_', '-')} is not available with --head {args.head}")
    if args.out_stride != 4 and "out_stride" not in allowed:
        raise UserError(f"--out-stride {args.out_stride} is not available with --head {args.head} (fusion, denseclip)")
    if args.decoder_width is not None and "decoder_width" not in allowed:
        raise UserError(f"--decoder-width is not available with --head {args.head} (fusion)")
    if args.decoder_width is not None and (args.decoder_width < 1 or args.decoder_width % args.heads):
        raise UserError(f"--decoder-width {args.decoder_width} must be positive and divisible by --heads {args.heads}")
    if args.refine_width and "refine_width" not in allowed:
        raise UserError(f"--refine-width is not available with --head {args.head} (fusion)")
    if args.refine_width < 0 or args.refine_width > 1024:
        raise UserError(f"--refine-width {args.refine_width} must be 0 (off) or 1..1024")
    if args.refine_width and args.out_stride != 4:
        raise UserError(f"--refine-width refines the logits to stride 4; drop --out-stride {args.out_stride}")
    if args.views < 1 or (args.views > 1 and "views" not in allowed):
        raise UserError(f"--views {args.views}: must be 1, or > 1 with a fusion or denseclip head")
    if args.presence_gate and args.views < 2:
        raise UserError("--presence-gate needs --views 2 or more (MVP-SEG's global prompt refining)")
    if args.context_tokens < 0:
        raise UserError("--context-tokens must be 0 (off) or positive")
    if args.class_agnostic is None:
        args.class_agnostic = bool(args.unseen)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda requested but no CUDA device is available; use --device cpu")
    on_cuda = args.device.startswith("cuda")
    if args.amp is None:
        args.amp = on_cuda
    if args.amp_dtype is None:
        args.amp_dtype = "fp16" if on_cuda else "bf16"
    if args.amp and not on_cuda and args.amp_dtype == "fp16":
        raise UserError("--amp on CPU needs --amp-dtype bf16 (fp16 autocast is CUDA-only)")
    if args.channels_last is None:
        args.channels_last = on_cuda
    if args.sync_bn and not on_cuda:
        raise UserError("--sync-bn needs CUDA (PyTorch's SyncBatchNorm has no CPU kernel); drop it on CPU")
    args.val_interval = args.val_interval or max(1, args.iters // 5)
    args.ckpt_interval = args.ckpt_interval or args.val_interval
    if args.warmup_iters is None:
        args.warmup_iters = min(1500, args.iters // 20)


def head_config(args: argparse.Namespace) -> dict[str, Any]:
    """The head's constructor options, as stored in the model card."""
    config: dict[str, Any] = {"dim": args.width, "depth": args.depth, "heads": args.heads}
    if args.out_stride != 4:  # the default stays out of the card, so earlier checkpoints keep theirs
        config["out_stride"] = args.out_stride
    if args.decoder_width not in (None, args.width):
        config["decoder_width"] = args.decoder_width
    if args.refine_width:
        config["refine_width"] = args.refine_width
    for key in PROMPT_OPTIONS:  # only what is switched on, so plain models keep their old cards
        value = getattr(args, key)
        if value is True or (key == "views" and value > 1):
            config[key] = value
    return config


PROMPT_OPTIONS = ("post_prompt", "instance_prompt", "multiscale_align", "views", "presence_gate",
                  "freeze_backbone", "prompt_matcher", "class_agnostic")


def loss_weights(args: argparse.Namespace) -> LossWeights:
    """The loss terms a run's options switch on."""
    return LossWeights(aux=args.aux_weight, contrastive=args.contrastive_weight,
                       ortho=args.ortho_weight if args.views > 1 else 0.0,
                       presence=args.presence_weight if args.presence_gate else 0.0)
