"""torchrun on CPU (gloo): both ranks finish, rank 0 alone writes, and the loss curve matches one process."""
import csv
import json
import os
import subprocess
import sys

from tests.conftest import ROOT

COMMON = ["--backbone", "mobilenetv3-small", "--iters", "4", "--img-size", "64", "--val-limit", "4",
          "--pretrained", "none", "--log-interval", "1"]


def _losses(folder):
    with open(folder / "metrics.csv") as fh:
        return [float(row["loss"]) for row in csv.DictReader(fh)]


def _run(args, nproc=None):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
                "--master_port", "29533"] if nproc else [sys.executable]
    return subprocess.run([*launcher, "-m", "edgeseg.train", *args], capture_output=True, text=True, timeout=600,
                          env=env, cwd=ROOT)


def test_torchrun_two_cpu_processes_match_one_process(tmp_path):
    ddp, single, other_seed = tmp_path / "ddp", tmp_path / "single", tmp_path / "seed1"
    proc = _run([*COMMON, "--batch-size", "4", "--out", str(ddp)], nproc=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "x 2 process(es) (gloo) = effective batch 8" in proc.stderr
    assert proc.stderr.count("done: 4 iterations") == 1  # rank 0 alone reports
    assert sorted(p.name for p in ddp.iterdir()) == ["best.pt", "last.pt", "metrics.csv", "model_card.json"]
    assert _run([*COMMON, "--batch-size", "8", "--out", str(single)]).returncode == 0
    assert _run([*COMMON, "--batch-size", "8", "--seed", "1", "--out", str(other_seed)]).returncode == 0
    ddp_curve, single_curve, seed_curve = _losses(ddp), _losses(single), _losses(other_seed)
    assert len(ddp_curve) == len(single_curve) == 4
    # same global batch (4 x 2 vs 8): equal up to per-process BatchNorm statistics (no SyncBN on CPU)
    gap = max(abs(a - b) / b for a, b in zip(ddp_curve, single_curve))
    assert gap < 0.03, (ddp_curve, single_curve)
    # ...and that closeness is meaningful: another seed's curve is much further away
    assert max(abs(a - b) / b for a, b in zip(seed_curve, single_curve)) > 3 * gap


def test_cpu_speed_options(tmp_path):
    proc = _run([*COMMON, "--batch-size", "2", "--iters", "2", "--amp", "--channels-last", "--out", str(tmp_path / "a")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "+AMP bf16, channels_last" in proc.stderr
    for bad, message in ((["--amp", "--amp-dtype", "fp16"], "needs --amp-dtype bf16"), (["--sync-bn"], "needs CUDA")):
        proc = _run([*COMMON, "--device", "cpu", *bad, "--out", str(tmp_path / "b")])
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr


def _probe(runner, args, probe, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           "29534", str(ROOT / "tests" / "edgeseg" / "ddp_probe.py"), runner, str(probe), *args],
                          capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(probe.read_text())


def test_every_trainable_tensor_is_identical_across_ranks(tmp_path, tiny_run):
    """Context tokens (outside the segmenter) and distill's projector are averaged by DDP like the model."""
    result = _probe("edgeseg", [*COMMON, "--batch-size", "4", "--context-tokens", "4", "--out", str(tmp_path / "a")],
                    tmp_path / "ctx.json", tmp_path)
    assert "prompt_learner.ctx" in result["names"] and any(n.startswith("model.head.") for n in result["names"])
    assert result["max_gap"] == 0.0, {k: v for k, v in result["gaps"].items() if v}
    single = tmp_path / "single"  # 2 x batch 4 matches 1 x batch 8, as in the plain DDP test
    assert _run([*COMMON, "--batch-size", "8", "--context-tokens", "4", "--out", str(single)]).returncode == 0
    gap = max(abs(a - b) / b for a, b in zip(_losses(tmp_path / "a"), _losses(single)))
    assert gap < 0.03, (_losses(tmp_path / "a"), _losses(single))
    result = _probe("distill", [*COMMON, "--batch-size", "2", "--teacher", f"ckpt:{tiny_run / 'last.pt'}",
                                "--out", str(tmp_path / "d")], tmp_path / "distill.json", tmp_path)
    assert "extras.projector.weight" in result["names"]
    assert result["max_gap"] == 0.0, {k: v for k, v in result["gaps"].items() if v}
