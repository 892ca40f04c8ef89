"""Export a checkpoint to on-device artifacts, verified against torch.

python -m deploy.export --checkpoint runs/demo/best.pt --target coreml [--precision fp16]
python -m deploy.export --checkpoint best.pt --target all --precision int8 --calib-data synthetic

Each artifact goes to OUT/<target>-<precision>[-nhwc][-int8io|-w8a8][-openvocab]/ with card.json and parity.json;
the folder appears only when export and verification succeed (it is built aside and renamed).
Precisions: fp32, fp16 and int8 (w8a8; Core ML: int8 weights, or W8A8 with --coreml-w8a8) on every target.
Inputs are NCHW float32 [1, 3, S, S], normalised with the card's mean/std (Core ML: an RGB image,
normalisation folded in); outputs float32 logits. TFLite int8 keeps float I/O unless --int8-io;
--nhwc makes TFLite input [1, S, S, 3] and logits [1, h, w, K] (Android).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from deploy.calibration import check_disjoint, load_inputs_with_ids
from deploy import rewrites
from deploy.outputs import OUTPUTS
from deploy.parity import PRECISIONS, THRESHOLDS, compare, torch_reference
from deploy.targets import TARGETS, get_target, missing_package
from deploy.targets.onnx import DEFAULT_RECIPE as ONNX_DEFAULT, RECIPES as ONNX_RECIPES
from deploy.targets.tflite import DEFAULT_RECIPE as TFLITE_DEFAULT, RECIPES as TFLITE_RECIPES
from edgeseg.card import load_model
from edgeseg.errors import CheckFailed, UserError, cli_main
from edgeseg import checks
from edgeseg.io import atomic_path, file_hash, load_checkpoint, remove_partials, write_json
from deploy.vocabulary import (
    DEFAULT_MIN_SLOTS,
    calibration_vocabularies,
    default_max_classes,
    pad_vocabulary,
    parity_vocabularies,
    vocabulary_names,
)
from edgeseg.models import OpenVocabSegmenter
from edgeseg.models.heads import accepts_any_k
from edgeseg.registry import Registry



def _split(value: str | Sequence[str], valid: Registry) -> list[str]:
    """A comma list (or sequence) of `valid`'s names, `all` for every one (also as a one-item sequence)."""
    value = value if isinstance(value, str) else ",".join(value)
    return list(valid) if value == "all" else valid.choose(value)


def export_one(graph: torch.nn.Module, example: tuple, card: dict, target: str, precision: str, out_dir: Path,
               calibration: list[tuple[np.ndarray, ...]], verify: list[tuple[np.ndarray, ...]] | None,
               enforce: bool = True, text_encoder: dict | None = None, images: dict | None = None,
               progress: bool = False) -> dict:
    """Export, verify and atomically publish one artifact folder; returns its parity report.

    The whole folder (model, card, embeddings, `text_encoder` when given — {"context": the checkpoint's
    learned context or None} — and parity.json) is built beside the old one and swapped in only when complete
    and verified: an interrupt or a failure at any point leaves a previous export there byte-identical.
    `images` ({"calibration": [...], "verification": [...]}, name + pixel digest each) goes into parity.json.
    With `enforce` (the CLI's behaviour) a parity failure publishes nothing and raises CheckFailed;
    without it (benchmarks) the artifact is kept and the report says it did not pass."""
    module = get_target(target)
    if precision not in module.PRECISIONS:
        raise UserError(f"target {target} does not support {precision}; it supports {', '.join(module.PRECISIONS)}")
    if card.get("input") == "unit" and target == "tflite":  # MediaPipe: [0, 1] RGB in, normalisation inside
        from deploy.outputs import UnitInput

        graph = UnitInput(graph, card["mean"], card["std"]).eval()
        calibration = [(to_unit(x, card), *rest) for x, *rest in calibration]
    output = card.get("output", "logits")
    if output != "logits":  # the app's upsample (+ softmax / argmax) moved into the graph
        from deploy.outputs import OutputGraph, mask_dtype

        dtype = mask_dtype(output_classes(card), target)
        card = dict(card, output_name=output, mask_dtype=dtype if output == "mask" else None)
        rewritten, applied = rewrites.apply(graph, card, target, precision)  # deploy.rewrites: exact, measured
        graph = rewritten or OutputGraph(graph, output, card["img_size"], dtype).eval()
        card["rewrites_applied"] = applied
    int8_io = bool(card.get("int8_io")) and target == "tflite" and precision == "int8"
    w8a8 = bool(card.get("w8a8")) and target == "coreml" and precision == "int8"
    layout = "nhwc" if card.get("layout") == "nhwc" and target == "tflite" else "nchw"
    variant = "".join(tag for tag, on in (("-nhwc", layout == "nhwc"), ("-int8io", int8_io), ("-w8a8", w8a8),
                                          ("-openvocab", card["open_vocab"]), (f"-{output}", output != "logits"),
                                          ("-u8", card.get("input") == "uint8"), ("-mediapipe", card.get("mediapipe")))
                      if on)
    name = f"{target}-{precision}{variant}"
    final = out_dir / name
    artifact_card = dict(card, target=target, precision=precision, int8_io=int8_io, w8a8=w8a8, layout=layout)
    for recipe_target in ("onnx", "tflite"):
        if (target, precision) != (recipe_target, "int8"):
            artifact_card.pop(f"{recipe_target}_int8_recipe", None)
    with atomic_path(final) as tmp:
        tmp.mkdir()
        artifact = tmp / f"model{module.SUFFIX}"
        started = time.time()
        try:
            simulation = module.export(graph, example, artifact, precision, calibration, artifact_card)
        except UserError:
            raise
        except ImportError as exc:  # an optional converter package is not installed: name the extra
            raise missing_package(target, exc) from exc
        except Exception as exc:  # converter failures: unsupported op, bad shape, ...
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise UserError(f"{target} {precision} conversion failed: {first} (rerun with --debug for the "
                            "converter's traceback; try another --precision or target)") from exc
        write_json(tmp / "card.json", artifact_card)
        if card["open_vocab"]:  # the trained vocabulary, unpadded (its names are the card's classes)
            np.save(tmp / "text_embeddings.npy", example[1].numpy()[: len(card["classes"])])
        report = {"target": target, "artifact": str(final / artifact.name), "export_seconds": round(time.time() - started, 1),
                  "bytes": _size(artifact)}
        if verify is not None:
            _say(progress, f"  verifying {name} against torch ...")
        report.update(_verify(module, target, precision, artifact, graph, artifact_card, verify, simulation))
        if images:
            report["images"] = {role: list(records) for role, records in images.items()
                                if role != "calibration" or precision == "int8"}
        write_json(tmp / "parity.json", report)
        if enforce and verify is not None and not report.get("passed", True):
            write_json(out_dir / f"{name}.parity-failed.json", report)
            where = f"report: {out_dir / (name + '.parity-failed.json')}"
            simulated = report.get("simulated", {})
            if simulated and not simulated["passed"]:
                raise CheckFailed(f"{name}: simulated pixel agreement {100 * simulated['pixel_agreement']:.2f}% is "
                                  f"below {100 * simulated['threshold']:.1f}% ({where}; use more/better --calib-data "
                                  "or weights-only int8)")
            if "pixel_agreement" not in report:
                raise CheckFailed(f"{name}: the package's spec does not match the model card ({where})")
            worst = min(report.get("by_classes", {}).items(), key=lambda kv: kv[1],
                        default=("", report["pixel_agreement"]))
            shown = (f"pixel agreement {100 * worst[1]:.2f}% with {worst[0]} classes" if worst[0] else
                     f"pixel agreement {100 * report['pixel_agreement']:.2f}%")
            raise CheckFailed(f"{name}: {shown} is below "
                              f"{100 * report['threshold']:.1f}% ({where}; "
                              "use more/better --calib-data, another precision, or --no-verify)")
        if text_encoder is not None:  # inside the new folder, so it is published with the model or not at all
            report["text_encoder"] = _text_encoder(tmp, artifact_card, text_encoder.get("context"), target, precision,
                                                   verify)
            write_json(tmp / "parity.json", report)
        _say(progress, f"  publishing {final}")
    return report


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    extra = path.with_suffix(".bin")  # OpenVINO weights
    return path.stat().st_size + (extra.stat().st_size if extra.exists() else 0)


def _verify(module, target: str, precision: str, artifact: Path, graph: torch.nn.Module, card: dict,
            samples: list[tuple[np.ndarray, ...]] | None, simulation=None) -> dict:
    if samples is None:
        return {"verified": False}
    if target == "coreml" and platform.system() != "Darwin":
        summary = module.spec_summary(artifact)
        expected_out = expected_output_shape(card)
        vocabulary_ok = not card["open_vocab"] or (
            summary["inputs"].get("text_embeddings") == [output_classes(card), int(card["text_dim"])]
            and summary["inputs"].get("valid") == [output_classes(card)])
        ok = (summary["inputs"].get("image") == [1, 3, card["img_size"], card["img_size"]] and summary["image_input"]
              and vocabulary_ok
              and summary["outputs"].get(card.get("output_name", "logits")) == expected_out
              and "edgeseg_card" in summary["metadata"]
              and (not card.get("w8a8") or {"quantize", "dequantize"} <= set(summary["ops"])))
        report = {"verified": "spec-only (Core ML prediction needs macOS)", "passed": ok,
                  "spec": {k: v for k, v in summary.items() if k != "metadata"}}
        if simulation is not None:  # the quantized torch graph that was converted, against the float model
            simulated = compare(torch_reference(graph), simulation, samples, output_classes(card), precision)
            report.update(passed=ok and simulated["passed"], simulated=dict(
                simulated, note="torch simulation of the converted quantized graph (the Core ML runtime needs macOS)"))
        return report
    backend, reference = module.load(artifact), torch_reference(graph)
    if card.get("input") in ("uint8", "unit"):  # frames in: both sides see the same uint8 image
        # (a "unit" graph normalises inside, in torch too; a uint8 artifact's torch graph takes the normalised form)
        backend = _frames(backend, card)
        reference = _frames(reference, card, normalise=card["input"] == "uint8")
    report = {"verified": True, "runtime": backend.version,
              **compare(reference, backend, samples, output_classes(card), precision)}
    if card["open_vocab"]:  # agreement per vocabulary size (K = 1, a middle K, K_max), each at the threshold
        sizes = sorted({int(sample[2].sum()) for sample in samples})
        report["by_classes"] = {
            str(k): compare(reference, backend, [s for s in samples if int(s[2].sum()) == k],
                            output_classes(card), precision)["pixel_agreement"] for k in sizes}
        report["passed"] = report["passed"] and all(v >= report["threshold"] for v in report["by_classes"].values())
    return report


class _frames:
    """Wraps a model function of a normalised [1, 3, S, S] input so it is fed the uint8 RGB frame that input
    came from: as [1, S, S, 3] uint8 (an artifact with the preprocessing inside), or normalised again
    (`normalise`, the torch reference), so both see identical pixels."""

    def __init__(self, run, card: dict, normalise: bool = False) -> None:
        self.run, self.card, self.normalise = run, card, normalise
        self.version = getattr(run, "version", "torch")

    def __call__(self, image: np.ndarray, *rest: np.ndarray) -> np.ndarray:
        from edgeseg.preprocess import normalize, to_frame, unit_input

        frame = to_frame(image, self.card)
        if self.normalise:
            return self.run(normalize(frame, self.card["mean"], self.card["std"])[None], *rest)
        if self.card["input"] == "unit":  # float [0, 1] NCHW (the TFLite backend lays it out NHWC)
            return self.run(unit_input(frame), *rest)
        return self.run(frame[None], *rest)


def to_unit(inputs: np.ndarray, card: dict) -> np.ndarray:
    """A normalised model input [1, 3, S, S] -> the same image as float RGB in [0, 1] (what MediaPipe feeds)."""
    mean = np.asarray(card["mean"], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(card["std"], np.float32).reshape(1, 3, 1, 1)
    return (inputs * std + mean).astype(np.float32)


def _text_encoder(folder: Path, card: dict, context: dict | None, target: str, precision: str,
                  verify: list[tuple[np.ndarray, ...]] | None) -> dict:
    """Export the text tower into the published artifact folder and check it: embedding cosine and masks."""
    from deploy.text_export import check_masks, export_text_encoder

    print(f"  text encoder {target} ...", file=sys.stderr, flush=True)
    artifact_card = card
    report = export_text_encoder(artifact_card, context, target, precision, folder / "text_encoder")
    if verify is not None and (target != "coreml" or platform.system() == "Darwin"):  # Core ML runs on macOS only
        report["mask_agreement_by_classes"] = check_masks(folder, artifact_card, context,
                                                          list({id(s[0]): s for s in verify}.values())[:8],
                                                          THRESHOLDS[precision])
        write_json(folder / "text_encoder" / "parity.json", report)
    print(f"  text encoder: min cosine {report['min_cosine']:.5f} over {report['names']} names"
          f"{'; masks ' + str(report['mask_agreement_by_classes']) if 'mask_agreement_by_classes' in report else ''}",
          file=sys.stderr)
    return report


def expected_output_shape(card: dict) -> list[int]:
    """The graph's output shape for its card: logits at the output stride, probs / mask at the input size."""
    size, classes = card["img_size"], output_classes(card)
    output = card.get("output", "logits")
    if output == "mask":
        return [1, size, size]
    return [1, classes, size, size] if output == "probs" else \
        [1, classes, size // card["output_stride"], size // card["output_stride"]]


def output_classes(card: dict) -> int:
    """Class maps the graph returns: K_max slots for open-vocab artifacts, else the trained K."""
    return int(card.get("max_classes") or len(card["classes"])) if card.get("open_vocab") else len(card["classes"])


def export(checkpoint: str | Path, target: str | Sequence[str] = "onnx", precision: str | Sequence[str] = "fp32",
           out: str | Path = "runs/export", *, calib_data: str | None = None, calib_size: int = 32,
           img_size: int | None = None, open_vocab: bool = False, max_classes: int | None = None,
           verify_images: int = 16, verify_data: str | None = None, int8_io: bool = False, nhwc: bool = False,
           coreml_w8a8: bool = False, onnx_int8_recipe: str | None = None, tflite_int8_recipe: str | None = None,
           text_encoder: bool = False,
           output: str = "logits", uint8_input: bool = False, mediapipe: bool = False, rewrite: str | None = None,
           verify: bool = True,
           enforce: bool = True, progress: bool = True) -> list[dict]:
    """Export a checkpoint to each target x precision under `out`, verified against torch; returns the
    parity reports (each with `artifact`, the model file). The Python form of `python -m deploy.export`:
    the same options (underscored), the same `UserError`s for bad combinations, and with `enforce` a
    `CheckFailed` when an artifact misses its precision's agreement threshold (nothing is published)."""
    targets, precisions = _split(target, TARGETS), _split(precision, PRECISIONS)
    if not targets or not precisions:
        raise UserError("give at least one target and one precision")
    if int8_io and not ("tflite" in targets and "int8" in precisions):
        raise UserError("--int8-io applies to TFLite int8 artifacts only: add --target tflite --precision int8")
    if nhwc and "tflite" not in targets:
        raise UserError("--nhwc applies to TFLite artifacts only: add --target tflite")
    if coreml_w8a8 and not ("coreml" in targets and "int8" in precisions):
        raise UserError("--coreml-w8a8 applies to Core ML int8 artifacts only: add --target coreml --precision int8")
    if onnx_int8_recipe:
        ONNX_RECIPES.lookup(onnx_int8_recipe)
    if onnx_int8_recipe and not ("onnx" in targets and "int8" in precisions):
        raise UserError("--onnx-int8-recipe applies to ONNX int8 artifacts only: add --target onnx --precision int8")
    if tflite_int8_recipe:
        TFLITE_RECIPES.lookup(tflite_int8_recipe)
    if tflite_int8_recipe and not ("tflite" in targets and "int8" in precisions):
        raise UserError("--tflite-int8-recipe applies to TFLite int8 artifacts only: add --target tflite --precision int8")
    if mediapipe and set(targets) != {"tflite"}:
        raise UserError("--mediapipe applies to TFLite artifacts only: use --target tflite")
    if mediapipe and (output == "mask" or open_vocab or int8_io):
        raise UserError("--mediapipe: MediaPipe's ImageSegmenter reads float class scores from a closed-set graph; "
                        "drop --output mask / --open-vocab / --int8-io")
    nhwc = nhwc or mediapipe
    if uint8_input and set(targets) != {"openvino"}:
        raise UserError("--uint8-input applies to OpenVINO artifacts only (PrePostProcessor): use --target openvino")
    OUTPUTS.lookup(output, where="--output")
    calib_size = checks.integer(calib_size, "--calib-size", 1, 100_000)
    verify_images = checks.integer(verify_images, "--verify-images", 1, 100_000)
    if img_size is not None:
        img_size = checks.img_size(img_size)
    if max_classes is not None:
        max_classes = checks.integer(max_classes, "--max-classes", 1, checks.MAX_SLOTS,
                                     "every slot is a score map per pixel, and export embeds and verifies K_max names")
    if "int8" in precisions and not calib_data:
        raise UserError("int8 needs --calib-data: a folder of images like those the model will see "
                        "(or 'synthetic' for the embedded data)")
    model, card = load_model(str(checkpoint))
    context = load_checkpoint(str(checkpoint)).get("context") if open_vocab else None
    if img_size is not None:
        card["img_size"] = img_size
    card = dict(card, open_vocab=open_vocab, int8_io=int8_io, w8a8=coreml_w8a8,
                onnx_int8_recipe=onnx_int8_recipe or ONNX_DEFAULT, tflite_int8_recipe=tflite_int8_recipe or TFLITE_DEFAULT,
                output=output,
                input="uint8" if uint8_input else "unit" if mediapipe else "float", mediapipe=mediapipe,
                resize="mediapipe" if mediapipe else "antialias",  # how the app resizes (edgeseg.preprocess.RESIZES)
                layout="nhwc" if nhwc else "nchw", source_checkpoint=file_hash(checkpoint),
                rewrites=rewrites.choose(rewrite))
    size = card["img_size"]
    trained = model.text_embeddings.numpy().copy()
    vocabularies: list[tuple[np.ndarray, ...]] = [()]
    others = None
    if open_vocab:
        any_k = accepts_any_k(card)
        slots = max_classes or default_max_classes(len(trained), any_k)
        if slots < len(trained) or (not any_k and slots != len(trained)):
            raise UserError(f"--max-classes {slots}: this model's head takes "
                            f"{'at least ' if any_k else 'exactly '}{len(trained)} classes")
        card["max_classes"] = slots
        others = _other_names(card, context, slots, progress)
        vocabularies = parity_vocabularies(trained, slots, others)
        graph: torch.nn.Module = OpenVocabSegmenter(model).eval()
        full = pad_vocabulary(trained, slots, int(card["text_dim"]))
    elif max_classes or text_encoder:
        raise UserError(f"--{'max-classes' if max_classes else 'text-encoder'} applies to --open-vocab "
                        "artifacts only: add --open-vocab")
    else:
        graph, full = model.eval(), ()
    example = (torch.zeros(1, 3, size, size), *(torch.from_numpy(a) for a in full))
    calibration, calibration_ids, verify_ids = [], [], []
    if "int8" in precisions:
        images, calibration_ids = load_inputs_with_ids(calib_data, card, calib_size, "train")
        vocabularies_seen = calibration_vocabularies(trained, card["max_classes"], len(images), others) \
            if open_vocab else [()] * len(images)
        calibration = [(x, *vocabulary) for x, vocabulary in zip(images, vocabularies_seen)]
    samples = None
    if verify:  # default: the held-out val split (of --calib-data, else the embedded data)
        images, verify_ids = load_inputs_with_ids(verify_data or calib_data or "synthetic", card, verify_images, "val")
        check_disjoint(calibration_ids, verify_ids)
        samples = [(x, *vocabulary) for x in images for vocabulary in vocabularies]  # every K on every image
    out_dir = Path(out)
    remove_partials(out_dir)  # temp folders of an export that was killed (SIGKILL, power loss)
    images = {"calibration": calibration_ids, "verification": verify_ids}
    reports = []
    for one_target in targets:
        for one_precision in precisions:
            _say(progress, f"exporting {one_target} {one_precision} ...")
            report = export_one(graph, example, card, one_target, one_precision, out_dir, calibration, samples,
                                enforce=enforce, text_encoder={"context": context} if text_encoder else None,
                                images=images, progress=progress)
            reports.append(report)
            measured = report if "pixel_agreement" in report else report.get("simulated", {})
            check = (f"agreement {100 * measured['pixel_agreement']:.2f}%" + (
                f"  max|dlogit| {measured['max_abs_logit_diff']:.3g}" if measured.get("compared") != "masks" else
                " (masks)") if measured else "")
            if report["verified"] is not True:
                check = f"{check}{'  ' if check else ''}{report['verified'] or 'not verified'}"
                if "simulated" in report:
                    check += " (agreement: torch simulation)"
            _say(progress, f"  {report['artifact']}  {report['bytes'] / 1e6:.2f} MB  {check}")
    return reports


def _other_names(card: dict, context: dict | None, slots: int, progress: bool) -> np.ndarray | None:
    """Embeddings of real names past the trained ones (deploy.vocabulary.EXTRA_NAMES), the way the device
    will embed them, for the K_max parity vocabulary; None (noisy neighbours instead) without the encoder."""
    from edgeseg.prompt_learner import embed_class_names

    names = vocabulary_names(card, slots)[len(card["classes"]):]
    if not names:
        return None
    try:
        return embed_class_names(card, names, context)
    except (UserError, OSError, RuntimeError) as exc:
        _say(progress, f"note: cannot embed other names for the K_max parity check ({exc}); using noisy "
                       "neighbours of the trained classes")
        return None


def _say(progress: bool, message: str) -> None:
    if progress:
        print(message, file=sys.stderr, flush=True)


@cli_main(interrupted="interrupted; nothing half-made was published: each artifact folder under --out holds its "
                       "previous export, or the new one where that export had completed")
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.export", description=__doc__.splitlines()[0],
                                     epilog="\n".join(__doc__.splitlines()[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="best.pt / last.pt from edgeseg.train")
    parser.add_argument("--target", default="onnx", help=f"{', '.join(TARGETS)}, all, or a comma list")
    parser.add_argument("--precision", default="fp32", help="fp32, fp16, int8, all, or a comma list")
    parser.add_argument("--calib-data", default=None,
                        help="int8 calibration images: a folder of images, a dataset (--data form) or 'synthetic'")
    parser.add_argument("--calib-size", type=int, default=32, help="calibration images used for int8")
    parser.add_argument("--img-size", type=int, default=None, help="static input size (default: the card's)")
    parser.add_argument("--open-vocab", action="store_true",
                        help="the graph takes text embeddings [K_max, D] and a validity mask [K_max]: any 1..K_max "
                             "class names at run time (deploy.runtime set_classes / set_embeddings)")
    parser.add_argument("--max-classes", type=int, default=None,
                        help=f"--open-vocab slots K_max (default: the trained K, at least {DEFAULT_MIN_SLOTS}, where "
                             "the head takes any K; a closed-set denseclip head keeps its K)")
    parser.add_argument("--out", default="runs/export", help="output folder")
    parser.add_argument("--verify-images", type=int, default=16, help="images compared against torch")
    parser.add_argument("--verify-data", default=None,
                        help="images for verification (default: the val split of --calib-data, else of the embedded "
                             "data; an image folder gives its last images, calibration its first; overlap is an error)")
    parser.add_argument("--int8-io", action="store_true",
                        help="TFLite int8: int8 input/output tensors (the app quantizes with the model's scales); "
                             "default float32 I/O")
    parser.add_argument("--nhwc", action="store_true",
                        help="TFLite: channels-last image input [1, S, S, 3] and logits [1, h, w, K] (Android)")
    parser.add_argument("--coreml-w8a8", action="store_true",
                        help="Core ML int8: quantize activations too (W8A8, iOS 17+; calibrated in torch on "
                             "--calib-data); default int8 weights only (iOS 16+)")
    parser.add_argument("--tflite-int8-recipe", default=None, metavar="RECIPE",
                        help=f"TFLite int8: {', '.join(TFLITE_RECIPES)} (default {TFLITE_DEFAULT}, chosen by "
                             "measurement: docs/tflite-int8-recipes.md)")
    parser.add_argument("--onnx-int8-recipe", default=None, metavar="RECIPE",
                        help=f"ONNX int8: {', '.join(ONNX_RECIPES)} (default {ONNX_DEFAULT}, chosen by "
                             "measurement: docs/onnx-int8-recipes.md)")
    parser.add_argument("--text-encoder", action="store_true",
                        help="--open-vocab: also export the model's text tower (+ tokenizer assets) into "
                             "<artifact>/text_encoder, so the device embeds names a user types (set_classes)")
    parser.add_argument("--output", default="logits", choices=OUTPUTS,
                        help="what the graph returns: logits [1,K,S/4,S/4] (default; what MediaPipe and Vision "
                             "post-process themselves), probs (softmax at the input size) or mask (class indices "
                             "[1,S,S], uint8; the upsample and argmax run in the graph)")
    parser.add_argument("--mediapipe", action="store_true",
                        help="TFLite for MediaPipe Tasks' ImageSegmenter as is: NHWC float RGB in [0, 1] with the "
                             "normalisation inside, TFLite Model Metadata (normalization, labels, activation)")
    parser.add_argument("--uint8-input", action="store_true",
                        help="OpenVINO: take uint8 RGB NHWC frames of any size; resize, layout and mean/std run in "
                             "the model (PrePostProcessor), labels in rt_info")
    parser.add_argument("--rewrites", default="auto", metavar="auto|none|NAMES",
                        help=f"exact graph rewrites ({', '.join(rewrites.REWRITES)}): auto (default) applies each on the "
                             "targets where it measured faster (docs/rewrites.md); none exports the graph as trained")
    parser.add_argument("--no-verify", action="store_true", help="skip the artifact-vs-torch comparison")
    args = parser.parse_args(argv)
    rows = export(args.checkpoint, args.target, args.precision, args.out, calib_data=args.calib_data,
                  calib_size=args.calib_size, img_size=args.img_size, open_vocab=args.open_vocab,
                  max_classes=args.max_classes, verify_images=args.verify_images, verify_data=args.verify_data,
                  int8_io=args.int8_io, nhwc=args.nhwc, coreml_w8a8=args.coreml_w8a8,
                  onnx_int8_recipe=args.onnx_int8_recipe, tflite_int8_recipe=args.tflite_int8_recipe,
                  text_encoder=args.text_encoder, output=args.output,
                  uint8_input=args.uint8_input, mediapipe=args.mediapipe, rewrite=args.rewrites,
                  verify=not args.no_verify)
    print(json.dumps([{k: r[k] for k in ("artifact", "bytes", "pixel_agreement") if k in r} for r in rows], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
