"""Train a language-guided lightweight segmenter.

python -m edgeseg.train --backbone mobilenetv3 [--data PATH] [--iters N] [--out DIR] [--resume]

Writes OUT/last.pt, OUT/best.pt (state dicts + model card; load with weights_only=True),
OUT/metrics.csv and OUT/model_card.json, each atomically.
"""
from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from edgeseg.card import build_model, check_card, make_card
from edgeseg.config import head_config, loss_weights, parse_with_config, training_parser
from edgeseg.data import IterationSampler, TrainSet, build_source
from edgeseg.distributed import init_world, shutdown
from edgeseg.errors import UserError, cli_main
from edgeseg.evaluate import evaluate_model
from edgeseg.io import (
    load_checkpoint,
    remove_partials,
    save_checkpoint,
    write_json,
    write_text,
)
from edgeseg.losses import segmentation_loss
from edgeseg.models import Segmenter, load_pretrained
from edgeseg.prompt_learner import build_prompt_learner
from edgeseg.text import get_text_embeddings
from edgeseg.zeroshot import Split, parse_unseen


class TrainStep(torch.nn.Module):
    """One training step's forward: owns everything trainable — the segmenter, the context tokens'
    prompt learner, a variant's extra modules (distill's projector) — and returns (loss, loss parts).
    It alone is wrapped by DistributedDataParallel / torch.compile, so every trainable tensor gets
    its gradient averaged across processes and all ranks keep identical weights."""

    def __init__(self, run: "Run") -> None:
        super().__init__()
        self.model = run.model
        self.prompt_learner = run.prompt_learner
        self.extras = torch.nn.ModuleDict(run.extra_modules())
        self._run = (run,)  # the losses and text come from the run; a tuple keeps it out of the module tree

    def forward(self, images: torch.Tensor, labels: torch.Tensor, *extra: torch.Tensor) -> tuple[torch.Tensor, dict]:
        run = self._run[0]
        outputs = self.model.forward_all(images, run.training_text())
        return run.compute_loss(outputs, images, labels, extra)


def poly_lr(base: float, iteration: int, total: int, warmup: int, power: float = 0.9) -> float:
    """Linear warm-up, then polynomial decay to 0 (mmseg's poly schedule)."""
    if iteration < warmup:
        return base * (iteration + 1) / warmup
    return base * (1 - iteration / total) ** power


def param_groups(model: Segmenter, lr: float, backbone_mult: float, weight_decay: float) -> list[dict]:
    """AdamW groups: backbone at lr*mult; no weight decay on norms, biases and temperatures."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault((name.startswith("backbone."), param.ndim <= 1), []).append(param)
    return [{"params": params, "lr_mult": backbone_mult if is_backbone else 1.0,
             "weight_decay": 0.0 if no_decay else weight_decay}
            for (is_backbone, no_decay), params in groups.items()]


def metrics_csv(history: list[dict]) -> str:
    """The training history as CSV text (one row per logged iteration; each loss part as loss_<name>)."""
    parts = sorted({key for row in history for key in row if key.startswith("loss_")})
    fields = ["iter", "loss", *parts, "lr", "val_mIoU", "val_pixel_accuracy", "val_mIoU_seen", "val_mIoU_unseen",
              "val_hIoU", "seconds"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


class Run:
    """Everything a training run holds, with save/restore for checkpoints."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.world = init_world(args.device)
        if self.world.backend == "nccl":
            args.device = f"cuda:{self.world.local_rank}"
        self.device = torch.device(args.device)
        torch.manual_seed(args.seed)
        self.train_source = build_source(args.data, "train", args.img_size)
        self.val_source = build_source(args.data, "val", args.img_size)
        self.classes = list(self.train_source.classes)
        unseen = parse_unseen(args.unseen, self.classes)
        self.split = Split(tuple(self.classes), tuple(unseen)) if unseen else None
        # The names training sees: all classes, or the seen ones under the zero-shot protocol.
        self.train_classes = self.split.seen if self.split else self.classes
        resume_payload = self._resume_payload()
        if resume_payload is not None:
            self.card = check_card(resume_payload["card"], str(args.resume))
            self._check_resume_matches()
            self.model = build_model(self.card)
            pretrained_note = self.card.get("pretrained", "")
        else:
            text = torch.from_numpy(get_text_embeddings(self.classes, args.text_encoder))
            self.model = Segmenter(args.backbone, args.head, text, head_config(args))
            pretrained_note = load_pretrained(self.model.backbone, args.pretrained) if not args.init else "init"
            if args.init:
                self._load_init(args.init)
            self.card = make_card(classes=self.classes, backbone=args.backbone, head=args.head,
                                  head_config=head_config(args), img_size=args.img_size,
                                  mean=self.model.backbone.mean, std=self.model.backbone.std,
                                  text_encoder=args.text_encoder, text_dim=text.shape[1],
                                  pretrained=pretrained_note, dataset=self.train_source.name,
                                  **({"context_tokens": args.context_tokens} if args.context_tokens else {}),
                                  **({"unseen": unseen} if unseen else {}))
        if args.sync_bn and self.world.size > 1:
            self.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.model.to(self.device).train()
        if args.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.prompt_learner = None
        if self.card.get("context_tokens"):
            self.prompt_learner = build_prompt_learner(self.card["text_encoder"], self.train_classes,
                                                       int(self.card["context_tokens"])).to(self.device).train()
            if resume_payload is not None:
                self.prompt_learner.ctx.data.copy_(resume_payload["context"]["ctx"])
        self.loss_weights = loss_weights(args)
        mult = args.backbone_lr_mult
        if mult is None:
            mult = 0.1 if pretrained_note.startswith("ImageNet") else 1.0
        self.setup()
        self.train_step = TrainStep(self)
        self.forward_module: torch.nn.Module = self.train_step
        if self.world.size > 1:  # after setup(): every trainable module is inside, so DDP averages them all
            self.forward_module = DistributedDataParallel(
                self.train_step, device_ids=[self.world.local_rank] if self.world.backend == "nccl" else None)
        if args.compile:
            self.forward_module = torch.compile(self.forward_module)
        groups = param_groups(self.model, args.lr, mult, args.weight_decay) + self.extra_param_groups()
        if self.prompt_learner is not None:  # the context tokens learn at the head's lr, no decay (CoOp)
            groups.append({"params": [self.prompt_learner.ctx], "lr_mult": 1.0, "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(groups, lr=args.lr)
        self.amp_dtype = torch.bfloat16 if args.amp_dtype == "bf16" else torch.float16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=args.amp and self.amp_dtype == torch.float16)
        self.iteration, self.best_miou, self.history = 0, -1.0, []
        self.loss_parts: dict[str, float] = {}
        if resume_payload is not None:
            self.model.load_state_dict(resume_payload["model"])
            self.optimizer.load_state_dict(resume_payload["optimizer"])
            self.iteration = int(resume_payload["iteration"])
            self.best_miou = float(resume_payload["best_miou"])
            self.history = list(resume_payload["history"])
            self.load_extra_state(resume_payload)

    # Hooks for training variants (distill.train): extra modules, losses, data and checkpoint state.
    def setup(self) -> None:
        """Build extra modules (the model is on its device; the optimizer is not made yet)."""

    def extra_param_groups(self) -> list[dict]:
        return []

    def extra_modules(self) -> dict[str, torch.nn.Module]:
        """Trainable modules besides the segmenter and prompt learner (they join the TrainStep, so DDP
        averages their gradients)."""
        return {}

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, payload: dict[str, Any]) -> None:
        pass

    def dataset(self, with_geometry: bool = False) -> TrainSet:
        return TrainSet(self.train_source, self.args.img_size, self.card["mean"], self.card["std"],
                        with_geometry=with_geometry, label_map=self.split.label_map() if self.split else None)

    def training_text(self) -> torch.Tensor | None:
        """The class embeddings the training forward uses: the context tokens' output, the seen rows of
        the buffer under the zero-shot protocol (unseen names never enter), or None (the whole buffer)."""
        if self.prompt_learner is not None:
            return self.prompt_learner()
        if self.split is not None:
            return self.model.text_embeddings[self.split.seen_indices]
        return None

    def compute_loss(self, outputs: dict, images: torch.Tensor, labels: torch.Tensor,
                     extra: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, dict]:
        return segmentation_loss(outputs, labels, self.loss_weights)

    def _resume_payload(self) -> dict | None:
        if not self.args.resume:
            return None
        path = self.out / "last.pt" if self.args.resume == "auto" else Path(self.args.resume)
        if not path.is_file():
            raise UserError(f"--resume: {path} not found; start without --resume or pass a checkpoint path")
        self.args.resume = str(path)
        payload = load_checkpoint(path)
        if "optimizer" not in payload or "iteration" not in payload:
            raise UserError(f"--resume: {path} holds weights only (a best.pt?); resume from last.pt")
        return payload

    def _check_resume_matches(self) -> None:
        for key, value in (("backbone", self.args.backbone), ("head", self.args.head)):
            if self.card[key] != value:
                raise UserError(f"--resume: checkpoint has {key} '{self.card[key]}' but --{key} is '{value}'")
        if self.card["classes"] != self.classes:
            raise UserError("--resume: the checkpoint's classes differ from the data's classes")
        if list(self.card.get("unseen") or []) != list(self.split.unseen if self.split else []):
            raise UserError("--resume: the checkpoint's unseen classes differ from --unseen; pass the same split")

    def _load_init(self, path: str) -> None:
        state = load_checkpoint(path)["model"]
        own = self.model.state_dict()
        matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape and k != "text_embeddings"}
        if not any(k.startswith("backbone.") for k in matched):
            raise UserError(f"--init {path}: no backbone weights fit --backbone {self.args.backbone}")
        self.model.load_state_dict(matched, strict=False)
        print(f"init: {len(matched)}/{len(own)} tensors from {path}", file=sys.stderr)

    def sync_text(self) -> None:
        """Write the class embeddings the context tokens give now into the model's baked-in buffer
        (held-out classes too, through the learned context, for evaluation and export)."""
        if self.prompt_learner is None:
            return
        with torch.no_grad():
            if self.split is None:
                self.model.text_embeddings.copy_(self.prompt_learner().float())
                return
            buffer = self.model.text_embeddings
            buffer[self.split.seen_indices] = self.prompt_learner().float()
            buffer[self.split.unseen_indices] = self.prompt_learner.embed(list(self.split.unseen)).float()

    @property
    def base_lr(self) -> float:
        """--lr, times the process count under --scale-lr (the linear scaling rule)."""
        return self.args.lr * (self.world.size if self.args.scale_lr else 1)

    def payload(self, with_optimizer: bool) -> dict[str, Any]:
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        payload = {"model": state, "card": self.card, "iteration": self.iteration, "best_miou": self.best_miou,
                   "history": self.history, "config": {k: v for k, v in vars(self.args).items()
                                                       if isinstance(v, (str, int, float, bool, type(None)))}}
        if with_optimizer:
            payload["optimizer"] = self.optimizer.state_dict()
        if self.prompt_learner is not None:
            payload["context"] = self.prompt_learner.context_state()
        payload.update(self.extra_state())
        return payload

    def save_last(self) -> None:
        if not self.world.is_main:
            return
        self.sync_text()
        save_checkpoint(self.out / "last.pt", self.payload(with_optimizer=True))
        write_text(self.out / "metrics.csv", metrics_csv(self.history))

    def step(self, images: torch.Tensor, labels: torch.Tensor, *extra: torch.Tensor) -> tuple[float, float]:
        """One optimisation step at self.iteration; returns (loss, lr)."""
        args = self.args
        torch.manual_seed(args.seed * 7919 + self.iteration)  # dropout etc. depend only on (seed, iteration)
        lr = poly_lr(self.base_lr, self.iteration, args.iters, args.warmup_iters)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
        images, labels = images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)
        if args.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=args.amp):
            loss, parts = self.forward_module(images, labels, *extra)
        self.loss_parts = self.world.mean_dict(parts)
        if not torch.isfinite(loss):
            raise UserError(f"loss became {float(loss)} at iteration {self.iteration}; lower --lr")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return self.world.mean(float(loss.detach())), lr

    def validate(self) -> dict:
        """Validation mIoU (what selects best.pt). Under the zero-shot protocol the selection uses the seen
        classes only (unseen pixels ignored, unseen names absent), so no unseen label picks the model;
        the generalized scores over all names (mIoU_seen / mIoU_unseen / hIoU) are added for the log."""
        self.sync_text()
        options = dict(limit=self.args.val_limit, progress=False, amp=self.args.amp and self.device.type == "cuda")
        if self.split is None:
            summary = evaluate_model(self.model, self.card, self.val_source, self.device, **options)
        else:
            summary = evaluate_model(self.model, self.card, self.val_source, self.device, classes=self.split.seen,
                                     text_embeddings=self.model.text_embeddings[self.split.seen_indices],
                                     label_map=self.split.label_map(), **options)
            generalized = evaluate_model(self.model, self.card, self.val_source, self.device, **options)
            summary.update({k: v for k, v in generalized.items() if k in ("mIoU_seen", "mIoU_unseen", "hIoU")})
        if summary["mIoU"] > self.best_miou:
            self.best_miou = summary["mIoU"]
            if self.world.is_main:
                save_checkpoint(self.out / "best.pt", self.payload(with_optimizer=False))
        return summary


def train(args: argparse.Namespace, run_class: type[Run] = Run) -> dict:
    """Run (or resume) training; returns the final validation summary (on every process)."""
    run = run_class(args)
    try:
        return _train(run)
    finally:
        shutdown(run.world)


def _log(run: Run, message: str) -> None:
    if run.world.is_main:
        print(message, file=sys.stderr)


def _train(run: Run) -> dict:
    args, world = run.args, run.world
    if world.is_main:
        remove_partials(args.out)  # temp files of a run that was killed mid-save
        run.out.mkdir(parents=True, exist_ok=True)
        write_json(run.out / "model_card.json", run.card)
    params = sum(p.numel() for p in run.model.parameters())
    trainable = sum(p.numel() for p in run.model.parameters() if p.requires_grad)
    context = run.prompt_learner.ctx.numel() if run.prompt_learner is not None else 0
    speed = [name for name, on in (("AMP " + args.amp_dtype, args.amp), ("channels_last", args.channels_last),
                                   ("compiled", args.compile), ("SyncBN", args.sync_bn and world.size > 1)) if on]
    held_out = f" ({len(run.split.unseen)} unseen, held out: {', '.join(run.split.unseen)})" if run.split else ""
    _log(run, f"edgeseg.train: {args.backbone}/{args.head}, {len(run.classes)} classes{held_out} from {run.train_source.name}, "
              f"text {run.card['text_encoder']}, backbone {run.card.get('pretrained')}, {params / 1e6:.2f}M params "
              f"({trainable / 1e6:.3f}M trainable, {100 * trainable / params:.1f}%"
              f"{f'; +{context} context-token values' if context else ''}), "
              f"device {args.device}{' +' + ', '.join(speed) if speed else ''}")
    lr = run.base_lr
    _log(run, f"batch {args.batch_size} per process x {world.size} process(es)"
              f"{f' ({world.backend})' if world.backend else ''} = effective batch {args.batch_size * world.size}; "
              f"lr {lr:g}" + (f" (linear scaling rule: --lr {args.lr:g} x {world.size})" if args.scale_lr else
                              " (not scaled with the process count; --scale-lr applies the linear rule)"))
    if run.card["head_config"].get("freeze_backbone") and "random" in str(run.card.get("pretrained")):
        _log(run, "warning: --freeze-backbone on a randomly initialised backbone freezes random features; "
                  "pass --pretrained PATH (or use a backbone with weights on disk, e.g. efficientnet-lite)")
    if run.iteration >= args.iters:
        _log(run, f"already at iteration {run.iteration} of {args.iters}; nothing to do")
        return run.validate()
    if run.iteration:
        _log(run, f"resuming from iteration {run.iteration}")
    sampler = IterationSampler(len(run.train_source), args.batch_size, args.iters, args.seed, run.iteration,
                               rank=world.rank, world=world.size)
    loader = DataLoader(run.dataset(), batch_sampler=sampler, num_workers=args.workers,
                        pin_memory=run.device.type == "cuda", persistent_workers=False)
    summary: dict = {}
    start = time.time()
    bar = tqdm(total=args.iters, initial=run.iteration, desc="train", file=sys.stderr, dynamic_ncols=True,
               disable=not world.is_main or None)
    try:
        for batch in loader:
            loss, lr = run.step(*batch)
            run.iteration += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", best=f"{max(run.best_miou, 0):.3f}")
            row: dict[str, Any] = {"iter": run.iteration, "loss": round(loss, 5), "lr": lr,
                                   "seconds": round(time.time() - start, 1),
                                   **{f"loss_{k}": round(v, 5) for k, v in run.loss_parts.items()}}
            if run.iteration % args.val_interval == 0 or run.iteration == args.iters:
                if world.is_main:  # rank 0 evaluates the whole val set; the others wait
                    summary = run.validate()
                    row.update(val_mIoU=round(summary["mIoU"], 5),
                               val_pixel_accuracy=round(summary["pixel_accuracy"], 5))
                    zero_shot = ""
                    if "hIoU" in summary:
                        row.update({f"val_{k}": round(summary[k], 5) for k in ("mIoU_seen", "mIoU_unseen", "hIoU")})
                        zero_shot = (f"  | all names: seen {100 * summary['mIoU_seen']:.1f}  "
                                     f"unseen {100 * summary['mIoU_unseen']:.1f}  hIoU {100 * summary['hIoU']:.1f}")
                    bar.write(f"iter {run.iteration}: val mIoU {100 * summary['mIoU']:.1f}"
                              f"{' (seen classes)' if zero_shot else ''}  "
                              f"pixel acc {100 * summary['pixel_accuracy']:.1f}{zero_shot}", file=sys.stderr)
                world.barrier()
            if run.iteration % args.log_interval == 0 or "val_mIoU" in row or run.iteration == args.iters:
                run.history.append(row)
            if run.iteration % args.ckpt_interval == 0 or run.iteration == args.iters:
                run.save_last()
    except KeyboardInterrupt:
        bar.close()
        run.save_last()
        _log(run, f"interrupted at iteration {run.iteration}; saved {run.out / 'last.pt'} (continue with --resume)")
        raise
    bar.close()
    _log(run, f"done: {args.iters} iterations in {time.time() - start:.0f}s; best val mIoU "
              f"{100 * run.best_miou:.1f}; checkpoints in {run.out}")
    return summary


def report(summary: dict) -> int:
    """Print the final val mIoU on stdout (rank 0 of a torchrun job only); the CLI's exit code."""
    if "mIoU" in summary:  # other ranks have no summary: rank 0 validates
        print(f"val mIoU: {summary['mIoU']:.4f}")
    return 0


@cli_main
def main(argv: Sequence[str] | None = None) -> int:
    parser = training_parser("python -m edgeseg.train", __doc__.splitlines()[0])
    args = parse_with_config(parser, argv)
    return report(train(args))


if __name__ == "__main__":
    raise SystemExit(main())
