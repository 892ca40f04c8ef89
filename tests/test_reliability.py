"""Reliability: malicious pickles are refused by every CLI; SIGKILL at any moment + --resume gives the
same final weights as an uninterrupted run (bit-exact on CPU)."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from edgeseg.io import load_checkpoint
from tests.conftest import ROOT, run_cli


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def malicious(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": _Payload(marker), "card": {}}, path)  # a real torch zip whose pickle runs a command
    return path, marker


def test_malicious_pickle_is_refused_by_every_cli(malicious, tmp_path):
    path, marker = malicious
    images = tmp_path / "imgs"
    images.mkdir()
    commands = [
        ("edgeseg.evaluate", "--checkpoint", str(path)),
        ("edgeseg.predict", "--checkpoint", str(path), "--source", str(images), "--out", str(tmp_path / "p")),
        ("edgeseg.train", "--iters", "1", "--out", str(tmp_path / "t"), "--resume", str(path)),
        ("edgeseg.train", "--iters", "1", "--out", str(tmp_path / "t"), "--init", str(path), "--img-size", "64"),
        ("edgeseg.train", "--iters", "1", "--out", str(tmp_path / "t"), "--pretrained", str(path), "--img-size", "64"),
        ("deploy.export", "--checkpoint", str(path), "--out", str(tmp_path / "e")),
        ("benchmarks.latency", "--checkpoint", str(path), "--out", str(tmp_path / "b")),
        ("benchmarks.accuracy", "--checkpoint", str(path), "--out", str(tmp_path / "b")),
    ]
    for command in commands:
        proc = run_cli(*command)
        assert proc.returncode != 0, command
        assert "Traceback" not in proc.stderr, proc.stderr[-1500:]
        assert "refused" in proc.stderr, (command, proc.stderr[-500:])
        assert not marker.exists(), f"{command[0]} executed the pickle"


TRAIN = ["edgeseg.train", "--backbone", "mobilenetv3-small", "--img-size", "64", "--batch-size", "2",
         "--iters", "10", "--ckpt-interval", "1", "--val-interval", "100", "--val-limit", "2", "--width", "32",
         "--heads", "2", "--pretrained", "none", "--seed", "3"]


def _weights(path):
    return load_checkpoint(path)["model"]


@pytest.mark.slow
def test_sigkill_then_resume_matches_uninterrupted_run(tmp_path):
    reference = tmp_path / "reference"
    assert run_cli(*TRAIN, "--out", str(reference)).returncode == 0
    expected = _weights(reference / "last.pt")
    rng = random.Random(0)
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1")
    for attempt in range(3):
        out = tmp_path / f"killed{attempt}"
        kills = 0
        while True:
            args = [*TRAIN, "--out", str(out)] + (["--resume"] if (out / "last.pt").exists() else [])
            proc = subprocess.Popen([sys.executable, "-m", *args], env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.PIPE, cwd=ROOT)
            if kills < 2:
                time.sleep(rng.uniform(6.0, 14.0))  # start-up is ~5 s; kill somewhere in training or saving
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills += 1
                    if (out / "last.pt").exists():
                        load_checkpoint(out / "last.pt")  # whatever survived is a complete checkpoint
                    continue
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err.decode()[-1500:]
            break
        got = _weights(out / "last.pt")
        assert got.keys() == expected.keys()
        for name in expected:
            assert torch.equal(got[name], expected[name]), f"attempt {attempt}: {name} differs after resume"
        assert not [p for p in out.iterdir() if p.name.startswith(".")], "temp files left behind"
