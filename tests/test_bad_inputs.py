"""User mistakes across the CLIs: each gives exit != 0, exactly one `error:` line, no traceback."""
import errno
import signal
import subprocess
import sys

import numpy as np
import pytest

from edgeseg.data.synthetic import CLASSES
from edgeseg.io import write_text
from tests.conftest import ROOT, run_cli, signal_after, write_image


def assert_one_line_error(proc, needle: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert needle in errors[0], errors[0]


def _dataset(root, classes="sky\ngrass\nroad\n", count=3):
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text(classes)
    (root / "images").mkdir(exist_ok=True)
    (root / "masks").mkdir(exist_ok=True)
    for i in range(count):
        write_image(root / "images" / f"im{i}.png", np.full((32, 32, 3), (40 * i) % 256, np.uint8))
        write_image(root / "masks" / f"im{i}.png", np.full((32, 32), i % 3, np.uint8))
    return root


SCENE_CLASSES = "\n".join(CLASSES) + "\n"  # the tiny checkpoint's classes

CASES = {
    "empty data folder": (lambda t: (t / "empty").mkdir() or ["edgeseg.train", "--data", str(t / "empty")],
                          "expected classes.txt"),
    "no images": (lambda t: (_dataset(t / "d", count=0), ["edgeseg.evaluate", "--data", str(t / "d")])[1],
                  "no images"),
    "image without mask": (lambda t: (_dataset(t / "d"), (t / "d/masks/im1.png").unlink(),
                                      ["edgeseg.train", "--data", str(t / "d")])[2], "im1.png has no mask"),
    "mask without image": (lambda t: (_dataset(t / "d"), (t / "d/images/im2.png").unlink(),
                                      ["edgeseg.train", "--data", str(t / "d")])[2], "has no image"),
    "corrupt image": (lambda t: (_dataset(t / "d", SCENE_CLASSES, count=10), (t / "d/images/im9.png").write_bytes(b"\x89PNG\r\n\x1a\nxx"),
                                 ["edgeseg.evaluate", "--data", str(t / "d")])[2], "cannot read image"),
    "truncated image": (lambda t: (_dataset(t / "d", SCENE_CLASSES, count=10),
                                   (t / "d/images/im9.png").write_bytes((t / "d/images/im0.png").read_bytes()[:60]),
                                   ["edgeseg.evaluate", "--data", str(t / "d")])[2], "im9.png"),
    "mask value out of range": (lambda t: (_dataset(t / "d", count=10),
                                           write_image(t / "d/masks/im9.png", np.full((32, 32), 9, np.uint8)),
                                           ["edgeseg.train", "--data", str(t / "d"), "--iters", "2", "--batch-size", "8",
                                            "--img-size", "32", "--pretrained", "none", "--out", str(t / "o")])[2],
                                "has label 9"),
    "classes differ from checkpoint": (lambda t: (_dataset(t / "d", count=10),
                                                  ["edgeseg.evaluate", "--data", str(t / "d")])[1], "classes differ"),
    "unknown backbone": (lambda t: ["edgeseg.train", "--backbone", "vgg"], "valid: mobilenetv3"),
    "unknown head": (lambda t: ["edgeseg.train", "--head", "mlp"], "valid: fusion"),
    "unknown target": (lambda t: ["deploy.export", "--target", "tensorrt"], "valid: onnx"),
    "unknown precision": (lambda t: ["deploy.export", "--precision", "int4"], "valid: fp32"),
    "unknown text encoder": (lambda t: ["edgeseg.train", "--text-encoder", "word2vec", "--out", str(t / "o")],
                             "valid: minilm"),
    "not a checkpoint": (lambda t: (write_text(t / "x.pt", "hello"), ["edgeseg.evaluate", "--checkpoint", str(t / "x.pt")])[1],
                         "not an edgeseg checkpoint"),
    "resume other architecture": (lambda t: ["edgeseg.train", "--backbone", "mobilenetv2", "--resume", "CKPT",
                                             "--out", str(t / "o")], "has backbone"),
    "calibration folder too small": (lambda t: (write_image(t / "c/a.png", np.zeros((8, 8, 3), np.uint8)),
                                                ["deploy.export", "--precision", "int8", "--calib-data", str(t / "c"),
                                                 "--out", str(t / "e")])[1], "lower --calib-size"),
    "int8 without calibration": (lambda t: ["deploy.export", "--precision", "int8", "--out", str(t / "e")],
                                 "--calib-data"),
    "output not a folder": (lambda t: (write_text(t / "file", "x"), ["edgeseg.predict", "--source", str(ROOT / "examples"),
                                                                     "--out", str(t / "file" / "sub")])[1], "error"),
    "bad yaml config": (lambda t: (write_text(t / "c.yaml", "iters: [1, 2"), ["edgeseg.train", "--config", str(t / "c.yaml")])[1],
                        "not valid YAML"),
    "unknown config key": (lambda t: (write_text(t / "c.yaml", "itters: 5\n"), ["edgeseg.train", "--config", str(t / "c.yaml")])[1],
                           "unknown option(s) itters"),
    "img size not multiple of 32": (lambda t: ["edgeseg.train", "--img-size", "100"], "multiple of 32"),
    "negative iters": (lambda t: ["edgeseg.train", "--iters", "-3"], "must be positive"),
    "missing artifact": (lambda t: ["deploy.predict", "--model", str(t / "m.onnx"), "--source", str(ROOT / "examples")],
                         "not found"),
    "predict source missing": (lambda t: ["edgeseg.predict", "--source", str(t / "nope")], "does not exist"),
    "coreml benchmark on linux": (lambda t: ["benchmarks.latency", "--targets", "coreml"], "Mac"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path, tiny_run):
    build, needle = CASES[name]
    args = [a.replace("CKPT", str(tiny_run / "last.pt")) for a in build(tmp_path)]
    if args[0] in ("edgeseg.evaluate", "edgeseg.predict", "deploy.export", "benchmarks.latency") \
            and "--checkpoint" not in args:
        args += ["--checkpoint", str(tiny_run / "best.pt")]
    assert_one_line_error(run_cli(*args), needle)


def test_disk_full_during_save_leaves_previous_file(tmp_path, monkeypatch):
    from edgeseg.io import atomic_write

    target = tmp_path / "last.pt"
    target.write_bytes(b"previous")

    def fail(tmp):
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(target, fail)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


@pytest.mark.slow
def test_ctrl_c_saves_and_exits_cleanly(tmp_path):
    # The signal goes only once the loop runs (the "batch ..." start line is printed just before it) and a few
    # iterations in, with far more iterations than can finish.
    code, err = signal_after(["edgeseg.train", "--backbone", "mobilenetv3-small", "--iters", "100000",
                              "--val-interval", "100000", "--img-size", "64", "--batch-size", "2", "--pretrained",
                              "none", "--out", str(tmp_path)], "batch ", signal.SIGINT, delay=3)
    assert code == 130 and "Traceback" not in err
    assert "continue with --resume" in err and (tmp_path / "last.pt").is_file()


def test_missing_optional_package_names_the_extra(tiny_run):
    """A target whose converter is not installed: one line naming the package and the pip extra."""
    script = ("import sys; sys.modules['coremltools'] = None; from deploy.export import main; "
              f"sys.exit(main(['--checkpoint', {str(tiny_run / 'best.pt')!r}, '--target', 'coreml', '--no-verify', "
              "'--out', 'unused']))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert_one_line_error(proc, "target 'coreml' needs the package 'coremltools': pip install -e \".[coreml]\"")
