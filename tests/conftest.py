"""Shared fixtures: a session-wide embedding cache, a tiny trained checkpoint, CLI runner."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session", autouse=True)
def embedding_cache(tmp_path_factory) -> Path:
    """Tests and the CLIs they start share one text-embedding cache (MiniLM runs once per class list)."""
    path = Path(os.environ.get("EDGESEG_TEST_CACHE") or tmp_path_factory.mktemp("cache"))
    os.environ["EDGESEG_CACHE"] = str(path)
    os.environ["EDGESEG_OFFLINE"] = "1"
    return path


def run_cli(*args: str, timeout: int = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `python -m ...` as a user would; returns the completed process (text output)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout,
                          env=env, cwd=cwd or ROOT)


def signal_after(args: list[str], marker: str, sig: int, delay: float = 0.0) -> tuple[int, str]:
    """Run `python -m args...`, send `sig` once a stderr line starts with or contains `marker` (after `delay`
    seconds more), and return (exit status, all of stderr). SIGINT is reset to its default in the child: a test
    run started in the background (`cmd &`) inherits SIGINT as ignored, and Python then installs no
    KeyboardInterrupt handler (as `nohup` wants)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    proc = subprocess.Popen([sys.executable, "-m", *args], env=env, stderr=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, cwd=ROOT,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        seen = []
        deadline = time.time() + 300
        while time.time() < deadline:
            line = proc.stderr.readline().decode()
            seen.append(line)
            if not line or marker in line:
                break
        assert marker in seen[-1], "".join(seen)
        time.sleep(delay)
        proc.send_signal(sig)
        _, rest = proc.communicate(timeout=120)
    finally:  # never leave a long run behind
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, "".join(seen) + rest.decode()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A 6-iteration fusion/mobilenetv3-small run at 64 px (its folder holds last.pt, best.pt, ...)."""
    out = tmp_path_factory.mktemp("tiny_run")
    proc = run_cli("edgeseg.train", "--backbone", "mobilenetv3-small", "--iters", "6", "--batch-size", "2",
                   "--img-size", "64", "--pretrained", "none", "--val-limit", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out


def write_image(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path)
    return path


@pytest.fixture
def folder_dataset(tmp_path) -> Path:
    """A generic-layout dataset: 12 random 48x40 images, masks with classes 0..2 and some 255."""
    rng = np.random.default_rng(0)
    root = tmp_path / "folder"
    (root).mkdir()
    (root / "classes.txt").write_text("sky\ngrass\nroad\n")
    for i in range(12):
        write_image(root / "images" / f"img{i:02d}.jpg", rng.integers(0, 255, (40, 48, 3), dtype=np.uint8))
        mask = rng.integers(0, 3, (40, 48)).astype(np.uint8)
        mask[:2] = 255
        write_image(root / "masks" / f"img{i:02d}.png", mask)
    return root


@pytest.fixture
def ade_dataset(tmp_path) -> Path:
    """ADE20K mmseg layout with 0 = other (ignored) and labels 1..150."""
    rng = np.random.default_rng(1)
    root = tmp_path / "ade"
    for split, count in (("training", 3), ("validation", 2)):
        for i in range(count):
            write_image(root / "images" / split / f"ADE_{split}_{i:08d}.jpg",
                        rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
            mask = rng.integers(0, 151, (32, 32)).astype(np.uint8)
            mask[0, 0], mask[0, 1] = 0, 150
            write_image(root / "annotations" / split / f"ADE_{split}_{i:08d}.png", mask)
    return root
