"""Bad input on the surfaces added after the first release (issue #24): the Python API, the torch-free runtime,
damaged artifact folders, vocabularies and numeric options each give one clear error — and an interrupted
export never loses the artifact it was replacing."""
import hashlib
import json
import re
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeseg
from deploy import runtime
from edgeseg.errors import UserError
from tests.conftest import ROOT, run_cli, signal_after, write_image
from tests.test_bad_inputs import assert_one_line_error

EXAMPLE = ROOT / "examples" / "scene0.jpg"


@pytest.fixture(scope="module")
def open_artifact(tiny_run, tmp_path_factory) -> Path:
    """An ONNX fp32 open-vocabulary artifact with its text encoder (K_max 32), exported by the CLI."""
    out = tmp_path_factory.mktemp("open_artifact")
    proc = run_cli("deploy.export", "--checkpoint", str(tiny_run / "best.pt"), "--target", "onnx", "--open-vocab",
                   "--text-encoder", "--verify-images", "2", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return out / "onnx-fp32-openvocab"


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 1. an interrupted export loses nothing ---------------------------------------------------------------------

INTERRUPTS = [  # (signal, the progress line after which it is sent): model conversion, parity, text encoder
    (signal.SIGINT, "exporting onnx fp32"),
    (signal.SIGINT, "text encoder onnx"),
    (signal.SIGKILL, "verifying onnx-fp32-openvocab"),
    (signal.SIGKILL, "text encoder onnx"),
]


@pytest.mark.slow
def test_interrupted_export_leaves_the_previous_artifact_byte_identical(open_artifact, tiny_run, tmp_path):
    out = tmp_path / "export"
    shutil.copytree(open_artifact, out / open_artifact.name)
    before = tree_digest(out / open_artifact.name)
    # a different artifact (16 slots, not 32) into the same folder, so a swap would show
    command = ["deploy.export", "--checkpoint", str(tiny_run / "best.pt"), "--target", "onnx", "--open-vocab",
               "--max-classes", "16", "--text-encoder", "--verify-images", "2", "--out", str(out)]
    for sig, marker in INTERRUPTS:
        code, err = signal_after(command, marker, sig)
        if sig == signal.SIGINT:
            assert code == 130 and "Traceback" not in err, err[-2000:]
            assert "nothing half-made was published" in err
        assert tree_digest(out / open_artifact.name) == before, f"{sig.name} after '{marker}' changed the artifact"
        predictor = runtime.load(out / open_artifact.name)
        predictor.set_classes(["sky", "grass"])  # the text encoder is there and works
        assert predictor.max_classes == 32 and predictor.predict(EXAMPLE).max() <= 1
    # an export that completes replaces it whole, and clears the temp folders the killed ones left
    proc = run_cli(*command)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert runtime.load(out / open_artifact.name).max_classes == 16
    assert sorted(p.name for p in out.iterdir()) == [open_artifact.name]


def test_directory_swap_is_atomic_and_keeps_the_old_tree_on_failure(tmp_path):
    from edgeseg.io import atomic_path

    final = tmp_path / "artifact"
    final.mkdir()
    (final / "model.onnx").write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.mkdir()
            (tmp / "model.onnx").write_bytes(b"new, half")
            raise RuntimeError("converter failed")
    assert (final / "model.onnx").read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["artifact"]
    with atomic_path(final) as tmp:
        tmp.mkdir()
        (tmp / "model.onnx").write_bytes(b"new")
    assert (final / "model.onnx").read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["artifact"]


def test_partials_of_a_live_writer_are_kept(tmp_path):
    from edgeseg.io import remove_partials

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / f".onnx-fp32.{dead.pid}.abc.partial").mkdir()
    (tmp_path / f".onnx-int8.{os.getppid()}.abc.partial").mkdir()  # pytest's parent: alive
    assert remove_partials(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == [f".onnx-int8.{os.getppid()}.abc.partial"]


# --- 2. damaged artifacts: one line naming the file and what is wrong ---------------------------------------------

def _edit_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


DAMAGE = {
    "card.json not JSON": (lambda a: (a / "card.json").write_text('{"format": "edgeseg-card/1", "classes": ['),
                           "card.json is not valid JSON"),
    "card classes an int": (lambda a: _edit_json(a / "card.json", lambda c: c.update(classes=5)),
                            "model card field 'classes' is 5"),
    "card field missing": (lambda a: _edit_json(a / "card.json", lambda c: c.pop("std")),
                           "model card field 'std' is missing"),
    "truncated model.onnx": (lambda a: _truncate(a / "model.onnx"), "cannot be loaded by its runtime"),
    "model file missing": (lambda a: (a / "model.onnx").unlink(), "expected one artifact"),
    "embeddings not a matrix": (lambda a: np.save(a / "text_embeddings.npy", np.zeros(7, np.float32)),
                                "text_embeddings.npy are float32 (7,)"),
    "embeddings truncated": (lambda a: _truncate(a / "text_embeddings.npy"), "cannot read text embeddings"),
    "tokenizer vocab corrupted": (lambda a: (a / "text_encoder/vocab.txt").write_bytes(b"\xff\xfe[PAD]\n\x00"),
                                  "vocab.txt differs from the file the exporter wrote"),
    "tokenizer vocab truncated": (lambda a: _truncate(a / "text_encoder/vocab.txt"), "vocab.txt differs"),
    "text card key missing": (lambda a: _edit_json(a / "text_encoder/text_card.json", lambda c: c.pop("max_length")),
                              "text card field 'max_length' is missing"),
    "text card not JSON": (lambda a: (a / "text_encoder/text_card.json").write_text("{"),
                           "text_card.json is not readable JSON"),
    "text encoder model truncated": (lambda a: _truncate(a / "text_encoder/model.onnx"),
                                     "text encoder"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_damaged_artifact_is_one_clear_error(kind, open_artifact, tmp_path):
    damaged = shutil.copytree(open_artifact, tmp_path / "artifact")
    damage, needle = DAMAGE[kind]
    damage(damaged)
    with pytest.raises(UserError, match=re.escape(needle)):
        runtime.load(damaged)
    with pytest.raises(UserError, match=re.escape(needle)):
        edgeseg.load(damaged)
    assert_one_line_error(run_cli("deploy.predict", "--model", str(damaged), "--source", str(EXAMPLE),
                                  "--out", str(tmp_path / "p")), needle)


def test_damaged_tflite_is_one_clear_error(open_artifact, tmp_path):
    folder = tmp_path / "tflite-fp32"
    folder.mkdir()
    shutil.copy(open_artifact / "card.json", folder / "card.json")
    (folder / "model.tflite").write_bytes((open_artifact / "model.onnx").read_bytes()[:4096])
    with pytest.raises(UserError, match="model.tflite cannot be loaded by its runtime"):
        edgeseg.load(folder)


# --- 3. one input check for the runtime Predictor and the API -----------------------------------------------------

BAD_IMAGES = {
    "2-D array": (np.zeros((32, 32), np.uint8), "expected [H, W, 3]"),
    "0x0 image": (np.zeros((0, 0, 3), np.uint8), "empty"),
    "float in [0, 1]": (np.full((32, 32, 3), 0.5), "expected uint8 in 0..255"),
    "a list": ([[0, 0, 0]], "not list"),
    "None": (None, "not NoneType"),
    "missing path": ("no/such/image.png", "not found"),
}


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_runtime_predictor_and_api_check_images_alike(kind, open_artifact):
    image, needle = BAD_IMAGES[kind]
    predictor, model = runtime.load(open_artifact), edgeseg.load(open_artifact)
    messages = []
    for call in (predictor.predict, predictor.predict_logits, model.predict):
        with pytest.raises(UserError, match=re.escape(needle)) as info:
            call(image)
        messages.append(str(info.value))
    assert len(set(messages)) == 1, messages


def test_runtime_predictor_takes_a_path_like_the_api(open_artifact):
    predictor = runtime.load(open_artifact)
    assert predictor.predict(str(EXAMPLE)).shape == edgeseg.load(open_artifact).predict(EXAMPLE).shape
    with pytest.raises(UserError, match=r"run\(\) takes a preprocessed float input"):
        predictor.run(np.zeros((32, 32, 3), np.uint8))


# --- 4. vocabularies and options are checked, never coerced -------------------------------------------------------

BAD_NAMES = {
    "one string": ("sky", "not one string"),
    "None": (None, "not NoneType"),
    "an int": (3, "not int"),
    "a None name": (["sky", None], "class name #2 is NoneType"),
    "a number name": (["sky", 3], "class name #2 is int"),
    "10,000 characters": (["sky", "a" * 10_000], "has 10000 characters"),
    "same to an uncased tokenizer": (["Sky", "sky"], "'Sky' and 'sky' are the same words"),
    "empty name": (["sky", "  "], "class name #2 is empty"),
}


@pytest.mark.parametrize("kind", list(BAD_NAMES))
def test_set_classes_refuses_instead_of_coercing(kind, open_artifact, tiny_run):
    names, needle = BAD_NAMES[kind]
    for model in (edgeseg.load(open_artifact), edgeseg.load(tiny_run / "best.pt")):
        before = model.classes
        with pytest.raises(UserError, match=needle):
            model.set_classes(names)
        assert model.classes == before
    with pytest.raises(UserError, match=needle):
        runtime.load(open_artifact).set_classes(names)


def test_vocabulary_limits(open_artifact, tiny_run):
    predictor = runtime.load(open_artifact)
    with pytest.raises(UserError, match="at most 32 fit"):
        predictor.set_classes([f"thing {i}" for i in range(33)])
    from edgeseg.text import name_checker

    clip = name_checker({"text_encoder": "openclip:ViT-B-32/any"})  # its tokenizer ships with open_clip: 77 tokens
    with pytest.raises(UserError, match="too long for text encoder openclip:ViT-B-32/any: its prompt takes"):
        clip.same_text("/".join(["x"] * 40))
    assert clip.same_text("Sky") == clip.same_text("sky")
    model = edgeseg.load(tiny_run / "best.pt")
    with pytest.raises(UserError, match="too long for this text encoder"):  # the device's 32-token prompt
        predictor.set_classes(["sky", " ".join(["word"] * 30)])
    with pytest.raises(UserError, match="max-classes must be an integer, not str"):
        model.export("onnx", max_classes="4", open_vocab=True)
    with pytest.raises(UserError, match="threads 0: must be at least 1"):
        runtime.load(open_artifact, threads=0)


OPTION_CASES = {
    "--max-classes 0": (["deploy.export", "--open-vocab", "--max-classes", "0"], "--max-classes 0: must be at least 1"),
    "--max-classes 100000": (["deploy.export", "--open-vocab", "--max-classes", "100000"],
                             "must be at most 1024 (every slot is a score map"),
    "--img-size 0": (["deploy.export", "--img-size", "0"], "--img-size 0: must be at least 32"),
    "--calib-size 0": (["deploy.export", "--calib-size", "0"], "--calib-size 0: must be at least 1"),
    "--unseen ''": (["edgeseg.train", "--unseen", "", "--iters", "1"], "--unseen: no class names given"),
    "--threads -1": (["deploy.predict", "--model", "ARTIFACT", "--source", str(EXAMPLE), "--threads", "-1"],
                     "--threads -1: must be at least 1"),
    "benchmark --threads a": (["benchmarks.latency", "--threads", "1,a"], "--threads: 'a' is not an integer"),
}


@pytest.mark.parametrize("name", list(OPTION_CASES))
def test_options_out_of_range(name, tiny_run, open_artifact, tmp_path):
    args, needle = OPTION_CASES[name]
    args = [a.replace("ARTIFACT", str(open_artifact)) for a in args] + ["--out", str(tmp_path / "o")]
    if args[0] in ("deploy.export", "benchmarks.latency"):
        args += ["--checkpoint", str(tiny_run / "best.pt")]
    assert_one_line_error(run_cli(*args), needle)
    assert not (tmp_path / "o").exists() or args[0] == "edgeseg.train"


# --- 5. verification never scores images the quantizer saw ------------------------------------------------------

def test_copies_of_calibration_frames_are_not_verification_images(tiny_run, tmp_path):
    frames = tmp_path / "frames"
    rng = np.random.default_rng(0)
    for i in range(5):
        write_image(frames / f"frame_{i:03d}.png", rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    shutil.copy(frames / "frame_001.png", frames / "frame_005_copy.png")  # a frame dump's duplicate, renamed
    proc = run_cli("deploy.export", "--checkpoint", str(tiny_run / "best.pt"), "--precision", "int8",
                   "--calib-data", str(frames), "--verify-data", str(frames), "--calib-size", "3",
                   "--verify-images", "2", "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "have the same pixels as calibration images")
    assert "frame_005_copy.png" in proc.stderr and not (tmp_path / "o").exists()


def test_parity_json_records_calibration_and_verification_images(tiny_run, open_artifact, tmp_path):
    from deploy.export import export

    report = export(tiny_run / "best.pt", "onnx", "int8", tmp_path / "o", calib_data="synthetic", calib_size=4,
                    verify_images=2, progress=False, enforce=False)[0]
    written = json.loads((Path(report["artifact"]).parent / "parity.json").read_text())["images"]
    assert [len(written["calibration"]), len(written["verification"])] == [4, 2]
    for record in written["calibration"] + written["verification"]:
        assert set(record) == {"image", "sha256"} and len(record["sha256"]) == 16
    assert not {r["sha256"] for r in written["calibration"]} & {r["sha256"] for r in written["verification"]}
    fp32 = json.loads((open_artifact / "parity.json").read_text())["images"]
    assert "calibration" not in fp32 and len(fp32["verification"]) == 2
