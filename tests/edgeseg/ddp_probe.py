"""Run under torchrun by test_distributed: train a few steps, then gather every trainable tensor of
the TrainStep from every rank and write, on rank 0, how far the ranks' copies are apart.

python -m torch.distributed.run --nproc_per_node 2 tests/edgeseg/ddp_probe.py edgeseg|distill PROBE.json ARGS...
"""
import json
import sys

import torch
import torch.distributed as dist

from edgeseg.config import parse_with_config
from edgeseg.train import Run, _train


def main() -> None:
    runner, probe, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    if runner == "distill":
        from distill.train import DistillRun, distill_parser

        run = DistillRun(parse_with_config(distill_parser(), argv))
    else:
        from edgeseg.config import training_parser

        run = Run(parse_with_config(training_parser("probe", ""), argv))
    _train(run)
    names, gaps = [], []
    for name, param in run.train_step.named_parameters():
        if not param.requires_grad:
            continue
        copies = [torch.empty_like(param.data) for _ in range(run.world.size)]
        dist.all_gather(copies, param.data.contiguous())
        names.append(name)
        gaps.append(max(float((c - copies[0]).abs().max()) for c in copies))
    if run.world.is_main:
        with open(probe, "w") as fh:
            json.dump({"names": names, "max_gap": max(gaps), "gaps": dict(zip(names, gaps))}, fh)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
