"""Teacher outputs cached on disk for a dataset, so the teacher runs once per image.

The teacher sees each training image whole (resized to `size`², its own normalisation); at training
time the student's augmented crop is cut from the cached maps with the crop's box (TrainSet's
geometry) by bilinear sampling, so the targets follow the random scale/crop/flip exactly.
Files: DIR/<key>/dense.npy [N, D, h, w] and scores.npy [N, K, h, w] (float16), meta.json;
the key hashes the teacher, data, classes and size, so a stale cache is never used.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from distill.teachers import renormalize
from edgeseg.data import SegmentationSource
from edgeseg.distributed import World
from edgeseg.io import atomic_path, write_json
from edgeseg.preprocess import normalize, resize_image


def cache_key(teacher_id: str, source: SegmentationSource, size: int) -> str:
    text = json.dumps([teacher_id, source.name, len(source), list(source.classes), size])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class TeacherCache:
    """Dense maps and scores of every training image, memory-mapped (fp16 on disk): a batch reads only
    its own images' maps, so the cache may be far larger than memory."""

    def __init__(self, folder: Path) -> None:
        self.dense = np.load(folder / "dense.npy", mmap_mode="r")
        self.scores = np.load(folder / "scores.npy", mmap_mode="r")

    @classmethod
    def build(cls, root: str | Path, teacher: torch.nn.Module, source: SegmentationSource, size: int,
              device: torch.device, world: World | None = None) -> "TeacherCache":
        """Load the cache for (teacher, data, size) from `root`, computing it first if absent. Under torchrun
        rank 0 alone computes and writes it while the other ranks wait at a barrier, then all read it."""
        folder = Path(root) / cache_key(teacher.id, source, size)
        if world is not None and world.size > 1:
            if world.is_main:
                cls.build(root, teacher, source, size, device)
            world.barrier()
            return cls(folder)
        if (folder / "meta.json").is_file():
            print(f"teacher cache: {folder}", file=sys.stderr)
            return cls(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        dense_all, scores_all = [], []
        for index in tqdm(range(len(source)), desc="teacher cache", file=sys.stderr, dynamic_ncols=True):
            image, _ = source.load(index)
            x = torch.from_numpy(normalize(resize_image(image, size), teacher.mean, teacher.std))[None].to(device)
            dense, scores = teacher(x)
            dense_all.append(dense[0].half().cpu().numpy())
            scores_all.append(scores[0].half().cpu().numpy())
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            np.save(tmp / "dense.npy", np.stack(dense_all))
            np.save(tmp / "scores.npy", np.stack(scores_all))
            write_json(tmp / "meta.json", {"teacher": teacher.id, "data": source.name, "images": len(source),
                                           "size": size})
        print(f"teacher cache written: {folder}", file=sys.stderr)
        return cls(folder)

    def crops(self, geometry: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """geometry [B, 5] = (index, x0, y0, x1, y1) -> (dense, scores, valid) at `size`, on geometry's device."""
        index = geometry[:, 0].long().cpu()
        x0, y0, x1, y1 = geometry[:, 1:].float().cpu().unbind(1)
        theta = torch.zeros(len(index), 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = x1 - x0, x0 + x1 - 1
        theta[:, 1, 1], theta[:, 1, 2] = y1 - y0, y0 + y1 - 1
        grid = F.affine_grid(theta, [len(index), 1, *size], align_corners=False)

        def sample(maps: np.ndarray) -> torch.Tensor:
            rows = torch.from_numpy(np.stack([maps[i] for i in index.tolist()]).astype(np.float32))
            return F.grid_sample(rows, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

        inside = (grid.abs() <= 1).all(dim=-1, keepdim=True).permute(0, 3, 1, 2).float()
        device = geometry.device
        return sample(self.dense).to(device), sample(self.scores).to(device), inside.to(device)


def teacher_inputs(images: torch.Tensor, student_card: dict, teacher: torch.nn.Module) -> torch.Tensor:
    """The student's normalised batch, re-normalised for the teacher."""
    return renormalize(images, student_card["mean"], student_card["std"], teacher.mean, teacher.std)
